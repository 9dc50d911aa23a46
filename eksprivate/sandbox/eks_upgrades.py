"""Kubernetes version upgrades the way EKS runs them; moto 5.2 has no UpdateClusterVersion,
UpdateNodegroupVersion or ListInsights, and gives every node group Kubernetes 1.19.

What is modelled (sources in docs/aws-fidelity.md, section day2):

* UpdateClusterVersion: one minor version up only (a skip, the same version or a downgrade is
  InvalidParameterException "Unsupported Kubernetes minor version update from A to B"); a version the region
  does not offer is InvalidParameterException; every managed node group must already run the cluster's version
  (InvalidRequestException naming the group); an upgrade-readiness insight in ERROR blocks it unless `force`
  (InvalidRequestException). Otherwise an update of type VersionUpdate: the cluster reads UPDATING for
  `Timing.cluster_version_update` (scaled) and the version changes when DescribeUpdate says Successful. One
  update at a time (ResourceInUseException), a repeated clientRequestToken answers the same update, and a
  failure injected with `fail_next_update` leaves the version as it was (`core.updates` does all three).
* UpdateNodegroupVersion: to `version` (default: the group's own) and `releaseVersion` (default: the latest AMI
  release for that version); newer than the control plane, or older than the group, is InvalidParameterException.
  The group reads UPDATING for `Timing.nodegroup_version_update`.
* CreateNodegroup without `version` gets the cluster's version and the latest AMI release for it (as EKS does).
* SSM GetParameter `/aws/service/eks/optimized-ami/<minor>/<family>/recommended/release_version`: the latest
  release (`newer_ami_release = "<minor>"` publishes a newer one, for an AMI refresh).
* ListInsights: UPGRADE_READINESS insights for the next minor version: "Deprecated APIs removed in Kubernetes
  v<next>" (ERROR for the cluster named by the `error_insights` setting, else PASSING) and "Kubelet version
  skew" (WARNING while a node group is behind the control plane). Filters by category, version and status.

moto is imported inside functions only: importing this module stays cheap.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import TYPE_CHECKING, Any

from eksprivate.sandbox.core import updates, versions

if TYPE_CHECKING:
    from eksprivate.sandbox.core.patching import Patcher

VERSION_LIKE = re.compile(r"^1\.\d{1,2}$")
AMI_RELEASE_DATES = ("20251015", "20251104")  # illustrative: the newest is "the latest AMI release"
UNSUPPORTED_UPDATE_MSG = "Unsupported Kubernetes minor version update from {current} to {wanted}"
NODEGROUP_BEHIND_MSG = "Nodegroups {nodegroup} must be updated to match cluster version {version} before updating " \
                       "cluster version"
INSIGHT_BLOCK_MSG = ("Cluster upgrade is blocked by upgrade insights with status ERROR ({names}); resolve them or "
                     "set force to override")


def minor_tuple(version: str) -> tuple[int, int]:
    major, minor = str(version).split(".")[:2]
    return int(major), int(minor)


def minor_of(version: str) -> str:
    return ".".join(str(version).split(".")[:2])


def next_minor(version: str) -> str:
    major, minor = minor_tuple(version)
    return f"{major}.{minor + 1}"


NEWER_RELEASE_DATE = "20251201"  # published by the `newer_ami_release` setting
# SSM public parameter EKS publishes its optimized AMIs under (EKS User Guide, retrieve-ami-id)
AMI_PARAMETER = re.compile(r"^/aws/service/eks/optimized-ami/(?P<version>1\.\d+)/(?P<family>[a-z0-9/_-]+?)"
                           r"/recommended/release_version$")


def latest_release(version: str) -> str:
    """The latest EKS-optimized AMI release for a Kubernetes minor (`1.33.7-20251104`); a newer one when the
    `newer_ami_release` setting names that minor (as EKS publishes a release every few weeks)."""
    minor = minor_of(version)
    known = versions.find(minor)
    patch = known.patch_version if known and known.patch_version else f"{minor}.0"
    newer = updates.current_settings().newer_ami_release == minor
    return f"{patch}-{NEWER_RELEASE_DATE if newer else AMI_RELEASE_DATES[-1]}"


def _get_parameter_response(self: Any) -> Any:
    """SSM GetParameter of the EKS-optimized AMI release parameters (moto has none of them)."""
    from moto.core.responses import ActionResult

    name = str(self._get_param("Name") or "")
    match = AMI_PARAMETER.match(name)
    if match is None:
        return _original_get_parameter(self)
    value = latest_release(match["version"])
    return ActionResult({"Parameter": {
        "Name": name, "Type": "String", "Value": value, "Version": 1, "DataType": "text",
        "ARN": f"arn:aws:ssm:{self.region}::parameter{name}"}})


_original_get_parameter: Any = None


def _invalid_parameter(cluster: str, nodegroup: str | None, message: str) -> Exception:
    from moto.eks.exceptions import InvalidParameterException

    error: Exception = InvalidParameterException(clusterName=cluster, nodegroupName=nodegroup, addonName=None,
                                                 message=message)
    return error


def _invalid_request(cluster: str, nodegroup: str | None, message: str) -> Exception:
    from moto.eks.exceptions import InvalidRequestException

    error: Exception = InvalidRequestException(clusterName=cluster, nodegroupName=nodegroup, addonName=None,
                                               message=message)
    return error


# -- insights -----------------------------------------------------------------------------------------


def insights(cluster: Any) -> list[dict[str, Any]]:
    """The cluster's upgrade-readiness insights for its next minor version."""
    target = next_minor(cluster.version)
    now = dt.datetime.now(dt.timezone.utc)
    removed_error = updates.current_settings().error_insights == cluster.name
    behind = sorted(ng.nodegroup_name for ng in cluster.nodegroups.values()
                    if minor_tuple(ng.version) < minor_tuple(cluster.version))
    out = []
    for name, status, reason, description in (
        (f"Deprecated APIs removed in Kubernetes v{target}", "ERROR" if removed_error else "PASSING",
         "Deprecated API usage detected within last 30 days." if removed_error else
         "No deprecated API usage detected within the last 30 days.",
         f"Checks for usage of deprecated APIs that are scheduled for removal in Kubernetes v{target}."),
        ("Kubelet version skew", "WARNING" if behind else "PASSING",
         f"Node kubelet versions lag the control plane: {', '.join(behind)}." if behind else
         "No kubelet version skew detected.",
         "Checks for kubelet versions of worker nodes in the cluster to see if upgrade would cause non compliance "
         "with supported Kubernetes kubelet version skew policy."),
    ):
        out.append({"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{cluster.arn}/{name}")), "name": name,
                    "category": "UPGRADE_READINESS", "kubernetesVersion": target, "lastRefreshTime": now,
                    "lastTransitionTime": now, "description": description,
                    "insightStatus": {"status": status, "reason": reason}})
    return out


def _list_insights_response(self: Any) -> Any:
    from moto.core.responses import ActionResult

    cluster = self.eks_backend.describe_cluster(name=self._get_param("name"))
    wanted = self._get_param("filter") or {}
    items = [i for i in insights(cluster)
             if (not wanted.get("categories") or i["category"] in wanted["categories"])
             and (not wanted.get("kubernetesVersions") or i["kubernetesVersion"] in wanted["kubernetesVersions"])
             and (not wanted.get("statuses") or i["insightStatus"]["status"] in wanted["statuses"])]
    return ActionResult({"insights": items, "nextToken": None})


# -- version updates ----------------------------------------------------------------------------------


def _update_cluster_version_response(self: Any) -> Any:
    from moto.core.responses import ActionResult

    name = self._get_param("name")
    wanted = str(self._get_param("version") or "")
    token = self._get_param("clientRequestToken")
    force = bool(self._get_param("force"))
    with updates.lock:
        cluster = self.eks_backend.describe_cluster(name=name)
        again = updates.by_token(cluster, token)
        if again is not None:
            return ActionResult({"update": again.as_dict()})
        updates.refuse_while_busy(cluster, f"cluster {name}", "VersionUpdate", name)
        current = minor_of(cluster.version)
        if not VERSION_LIKE.match(wanted) or next_minor(current) != wanted:
            raise _invalid_parameter(name, None, UNSUPPORTED_UPDATE_MSG.format(current=current, wanted=wanted))
        if not versions.creatable(wanted):
            raise _invalid_parameter(name, None, versions.UNSUPPORTED_VERSION_MSG.format(version=wanted))
        for ng in cluster.nodegroups.values():
            if minor_of(ng.version) != current:
                raise _invalid_request(name, ng.nodegroup_name,
                                       NODEGROUP_BEHIND_MSG.format(nodegroup=ng.nodegroup_name, version=current))
        blocking = [i["name"] for i in insights(cluster) if i["insightStatus"]["status"] == "ERROR"]
        if blocking and not force:
            raise _invalid_request(name, None, INSIGHT_BLOCK_MSG.format(names="; ".join(blocking)))
        platform = getattr(versions.find(wanted), "platform_version", "eks.1")

        def apply() -> None:
            cluster.version = wanted
            cluster.platform_version = platform

        params = [{"type": "Version", "value": wanted}, {"type": "PlatformVersion", "value": platform}]
        update = updates.start(cluster, name, "VersionUpdate", params, lambda t: t.cluster_version_update,
                                    apply, token)
        return ActionResult({"update": update.as_dict()})


def _update_nodegroup_version_response(self: Any) -> Any:
    from moto.core.responses import ActionResult

    cluster_name = self._get_param("name")
    nodegroup_name = self._get_param("nodegroupName")
    token = self._get_param("clientRequestToken")
    backend = self.eks_backend
    with updates.lock:
        cluster = backend.describe_cluster(name=cluster_name)
        nodegroup = backend.describe_nodegroup(cluster_name=cluster_name, nodegroup_name=nodegroup_name)
        again = updates.by_token(nodegroup, token)
        if again is not None:
            return ActionResult({"update": again.as_dict()})
        updates.refuse_while_busy(nodegroup, f"nodegroup {nodegroup_name}", "VersionUpdate", cluster_name,
                                       nodegroup_name)
        wanted = str(self._get_param("version") or minor_of(nodegroup.version))
        if minor_tuple(wanted) > minor_tuple(cluster.version):
            raise _invalid_parameter(cluster_name, nodegroup_name,
                                     f"Requested Kubernetes version {wanted} is newer than the cluster's "
                                     f"version {minor_of(cluster.version)}")
        if minor_tuple(wanted) < minor_tuple(nodegroup.version):
            raise _invalid_parameter(cluster_name, nodegroup_name,
                                     f"Nodegroup {nodegroup_name} cannot be rolled back to Kubernetes {wanted}")
        release = str(self._get_param("releaseVersion") or latest_release(wanted))

        def apply() -> None:
            nodegroup.version = wanted
            nodegroup.release_version = release

        params = [{"type": "Version", "value": wanted}, {"type": "ReleaseVersion", "value": release}]
        update = updates.start(nodegroup, cluster_name, "VersionUpdate", params,
                                    lambda t: t.nodegroup_version_update, apply, token)
        return ActionResult({"update": update.as_dict()})


_URL_PATHS = (
    "{0}/clusters/(?P<name>[^/]+)/updates$",
    "{0}/clusters/(?P<name>[^/]+)/node-groups/(?P<nodegroupName>[^/]+)/update-version$",
    "{0}/clusters/(?P<name>[^/]+)/insights$",
)


def install(patcher: Patcher) -> None:
    """Add the operations and the node group version default (after eks_updates and
    nodegroup_ami: see `families.FAMILIES`)."""
    from moto.eks import urls
    from moto.eks.models import EKSBackend
    from moto.eks.responses import EKSResponse

    patcher.set_attr(EKSResponse, "update_cluster_version", _update_cluster_version_response)
    patcher.set_attr(EKSResponse, "update_nodegroup_version", _update_nodegroup_version_response)
    patcher.set_attr(EKSResponse, "list_insights", _list_insights_response)
    global _original_get_parameter
    from moto.ssm.responses import SimpleSystemManagerResponse

    _original_get_parameter = SimpleSystemManagerResponse.get_parameter
    patcher.set_attr(SimpleSystemManagerResponse, "get_parameter", _get_parameter_response)
    for path in _URL_PATHS:
        patcher.set_item(urls.url_paths, path, urls.response.dispatch)
    create = EKSBackend.create_nodegroup

    def create_nodegroup(self: Any, **kwargs: Any) -> Any:
        # EKS: a node group without `version` runs the cluster's, on the latest AMI release for it.
        cluster = self.clusters.get(kwargs.get("cluster_name"))
        if cluster is not None and not kwargs.get("version"):
            kwargs["version"] = minor_of(cluster.version)
        if kwargs.get("version") and not kwargs.get("release_version"):
            kwargs["release_version"] = latest_release(kwargs["version"])
        return create(self, **kwargs)

    patcher.set_attr(EKSBackend, "create_nodegroup", create_nodegroup)
