"""Availability Zones EKS will not take, by zone ID.

Zone *names* (us-east-1a) map to different physical zones in each account; zone *IDs* (use1-az3) are the
same everywhere, so what AWS restricts is stated, and checked, by ID.

Source: Amazon EKS User Guide, "View Amazon EKS networking requirements for VPC and subnets" ->
"Subnet requirements for clusters": the subnets "can't reside in the following Availability Zones"
(us-east-1 use1-az3, us-west-1 usw1-az2, ca-central-1 cac1-az3). CreateCluster with a subnet there fails
with UnsupportedAvailabilityZoneException, which lists the `validZones`. The same page: cluster subnets
can't be in AWS Outposts or Wavelength (nor, as eksctl and terraform users find, in Local Zones): only
zones of type `availability-zone` are used. cnn1-az4 (cn-north-1) was once refused too and is no longer
(eksctl-io/eksctl#3916, #5783, PR #8240). See docs/aws-fidelity.md, "Zones, partitions, endpoint services".
"""

from __future__ import annotations

from dataclasses import dataclass

# Region -> zone IDs EKS refuses for control-plane subnets (the user guide's table, as of its 2025 text).
EKS_UNSUPPORTED_ZONE_IDS: dict[str, frozenset[str]] = {
    "us-east-1": frozenset({"use1-az3"}),
    "us-west-1": frozenset({"usw1-az2"}),
    "ca-central-1": frozenset({"cac1-az3"}),
}
EKS_REFUSES = "EKS does not accept control-plane subnets in this zone ID (EKS user guide, subnet requirements)"
AVAILABILITY_ZONE = "availability-zone"


def eks_refuses(region: str, zone_id: str) -> bool:
    return zone_id in EKS_UNSUPPORTED_ZONE_IDS.get(region, frozenset())


@dataclass(frozen=True)
class SkippedZone:
    """A zone of the region that eksprivate left out, and why."""

    name: str
    zone_id: str
    reason: str

    def __str__(self) -> str:
        return f"{self.name} ({self.zone_id}): {self.reason}"


def why_unusable(region: str, zone: dict[str, str]) -> str | None:
    """Why a zone (a DescribeAvailabilityZones entry) can never hold the cluster's subnets; None if it can."""
    kind = zone.get("ZoneType", AVAILABILITY_ZONE)
    if kind != AVAILABILITY_ZONE:
        return f"a {kind}, not an Availability Zone (EKS cluster subnets must be in an Availability Zone)"
    if zone.get("State", "available") != "available":
        return f"state {zone.get('State')}"
    if eks_refuses(region, zone.get("ZoneId", "")):
        return EKS_REFUSES
    return None
