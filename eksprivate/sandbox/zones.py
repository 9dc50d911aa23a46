"""Availability Zones as a real account sees them, and the ones EKS refuses.

moto maps us-east-1's zone names to fixed zone IDs with the one EKS refuses (use1-az3) fifth, as
us-east-1e; a tool that takes "the first three names" never meets it there. In a real account the
name->ID mapping is shuffled per account (EC2 user guide, "AZ IDs"), so the restricted ID can be any
name. This module:

* maps us-east-1's names so that use1-az3 is us-east-1b, one of the first three names;
* refuses CreateCluster with a subnet in a zone ID EKS does not take (`eksprivate.zones`, from the EKS
  user guide) with UnsupportedAvailabilityZoneException, HTTP 400, carrying `validZones` (botocore's
  EKS model: message, clusterName, nodegroupName, validZones), worded as EKS words it;
* refuses CreateVpcEndpoint with PrivateDnsEnabled for a service that lists no private DNS name, with
  InvalidParameter "Private DNS can't be enabled because the service ... does not provide a private DNS
  name." (moto accepts it; AWS's wording as reported in eksctl-io/eksctl#3214).

moto is imported only inside functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eksprivate.sandbox.errors import service_error
from eksprivate.zones import eks_refuses

if TYPE_CHECKING:
    from eksprivate.sandbox.core.patching import Patcher

# us-east-1 name -> zone ID, use1-az3 among the first three names (moto: a=az6 b=az1 c=az2 d=az4 e=az3 f=az5).
US_EAST_1 = {"us-east-1a": "use1-az6", "us-east-1b": "use1-az3", "us-east-1c": "use1-az2",
             "us-east-1d": "use1-az4", "us-east-1e": "use1-az1", "us-east-1f": "use1-az5"}


def install(patcher: Patcher) -> None:
    """Patch moto (listed in `families.FAMILIES`; undone by `families.uninstall`)."""
    from moto.ec2.models import EC2Backend
    from moto.ec2.models.availability_zones_and_regions import RegionsAndZonesBackend, Zone
    from moto.eks.models import EKSBackend

    patcher.set_item(RegionsAndZonesBackend.zones, "us-east-1",
                     [Zone(region_name="us-east-1", name=name, zone_id=zone_id) for name, zone_id in US_EAST_1.items()])

    # Wrapped, not replaced through `replace_method`: eks_lifecycle already replaced create_cluster and
    # keeps moto's original under that name; this wraps whatever is current.
    create_cluster = EKSBackend.create_cluster

    def create_cluster_in_supported_zones(self: Any, **kwargs: Any) -> Any:
        _refuse_unsupported_zones(self, kwargs["name"], kwargs.get("resources_vpc_config") or {})
        return create_cluster(self, **kwargs)

    patcher.set_attr(EKSBackend, "create_cluster", create_cluster_in_supported_zones)

    create_vpc_endpoint = EC2Backend.create_vpc_endpoint

    def create_vpc_endpoint_checking_private_dns(self: Any, *args: Any, **kwargs: Any) -> Any:
        _refuse_private_dns_without_name(self, kwargs)
        return create_vpc_endpoint(self, *args, **kwargs)

    patcher.set_attr(EC2Backend, "create_vpc_endpoint", create_vpc_endpoint_checking_private_dns)


def _refuse_unsupported_zones(eks: Any, cluster_name: str, vpc_config: dict[str, Any]) -> None:
    from moto.ec2.models import ec2_backends

    ec2 = ec2_backends[eks.account_id][eks.region_name]
    refused = []
    for subnet_id in vpc_config.get("subnetIds", []) or []:
        try:
            subnet = ec2.get_subnet(subnet_id)
        except Exception:  # an unknown subnet is moto's to report, not this check's
            continue
        if eks_refuses(eks.region_name, subnet.availability_zone_id):
            refused.append(subnet.availability_zone)
    if not refused:
        return
    valid = sorted(z.name for z in ec2.describe_availability_zones() if not eks_refuses(eks.region_name, z.zone_id))
    raise service_error(
        "UnsupportedAvailabilityZoneException",
        f"Cannot create cluster '{cluster_name}' because {refused[0]}, the targeted availability zone, "
        "does not currently have sufficient capacity to support the cluster. Retry and choose from these "
        f"availability zones: {', '.join(valid)}",
        clusterName=cluster_name, nodegroupName=None, validZones=valid)


def _refuse_private_dns_without_name(ec2: Any, kwargs: dict[str, Any]) -> None:
    from moto.ec2.exceptions import EC2ClientError

    kind = str(kwargs.get("endpoint_type") or "Gateway").lower()
    if kind != "interface" or not kwargs.get("private_dns_enabled"):
        return
    name = kwargs.get("service_name")
    listed = ec2._collect_default_endpoint_services(ec2.account_id, ec2.region_name)
    entries = [s for s in listed if s.get("ServiceName") == name
               and any(t.get("ServiceType") == "Interface" for t in s.get("ServiceType", []))]
    if entries and not any(s.get("PrivateDnsName") for s in entries):
        raise EC2ClientError("InvalidParameter", f"Private DNS can't be enabled because the service {name} does "
                                                 "not provide a private DNS name.")
