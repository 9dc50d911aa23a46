"""EKS managed add-ons for moto, which has none (moto 5.2: no CreateAddon, DescribeAddon, ...).

What is modelled (sources in docs/aws-fidelity.md, section day2):

* CreateAddon / DescribeAddon / UpdateAddon / DeleteAddon / ListAddons / DescribeAddonVersions, on the
  cluster object (they go with it). An add-on reads CREATING for `Timing.addon_create` (scaled), then ACTIVE;
  coredns (and the EBS CSI driver's controller) read DEGRADED with an `InsufficientNumberOfReplicas` health
  issue while the cluster has no usable node group: its pods have nowhere to run. UpdateAddon answers an
  update (type AddonUpdate) that DescribeUpdate follows with `addonName`; the add-on reads UPDATING meanwhile.
  DeleteAddon: DELETING for `Timing.addon_delete`, then ResourceNotFoundException.
* Refusals: a second CreateAddon of the same name (ResourceInUseException), an add-on EKS does not offer or
  a version not compatible with the cluster's Kubernetes version (InvalidParameterException), a call while
  the cluster is not ACTIVE or the add-on is busy (ResourceInUseException), `configurationValues` that are
  not a JSON/YAML object (InvalidParameterException). The same `clientRequestToken` answers what it started.
* DescribeAddonVersions: a few versions per add-on and Kubernetes minor, one of them the default
  (`compatibilities[].defaultVersion`), newest first. Version strings are illustrative, not AWS's.
* What the add-ons mean for nodes, on a cluster created with `bootstrapSelfManagedAddons` false (no
  self-managed CNI or kube-proxy; moto keeps no such flag, so CreateCluster's is recorded here): a managed
  node group's nodes become Ready only once the cluster has the vpc-cni and kube-proxy add-ons (the CNI reaches
  the API server through kube-proxy's service rules). Until then the group reads CREATING past its usual
  duration; added later, the group turns ACTIVE once they are up (`addon_create` after their CreateAddon); never
  added within `Timing.nodegroup_join_timeout` of the group's creation, it reads CREATE_FAILED with the health issue
  NodeCreationFailure "Instances failed to join the kubernetes cluster", as EKS reports nodes stuck NotReady
  ("cni plugin not initialized": terraform-aws-eks #3446, #1910; amazon-vpc-cni-k8s #575, #1385). moto makes
  every node group ACTIVE regardless. A cluster created with the bootstrap has its self-managed copies: its
  nodes join without any managed add-on.

moto is imported inside functions only: importing this module stays cheap.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from eksprivate.sandbox.core import updates, versions
from eksprivate.sandbox.core.clock import current_timing, life_of, now

if TYPE_CHECKING:
    from eksprivate.sandbox.core.patching import Patcher

# -- versions -----------------------------------------------------------------------------------------
NEEDS_NODES = ("coredns", "aws-ebs-csi-driver")  # Deployments: DEGRADED until a node can run their pods


def minors() -> list[str]:
    """Every Kubernetes minor the sandbox's EKS knows at its date (eks_versions: the table and projections)."""
    return [v.version for v in versions.versions()]


def _versions(addon: str, minor: str) -> list[tuple[str, bool]]:
    """(version, default?) newest first: three builds per minor, the middle one the default (EKS's default
    is often not the newest build)."""
    m = int(minor.split(".")[1])
    pattern = {
        "vpc-cni": f"v1.{m - 9}.{{}}-eksbuild.1",
        "kube-proxy": f"v{minor}.{{}}-eksbuild.1",
        "coredns": f"v1.{m - 21}.{{}}-eksbuild.1",
        "eks-pod-identity-agent": f"v0.{m}.{{}}-eksbuild.1",
        "aws-ebs-csi-driver": f"v1.{m + 10}.{{}}-eksbuild.1",
    }[addon]
    return [(pattern.format(3), False), (pattern.format(2), True), (pattern.format(1), False)]


ADDONS = ("vpc-cni", "kube-proxy", "coredns", "eks-pod-identity-agent", "aws-ebs-csi-driver")
ADDON_TYPES = {"vpc-cni": "networking", "kube-proxy": "networking", "coredns": "networking",
               "eks-pod-identity-agent": "security", "aws-ebs-csi-driver": "storage"}


def compatible(addon: str, version: str, minor: str) -> bool:
    return any(v == version for v, _ in _versions(addon, minor))


def default_version(addon: str, minor: str) -> str:
    return next(v for v, default in _versions(addon, minor) if default)


def version_infos(addon: str, minor: str | None) -> list[dict[str, Any]]:
    known = minors()
    infos: dict[str, dict[str, Any]] = {}
    for k8s in [minor] if minor else known:
        if k8s not in known:
            continue
        for version, default in _versions(addon, k8s):
            info = infos.setdefault(version, {"addonVersion": version, "architecture": ["amd64", "arm64"],
                                              "computeTypes": ["ec2"], "compatibilities": [],
                                              "requiresConfiguration": False,
                                              "requiresIamPermissions": addon in ("vpc-cni", "aws-ebs-csi-driver")})
            info["compatibilities"].append({"clusterVersion": k8s, "platformVersions": ["*"],
                                            "defaultVersion": default})
    return list(infos.values())


NODES_NEED = ("vpc-cni", "kube-proxy")  # no Ready node without the CNI, which reaches the API through kube-proxy
NODE_CREATION_FAILURE = {"code": "NodeCreationFailure", "message": "Instances failed to join the kubernetes cluster"}

# -- add-ons ------------------------------------------------------------------------------------------


@dataclass
class Addon:
    name: str
    cluster: Any  # moto's Cluster
    version: str
    arn: str
    configuration_values: str = ""
    service_account_role_arn: str | None = None
    pod_identity: list[dict[str, str]] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    token: str | None = None
    born: float = field(default_factory=now)
    dying: float | None = None
    created_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))

    def _nodes(self) -> bool:
        return any(ng.status in ("ACTIVE", "DEGRADED", "UPDATING") for ng in self.cluster.nodegroups.values())

    def phase(self) -> str:
        timing = current_timing()
        if self.dying is not None:
            return "gone" if now() - self.dying >= timing.scaled(timing.addon_delete) else "DELETING"
        if now() - self.born < timing.scaled(timing.addon_create):
            return "CREATING"
        if updates.running(self) is not None:
            return "UPDATING"
        if self.name in NEEDS_NODES and not self._nodes():
            return "DEGRADED"
        return "ACTIVE"

    @property
    def status(self) -> str:  # read by eks_updates' busy check
        return self.phase()

    def as_dict(self) -> dict[str, Any]:
        updates.settle(self)
        status = self.phase()
        issues = []
        if status == "DEGRADED":
            issues.append({"code": "InsufficientNumberOfReplicas",
                           "message": "The add-on is unhealthy because it doesn't have the desired number of "
                                      "replicas.", "resourceIds": []})
        out: dict[str, Any] = {
            "addonName": self.name, "clusterName": self.cluster.name, "status": status,
            "addonVersion": self.version, "health": {"issues": issues}, "addonArn": self.arn,
            "createdAt": self.created_at, "modifiedAt": self.created_at, "tags": self.tags,
            "publisher": "eks", "owner": "aws",
            "podIdentityAssociations": [f"{self.arn}/podidentityassociation/{p['serviceAccount']}"
                                        for p in self.pod_identity],
        }
        if self.configuration_values:
            out["configurationValues"] = self.configuration_values
        if self.service_account_role_arn:
            out["serviceAccountRoleArn"] = self.service_account_role_arn
        return out


_lock = threading.RLock()


def addons_of(cluster: Any) -> dict[str, Addon]:
    """The cluster's add-ons, gone ones dropped."""
    found: dict[str, Addon] = vars(cluster).setdefault("_sandbox_addons", {})
    for name in [n for n, a in found.items() if a.phase() == "gone"]:
        del found[name]
    return found


def _invalid_parameter(cluster: str, addon: str | None, message: str) -> Exception:
    from moto.eks.exceptions import InvalidParameterException

    return InvalidParameterException(clusterName=cluster, nodegroupName=None, addonName=addon, message=message)


def _in_use(cluster: str, addon: str | None, message: str) -> Exception:
    from moto.eks.exceptions import ResourceInUseException

    return ResourceInUseException(clusterName=cluster, nodegroupName=None, addonName=addon, message=message)


def _not_found(cluster: str, addon: str) -> Exception:
    from moto.eks.exceptions import ResourceNotFoundException

    return ResourceNotFoundException(clusterName=cluster, nodegroupName=None, fargateProfileName=None,
                                     addonName=addon, message=f"No addon: {addon} found in cluster: {cluster}")


def _minor(cluster: Any) -> str:
    return ".".join(str(cluster.version).split(".")[:2])


def _check_version(cluster: Any, addon: str, version: str | None) -> str:
    if addon not in ADDONS:
        raise _invalid_parameter(cluster.name, addon, f"Addon {addon} specified is not supported")
    minor = _minor(cluster)
    if version is None:
        return default_version(addon, minor)
    if not compatible(addon, version, minor):
        raise _invalid_parameter(cluster.name, addon, f"Addon version specified is not supported for {addon} "
                                                      f"on Kubernetes {minor}")
    return version


def _check_configuration(cluster: Any, addon: str, values: str | None) -> str:
    if not values:
        return ""
    try:
        parsed = json.loads(values)
    except ValueError:
        parsed = None  # EKS also takes YAML; anything not JSON is taken as given here
        return values
    if not isinstance(parsed, dict):
        raise _invalid_parameter(cluster.name, addon, "ConfigurationValue provided in request is not supported: "
                                                      "Json schema validation failed")
    return values


def _active_cluster(backend: Any, name: str, addon: str | None) -> Any:
    cluster = backend.describe_cluster(name=name)
    if cluster.status != "ACTIVE":
        raise _in_use(name, addon, f"Cluster {name} is not ACTIVE (it is {cluster.status})")
    return cluster


def _addon(backend: Any, cluster_name: str, name: str) -> tuple[Any, Addon]:
    cluster = backend.describe_cluster(name=cluster_name)
    addon = addons_of(cluster).get(name)
    if addon is None:
        raise _not_found(cluster_name, name)
    return cluster, addon


# -- responses ----------------------------------------------------------------------------------------


def _create_addon_response(self: Any) -> Any:
    from moto.core.responses import ActionResult

    cluster_name, name = self._get_param("name"), self._get_param("addonName")
    token = self._get_param("clientRequestToken")
    with _lock:
        cluster = self.eks_backend.describe_cluster(name=cluster_name)
        existing = addons_of(cluster).get(name)
        if existing is not None and token and existing.token == token:
            return ActionResult({"addon": existing.as_dict()})  # a retried request
        if existing is not None:
            raise _in_use(cluster_name, name, "Addon already exists.")
        cluster = _active_cluster(self.eks_backend, cluster_name, name)
        version = _check_version(cluster, name, self._get_param("addonVersion"))
        addon = Addon(name=name, cluster=cluster, version=version,
                      arn=f"{cluster.arn.replace(':cluster/', ':addon/')}/{name}/{uuid.uuid4()}",
                      configuration_values=_check_configuration(cluster, name, self._get_param("configurationValues")),
                      service_account_role_arn=self._get_param("serviceAccountRoleArn"),
                      pod_identity=list(self._get_param("podIdentityAssociations") or []),
                      tags=dict(self._get_param("tags") or {}), token=token)
        addons_of(cluster)[name] = addon
        return ActionResult({"addon": addon.as_dict()})


def _describe_addon_response(self: Any) -> Any:
    from moto.core.responses import ActionResult

    with _lock:
        _, addon = _addon(self.eks_backend, self._get_param("name"), self._get_param("addonName"))
        return ActionResult({"addon": addon.as_dict()})


def _list_addons_response(self: Any) -> Any:
    from moto.core.responses import ActionResult

    with _lock:
        cluster = self.eks_backend.describe_cluster(name=self._get_param("name"))
        return ActionResult({"addons": sorted(addons_of(cluster)), "nextToken": None})


def _delete_addon_response(self: Any) -> Any:
    from moto.core.responses import ActionResult

    with _lock:
        _, addon = _addon(self.eks_backend, self._get_param("name"), self._get_param("addonName"))
        if addon.dying is None:
            addon.dying = now()
        return ActionResult({"addon": addon.as_dict()})


def _update_addon_response(self: Any) -> Any:
    from moto.core.responses import ActionResult

    cluster_name, name = self._get_param("name"), self._get_param("addonName")
    token = self._get_param("clientRequestToken")
    with _lock:
        cluster, addon = _addon(self.eks_backend, cluster_name, name)
        again = updates.by_token(addon, token)
        if again is not None:
            return ActionResult({"update": again.as_dict()})
        _active_cluster(self.eks_backend, cluster_name, name)
        busy = updates.running(addon)
        if busy is not None or addon.phase() not in ("ACTIVE", "DEGRADED"):
            raise _in_use(cluster_name, name, f"Addon {name} is {addon.phase()}"
                          + (f": update {busy.id} is in progress" if busy else ""))
        version = self._get_param("addonVersion")
        values = self._get_param("configurationValues")
        new_version = _check_version(cluster, name, version) if version else addon.version
        new_values = _check_configuration(cluster, name, values) if values is not None else addon.configuration_values
        params = [{"type": "AddonVersion", "value": new_version}]
        if values is not None:
            params.append({"type": "ConfigurationValues", "value": values})
        resolve = self._get_param("resolveConflicts")
        if resolve:
            params.append({"type": "ResolveConflicts", "value": resolve})

        def apply() -> None:
            addon.version, addon.configuration_values = new_version, new_values

        update = updates.start(addon, cluster_name, "AddonUpdate", params, lambda t: t.addon_update, apply, token)
        return ActionResult({"update": update.as_dict()})


def _describe_addon_versions_response(self: Any) -> Any:
    from moto.core.responses import ActionResult

    query: dict[str, list[str]] = self.querystring
    minor: str | None = (query.get("kubernetesVersion") or [None])[0]  # type: ignore[list-item]
    wanted: str | None = (query.get("addonName") or [None])[0]  # type: ignore[list-item]
    items = [{"addonName": a, "type": ADDON_TYPES[a], "addonVersions": version_infos(a, minor), "publisher": "eks",
              "owner": "aws"} for a in ADDONS if wanted in (None, a)]
    return ActionResult({"addons": [i for i in items if i["addonVersions"]], "nextToken": None})


def _describe_update(previous: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """DescribeUpdate with `addonName` (an UpdateAddon's update); any other is `previous`'s (eks_updates)."""

    def describe_update(self: Any) -> Any:
        from moto.core.responses import ActionResult

        cluster_name, addon_name = self._get_param("name"), self._get_param("addonName")
        if not addon_name:
            return previous(self)
        with _lock:
            addon = _addon(self.eks_backend, cluster_name, addon_name)[1]
        return ActionResult({"update": updates.described(addon, cluster_name, self._get_param("updateId"))})

    return describe_update


_RESPONSES = {
    "create_addon": _create_addon_response,
    "describe_addon": _describe_addon_response,
    "list_addons": _list_addons_response,
    "delete_addon": _delete_addon_response,
    "update_addon": _update_addon_response,
    "describe_addon_versions": _describe_addon_versions_response,
}
_URL_PATHS = (
    "{0}/clusters/(?P<name>[^/]+)/addons$",
    "{0}/clusters/(?P<name>[^/]+)/addons/(?P<addonName>[^/]+)$",
    "{0}/clusters/(?P<name>[^/]+)/addons/(?P<addonName>[^/]+)/update$",
    "{0}/addons/supported-versions$",
)


# -- what the add-ons mean for nodes -------------------------------------------------------------------


def node_join(nodegroup: Any) -> str | None:
    """Whether a node group's nodes wait for the cluster's networking add-ons: None when they need not (a
    cluster with the self-managed bootstrap, a group not made through the sandbox, one being deleted) or have
    joined; "waiting" or "failed" (NodeCreationFailure) otherwise. Read from creation times only, so the answer
    never flips: a group failed stays failed, whatever is added later."""
    cluster = vars(nodegroup).get("_sandbox_cluster")
    life = life_of(nodegroup)
    if cluster is None or vars(cluster).get("_sandbox_bootstrap", True) or life is None or life.dying is not None:
        return None
    timing = current_timing()
    deadline = life.born + timing.scaled(timing.nodegroup_join_timeout)
    joined = life.born + timing.scaled(timing.nodegroup_create)
    addons: dict[str, Addon] = vars(cluster).get("_sandbox_addons", {})  # not addons_of: coredns reads our status
    for name in NODES_NEED:
        addon = addons.get(name)
        if addon is None or addon.born > deadline:
            return "failed" if now() >= deadline else "waiting"
        joined = max(joined, addon.born + timing.scaled(timing.addon_create))
    return None if now() >= joined else "waiting"


def _joined_status(previous: property) -> property:
    def get(nodegroup: Any) -> Any:
        status = previous.__get__(nodegroup)
        if status in ("CREATING", "DELETING"):
            return status
        state = node_join(nodegroup)
        return status if state is None else "CREATE_FAILED" if state == "failed" else "CREATING"

    def set_(nodegroup: Any, value: Any) -> None:
        previous.__set__(nodegroup, value)

    return property(get, set_)


def _joined_health(previous: property) -> property:
    def get(nodegroup: Any) -> Any:
        if node_join(nodegroup) == "failed":
            return {"issues": [{**NODE_CREATION_FAILURE, "resourceIds": [f"eks-{nodegroup.nodegroup_name}-asg"]}]}
        return previous.__get__(nodegroup)

    def set_(nodegroup: Any, value: Any) -> None:
        previous.__set__(nodegroup, value)

    return property(get, set_)


def install(patcher: Patcher) -> None:
    """Add the add-on operations to moto's EKS responses and URL map (after eks_updates, whose DescribeUpdate
    it extends), and what they mean for nodes (after eks_lifecycle and eks_updates, whose node group statuses
    and CreateNodegroup it wraps)."""
    from moto.eks import urls
    from moto.eks.models import EKSBackend, Nodegroup
    from moto.eks.responses import EKSResponse

    for name, method in _RESPONSES.items():
        patcher.set_attr(EKSResponse, name, method)
    # eks_updates put describe_update on the class (moto has none).
    patcher.set_attr(EKSResponse, "describe_update", _describe_update(vars(EKSResponse)["describe_update"]))
    for path in _URL_PATHS:
        patcher.set_item(urls.url_paths, path, urls.response.dispatch)

    create_cluster = EKSResponse.create_cluster  # the wrappers before this one (access entries, updates)

    def create_cluster_keeping_bootstrap(self: Any) -> Any:
        bootstrap = self._get_param("bootstrapSelfManagedAddons")
        result: Any = create_cluster(self)
        cluster = result.result["cluster"]
        vars(cluster).setdefault("_sandbox_bootstrap", bootstrap is not False)  # a retry keeps the first answer
        return result

    create_nodegroup = EKSBackend.create_nodegroup

    def create_nodegroup_knowing_its_cluster(self: Any, **kwargs: Any) -> Any:
        nodegroup = create_nodegroup(self, **kwargs)
        vars(nodegroup).setdefault("_sandbox_cluster", self.clusters.get(kwargs["cluster_name"]))
        return nodegroup

    patcher.set_attr(EKSResponse, "create_cluster", create_cluster_keeping_bootstrap)
    patcher.set_attr(EKSBackend, "create_nodegroup", create_nodegroup_knowing_its_cluster)
    patcher.set_attr(Nodegroup, "status", _joined_status(vars(Nodegroup)["status"]))
    patcher.set_attr(Nodegroup, "health", _joined_health(vars(Nodegroup)["health"]))
