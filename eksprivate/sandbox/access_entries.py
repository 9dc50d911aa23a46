"""EKS cluster access for moto: `accessConfig` and access entries, which moto 5.2 lacks.

A private cluster cannot be reached to edit the aws-auth ConfigMap, so the project relies on
`accessConfig.authenticationMode = API` plus access entries.  This module keeps the accessConfig
that moto drops, and adds CreateAccessEntry, DescribeAccessEntry, UpdateAccessEntry,
ListAccessEntries, DeleteAccessEntry, AssociateAccessPolicy, DisassociateAccessPolicy,
ListAssociatedAccessPolicies and ListAccessPolicies to moto's EKS backend, responses and URL map
(so they work in server mode as well).

Entries live on moto's Cluster object and so disappear with it.  Like EKS, a cluster created with
`bootstrapClusterCreatorAdminPermissions` gets an entry (with AmazonEKSClusterAdminPolicy) for the
caller, and a managed node group gets an EC2_LINUX entry for its node role.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from eksprivate.sandbox.core.patching import EKS_NODEGROUP_CREATED

if TYPE_CHECKING:
    from eksprivate.sandbox.core.patching import Patcher

CONFIG_MAP = "CONFIG_MAP"
AUTHENTICATION_MODES = (CONFIG_MAP, "API", "API_AND_CONFIG_MAP")
ENTRY_TYPES = ("STANDARD", "EC2_LINUX", "EC2_WINDOWS", "FARGATE_LINUX", "EC2", "HYBRID_LINUX")
POLICY_ARN_PREFIX = "arn:aws:eks::aws:cluster-access-policy/"
ACCESS_POLICIES = (
    "AmazonEKSAdminPolicy",
    "AmazonEKSAdminViewPolicy",
    "AmazonEKSClusterAdminPolicy",
    "AmazonEKSEditPolicy",
    "AmazonEKSViewPolicy",
    "AmazonEKSAutoNodePolicy",
    "AmazonEKSBlockStoragePolicy",
    "AmazonEKSComputePolicy",
    "AmazonEKSHybridPolicy",
    "AmazonEKSLoadBalancingPolicy",
    "AmazonEKSNetworkingPolicy",
)
CLUSTER_ADMIN_POLICY = POLICY_ARN_PREFIX + "AmazonEKSClusterAdminPolicy"

# Messages as EKS words them.
NOT_API_MODE_MSG = (
    "The cluster's authentication mode must be set to one of [API, API_AND_CONFIG_MAP] to perform this operation."
)
ENTRY_IN_USE_MSG = "The specified access entry resource is already in use on this cluster."
ENTRY_NOT_FOUND_MSG = (
    "The specified principalArn could not be found. "
    "You can view your available access entries with 'list-access-entries'."
)
POLICY_NOT_FOUND_MSG = (
    "The specified policyArn could not be found. "
    "You can view your available access policies with 'list-access-policies'."
)

_PRINCIPAL = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):iam::(?P<account>\d{12}):(?P<kind>role|user)/(?:.*/)?(?P<name>[^/]+)$"
)
_ASSUMED_ROLE = re.compile(r"^arn:(?P<partition>[^:]+):sts::(?P<account>\d{12}):assumed-role/(?P<name>[^/]+)/")
_STS_USER = re.compile(r"^arn:(?P<partition>[^:]+):sts::(?P<account>\d{12}):user/(?P<name>.+)$")
_ENTRIES = "access_entries"


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class AssociatedAccessPolicy:
    """Attribute names follow botocore's shape (moto's serializer maps camelCase to snake_case)."""

    policy_arn: str
    access_scope: dict[str, Any]
    associated_at: datetime = field(default_factory=_utcnow)
    modified_at: datetime = field(default_factory=_utcnow)


@dataclass
class AccessEntry:
    cluster_name: str
    principal_arn: str
    access_entry_arn: str
    type: str
    username: str
    kubernetes_groups: list[str]
    tags: dict[str, str]
    client_request_token: str | None = None
    created_at: datetime = field(default_factory=_utcnow)
    modified_at: datetime = field(default_factory=_utcnow)
    policies: dict[str, AssociatedAccessPolicy] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------
# Errors


def _invalid_request(message: str) -> Exception:
    from moto.eks.exceptions import InvalidRequestException

    return InvalidRequestException(message=message)


def _invalid_parameter(message: str) -> Exception:
    from moto.eks.exceptions import InvalidParameterException

    return InvalidParameterException(message=message)


def _not_found(cluster_name: str, message: str) -> Exception:
    from moto.eks.exceptions import ResourceNotFoundException

    return ResourceNotFoundException(
        clusterName=cluster_name,
        nodegroupName=None,
        fargateProfileName=None,
        addonName=None,
        message=message,
    )


def _in_use(cluster_name: str, message: str) -> Exception:
    from moto.eks.exceptions import ResourceInUseException

    return ResourceInUseException(clusterName=cluster_name, nodegroupName=None, addonName=None, message=message)


# ---------------------------------------------------------------------------------------------------
# Backend logic (functions over moto's EKSBackend and Cluster)


def authentication_mode(cluster: Any) -> str:
    config: dict[str, Any] = vars(cluster).get("access_config") or {}
    return str(config.get("authenticationMode", CONFIG_MAP))


def _entries(cluster: Any) -> dict[str, AccessEntry]:
    entries: dict[str, AccessEntry] = vars(cluster).setdefault(_ENTRIES, {})
    return entries


def _api_cluster(backend: Any, cluster_name: str) -> Any:
    """The cluster, if it exists and takes access entries."""
    cluster = backend.describe_cluster(name=cluster_name)  # reaps; raises ResourceNotFound
    if authentication_mode(cluster) == CONFIG_MAP:
        raise _invalid_request(NOT_API_MODE_MSG)
    return cluster


def _entry(backend: Any, cluster_name: str, principal_arn: str) -> AccessEntry:
    cluster = _api_cluster(backend, cluster_name)
    try:
        return _entries(cluster)[principal_arn]
    except KeyError:
        raise _not_found(cluster_name, ENTRY_NOT_FOUND_MSG) from None


def access_config(requested: dict[str, Any] | None) -> dict[str, Any]:
    """CreateCluster's accessConfig with EKS's defaults (CONFIG_MAP, bootstrap on), validated."""
    requested = requested or {}
    mode = requested.get("authenticationMode", CONFIG_MAP)
    if mode not in AUTHENTICATION_MODES:
        raise _invalid_parameter(f"Unsupported authentication mode: {mode}")
    return {
        "authenticationMode": mode,
        "bootstrapClusterCreatorAdminPermissions": bool(requested.get("bootstrapClusterCreatorAdminPermissions", True)),
    }


def set_access_config(backend: Any, cluster: Any, config: dict[str, Any], creator_arn: str) -> None:
    """Keep the accessConfig on the cluster and, like EKS, give the creator an admin entry when the
    cluster takes access entries."""
    cluster.access_config = config
    if config["bootstrapClusterCreatorAdminPermissions"] and config["authenticationMode"] != CONFIG_MAP:
        entry = _add_entry(backend, cluster, principal_arn=creator_arn)
        entry.policies[CLUSTER_ADMIN_POLICY] = AssociatedAccessPolicy(CLUSTER_ADMIN_POLICY, {"type": "cluster"})


def ensure_node_role_entry(backend: Any, cluster: Any, node_role_arn: str) -> None:
    """What EKS does for a managed node group on a cluster that takes access entries."""
    if cluster is None or authentication_mode(cluster) == CONFIG_MAP:
        return
    if node_role_arn not in _entries(cluster) and _PRINCIPAL.match(node_role_arn):
        _add_entry(backend, cluster, principal_arn=node_role_arn, entry_type="EC2_LINUX")


def creator_principal(caller_arn: str) -> str:
    """The IAM ARN EKS records for a caller: an assumed-role session maps to its role."""
    assumed = _ASSUMED_ROLE.match(caller_arn)
    if assumed:
        return f"arn:{assumed['partition']}:iam::{assumed['account']}:role/{assumed['name']}"
    # moto answers unknown credentials with arn:aws:sts::<account>:user/moto.
    sts_user = _STS_USER.match(caller_arn)
    if sts_user:
        return f"arn:{sts_user['partition']}:iam::{sts_user['account']}:user/{sts_user['name']}"
    return caller_arn


def _add_entry(
    backend: Any,
    cluster: Any,
    principal_arn: str,
    entry_type: str = "STANDARD",
    username: str | None = None,
    kubernetes_groups: list[str] | None = None,
    tags: dict[str, str] | None = None,
    client_request_token: str | None = None,
) -> AccessEntry:
    principal = _PRINCIPAL.match(principal_arn)
    if principal is None:
        raise _invalid_parameter(f"The specified principalArn is invalid: {principal_arn}")
    if entry_type not in ENTRY_TYPES:
        raise _invalid_parameter(f"The specified access entry type is invalid: {entry_type}")
    if entry_type != "STANDARD" and (username or kubernetes_groups):
        raise _invalid_parameter(
            f"The username and kubernetesGroups cannot be specified for access entries of type {entry_type}."
        )
    if entry_type == "STANDARD":
        default_username = principal_arn
        if principal["kind"] == "role":
            default_username = (
                f"arn:{principal['partition']}:sts::{principal['account']}:assumed-role/"
                f"{principal['name']}/{{{{SessionName}}}}"
            )
        groups = list(kubernetes_groups or [])
    else:
        default_username = "system:node:{{EC2PrivateDNSName}}"
        groups = ["system:nodes"]
    entry = AccessEntry(
        cluster_name=cluster.name,
        principal_arn=principal_arn,
        access_entry_arn=(
            f"arn:{backend.partition}:eks:{backend.region_name}:{backend.account_id}:access-entry/"
            f"{cluster.name}/{principal['kind']}/{principal['account']}/{principal['name']}/{uuid.uuid4()}"
        ),
        type=entry_type,
        username=username or default_username,
        kubernetes_groups=groups,
        tags=dict(tags or {}),
        client_request_token=client_request_token,
    )
    _entries(cluster)[principal_arn] = entry
    return entry


def create_access_entry(
    backend: Any,
    cluster_name: str,
    principal_arn: str,
    entry_type: str | None,
    username: str | None,
    kubernetes_groups: list[str] | None,
    tags: dict[str, str] | None,
    client_request_token: str | None,
) -> AccessEntry:
    cluster = _api_cluster(backend, cluster_name)
    existing = _entries(cluster).get(principal_arn)
    if existing is not None:
        if client_request_token and existing.client_request_token == client_request_token:
            return existing  # a retried request
        raise _in_use(cluster_name, ENTRY_IN_USE_MSG)
    return _add_entry(
        backend,
        cluster,
        principal_arn,
        entry_type=entry_type or "STANDARD",
        username=username,
        kubernetes_groups=kubernetes_groups,
        tags=tags,
        client_request_token=client_request_token,
    )


def update_access_entry(
    backend: Any,
    cluster_name: str,
    principal_arn: str,
    username: str | None,
    kubernetes_groups: list[str] | None,
) -> AccessEntry:
    entry = _entry(backend, cluster_name, principal_arn)
    if entry.type != "STANDARD" and (username or kubernetes_groups):
        raise _invalid_parameter(
            f"The username and kubernetesGroups cannot be specified for access entries of type {entry.type}."
        )
    if username is not None:
        entry.username = username
    if kubernetes_groups is not None:
        entry.kubernetes_groups = list(kubernetes_groups)
    entry.modified_at = _utcnow()
    return entry


def delete_access_entry(backend: Any, cluster_name: str, principal_arn: str) -> None:
    cluster = _api_cluster(backend, cluster_name)
    if _entries(cluster).pop(principal_arn, None) is None:
        raise _not_found(cluster_name, ENTRY_NOT_FOUND_MSG)


def list_access_entries(backend: Any, cluster_name: str, associated_policy_arn: str | None) -> list[str]:
    cluster = _api_cluster(backend, cluster_name)
    return sorted(
        arn
        for arn, entry in _entries(cluster).items()
        if associated_policy_arn is None or associated_policy_arn in entry.policies
    )


def _validate_scope(scope: dict[str, Any] | None) -> dict[str, Any]:
    scope = scope or {}
    scope_type = scope.get("type")
    namespaces = list(scope.get("namespaces") or [])
    if scope_type == "cluster" and not namespaces:
        return {"type": "cluster"}
    if scope_type == "namespace" and namespaces:
        return {"type": "namespace", "namespaces": namespaces}
    raise _invalid_parameter(
        "accessScope must be of type 'cluster' without namespaces or of type 'namespace' with namespaces."
    )


def associate_access_policy(
    backend: Any, cluster_name: str, principal_arn: str, policy_arn: str, access_scope: dict[str, Any] | None
) -> AssociatedAccessPolicy:
    entry = _entry(backend, cluster_name, principal_arn)
    if policy_arn.removeprefix(POLICY_ARN_PREFIX) not in ACCESS_POLICIES:
        raise _not_found(cluster_name, POLICY_NOT_FOUND_MSG)
    if entry.type != "STANDARD":
        raise _invalid_request(f"Access policies cannot be associated with access entries of type {entry.type}.")
    scope = _validate_scope(access_scope)
    policy = entry.policies.get(policy_arn)
    if policy is None:
        policy = entry.policies[policy_arn] = AssociatedAccessPolicy(policy_arn, scope)
    else:  # associating again replaces the scope
        policy.access_scope = scope
        policy.modified_at = _utcnow()
    return policy


def disassociate_access_policy(backend: Any, cluster_name: str, principal_arn: str, policy_arn: str) -> None:
    entry = _entry(backend, cluster_name, principal_arn)
    if entry.policies.pop(policy_arn, None) is None:
        raise _not_found(cluster_name, POLICY_NOT_FOUND_MSG)


def list_associated_access_policies(
    backend: Any, cluster_name: str, principal_arn: str
) -> list[AssociatedAccessPolicy]:
    entry = _entry(backend, cluster_name, principal_arn)
    return [entry.policies[arn] for arn in sorted(entry.policies)]


# ---------------------------------------------------------------------------------------------------
# Responses: methods added to moto's EKSResponse (named after the operations, as moto dispatches)


def _paginate(self: Any, items: list[Any], key: str, **extra: Any) -> Any:
    from moto.core.responses import ActionResult

    max_results = self._get_int_param("maxResults", 100)
    start = int(self._get_param("nextToken") or 0)
    page = items[start : start + max_results]
    next_token = str(start + max_results) if start + max_results < len(items) else None
    return ActionResult({**extra, key: page, "nextToken": next_token})


def _create_cluster_response(self: Any) -> Any:
    config = access_config(self._get_param("accessConfig"))  # refuse a bad one before creating
    result = _original_create_cluster(self)
    cluster = result.result["cluster"]
    if "access_config" not in vars(cluster):  # not a retried (idempotent) request
        from moto.sts.models import sts_backends

        _, caller_arn, _ = sts_backends[self.current_account]["global"].get_caller_identity(
            self.get_access_key(), self.region
        )
        set_access_config(self.eks_backend, cluster, config, creator_principal(caller_arn))
    return result


def _create_access_entry_response(self: Any) -> Any:
    from moto.core.responses import ActionResult

    entry = create_access_entry(
        self.eks_backend,
        cluster_name=self._get_param("name"),
        principal_arn=self._get_param("principalArn"),
        entry_type=self._get_param("type"),
        username=self._get_param("username"),
        kubernetes_groups=self._get_param("kubernetesGroups"),
        tags=self._get_param("tags"),
        client_request_token=self._get_param("clientRequestToken"),
    )
    return ActionResult({"accessEntry": entry})


def _describe_access_entry_response(self: Any) -> Any:
    from moto.core.responses import ActionResult

    entry = _entry(self.eks_backend, self._get_param("name"), self._get_param("principalArn"))
    return ActionResult({"accessEntry": entry})


def _update_access_entry_response(self: Any) -> Any:
    from moto.core.responses import ActionResult

    entry = update_access_entry(
        self.eks_backend,
        cluster_name=self._get_param("name"),
        principal_arn=self._get_param("principalArn"),
        username=self._get_param("username"),
        kubernetes_groups=self._get_param("kubernetesGroups"),
    )
    return ActionResult({"accessEntry": entry})


def _delete_access_entry_response(self: Any) -> Any:
    from moto.core.responses import EmptyResult

    delete_access_entry(self.eks_backend, self._get_param("name"), self._get_param("principalArn"))
    return EmptyResult()


def _list_access_entries_response(self: Any) -> Any:
    arns = list_access_entries(self.eks_backend, self._get_param("name"), self._get_param("associatedPolicyArn"))
    return _paginate(self, arns, "accessEntries")


def _associate_access_policy_response(self: Any) -> Any:
    from moto.core.responses import ActionResult

    cluster_name = self._get_param("name")
    principal_arn = self._get_param("principalArn")
    policy = associate_access_policy(
        self.eks_backend,
        cluster_name=cluster_name,
        principal_arn=principal_arn,
        policy_arn=self._get_param("policyArn"),
        access_scope=self._get_param("accessScope"),
    )
    return ActionResult({"clusterName": cluster_name, "principalArn": principal_arn, "associatedAccessPolicy": policy})


def _disassociate_access_policy_response(self: Any) -> Any:
    from moto.core.responses import EmptyResult

    disassociate_access_policy(
        self.eks_backend, self._get_param("name"), self._get_param("principalArn"), self._get_param("policyArn")
    )
    return EmptyResult()


def _list_associated_access_policies_response(self: Any) -> Any:
    cluster_name = self._get_param("name")
    principal_arn = self._get_param("principalArn")
    policies = list_associated_access_policies(self.eks_backend, cluster_name, principal_arn)
    return _paginate(self, policies, "associatedAccessPolicies", clusterName=cluster_name, principalArn=principal_arn)


def _list_access_policies_response(self: Any) -> Any:
    policies = [{"name": name, "arn": POLICY_ARN_PREFIX + name} for name in ACCESS_POLICIES]
    return _paginate(self, policies, "accessPolicies")


_original_create_cluster: Any = None

_RESPONSES = {
    "create_access_entry": _create_access_entry_response,
    "describe_access_entry": _describe_access_entry_response,
    "update_access_entry": _update_access_entry_response,
    "delete_access_entry": _delete_access_entry_response,
    "list_access_entries": _list_access_entries_response,
    "associate_access_policy": _associate_access_policy_response,
    "disassociate_access_policy": _disassociate_access_policy_response,
    "list_associated_access_policies": _list_associated_access_policies_response,
    "list_access_policies": _list_access_policies_response,
}

# principalArn and policyArn contain '/', which arrive decoded in the path: one catch-all route per
# prefix is enough, since moto picks the operation from botocore's model on the raw path.
_URL_PATHS = (
    "{0}/clusters/(?P<name>[^/]+)/access-entries$",
    "{0}/clusters/(?P<name>[^/]+)/access-entries/(?P<principalArn>.+)$",
    "{0}/access-policies$",
)


def install(patcher: Patcher) -> None:
    """Add the operations to moto's EKS responses and URL map (listed in `families.FAMILIES`)."""
    global _original_create_cluster
    from moto.eks import urls
    from moto.eks.responses import EKSResponse

    _original_create_cluster = EKSResponse.create_cluster
    patcher.set_attr(EKSResponse, "create_cluster", _create_cluster_response)
    for name, method in _RESPONSES.items():
        patcher.set_attr(EKSResponse, name, method)
    for path in _URL_PATHS:
        patcher.set_item(urls.url_paths, path, urls.response.dispatch)
    patcher.on(EKS_NODEGROUP_CREATED,
               lambda backend, cluster, node_role: ensure_node_role_entry(backend, cluster, node_role))
