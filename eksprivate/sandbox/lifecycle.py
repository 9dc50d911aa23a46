"""Make moto behave like real AWS in time and in the rules it enforces.

moto creates EKS clusters, node groups and VPC endpoints in their final state and deletes them at
once, and lets deletes happen in any order.  `install()` patches moto's backend classes (once per
process) so that:

* clusters and node groups are CREATING, then ACTIVE; DELETING, then gone;
* VPC endpoints are `pending`, then `available`; `deleting`, then gone;
* EKS refuses node groups on a cluster that is not ACTIVE, cluster deletes while node groups exist,
  and IAM roles that are too young (or missing, or not trusting the service: see `iam_propagation`);
* EC2 refuses to delete subnets, security groups and VPCs that endpoints still use, and a deleted
  subnet takes its route table and network ACL associations with it;
* CreateVpcEndpoint honours ClientToken and EKS creates honour clientRequestToken;
* accessConfig is kept and EKS access entries exist (see `access_entries`).

States are computed lazily from a monotonic clock whenever a resource is read, against the *current*
`Timing`, so changing the time scale at runtime also speeds up resources already in flight.

moto is imported only inside `install()`: importing this module must stay cheap.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal

# ---------------------------------------------------------------------------------------------------
# Timing


@dataclass(frozen=True)
class Timing:
    """Real-world durations in seconds (public measurements); each is multiplied by `time_scale`."""

    cluster_create: float = 540.0
    cluster_delete: float = 240.0
    nodegroup_create: float = 180.0
    nodegroup_delete: float = 240.0
    interface_endpoint_create: float = 90.0
    interface_endpoint_delete: float = 60.0
    gateway_endpoint: float = 2.0
    # An UpdateClusterConfig keeps the cluster UPDATING: logging updates ~40 s (ministryofjustice/cloud-platform
    # #8501, rancher/eks-operator #672), endpoint-access updates 3.5 min and more (eksctl #4545).
    cluster_update: float = 120.0
    # An UpdateNodegroupConfig of sizes/labels/taints (no node replaced): no public figure found; a minute.
    nodegroup_update: float = 60.0
    # UpdateClusterVersion keeps the cluster UPDATING about 8-10 min; UpdateNodegroupVersion rolls the nodes
    # (new ones up, old ones drained, max_unavailable at a time) in about 5-15 min (issue 12; eksctl docs).
    cluster_version_update: float = 540.0
    nodegroup_version_update: float = 600.0
    # EKS managed add-ons: CREATING/UPDATING/DELETING for about a minute or less (no published figure).
    addon_create: float = 45.0
    addon_update: float = 30.0
    addon_delete: float = 20.0
    # A managed node group whose nodes never become Ready (no CNI on a cluster made without the self-managed
    # add-ons) fails with NodeCreationFailure after about 20 min (terraform-aws-eks #1910: 21-24 min; eks_addons).
    nodegroup_join_timeout: float = 1200.0
    # A new IAM role is not assumable by EKS until it has propagated.
    iam_role_delay: float = 10.0
    # A deleted load balancer's network interfaces stay until AWS releases them; no published figure, public
    # reports of DependencyViolation on its subnets and groups speak of minutes (lb_dependents).
    lb_eni_release: float = 120.0
    # 0.03 turns a 9-minute cluster create into ~16 s: a full "up" takes well under a minute.
    time_scale: float = 0.03

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Timing.{item.name} must be a number >= 0, not {value!r}")

    def scaled(self, seconds: float) -> float:
        """Sandbox seconds for `seconds` of real-world time."""
        return seconds * self.time_scale

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


TIMING_FIELDS: frozenset[str] = frozenset(f.name for f in dataclasses.fields(Timing))

_timing = Timing()
_timing_lock = threading.Lock()


def current_timing() -> Timing:
    """The timing every lifecycle is measured against right now."""
    return _timing


def set_timing(timing: Timing) -> None:
    """Replace the timing; resources already in flight follow the new one."""
    global _timing
    with _timing_lock:
        _timing = timing


def update_timing(**changes: float) -> Timing:
    """Change some fields of the current timing (e.g. `update_timing(time_scale=0.001)`)."""
    global _timing
    unknown = set(changes) - TIMING_FIELDS
    if unknown:
        raise ValueError(f"unknown timing field(s): {', '.join(sorted(unknown))}")
    with _timing_lock:
        _timing = dataclasses.replace(_timing, **changes)
        return _timing


def _now() -> float:
    # Monotonic: a wall-clock jump must not finish or restart a create.
    return time.monotonic()


# ---------------------------------------------------------------------------------------------------
# Lifecycles

Phase = Literal["creating", "ready", "deleting", "gone"]


@dataclass(frozen=True)
class _Kind:
    """How long one kind of resource takes, and what its API calls each phase."""

    create_seconds: Callable[[Timing], float]
    delete_seconds: Callable[[Timing], float]
    states: Mapping[Phase, str]


_EKS_STATES: Mapping[Phase, str] = {
    "creating": "CREATING",
    "ready": "ACTIVE",
    "deleting": "DELETING",
    "gone": "DELETING",
}
_ENDPOINT_STATES: Mapping[Phase, str] = {
    "creating": "pending",
    "ready": "available",
    "deleting": "deleting",
    "gone": "deleted",
}

CLUSTER = _Kind(lambda t: t.cluster_create, lambda t: t.cluster_delete, _EKS_STATES)
NODEGROUP = _Kind(lambda t: t.nodegroup_create, lambda t: t.nodegroup_delete, _EKS_STATES)
INTERFACE_ENDPOINT = _Kind(
    lambda t: t.interface_endpoint_create, lambda t: t.interface_endpoint_delete, _ENDPOINT_STATES
)
GATEWAY_ENDPOINT = _Kind(lambda t: t.gateway_endpoint, lambda t: t.gateway_endpoint, _ENDPOINT_STATES)


@dataclass
class Life:
    """When a resource was created and, once asked, when its deletion started."""

    kind: _Kind
    born: float = field(default_factory=_now)
    dying: float | None = None

    def phase(self) -> Phase:
        timing = current_timing()
        now = _now()
        if self.dying is not None:
            done = now - self.dying >= timing.scaled(self.kind.delete_seconds(timing))
            return "gone" if done else "deleting"
        done = now - self.born >= timing.scaled(self.kind.create_seconds(timing))
        return "ready" if done else "creating"

    def state(self) -> str:
        return self.kind.states[self.phase()]

    def start_deleting(self) -> None:
        if self.dying is None:
            self.dying = _now()


_LIFE = "_sandbox_life"


def life_of(resource: Any) -> Life | None:
    """The lifecycle attached to a moto model, or None for one made before `install()`."""
    life: Life | None = vars(resource).get(_LIFE)
    return life


def _attach(resource: Any, kind: _Kind) -> None:
    vars(resource)[_LIFE] = Life(kind)


def _phase(resource: Any) -> Phase:
    life = life_of(resource)
    return "ready" if life is None else life.phase()


def _state_property(name: str) -> property:
    """A `status`/`state` attribute read from the lifecycle.

    moto's own writes (its constructors set ACTIVE/available) land in the instance dict, which this
    data descriptor shadows; they are still returned for objects that predate `install()`.
    """

    def get(resource: Any) -> Any:
        life = life_of(resource)
        return vars(resource).get(name) if life is None else life.state()

    def set_(resource: Any, value: Any) -> None:
        vars(resource)[name] = value

    return property(get, set_)


def _hidden_while_creating(name: str, placeholder: Any) -> property:
    """An attribute EKS only reports once the cluster is ACTIVE (API endpoint, CA data)."""

    def get(resource: Any) -> Any:
        return placeholder if _phase(resource) == "creating" else vars(resource).get(name)

    def set_(resource: Any, value: Any) -> None:
        vars(resource)[name] = value

    return property(get, set_)


# ---------------------------------------------------------------------------------------------------
# Patching

# moto runs requests on server threads; reaping pops from dicts other requests iterate.
_lock = threading.RLock()
_install_lock = threading.Lock()
_MISSING = object()


class Patcher:
    """Changes to moto's classes and tables, recorded so that `uninstall()` can undo them."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []
        self.originals: dict[str, Callable[..., Any]] = {}

    def set_attr(self, owner: Any, name: str, value: object) -> None:
        """Set a class attribute (moto's type hints would refuse some, e.g. a computed property)."""
        previous = vars(owner).get(name, _MISSING)  # an inherited method is not "previous"

        def undo() -> None:
            if previous is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, previous)

        setattr(owner, name, value)
        self._undo.append(undo)

    def set_item(self, mapping: MutableMapping[str, Any], key: str, value: Any) -> None:
        previous = mapping.get(key, _MISSING)

        def undo() -> None:
            if previous is _MISSING:
                del mapping[key]
            else:
                mapping[key] = previous

        mapping[key] = value
        self._undo.append(undo)

    def replace_method(self, cls: Any, name: str, replacement: Callable[..., Any]) -> None:
        """Put `replacement` in place of `cls.name`, keeping the original for `_orig`."""
        self.originals[f"{cls.__name__}.{name}"] = getattr(cls, name)
        self.set_attr(cls, name, replacement)

    def undo(self) -> None:
        while self._undo:
            self._undo.pop()()
        self.originals.clear()


_patcher: Patcher | None = None


def _patch(cls: Any, name: str, replacement: Callable[..., Any]) -> None:
    assert _patcher is not None
    _patcher.replace_method(cls, name, replacement)


def _define(cls: Any, name: str, value: object) -> None:
    assert _patcher is not None
    _patcher.set_attr(cls, name, value)


def _orig(qualified: str) -> Callable[..., Any]:
    assert _patcher is not None
    return _patcher.originals[qualified]


def _reaping(reap: Callable[[Any], None], original: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a backend method so resources whose deletion has finished vanish first."""

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        reap(self)
        return original(self, *args, **kwargs)

    method.__name__ = original.__name__
    method.__doc__ = original.__doc__
    return method


def installed() -> bool:
    return _patcher is not None


def install(timing: Timing | None = None) -> None:
    """Patch moto (first call only) and make `timing` current (every call that passes one).

    The patches are process-wide: every moto user in this process (mock_aws included) sees them
    until `uninstall()`.
    """
    global _patcher
    if timing is not None:
        set_timing(timing)
    with _install_lock:
        if _patcher is not None:
            return
        _patcher = Patcher()
        # Read when moto's IAM backend is created (so before the first IAM call or after a reset):
        # AWS managed policies (AmazonEKSClusterPolicy, ...) must exist as in every real account.
        _patcher.set_item(os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
        _install_eks()
        _install_ec2()
        from eksprivate.sandbox import access_entries, iam_propagation

        access_entries.install(_patcher)
        iam_propagation.install(_patcher)
        from eksprivate.sandbox import zones

        zones.install(_patcher)
        from eksprivate.sandbox import eks_updates

        eks_updates.install(_patcher)
        from eksprivate.sandbox import endpoint_dns, s3_state

        s3_state.install(_patcher)
        endpoint_dns.install(_patcher)
        from eksprivate.sandbox import ecr_pull_through, pricing

        ecr_pull_through.install(_patcher)
        pricing.install(_patcher)
        from eksprivate.sandbox import eks_versions

        eks_versions.install(_patcher)
        from eksprivate.sandbox import nodegroup_ami

        nodegroup_ami.install(_patcher)
        from eksprivate.sandbox import lb_dependents

        lb_dependents.install(_patcher)
        from eksprivate.sandbox import eks_addons, eks_upgrades

        eks_addons.install(_patcher)
        eks_upgrades.install(_patcher)


def uninstall() -> None:
    """Give moto back its own behaviour (resources made meanwhile keep moto's plain states)."""
    global _patcher
    with _install_lock:
        if _patcher is not None:
            _patcher.undo()
            _patcher = None


# ---------------------------------------------------------------------------------------------------
# EKS


def reap_eks(backend: Any) -> None:
    """Drop clusters and node groups whose deletion has finished."""
    with _lock:
        for name, cluster in list(backend.clusters.items()):
            for nodegroup_name, nodegroup in list(cluster.nodegroups.items()):
                if _phase(nodegroup) == "gone" and cluster.nodegroups.pop(nodegroup_name, None):
                    cluster.nodegroup_count -= 1
            if _phase(cluster) == "gone" and backend.clusters.pop(name, None):
                backend.cluster_count -= 1


def _cluster_not_found(name: str) -> Exception:
    from moto.eks.exceptions import ResourceNotFoundException
    from moto.eks.models import CLUSTER_NOT_FOUND_MSG

    return ResourceNotFoundException(
        clusterName=name,
        nodegroupName=None,
        fargateProfileName=None,
        addonName=None,
        message=CLUSTER_NOT_FOUND_MSG.format(clusterName=name),
    )


def _install_eks() -> None:
    from moto.eks.models import Cluster, EKSBackend, Nodegroup

    _define(Cluster, "status", _state_property("status"))
    _define(Nodegroup, "status", _state_property("status"))
    _define(Cluster, "endpoint", _hidden_while_creating("endpoint", None))
    _define(Cluster, "certificate_authority", _hidden_while_creating("certificate_authority", {}))

    _patch(EKSBackend, "create_cluster", _eks_create_cluster)
    _patch(EKSBackend, "delete_cluster", _eks_delete_cluster)
    _patch(EKSBackend, "create_nodegroup", _eks_create_nodegroup)
    _patch(EKSBackend, "delete_nodegroup", _eks_delete_nodegroup)
    _patch(EKSBackend, "list_nodegroups", _eks_list_nodegroups)
    _patch(EKSBackend, "list_fargate_profiles", _eks_list_fargate_profiles)
    for name in (
        "describe_cluster",
        "describe_nodegroup",
        "list_clusters",
        "create_fargate_profile",
        "describe_fargate_profile",
        "delete_fargate_profile",
        "update_cluster_config",
        "update_nodegroup_config",
        "tag_resource",
        "untag_resource",
        "list_tags_for_resource",
    ):
        _patch(EKSBackend, name, _reaping(reap_eks, getattr(EKSBackend, name)))


def _eks_create_cluster(self: Any, **kwargs: Any) -> Any:
    reap_eks(self)
    existing = self.clusters.get(kwargs["name"])
    token = kwargs.get("client_request_token")
    if existing is not None and token and existing.client_request_token == token:
        return existing  # a retried request, as EKS treats it
    if existing is None:
        from eksprivate.sandbox import iam_propagation

        iam_propagation.require_cluster_role(kwargs.get("role_arn"))
    cluster = _orig("EKSBackend.create_cluster")(self, **kwargs)
    _attach(cluster, CLUSTER)
    return cluster


def _eks_delete_cluster(self: Any, name: str) -> Any:
    from moto.eks.exceptions import ResourceInUseException
    from moto.eks.models import CLUSTER_IN_USE_MSG

    reap_eks(self)
    cluster = self.clusters.get(name)
    if cluster is None or life_of(cluster) is None:
        return _orig("EKSBackend.delete_cluster")(self, name=name)
    # Node groups still being deleted count too: EKS waits until they are gone.
    if cluster.nodegroups:
        raise ResourceInUseException(
            clusterName=name,
            nodegroupName=",".join(sorted(cluster.nodegroups)),
            addonName=None,
            message=CLUSTER_IN_USE_MSG,
        )
    life_of(cluster).start_deleting()  # type: ignore[union-attr]
    return cluster


def _eks_create_nodegroup(self: Any, **kwargs: Any) -> Any:
    reap_eks(self)
    cluster = self.clusters.get(kwargs["cluster_name"])
    name = kwargs["nodegroup_name"]
    if cluster is not None:
        existing = cluster.nodegroups.get(name)
        token = kwargs.get("client_request_token")
        if existing is not None and token and existing.client_request_token == token:
            return existing
        # moto reports a missing/busy cluster or a taken name first; the role only after that.
        if existing is None and cluster.is_active:
            from eksprivate.sandbox import iam_propagation

            iam_propagation.require_node_role(kwargs.get("node_role"))
    nodegroup = _orig("EKSBackend.create_nodegroup")(self, **kwargs)
    _attach(nodegroup, NODEGROUP)
    from eksprivate.sandbox import access_entries

    # EKS maps a managed node group's role itself when the cluster uses access entries.
    access_entries.ensure_node_role_entry(self, cluster, nodegroup.node_role)
    return nodegroup


def _eks_delete_nodegroup(self: Any, cluster_name: str, nodegroup_name: str) -> Any:
    reap_eks(self)
    cluster = self.clusters.get(cluster_name)
    nodegroup = cluster.nodegroups.get(nodegroup_name) if cluster is not None else None
    life = life_of(nodegroup) if nodegroup is not None else None
    if life is None:
        return _orig("EKSBackend.delete_nodegroup")(self, cluster_name=cluster_name, nodegroup_name=nodegroup_name)
    life.start_deleting()
    return nodegroup


def _eks_list_nodegroups(self: Any, cluster_name: str, **kwargs: Any) -> Any:
    reap_eks(self)
    # moto answers a KeyError (HTTP 500, which clients retry) for a missing cluster.
    if cluster_name not in self.clusters:
        raise _cluster_not_found(cluster_name)
    return _orig("EKSBackend.list_nodegroups")(self, cluster_name=cluster_name, **kwargs)


def _eks_list_fargate_profiles(self: Any, cluster_name: str, **kwargs: Any) -> Any:
    reap_eks(self)
    if cluster_name not in self.clusters:
        raise _cluster_not_found(cluster_name)
    return _orig("EKSBackend.list_fargate_profiles")(self, cluster_name=cluster_name, **kwargs)


# ---------------------------------------------------------------------------------------------------
# EC2: VPC endpoints and the deletes they block


def _is_interface(endpoint: Any) -> bool:
    return str(endpoint.vpc_endpoint_type or "Gateway").lower() in ("interface", "gatewayloadbalancer")


def reap_endpoints(backend: Any) -> None:
    """Finish deletions that are due: moto's own cleanup (ENIs, routes), then drop the endpoint."""
    from moto.ec2.exceptions import EC2ClientError

    with _lock:
        for endpoint_id, endpoint in list(backend.vpc_end_points.items()):
            if _phase(endpoint) != "gone":
                continue
            # A gateway endpoint's route table may be gone already: then nothing is left to clean.
            with contextlib.suppress(EC2ClientError):
                _orig("EC2Backend.delete_vpc_endpoints")(backend, vpce_ids=[endpoint_id])
            backend.vpc_end_points.pop(endpoint_id, None)


def _live_endpoints(backend: Any) -> list[Any]:
    # moto leaves endpoints deleted before install() behind in state "deleted".
    return [e for e in backend.vpc_end_points.values() if e.state != "deleted"]


def _install_ec2() -> None:
    from moto.ec2.models import EC2Backend
    from moto.ec2.models.vpcs import VPCEndPoint

    _define(VPCEndPoint, "state", _state_property("state"))

    _patch(EC2Backend, "create_vpc_endpoint", _ec2_create_vpc_endpoint)
    _patch(EC2Backend, "delete_vpc_endpoints", _ec2_delete_vpc_endpoints)
    _patch(EC2Backend, "delete_subnet", _ec2_delete_subnet)
    _patch(EC2Backend, "delete_security_group", _ec2_delete_security_group)
    _patch(EC2Backend, "delete_vpc", _ec2_delete_vpc)
    for name in (
        "describe_vpc_endpoints",
        "modify_vpc_endpoint",
        "describe_network_interfaces",
        "describe_route_tables",
    ):
        _patch(EC2Backend, name, _reaping(reap_endpoints, getattr(EC2Backend, name)))


def _endpoint_request(
    vpc_id: str,
    service_name: str,
    endpoint_type: str | None,
    subnet_ids: list[str] | None,
    security_group_ids: list[str] | None,
    route_table_ids: list[str] | None,
) -> tuple[object, ...]:
    """What makes two CreateVpcEndpoint requests "the same" for ClientToken idempotency."""
    return (
        vpc_id,
        service_name,
        (endpoint_type or "Gateway").lower(),
        sorted(subnet_ids or []),
        sorted(security_group_ids or []),
        sorted(route_table_ids or []),
    )


def _ec2_create_vpc_endpoint(self: Any, **kwargs: Any) -> Any:
    from moto.ec2.exceptions import EC2ClientError

    reap_endpoints(self)
    token = kwargs.get("client_token")
    if token:
        request = _endpoint_request(
            kwargs["vpc_id"],
            kwargs["service_name"],
            kwargs.get("endpoint_type"),
            kwargs.get("subnet_ids"),
            kwargs.get("security_group_ids"),
            kwargs.get("route_table_ids"),
        )
        for endpoint in self.vpc_end_points.values():
            if endpoint.client_token != token:
                continue
            earlier = _endpoint_request(
                endpoint.vpc_id,
                endpoint.service_name,
                endpoint.vpc_endpoint_type,
                endpoint.subnet_ids,
                endpoint.security_group_ids,
                endpoint.route_table_ids,
            )
            if earlier == request:
                return endpoint  # a retry: AWS answers with the endpoint it already made
            raise EC2ClientError(
                "IdempotentParameterMismatch",
                f"The client token {token} has already been used with different parameters.",
            )
    endpoint = _orig("EC2Backend.create_vpc_endpoint")(self, **kwargs)
    _attach(endpoint, INTERFACE_ENDPOINT if _is_interface(endpoint) else GATEWAY_ENDPOINT)
    return endpoint


def _ec2_delete_vpc_endpoints(self: Any, vpce_ids: list[str] | None = None) -> None:
    reap_endpoints(self)
    for endpoint_id in vpce_ids or []:
        endpoint = self.vpc_end_points.get(endpoint_id)
        life = life_of(endpoint) if endpoint is not None else None
        if life is None:
            _orig("EC2Backend.delete_vpc_endpoints")(self, vpce_ids=[endpoint_id])
        else:
            # ENIs and routes stay until the endpoint is gone, as in AWS.
            life.start_deleting()


def _ec2_delete_subnet(self: Any, subnet_id: str) -> Any:
    from moto.ec2.exceptions import DependencyViolationError

    reap_endpoints(self)
    if any(subnet_id in (e.subnet_ids or []) for e in _live_endpoints(self)):
        raise DependencyViolationError(f"The subnet '{subnet_id}' has dependencies and cannot be deleted.")
    subnet = _orig("EC2Backend.delete_subnet")(self, subnet_id)
    # AWS drops a deleted subnet's route table and network ACL associations with it; moto keeps
    # them, and the route table (or ACL) could then never be deleted.
    for table in self.route_tables.values():
        for association_id, target in list(table._associations.items()):
            if target == subnet_id:
                table._associations.pop(association_id, None)
    for acl in self.network_acls.values():
        for association_id, association in list(acl._associations.items()):
            if association.subnet_id == subnet_id:
                acl._associations.pop(association_id, None)
    return subnet


def _ec2_delete_security_group(self: Any, name: str | None = None, group_id: str | None = None) -> Any:
    from moto.ec2.exceptions import DependencyViolationError

    reap_endpoints(self)
    if group_id is None and name is not None:
        group = self.get_security_group_by_name_or_id(name)
        group_id = group.id if group is not None else None
    if group_id and any(group_id in e.security_group_ids for e in _live_endpoints(self)):
        raise DependencyViolationError(f"resource {group_id} has a dependent object")
    return _orig("EC2Backend.delete_security_group")(self, name=name, group_id=group_id)


def _ec2_delete_vpc(self: Any, vpc_id: str) -> Any:
    from moto.ec2.exceptions import DependencyViolationError

    reap_endpoints(self)
    if any(e.vpc_id == vpc_id for e in _live_endpoints(self)):
        raise DependencyViolationError(f"The vpc '{vpc_id}' has dependencies and cannot be deleted.")
    return _orig("EC2Backend.delete_vpc")(self, vpc_id)
