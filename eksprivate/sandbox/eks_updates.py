"""EKS updates the way AWS runs them: asynchronous, one at a time, judged by DescribeUpdate.

moto 5.2 applies `UpdateClusterConfig` at once, answers it with the cluster instead of an update, drops
`upgradePolicy` and has no `DescribeUpdate`. `install()` makes the sandbox behave like EKS
(docs/aws-fidelity.md, section "Updates and support type", has the sources):

* `UpdateClusterConfig` / `UpdateNodegroupConfig` answer `{"update": {...}}` with an id, type and params.
  The cluster (or node group) reads UPDATING for `Timing.cluster_update` / `Timing.nodegroup_update`
  (scaled); `DescribeUpdate` says InProgress, then Successful, and only then is the change visible. A
  failed update leaves the configuration as it was, and the resource ACTIVE again.
* A second update while one runs is refused with ResourceInUseException ("Cannot LoggingUpdate because
  cluster x currently has update <id> in progress"); more than one kind of change in one call with
  InvalidParameterException ("Only one type of update can be allowed."); a change to what is already
  there with InvalidParameterException ("No changes needed ..."). The same `clientRequestToken` answers
  the update it started.
* `CreateCluster` keeps `upgradePolicy` (EKS's default, when none is sent, is EXTENDED) and
  `DescribeCluster` reports it.

The update records, their settings (`fail_next_update`, `degraded_nodegroups`, ...) and the one-at-a-time rule
are shared with eks_addons and eks_upgrades through the core (`core.updates`).

moto is imported inside functions only: importing this module stays cheap.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from eksprivate.sandbox.core.patching import Patcher
from eksprivate.sandbox.core.updates import (
    by_token,
    current_settings,
    described,
    lock,
    refuse_while_busy,
    running,
    settle,
    start,
    updates_of,
)

__all__ = ["install", "updates_of"]  # updates_of: tests and benchmarks count a resource's updates

DEGRADED_ISSUE = {
    "code": "AsgInstanceLaunchFailures",
    "message": "Could not launch On-Demand Instances. InsufficientInstanceCapacity - We currently do not have "
    "sufficient capacity in the Availability Zone you requested (degraded by the sandbox).",
}


def _invalid_parameter(message: str) -> Exception:
    from moto.eks.exceptions import InvalidParameterException

    return InvalidParameterException(message=message)


# ---------------------------------------------------------------------------------------------------
# What one cluster change is, and what it changes


def _enabled_log_types(logging: dict[str, Any] | None) -> set[str]:
    return {t for entry in (logging or {}).get("clusterLogging") or [] if entry.get("enabled")
            for t in entry.get("types") or []}


def _logging_change(cluster: Any, requested: dict[str, Any]) -> tuple[list[dict[str, str]], Callable[[], None]]:
    before = _enabled_log_types(cluster.logging)
    after = set(before)
    for entry in requested.get("clusterLogging") or []:
        types = set(entry.get("types") or [])
        after = after | types if entry.get("enabled") else after - types
    if after == before:
        raise _invalid_parameter("No changes needed for the logging config provided.")
    all_types = {t for entry in (cluster.logging or {}).get("clusterLogging") or [] for t in entry.get("types") or []}
    all_types |= {t for entry in requested.get("clusterLogging") or [] for t in entry.get("types") or []}

    def apply() -> None:
        # EKS merges: types the request does not name keep their setting. Replaced, never mutated: moto
        # shares one default logging dict between clusters.
        cluster.logging = {"clusterLogging": [e for e in (
            {"types": sorted(after), "enabled": True}, {"types": sorted(all_types - after), "enabled": False}
        ) if e["types"]]}

    value = json.dumps({"clusterLogging": [{"types": sorted(after), "enabled": True}]})
    return [{"type": "ClusterLogging", "value": value}], apply


_ENDPOINT_KEYS = ("endpointPublicAccess", "endpointPrivateAccess", "publicAccessCidrs")


def _vpc_change(cluster: Any, requested: dict[str, Any]) -> tuple[list[dict[str, str]], Callable[[], None]]:
    current = dict(cluster.resources_vpc_config or {})
    merged = {**current, **requested}
    if merged.get("endpointPublicAccess") and not merged.get("publicAccessCidrs"):
        merged["publicAccessCidrs"] = ["0.0.0.0/0"]  # EKS's default for a public endpoint
    if not merged.get("endpointPublicAccess"):
        merged.pop("publicAccessCidrs", None)
    changed = {k for k in requested if merged.get(k) != current.get(k)}
    if not changed:
        raise _invalid_parameter(
            "Cluster is already at the desired configuration with endpointPrivateAccess: "
            f"{str(bool(current.get('endpointPrivateAccess'))).lower()} and endpointPublicAccess: "
            f"{str(bool(current.get('endpointPublicAccess'))).lower()}")
    names = {"endpointPublicAccess": "EndpointPublicAccess", "endpointPrivateAccess": "EndpointPrivateAccess",
             "publicAccessCidrs": "PublicAccessCidrs", "subnetIds": "Subnets", "securityGroupIds": "SecurityGroups"}
    params = [{"type": names.get(k, k), "value": json.dumps(merged.get(k))} for k in sorted(requested)]

    def apply() -> None:
        cluster.resources_vpc_config = merged

    return params, apply


SUPPORT_TYPES = ("STANDARD", "EXTENDED")


def _upgrade_policy(requested: dict[str, Any] | None) -> dict[str, str]:
    support = (requested or {}).get("supportType", "EXTENDED")  # EKS's default for API-made clusters
    if support not in SUPPORT_TYPES:
        raise _invalid_parameter(f"Invalid supportType: {support}. Valid values are STANDARD, EXTENDED.")
    return {"supportType": support}


def _upgrade_policy_change(cluster: Any, requested: dict[str, Any]) -> tuple[list[dict[str, str]], Callable[[], None]]:
    policy = _upgrade_policy(requested)
    if vars(cluster).get("upgrade_policy") == policy:
        raise _invalid_parameter("No changes needed for the upgrade policy provided.")

    def apply() -> None:
        cluster.upgrade_policy = policy

    return [{"type": "UpgradePolicy", "value": json.dumps(policy)}], apply


# ---------------------------------------------------------------------------------------------------
# Responses (methods put on moto's EKSResponse)


def _update_cluster_config_response(self: Any) -> Any:
    from moto.core.responses import ActionResult

    name = self._get_param("name")
    token = self._get_param("clientRequestToken")
    kinds = {k: self._get_param(k) for k in ("resourcesVpcConfig", "logging", "upgradePolicy")}
    requested = {k: v for k, v in kinds.items() if v is not None}
    others = [k for k in ("accessConfig", "kubernetesNetworkConfig", "remoteNetworkConfig", "computeConfig",
                          "storageConfig", "zonalShiftConfig") if self._get_param(k) is not None]
    with lock:
        cluster = self.eks_backend.describe_cluster(name=name)  # reaps and settles; ResourceNotFound
        again = by_token(cluster, token)
        if again is not None:
            return ActionResult({"update": again.as_dict()})  # a retried request
        if len(requested) + len(others) > 1:
            raise _invalid_parameter("Only one type of update can be allowed.")
        if not requested:
            if others:  # not modelled here: moto's own (immediate) behaviour
                return _original["update_cluster_config"](self)
            raise _invalid_parameter("No changes were specified for the cluster.")
        kind, value = next(iter(requested.items()))
        if kind == "resourcesVpcConfig":
            update_type = "EndpointAccessUpdate" if set(value) <= set(_ENDPOINT_KEYS) else "VpcConfigUpdate"
        else:
            update_type = {"logging": "LoggingUpdate", "upgradePolicy": "UpgradePolicyUpdate"}[kind]
        refuse_while_busy(cluster, f"cluster {name}", update_type, name)
        if kind == "logging":
            params, apply = _logging_change(cluster, value)
        elif kind == "upgradePolicy":
            params, apply = _upgrade_policy_change(cluster, value)
        else:
            params, apply = _vpc_change(cluster, value)
        update = start(cluster, name, update_type, params, lambda t: t.cluster_update, apply, token)
        return ActionResult({"update": update.as_dict()})


def _update_nodegroup_config_response(self: Any) -> Any:
    from moto.core.responses import ActionResult

    cluster_name = self._get_param("name")
    nodegroup_name = self._get_param("nodegroupName")
    token = self._get_param("clientRequestToken")
    changes = {k: self._get_param(k) for k in ("labels", "taints", "scalingConfig", "updateConfig",
                                                "nodeRepairConfig")}
    changes = {k: v for k, v in changes.items() if v is not None}
    backend = self.eks_backend
    with lock:
        nodegroup = backend.describe_nodegroup(cluster_name=cluster_name, nodegroup_name=nodegroup_name)
        again = by_token(nodegroup, token)
        if again is not None:
            return ActionResult({"update": again.as_dict()})
        refuse_while_busy(nodegroup, f"nodegroup {nodegroup_name}", "ConfigUpdate", cluster_name, nodegroup_name)
        scaling = {**nodegroup.scaling_config, **changes.get("scalingConfig", {})}
        if scaling.get("minSize", 0) > scaling.get("desiredSize", 0):
            raise _invalid_parameter(f"Minimum capacity {scaling['minSize']} can't be greater than desired size "
                                     f"{scaling['desiredSize']}")
        if scaling.get("desiredSize", 0) > scaling.get("maxSize", 0):
            raise _invalid_parameter(f"Desired capacity {scaling['desiredSize']} can't be greater than max size "
                                     f"{scaling['maxSize']}")
        params = _nodegroup_params(changes)

        def apply() -> None:
            backend.update_nodegroup_config(
                cluster_name=cluster_name, nodegroup_name=nodegroup_name, labels=changes.get("labels"),
                taints=changes.get("taints"), scaling_config=changes.get("scalingConfig"),
                update_config=changes.get("updateConfig"), node_repair_config=changes.get("nodeRepairConfig"))

        update = start(nodegroup, cluster_name, "ConfigUpdate", params, lambda t: t.nodegroup_update, apply, token)
        return ActionResult({"update": update.as_dict()})


def _nodegroup_params(changes: dict[str, Any]) -> list[dict[str, str]]:
    """The update's params, named as EKS's UpdateParamType enum names them."""
    params = []
    labels, taints = changes.get("labels") or {}, changes.get("taints") or {}
    for key, kind in (("addOrUpdateLabels", "LabelsToAdd"), ("removeLabels", "LabelsToRemove")):
        if key in labels:
            params.append({"type": kind, "value": json.dumps(labels[key])})
    for key, kind in (("addOrUpdateTaints", "TaintsToAdd"), ("removeTaints", "TaintsToRemove")):
        if key in taints:
            params.append({"type": kind, "value": json.dumps(taints[key])})
    for key, kind in (("minSize", "MinSize"), ("maxSize", "MaxSize"), ("desiredSize", "DesiredSize")):
        if key in (changes.get("scalingConfig") or {}):
            params.append({"type": kind, "value": str(changes["scalingConfig"][key])})
    if "maxUnavailable" in (changes.get("updateConfig") or {}):
        params.append({"type": "MaxUnavailable", "value": str(changes["updateConfig"]["maxUnavailable"])})
    return params


def _describe_update_response(self: Any) -> Any:
    """DescribeUpdate of a cluster's or node group's update (eks_addons answers the ones with `addonName`)."""
    from moto.core.responses import ActionResult

    name = self._get_param("name")
    nodegroup_name = self._get_param("nodegroupName")
    backend = self.eks_backend
    resource = (backend.describe_nodegroup(cluster_name=name, nodegroup_name=nodegroup_name) if nodegroup_name
                else backend.describe_cluster(name=name))
    return ActionResult({"update": described(resource, name, self._get_param("updateId"))})


def _create_cluster_response(self: Any) -> Any:
    policy = _upgrade_policy(self._get_param("upgradePolicy"))  # refuse a bad one before creating
    result = _original["create_cluster"](self)
    cluster = result.result["cluster"]
    if "upgrade_policy" not in vars(cluster):  # not a retried (idempotent) request
        cluster.upgrade_policy = policy
    return result


# ---------------------------------------------------------------------------------------------------
# Statuses: UPDATING while an update runs, DEGRADED when told


def _degraded(nodegroup: Any) -> bool:
    degraded = current_settings().degraded_nodegroups
    return degraded is not None and degraded == nodegroup.cluster_name


def _status_with_updates(previous: property, nodegroups: bool) -> property:
    def get(resource: Any) -> Any:
        status = previous.__get__(resource)
        if status != "ACTIVE":
            return status
        if running(resource) is not None:
            return "UPDATING"
        if nodegroups and _degraded(resource):
            return "DEGRADED"
        return status

    def set_(resource: Any, value: Any) -> None:
        previous.__set__(resource, value)

    return property(get, set_)


def _health(resource: Any) -> Any:
    if _degraded(resource) and resource.status == "DEGRADED":
        return {"issues": [{**DEGRADED_ISSUE, "resourceIds": [f"eks-{resource.nodegroup_name}-asg"]}]}
    return vars(resource).get("health") or {"issues": []}


def _set_health(resource: Any, value: Any) -> None:
    vars(resource)["health"] = value


def _settling(method: Callable[..., Any]) -> Callable[..., Any]:
    """A backend read that first makes finished updates' changes visible."""

    def read(self: Any, *args: Any, **kwargs: Any) -> Any:
        resource = method(self, *args, **kwargs)
        settle(resource)
        return resource

    read.__name__ = method.__name__
    return read


_original: dict[str, Callable[..., Any]] = {}

_URL_PATHS = ("{0}/clusters/(?P<name>[^/]+)/updates/(?P<updateId>[^/]+)$",)


def install(patcher: Patcher) -> None:
    """Patch moto's EKS (after eks_lifecycle and access_entries: see `families.FAMILIES`)."""
    from moto.eks import urls
    from moto.eks.models import Cluster, EKSBackend, Nodegroup
    from moto.eks.responses import EKSResponse

    _original["create_cluster"] = EKSResponse.create_cluster  # access entries' wrapper of moto's
    _original["update_cluster_config"] = EKSResponse.update_cluster_config
    patcher.set_attr(EKSResponse, "create_cluster", _create_cluster_response)
    patcher.set_attr(EKSResponse, "update_cluster_config", _update_cluster_config_response)
    patcher.set_attr(EKSResponse, "update_nodegroup_config", _update_nodegroup_config_response)
    patcher.set_attr(EKSResponse, "describe_update", _describe_update_response)
    for path in _URL_PATHS:
        patcher.set_item(urls.url_paths, path, urls.response.dispatch)
    patcher.set_attr(Cluster, "status", _status_with_updates(vars(Cluster)["status"], nodegroups=False))
    patcher.set_attr(Nodegroup, "status", _status_with_updates(vars(Nodegroup)["status"], nodegroups=True))
    patcher.set_attr(Nodegroup, "health", property(_health, _set_health))
    for name in ("describe_cluster", "describe_nodegroup"):
        patcher.set_attr(EKSBackend, name, _settling(getattr(EKSBackend, name)))
