"""Which Kubernetes versions EKS offers, as DescribeClusterVersions says (read once per run by
`target.check_kubernetes_version`): their support status, the version a new cluster gets, and what to
offer instead of a version that cannot be used."""

from __future__ import annotations

from typing import Any

from eksprivate.config import version_tuple

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
