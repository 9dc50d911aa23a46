"""Which Kubernetes versions EKS offers, as DescribeClusterVersions says (read once per run by
`target.check_kubernetes_version`): their support status, the version a new cluster gets, and what to
offer instead of a version that cannot be used."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eksprivate.config import kubernetes_minor, version_tuple
from eksprivate.errors import AwsApiError

if TYPE_CHECKING:
    from eksprivate.aws import Aws
    from eksprivate.steps.base import Context

# Context.run_cache key: every version DescribeClusterVersions lists (version -> info), read once per run
CLUSTER_VERSIONS = "cluster-versions"

STANDARD, EXTENDED, UNSUPPORTED = "STANDARD_SUPPORT", "EXTENDED_SUPPORT", "UNSUPPORTED"


def version_status(info: dict[str, Any]) -> str:
    """`versionStatus` (the current field), else the deprecated `status` (`standard-support`, ...)."""
    return str(info.get("versionStatus") or info.get("status") or "").upper().replace("-", "_")


def offered_versions(offered: dict[str, dict[str, Any]], current: str | None = None) -> str:
    """What to choose instead, for a refusal: the versions EKS offers (and which are in standard support);
    for an existing cluster only those at or above its version (EKS cannot downgrade)."""
    usable = sorted((v for v, i in offered.items() if version_status(i) in (STANDARD, EXTENDED)),
                    key=version_tuple)
    standard = ", ".join(v for v in usable if version_status(offered[v]) == STANDARD) or "none"
    if current is None:
        return f"use one of {', '.join(usable)} (the versions EKS offers; in standard support: {standard})"
    higher = [v for v in usable if version_tuple(v) >= version_tuple(current)]
    return (f"the cluster runs {current}: use one of {', '.join(higher) or 'none'} (EKS offers "
            f"{', '.join(usable)}; in standard support: {standard}; a cluster goes up one minor at a time, "
            "never down)")


def new_cluster_version(offered: dict[str, dict[str, Any]]) -> str | None:
    """The version for a new cluster: EKS's default when it is in standard support, else the newest version
    in standard support (never one already in extended support); None when none is."""
    standard = [v for v, i in offered.items() if version_status(i) == STANDARD]
    default = next((v for v in standard if offered[v].get("defaultVersion")), None)
    return default or max(standard, key=version_tuple, default=None)


def read_cluster_versions(aws: Aws) -> dict[str, dict[str, Any]]:
    """Every version EKS knows in the region (includeAll: unsupported ones too, to say why one is refused).
    Raises AwsApiError (not allowed), AttributeError (a botocore older than the operation)."""
    out: dict[str, dict[str, Any]] = {}
    for item in aws.eks.paginate("describe_cluster_versions", "clusterVersions", includeAll=True):
        if item.get("clusterType", "eks") == "eks" and item.get("clusterVersion"):
            out[str(item["clusterVersion"])] = item
    return out


def cluster_versions(ctx: Context) -> dict[str, dict[str, Any]]:
    """`read_cluster_versions` once per run (target's check may have read it already); {} when not readable."""
    def read() -> dict[str, dict[str, Any]]:
        try:
            return read_cluster_versions(ctx.aws)
        except (AwsApiError, AttributeError):
            return {}

    found: dict[str, dict[str, Any]] = ctx.once(CLUSTER_VERSIONS, read)
    return found


def version_info(ctx: Context, version: str | None) -> dict[str, Any] | None:
    """What DescribeClusterVersions says of `version` today (its support status and dates); None when it
    cannot be read or does not list it."""
    return cluster_versions(ctx).get(kubernetes_minor(version)) if version else None
