"""Read everything the checks need from a live cluster, with as few API calls as possible.

One pass, cached per run: DescribeCluster, ListNodegroups + DescribeNodegroup, then VPC-wide
DescribeSubnets / DescribeRouteTables / DescribeVpcEndpoints (vpc-id filter), two DescribeVpcAttribute,
one DescribeSecurityGroups (group-id filter), one DescribeLaunchTemplateVersions per distinct
launch template version and one DescribeClusterVersions (the version's support dates). Nothing here writes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eksprivate.aws import Aws
from eksprivate.config import REQUIRED_ENDPOINTS
from eksprivate.errors import AwsApiError, InvalidParameter, NotFound, UsageError
from eksprivate.grants import Arns, Grant, reads

# DescribeVpcEndpoints keeps deleted endpoints visible for a while: they do not count. Every other
# state (deleting, failed, rejected, ...) is reported as it is.
GONE_STATES = frozenset({"deleted"})

LaunchTemplateKey = tuple[str, str]  # (id or name, version)


def utc_today() -> dt.date:
    """The date support windows are judged on (tests pin it)."""
    return dt.datetime.now(dt.timezone.utc).date()


@dataclass
class Inventory:
    """Plain data the checks read: everything is a boto3 response shape, nothing is fetched later."""

    region: str
    cluster_name: str
    cluster: dict[str, Any]
    nodegroups: list[dict[str, Any]]
    vpc_id: str
    dns_support: bool
    dns_hostnames: bool
    subnets: dict[str, dict[str, Any]]
    route_tables: list[dict[str, Any]]
    endpoints: list[dict[str, Any]]
    security_groups: dict[str, dict[str, Any]]
    services: tuple[str, ...] = REQUIRED_ENDPOINTS
    # Launch template data by (id-or-name, version); a str is the error met reading it.
    launch_templates: dict[LaunchTemplateKey, dict[str, Any] | str] = field(default_factory=dict)
    # DescribeClusterVersions' entry for the cluster's version (None: not readable), and the date it is judged on.
    version_info: dict[str, Any] | None = None
    today: dt.date = field(default_factory=lambda: utc_today())

    # -- derived views ---------------------------------------------------------------------------
    @property
    def vpc_config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = self.cluster.get("resourcesVpcConfig") or {}
        return cfg

    def node_subnet_ids(self) -> list[str]:
        """Union of the node groups' subnets, or the cluster's subnets when there are none."""
        ids: list[str] = []
        for ng in self.nodegroups:
            for sid in ng.get("subnets") or []:
                if sid not in ids:
                    ids.append(sid)
        if not ids:
            ids = list(self.vpc_config.get("subnetIds") or [])
        return ids

    def node_azs(self) -> list[str]:
        azs = {str(self.subnets[s]["AvailabilityZone"]) for s in self.node_subnet_ids() if s in self.subnets}
        return sorted(azs)

    def cluster_sg_ids(self) -> list[str]:
        ids = list(self.vpc_config.get("securityGroupIds") or [])
        extra = self.vpc_config.get("clusterSecurityGroupId")
        if extra and extra not in ids:
            ids.append(extra)
        return ids

    def endpoint_sg_ids(self) -> list[str]:
        ids: list[str] = []
        for svc in self.services:
            for g in (self.interface_endpoint(svc) or {}).get("Groups") or []:
                if g.get("GroupId") and g["GroupId"] not in ids:
                    ids.append(str(g["GroupId"]))
        return ids

    def audited_sg_ids(self) -> list[str]:
        """The cluster's security groups, then those of the audited interface endpoints."""
        ids = self.cluster_sg_ids()
        ids += [g for g in self.endpoint_sg_ids() if g not in ids]
        return ids

    def route_table_for(self, subnet_id: str) -> dict[str, Any] | None:
        """The subnet's explicitly associated route table, else the VPC's main table."""
        main: dict[str, Any] | None = None
        for rt in self.route_tables:
            for assoc in rt.get("Associations") or []:
                if assoc.get("SubnetId") == subnet_id:
                    return rt
                if assoc.get("Main"):
                    main = rt
        return main

    def service_endpoints(self, service: str) -> list[dict[str, Any]]:
        """Live endpoints (any type) of one service, best first: available, private DNS on."""
        found = [e for e in self.endpoints
                 if matches_service(str(e.get("ServiceName", "")), self.region, service)
                 and str(e.get("State", "")).lower() not in GONE_STATES]
        return sorted(found, key=lambda e: (e.get("VpcEndpointType") != "Interface",
                                            str(e.get("State", "")).lower() != "available",
                                            not e.get("PrivateDnsEnabled"),
                                            str(e.get("VpcEndpointId", ""))))

    def interface_endpoint(self, service: str) -> dict[str, Any] | None:
        for e in self.service_endpoints(service):
            if e.get("VpcEndpointType") == "Interface":
                return e
        return None


def service_name(region: str, service: str) -> str:
    """`ecr.api` → `com.amazonaws.<region>.ecr.api`; a full name is kept as given."""
    return service if service.count(".") >= 3 and "amazonaws" in service else f"com.amazonaws.{region}.{service}"


def matches_service(name: str, region: str, service: str) -> bool:
    """True when an endpoint's ServiceName is `service` (also `cn.com.amazonaws...` in China)."""
    full = service_name(region, service)
    if name == full:
        return True
    return "amazonaws" in name and name.endswith("." + full.removeprefix("com.amazonaws."))


def wanted_services(extra: Sequence[str]) -> tuple[str, ...]:
    seen: list[str] = []
    for svc in (*REQUIRED_ENDPOINTS, *extra):
        svc = svc.strip()
        if svc and svc != "s3" and svc not in seen:
            seen.append(svc)
    return tuple(seen)


def discover(aws: Aws, cluster_name: str, extra_endpoints: Sequence[str] = ()) -> Inventory:
    """Fetch the inventory of one live cluster. Raises UsageError when there is no such cluster."""
    try:
        cluster: dict[str, Any] = aws.eks.describe_cluster(name=cluster_name)["cluster"]
    except NotFound:
        raise UsageError(f"no EKS cluster named {cluster_name!r} in {aws.region}",
                         f"list them with `aws eks list-clusters --region {aws.region}`") from None

    nodegroups = [aws.eks.describe_nodegroup(clusterName=cluster_name, nodegroupName=n)["nodegroup"]
                  for n in sorted(aws.eks.paginate("list_nodegroups", "nodegroups", clusterName=cluster_name))]

    vpc_cfg: dict[str, Any] = cluster.get("resourcesVpcConfig") or {}
    vpc_id = str(vpc_cfg.get("vpcId") or "")
    if not vpc_id:
        # DescribeCluster always names the VPC on AWS; some stand-ins leave it out.
        known = list(vpc_cfg.get("subnetIds") or []) or [s for ng in nodegroups for s in ng.get("subnets") or []]
        if not known:
            raise UsageError(f"cluster {cluster_name!r} names no subnets, so its VPC cannot be found")
        first = aws.ec2.describe_subnets(SubnetIds=known[:1])["Subnets"]
        vpc_id = str(first[0]["VpcId"])
    by_vpc = [{"Name": "vpc-id", "Values": [vpc_id]}]

    subnets = {s["SubnetId"]: s for s in aws.ec2.paginate("describe_subnets", "Subnets", Filters=by_vpc)}
    dns_support = _vpc_attribute(aws, vpc_id, "enableDnsSupport")
    dns_hostnames = _vpc_attribute(aws, vpc_id, "enableDnsHostnames")
    route_tables = list(aws.ec2.paginate("describe_route_tables", "RouteTables", Filters=by_vpc))
    endpoints = list(aws.ec2.paginate("describe_vpc_endpoints", "VpcEndpoints", Filters=by_vpc))

    inv = Inventory(
        region=aws.region, cluster_name=cluster_name, cluster=cluster, nodegroups=nodegroups, vpc_id=vpc_id,
        dns_support=dns_support, dns_hostnames=dns_hostnames, subnets=subnets, route_tables=route_tables,
        endpoints=endpoints, security_groups={}, services=wanted_services(extra_endpoints),
    )

    inv.version_info = _version_info(aws, str(cluster.get("version") or ""))
    sg_ids = inv.audited_sg_ids()
    if sg_ids:
        # A filter, not GroupIds: one SG that vanished must not fail the whole call.
        inv.security_groups = {g["GroupId"]: g for g in aws.ec2.paginate(
            "describe_security_groups", "SecurityGroups", Filters=[{"Name": "group-id", "Values": sg_ids}])}

    for ng in nodegroups:
        key = launch_template_key(ng)
        if key is not None and key not in inv.launch_templates:
            inv.launch_templates[key] = _launch_template_data(aws, *key)
    return inv


def _version_info(aws: Aws, version: str) -> dict[str, Any] | None:
    """The cluster version's support status and dates; None without eks:DescribeClusterVersions."""
    try:
        for item in aws.eks.paginate("describe_cluster_versions", "clusterVersions", clusterVersions=[version],
                                     includeAll=True):
            if item.get("clusterVersion") == version:
                return dict(item)
    except AwsApiError:  # denied, or an endpoint that lacks the operation: the check is skipped
        return None
    return None


def launch_template_key(nodegroup: dict[str, Any]) -> LaunchTemplateKey | None:
    lt = nodegroup.get("launchTemplate") or {}
    ref = lt.get("id") or lt.get("name")
    if not ref:
        return None
    return str(ref), str(lt.get("version") or "$Default")


def _vpc_attribute(aws: Aws, vpc_id: str, attribute: str) -> bool:
    out = aws.ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute=attribute)
    key = attribute[0].upper() + attribute[1:]  # enableDnsSupport → EnableDnsSupport
    return bool((out.get(key) or {}).get("Value"))


def _launch_template_data(aws: Aws, ref: str, version: str) -> dict[str, Any] | str:
    args: dict[str, Any] = {"LaunchTemplateId": ref} if ref.startswith("lt-") else {"LaunchTemplateName": ref}
    try:
        versions = aws.ec2.describe_launch_template_versions(Versions=[version], **args)["LaunchTemplateVersions"]
    except (NotFound, InvalidParameter) as exc:  # InvalidLaunchTemplateId.NotFound, .Malformed, ...
        return f"cannot read it: {exc.code}"
    if not versions:
        return f"version {version} not found"
    data: dict[str, Any] = versions[0].get("LaunchTemplateData") or {}
    return data


def grants(arns: Arns) -> list[Grant]:
    """What `eksprivate verify` reads of this cluster (it changes nothing)."""
    return [reads("eks:DescribeCluster", "eks:ListNodegroups", on=arns.eks_cluster(), why="verify: the cluster"),
            reads("eks:DescribeNodegroup", on=arns.eks_nodegroup(), why="verify: the node groups"),
            reads("eks:DescribeClusterVersions", why="verify: the version's support dates"),
            reads("ec2:DescribeSubnets", "ec2:DescribeRouteTables", "ec2:DescribeVpcEndpoints",
                  "ec2:DescribeSecurityGroups", "ec2:DescribeLaunchTemplateVersions",
                  why="verify: the private networking and the nodes' launch templates"),
            reads("ec2:DescribeVpcAttribute", on=arns.ec2("vpc/*"), why="verify: the VPC's DNS attributes")]
