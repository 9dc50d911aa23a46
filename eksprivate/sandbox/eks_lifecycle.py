"""EKS clusters and node groups that take real time, and the order EKS imposes on them.

moto creates clusters and node groups in their final state and deletes them at once. With this family:

* clusters and node groups are CREATING, then ACTIVE; DELETING, then gone (`Timing.cluster_create`, ...,
  scaled); a cluster's API endpoint and CA data appear only once it is ACTIVE;
* EKS refuses cluster deletes while node groups exist (even ones still being deleted), and answers a missing
  cluster's ListNodegroups / ListFargateProfiles with ResourceNotFoundException (moto: HTTP 500);
* CreateCluster and CreateNodegroup honour `clientRequestToken` (a retry answers what the first made);
* before a new cluster or node group is made, the `EKS_CLUSTER_CREATING` / `EKS_NODEGROUP_CREATING` events let
  other families refuse it (iam_propagation: a role too young); once a node group is made,
  `EKS_NODEGROUP_CREATED` lets them add to it (access_entries: the node role's entry).

moto is imported inside functions only: importing this module stays cheap.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from eksprivate.sandbox.core.clock import Kind, Phase, attach_life, life_of, phase_of, state_property
from eksprivate.sandbox.core.patching import (
    EKS_CLUSTER_CREATING,
    EKS_NODEGROUP_CREATED,
    EKS_NODEGROUP_CREATING,
    Patcher,
    calling_first,
    emit,
)

_EKS_STATES: Mapping[Phase, str] = {
    "creating": "CREATING",
    "ready": "ACTIVE",
    "deleting": "DELETING",
    "gone": "DELETING",
}
CLUSTER = Kind(lambda t: t.cluster_create, lambda t: t.cluster_delete, _EKS_STATES)
NODEGROUP = Kind(lambda t: t.nodegroup_create, lambda t: t.nodegroup_delete, _EKS_STATES)

# moto runs requests on server threads; reaping pops from dicts other requests iterate.
_lock = threading.RLock()
_originals: dict[str, Callable[..., Any]] = {}  # the patcher's: moto's own methods, by "Class.method"


def _orig(qualified: str) -> Callable[..., Any]:
    return _originals[qualified]


def hidden_while_creating(name: str, placeholder: Any) -> property:
    """An attribute EKS only reports once the cluster is ACTIVE (API endpoint, CA data)."""

    def get(resource: Any) -> Any:
        return placeholder if phase_of(resource) == "creating" else vars(resource).get(name)

    def set_(resource: Any, value: Any) -> None:
        vars(resource)[name] = value

    return property(get, set_)


def reap_eks(backend: Any) -> None:
    """Drop clusters and node groups whose deletion has finished."""
    with _lock:
        for name, cluster in list(backend.clusters.items()):
            for nodegroup_name, nodegroup in list(cluster.nodegroups.items()):
                if phase_of(nodegroup) == "gone" and cluster.nodegroups.pop(nodegroup_name, None):
                    cluster.nodegroup_count -= 1
            if phase_of(cluster) == "gone" and backend.clusters.pop(name, None):
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


def install(patcher: Patcher) -> None:
    """Patch moto's EKS backend (first of the families: the others wrap what it puts in place)."""
    global _originals
    from moto.eks.models import Cluster, EKSBackend, Nodegroup

    _originals = patcher.originals

    patcher.set_attr(Cluster, "status", state_property("status"))
    patcher.set_attr(Nodegroup, "status", state_property("status"))
    patcher.set_attr(Cluster, "endpoint", hidden_while_creating("endpoint", None))
    patcher.set_attr(Cluster, "certificate_authority", hidden_while_creating("certificate_authority", {}))

    patcher.replace_method(EKSBackend, "create_cluster", _eks_create_cluster)
    patcher.replace_method(EKSBackend, "delete_cluster", _eks_delete_cluster)
    patcher.replace_method(EKSBackend, "create_nodegroup", _eks_create_nodegroup)
    patcher.replace_method(EKSBackend, "delete_nodegroup", _eks_delete_nodegroup)
    patcher.replace_method(EKSBackend, "list_nodegroups", _eks_list_nodegroups)
    patcher.replace_method(EKSBackend, "list_fargate_profiles", _eks_list_fargate_profiles)
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
        patcher.replace_method(EKSBackend, name, calling_first(reap_eks, getattr(EKSBackend, name)))


def _eks_create_cluster(self: Any, **kwargs: Any) -> Any:
    reap_eks(self)
    existing = self.clusters.get(kwargs["name"])
    token = kwargs.get("client_request_token")
    if existing is not None and token and existing.client_request_token == token:
        return existing  # a retried request, as EKS treats it
    if existing is None:
        emit(EKS_CLUSTER_CREATING, role_arn=kwargs.get("role_arn"))
    cluster = _orig("EKSBackend.create_cluster")(self, **kwargs)
    attach_life(cluster, CLUSTER)
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
            emit(EKS_NODEGROUP_CREATING, node_role=kwargs.get("node_role"))
    nodegroup = _orig("EKSBackend.create_nodegroup")(self, **kwargs)
    attach_life(nodegroup, NODEGROUP)
    # EKS maps a managed node group's role itself when the cluster uses access entries (access_entries).
    emit(EKS_NODEGROUP_CREATED, backend=self, cluster=cluster, node_role=nodegroup.node_role)
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
