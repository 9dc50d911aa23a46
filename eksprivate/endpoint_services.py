"""VPC endpoint services as the region names them, from DescribeVpcEndpointServices.

A service's full name is not always `com.amazonaws.<region>.<service>`: in the China regions some are
`cn.com.amazonaws.<region>.<service>` (AWS, "Getting Started with AWS in China": VPC endpoints). So the
short names of the config (`ecr.api`, `ssm`) are resolved against what the region lists, matching the
suffix `.<region>.<short>` with any prefix, and the full name AWS returned is the one used to create an
endpoint. The same listing says which AZs offer the service and whether it has a private DNS name
(only then can an interface endpoint get private DNS: CreateVpcEndpoint refuses it otherwise).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eksprivate.errors import NotFound, UsageError

if TYPE_CHECKING:
    from eksprivate.aws import Aws


@dataclass(frozen=True)
class EndpointService:
    short: str  # as the config names it: "ecr.api"
    name: str  # as AWS names it: "com.amazonaws.eu-central-1.ecr.api"
    types: tuple[str, ...]  # Interface / Gateway / GatewayLoadBalancer
    azs: tuple[str, ...]  # AZ names that offer it (empty: AWS did not say)
    private_dns: bool  # AWS lists a private DNS name for it
    policy_supported: bool = True  # VpcEndpointPolicySupported: the endpoint takes a policy


def short_name(service_name: str, region: str) -> str | None:
    """`com.amazonaws.<region>.ecr.api` or `cn.com.amazonaws.<region>.ecr.api` -> `ecr.api`; None when the
    name does not carry the region (another region's service, or a global one)."""
    marker = f".{region}."
    if marker not in service_name:
        return None
    return service_name.split(marker, 1)[1]


def _types(detail: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(t.get("ServiceType", "")) for t in detail.get("ServiceType", []) or [])


def _has_private_dns(detail: Mapping[str, Any]) -> bool:
    names = [n.get("PrivateDnsName") for n in detail.get("PrivateDnsNames", []) or []]
    return bool(detail.get("PrivateDnsName") or any(names))


def pick(short: str, kind: str, details: Iterable[Mapping[str, Any]]) -> EndpointService | None:
    """The service `short` of type `kind` among the region's listing (entries already matched by suffix).

    AWS lists one entry per type (S3 has a Gateway and an Interface entry under one name). Preferred:
    Amazon's own, of the wanted type, named `com.amazonaws.*` before other prefixes."""
    candidates = [d for d in details if kind in _types(d)] or list(details)
    if not candidates:
        return None
    candidates.sort(key=lambda d: (d.get("Owner", "amazon") != "amazon",
                                   not str(d["ServiceName"]).startswith("com.amazonaws."), str(d["ServiceName"])))
    best = candidates[0]
    same = [d for d in details if d["ServiceName"] == best["ServiceName"]]
    types = tuple(sorted({t for d in same for t in _types(d)}))
    return EndpointService(short=short, name=str(best["ServiceName"]), types=types,
                           azs=tuple(best.get("AvailabilityZones", []) or []), private_dns=_has_private_dns(best),
                           policy_supported=bool(best.get("VpcEndpointPolicySupported", True)))


def _listing(aws: Aws, region: str, wanted: Mapping[str, str]) -> list[dict[str, Any]]:
    """The region's entries for `wanted`. First by exact `com.amazonaws.<region>.<short>` names: a few kB,
    where the whole listing is ~170 kB per region, read by every command. AWS refuses the whole call
    (InvalidServiceName) when one name is not listed so (a `cn.com.amazonaws.` service in China, a typo in
    the config): then the whole listing, matched by suffix."""
    names = sorted(f"com.amazonaws.{region}.{short}" for short in wanted)
    try:
        details: list[dict[str, Any]] = list(
            aws.ec2.paginate("describe_vpc_endpoint_services", "ServiceDetails", ServiceNames=names))
    except NotFound:
        return list(aws.ec2.paginate("describe_vpc_endpoint_services", "ServiceDetails"))
    listed = {short_name(str(d.get("ServiceName", "")), region) for d in details}
    if set(wanted) - listed:  # AWS answered without refusing, but not for every name: look at everything
        return list(aws.ec2.paginate("describe_vpc_endpoint_services", "ServiceDetails"))
    return details


def resolve(aws: Aws, region: str, wanted: Mapping[str, str]) -> dict[str, EndpointService]:
    """Short name -> endpoint service, for `wanted` (short name -> endpoint type). One listing of the
    region's services (paginated); raises UsageError naming what the region does not offer."""
    found: dict[str, list[dict[str, Any]]] = {}
    for detail in _listing(aws, region, wanted):
        short = short_name(str(detail.get("ServiceName", "")), region)
        if short is not None and short in wanted:
            found.setdefault(short, []).append(detail)
    out: dict[str, EndpointService] = {}
    missing: list[str] = []
    for short, kind in wanted.items():
        service = pick(short, kind, found.get(short, []))
        if service is None:
            missing.append(short)
            continue
        if kind not in service.types:
            raise UsageError(f"endpoints: {service.name} offers {'/'.join(service.types)} endpoints, not {kind}",
                             "remove it from endpoints")
        out[short] = service
    if missing:
        raise UsageError(f"endpoints: {', '.join(missing)} is not a VPC endpoint service in {region}",
                         "check the short names with `aws ec2 describe-vpc-endpoint-services`")
    return out
