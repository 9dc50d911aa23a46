"""EKS Kubernetes versions for moto: DescribeClusterVersions (moto 5.2 lacks it) and CreateCluster's use
of them (moto accepts any version and defaults to 1.19).

The versions are data (`core.versions.CALENDAR`, shared with eks_upgrades), their status is computed from the
calendar date: standard support for 14 months from the EKS release, extended support for 12 more, then
unsupported (EKS user guide, kubernetes-versions: "On the end of extended support date, you can no longer
create new Amazon EKS clusters with the unsupported version"). `set_calendar` replaces the table and/or the
date, e.g. for a test of an upgrade that crosses an end-of-support date; `reset` restores both.

What is modelled (sources in docs/aws-fidelity.md, config-checks):
* DescribeClusterVersions answers `clusterVersions` with `clusterVersion`, `clusterType` ("eks"),
  `defaultPlatformVersion`, `defaultVersion`, `releaseDate`, `endOfStandardSupportDate`,
  `endOfExtendedSupportDate`, `versionStatus` (STANDARD_SUPPORT | EXTENDED_SUPPORT | UNSUPPORTED), the
  deprecated `status` (standard-support | ...) and `kubernetesPatchVersion`; filters `clusterVersions`,
  `defaultOnly`, `includeAll`, `versionStatus`/`status`, `clusterType`; pages with `maxResults`/`nextToken`.
  Without `includeAll` unsupported versions are left out (an assumption: the API reference does not say).
* `defaultVersion`: the table's flagged default while it is in standard support, else the newest version in
  standard support (core.versions.default_version).
* CreateCluster without `version` gets the default version; with one EKS does not offer (unknown, not yet
  released, or past extended support) it answers InvalidParameterException.

moto is imported only inside functions: importing this module stays cheap.
"""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from typing import TYPE_CHECKING, Any

from eksprivate.sandbox.core.versions import (
    UNSUPPORTED,
    UNSUPPORTED_VERSION_MSG,
    ClusterVersion,
    creatable,
    default_version,
    offered,
    reset,
    set_calendar,
)

if TYPE_CHECKING:
    from eksprivate.sandbox.core.patching import Patcher

# set_calendar and reset act on the core's calendar (core.versions); named here for the tests that pin its date.
__all__ = ["describe", "install", "reset", "set_calendar"]


def _timestamp(day: date) -> float:
    return datetime.combine(day, time(0, 0), tzinfo=timezone.utc).timestamp()


def describe(item: ClusterVersion, status: str) -> dict[str, Any]:
    """One `clusterVersions` element, as the API reference shapes it."""
    return {
        "clusterVersion": item.version, "clusterType": "eks", "defaultPlatformVersion": item.platform_version,
        "defaultVersion": item.version == default_version(), "releaseDate": _timestamp(item.released),
        "endOfStandardSupportDate": _timestamp(item.end_of_standard),
        "endOfExtendedSupportDate": _timestamp(item.end_of_extended),
        "versionStatus": status, "status": status.lower().replace("_", "-"),
        "kubernetesPatchVersion": item.patch_version,
    }


def _describe_cluster_versions_response(self: Any) -> Any:
    from moto.core.responses import ActionResult

    query: dict[str, list[str]] = self.querystring

    def flag(name: str) -> bool:
        return (query.get(name) or ["false"])[0].lower() == "true"

    wanted = set(query.get("clusterVersions") or [])
    statuses = {s.upper().replace("-", "_") for s in (query.get("versionStatus") or []) + (query.get("status") or [])}
    types = set(query.get("clusterType") or [])
    items = [describe(v, s) for v, s in offered(include_all=flag("includeAll") or bool(statuses & {UNSUPPORTED}))
             if (not wanted or v.version in wanted) and (not statuses or s in statuses)
             and (not flag("defaultOnly") or v.version == default_version()) and (not types or "eks" in types)]
    size = int((query.get("maxResults") or ["100"])[0])
    start = int((query.get("nextToken") or ["0"])[0])
    page = items[start:start + size]
    next_token = str(start + size) if start + size < len(items) else None
    return ActionResult({"clusterVersions": page, "nextToken": next_token})


def install(patcher: Patcher) -> None:
    """Add DescribeClusterVersions to moto's EKS responses and URL map, and make CreateCluster use the
    calendar (after eks_lifecycle's own CreateCluster patch: see `families.FAMILIES`)."""
    from moto.eks import urls
    from moto.eks.models import EKSBackend
    from moto.eks.responses import EKSResponse

    patcher.set_attr(EKSResponse, "describe_cluster_versions", _describe_cluster_versions_response)
    patcher.set_item(urls.url_paths, "{0}/cluster-versions$", urls.response.dispatch)
    create = EKSBackend.create_cluster  # eks_lifecycle's (TTL, tokens, IAM) — wrapped, not replaced

    def create_cluster(self: Any, **kwargs: Any) -> Any:
        # EKS creates only versions in standard or extended support, and picks its default when none is
        # named (moto: any string, else 1.19).
        from moto.eks.exceptions import InvalidParameterException

        if kwargs.get("name") not in self.clusters:
            version = kwargs.get("version") or default_version()
            if version is None or not creatable(version):
                raise InvalidParameterException(clusterName=kwargs.get("name"), nodegroupName=None, addonName=None,
                                                message=UNSUPPORTED_VERSION_MSG.format(version=version))
            kwargs["version"] = version
        return create(self, **kwargs)

    patcher.set_attr(EKSBackend, "create_cluster", create_cluster)
