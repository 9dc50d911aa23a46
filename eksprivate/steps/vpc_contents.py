"""What is inside the cluster's VPC, and whose it is.

Three kinds of owner count as "the cluster's":

* eksprivate itself: everything it makes carries `eksprivate:cluster=<name>`;
* AWS services acting for this cluster: EKS's cluster security group (`aws:eks:cluster-name=<name>`) and
  control-plane network interfaces ("Amazon EKS <name>"), the VPC CNI's interfaces ("aws-K8S-..."), the
  instances of its managed node groups (`eks:cluster-name=<name>`), and the interfaces AWS made for the
  endpoints and load balancers below;
* Kubernetes: load balancers, target groups and security groups that the AWS Load Balancer Controller or the
  in-tree cloud provider made (`elbv2.k8s.aws/cluster=<name>`, `kubernetes.io/cluster/<name>=owned`,
  `service.k8s.aws/*`, `ingress.k8s.aws/*`), EBS volumes and EFS file systems tagged for the cluster.

Everything else in the VPC is someone else's (a bastion's security group, an instance, a Resolver endpoint,
a peering connection...): eksprivate never modifies or deletes it, it names it as a blocker. All of this is
read from tags and descriptions alone, so it works without the state file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from eksprivate.errors import AccessDenied, EksPrivateError, NotFound
from eksprivate.grants import Arns, Grant, reads
from eksprivate.steps.base import CLUSTER_TAG, Context, tags_of

EKS_CLUSTER_SG_TAG = "aws:eks:cluster-name"  # on the cluster security group EKS makes
NODE_CLUSTER_TAG = "eks:cluster-name"  # on the instances of managed node groups
NODEGROUP_TAG = "eks:nodegroup-name"
CNI_CLUSTER_TAG = "cluster.k8s.amazonaws.com/name"  # on ENIs of VPC CNI versions that know the cluster
LBC_CLUSTER_TAG = "elbv2.k8s.aws/cluster"  # AWS Load Balancer Controller v2
LBC_V1_CLUSTER_TAG = "ingress.k8s.aws/cluster"  # its v1 predecessor
LBC_STACK_PREFIXES = ("service.k8s.aws/", "ingress.k8s.aws/")
PVC_NAME_TAG = "kubernetes.io/created-for/pvc/name"
PVC_NAMESPACE_TAG = "kubernetes.io/created-for/pvc/namespace"
EBS_CSI_TAG = "ebs.csi.aws.com/cluster"
LIVE_INSTANCE_STATES = ["pending", "running", "stopping", "stopped"]  # shutting-down ones go by themselves
ENDPOINT_ID = re.compile(r"vpce-[0-9a-f]+")
EFS_MOUNT_TARGET = re.compile(r"^EFS mount target for (fs-[0-9a-f]+) \((fsmt-[0-9a-f]+)\)")
RESOLVER_ENDPOINT = re.compile(r"(rslvr-(?:in|out)-[0-9a-f]+)")


def contents_reads(arns: Arns) -> list[Grant]:
    """What reading a VPC's contents calls (`foreign_in`, `foreign_enis`, `load_balancers`, `file_systems`,
    `hosted_zones`, `volumes`): every step that asks "what is in the way" declares these. Read-only; "*" where
    the action takes no resource ARN."""
    return [reads("ec2:DescribeNetworkInterfaces", "ec2:DescribeSecurityGroups", "ec2:DescribeInstances",
                  "ec2:DescribeSubnets", "ec2:DescribeRouteTables", "ec2:DescribeVpcEndpoints",
                  "ec2:DescribeNetworkAcls", "ec2:DescribeInternetGateways", "ec2:DescribeEgressOnlyInternetGateways",
                  "ec2:DescribeNatGateways", "ec2:DescribeVpnGateways", "ec2:DescribeVpcPeeringConnections",
                  "ec2:DescribeVolumes", "ec2:DescribeVpcs",
                  why="what is in the cluster's VPC, and whose it is (down stops before a foreign resource)"),
            reads("elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeTargetGroups",
                  "elasticloadbalancing:DescribeTags", why="load balancers Kubernetes made in the VPC"),
            reads("elasticfilesystem:DescribeFileSystems", why="EFS file systems tagged for the cluster"),
            reads("elasticfilesystem:DescribeMountTargets", on=arns.arn("elasticfilesystem", "file-system/*"),
                  why="the mount targets of those file systems"),
            reads("route53:ListHostedZonesByVPC", why="private hosted zones someone associated with the VPC")]


def cluster_tag_key(name: str) -> str:
    return f"kubernetes.io/cluster/{name}"


def made_by_eksprivate(tags: dict[str, str], name: str) -> bool:
    return tags.get(CLUSTER_TAG) == name


def made_by_eks(tags: dict[str, str], name: str) -> bool:
    return tags.get(EKS_CLUSTER_SG_TAG) == name


def made_by_kubernetes(tags: dict[str, str], name: str, *, shared_vpc: bool = False) -> bool:
    """Load balancers, target groups, security groups, volumes Kubernetes made for this cluster. A cluster tag
    naming another cluster wins over the stack tags; the stack tags alone count only in a VPC eksprivate
    made for this cluster (in a network team's VPC other clusters' controllers may be at work too)."""
    if tags.get(cluster_tag_key(name)) == "owned":
        return True
    for key in (LBC_CLUSTER_TAG, LBC_V1_CLUSTER_TAG):
        if key in tags:
            return tags[key] == name
    return not shared_vpc and any(k.startswith(LBC_STACK_PREFIXES) for k in tags)


def ours(tags: dict[str, str], name: str) -> bool:
    return made_by_eksprivate(tags, name) or made_by_eks(tags, name) or made_by_kubernetes(tags, name)


@dataclass(frozen=True)
class Blocker:
    """Something in the VPC that is not the cluster's and keeps the VPC (or a subnet, a group) from going."""

    kind: str
    ident: str
    label: str
    advice: str

    def __str__(self) -> str:
        label = f" ({self.label})" if self.label else ""
        return f"{self.kind} {self.ident}{label}: {self.advice}"


class BlockedByForeign(EksPrivateError):
    """Resources that are not the cluster's keep AWS from deleting the cluster's. eksprivate never deletes
    them, and waiting does not make them go: the run stops at once, naming each. Exit code 1."""

    def __init__(self, message: str, hint: str, blockers: list[Blocker]) -> None:
        super().__init__(message, hint)
        self.blockers = blockers


def blocked_error(what: str, blockers: list[Blocker]) -> BlockedByForeign:
    listing = "; ".join(str(b) for b in blockers)
    return BlockedByForeign(
        f"{what}: {len(blockers)} resource(s) in the cluster's VPC were not made by eksprivate or for this cluster, "
        f"and eksprivate will not touch them: {listing}",
        "remove them yourself (or move them out of the VPC), then rerun `eksprivate down`; "
        "`eksprivate plan --destroy` lists them", blockers)


@dataclass
class LoadBalancer:
    kind: str  # application | network | gateway | classic
    ident: str  # ARN (ELBv2) or name (classic)
    name: str
    vpc_id: str
    eni_description: str  # how AWS describes the load balancer's network interfaces
    tags: dict[str, str]
    security_groups: list[str] = field(default_factory=list)

    def label(self) -> str:
        return f"{self.name} ({self.kind})"


def vpc_ids(ctx: Context) -> list[str]:
    """Every VPC eksprivate made for this cluster (more than one only after a crash), by tag."""
    return sorted(v["VpcId"] for v in ctx.aws.ec2.paginate("describe_vpcs", "Vpcs", Filters=ctx.cluster_filter()))


def _batches(items: list[str], size: int = 20) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _elbv2_tags(ctx: Context, arns: list[str]) -> dict[str, dict[str, str]]:
    tags: dict[str, dict[str, str]] = {}
    for batch in _batches(arns):
        for item in ctx.aws.client("elbv2").describe_tags(ResourceArns=batch)["TagDescriptions"]:
            tags[item["ResourceArn"]] = tags_of(item)
    return tags


def load_balancers(ctx: Context, vpcs: list[str]) -> list[LoadBalancer]:
    """ELBv2 (application, network, gateway) and classic load balancers in these VPCs, with their tags.
    DescribeTags takes at most 20 load balancers a call (both APIs)."""
    if not vpcs:
        return []
    out: list[LoadBalancer] = []
    elbv2 = ctx.aws.client("elbv2")
    v2 = [lb for lb in elbv2.paginate("describe_load_balancers", "LoadBalancers") if lb.get("VpcId") in vpcs]
    tags = _elbv2_tags(ctx, [lb["LoadBalancerArn"] for lb in v2])
    for lb in v2:
        arn = lb["LoadBalancerArn"]
        path = arn.split(":loadbalancer/", 1)[-1]  # app/<name>/<id>, net/..., gwy/...
        out.append(LoadBalancer(lb.get("Type", "application"), arn, lb["LoadBalancerName"], lb["VpcId"],
                                f"ELB {path}", tags.get(arn, {}), list(lb.get("SecurityGroups") or [])))
    elb = ctx.aws.client("elb")
    classic = [lb for lb in elb.paginate("describe_load_balancers", "LoadBalancerDescriptions")
               if lb.get("VPCId") in vpcs]
    ctags: dict[str, dict[str, str]] = {}
    for batch in _batches([lb["LoadBalancerName"] for lb in classic]):
        for item in elb.describe_tags(LoadBalancerNames=batch)["TagDescriptions"]:
            ctags[item["LoadBalancerName"]] = tags_of(item)
    for lb in classic:
        name = lb["LoadBalancerName"]
        out.append(LoadBalancer("classic", name, name, lb["VPCId"], f"ELB {name}", ctags.get(name, {}),
                                list(lb.get("SecurityGroups") or [])))
    return out


def target_groups(ctx: Context, vpcs: list[str]) -> list[dict[str, Any]]:
    """ELBv2 target groups in these VPCs, each with `Tags` as a dict."""
    if not vpcs:
        return []
    elbv2 = ctx.aws.client("elbv2")
    groups = [g for g in elbv2.paginate("describe_target_groups", "TargetGroups") if g.get("VpcId") in vpcs]
    tags = _elbv2_tags(ctx, [g["TargetGroupArn"] for g in groups])
    return [{**g, "TagMap": tags.get(g["TargetGroupArn"], {})} for g in groups]


def file_systems(ctx: Context) -> list[dict[str, Any]]:
    """EFS file systems tagged for this cluster (`kubernetes.io/cluster/<name>=owned`, or eksprivate's tag),
    each with its mount targets (`MountTargets`). The tags come with DescribeFileSystems."""
    efs = ctx.aws.client("efs")
    out = []
    for fs in efs.paginate("describe_file_systems", "FileSystems"):
        tags = tags_of(fs)
        if not (tags.get(cluster_tag_key(ctx.name)) == "owned" or made_by_eksprivate(tags, ctx.name)):
            continue
        if fs.get("LifeCycleState") in ("deleted",):
            continue
        try:
            targets = list(efs.paginate("describe_mount_targets", "MountTargets", FileSystemId=fs["FileSystemId"]))
        except NotFound:
            continue  # deleted meanwhile
        out.append({**fs, "TagMap": tags, "MountTargets": targets})
    return out


def hosted_zones(ctx: Context, vpcs: list[str]) -> list[dict[str, Any]]:
    """Route 53 private hosted zones associated with these VPCs that an account owns (ListHostedZonesByVPC,
    which botocore does not paginate for us). Zones with an `OwningService` instead are a service's (Cloud
    Map, EFS: Route 53 API reference): they go with their service, and no account can disassociate them.
    eksprivate makes no hosted zone, so every account-owned one is someone's."""
    r53 = ctx.aws.client("route53")
    zones: list[dict[str, Any]] = []
    try:
        for vpc in vpcs:
            token: str | None = None
            while True:
                page = r53.list_hosted_zones_by_vpc(VPCId=vpc, VPCRegion=ctx.region,
                                                    **({"NextToken": token} if token else {}))
                zones += [{**z, "VpcId": vpc} for z in page.get("HostedZoneSummaries", [])
                          if "OwningAccount" in z.get("Owner", {})]
                token = page.get("NextToken")
                if not token:
                    break
    except AccessDenied:
        return []  # a caller without Route 53 read access: the other reads still name what they can
    return zones


def volumes(ctx: Context) -> list[dict[str, Any]]:
    """EBS volumes Kubernetes made for this cluster's persistent volume claims: tagged
    `kubernetes.io/cluster/<name>=owned` (the in-tree provisioner; the EBS CSI driver with
    `k8s-tag-cluster-id`) and carrying the claim's name or the CSI driver's tag."""
    found = ctx.aws.ec2.paginate("describe_volumes", "Volumes",
                                 Filters=[{"Name": f"tag:{cluster_tag_key(ctx.name)}", "Values": ["owned"]}])
    out = []
    for vol in found:
        tags = tags_of(vol)
        if PVC_NAME_TAG in tags or tags.get(EBS_CSI_TAG) == "true":
            out.append({**vol, "TagMap": tags})
    return out


def volume_line(vol: dict[str, Any]) -> str:
    tags = vol["TagMap"]
    claim = tags.get(PVC_NAME_TAG)
    namespace = tags.get(PVC_NAMESPACE_TAG)
    who = f"claim {namespace}/{claim}" if claim and namespace else f"claim {claim}" if claim else "no claim name"
    return f"volume {vol['VolumeId']} ({vol.get('Size', '?')} GiB, {who}, {vol.get('State', '')})"


def file_system_line(fs: dict[str, Any]) -> str:
    size = fs.get("SizeInBytes", {}).get("Value")
    gib = f"{size / 2**30:.1f} GiB, " if isinstance(size, int | float) else ""
    name = fs.get("Name") or fs["TagMap"].get("Name") or ""
    return f"EFS file system {fs['FileSystemId']} ({gib}{name or 'no name'})".replace(", )", ")")


# -- who owns each network interface -----------------------------------------------------------------


@dataclass
class Known:
    """Ids of things that belong to the cluster, so their network interfaces do too."""

    endpoint_ids: set[str] = field(default_factory=set)
    lb_descriptions: set[str] = field(default_factory=set)
    instance_ids: set[str] = field(default_factory=set)
    file_system_ids: set[str] = field(default_factory=set)
    # Foreign owners already named: their interfaces are not named again.
    named: set[str] = field(default_factory=set)


def cni_leftover(eni: dict[str, Any], name: str) -> bool:
    """An interface the VPC CNI made for this cluster's pods (released ones linger, `available`)."""
    # "aws-K8S-i-..." (secondary interfaces), "aws-k8s-trunk-eni"/"aws-k8s-branch-eni" (security groups for pods)
    if not str(eni.get("Description", "")).lower().startswith("aws-k8s-"):
        return False
    cluster = tags_of({"Tags": eni.get("TagSet", [])}).get(CNI_CLUSTER_TAG)
    return cluster is None or cluster == name


def eni_is_ours(eni: dict[str, Any], name: str, known: Known) -> bool:
    description = str(eni.get("Description", ""))
    tags = tags_of({"Tags": eni.get("TagSet", [])})
    if made_by_eksprivate(tags, name) or cni_leftover(eni, name) or description == f"Amazon EKS {name}":
        return True
    if eni.get("InterfaceType") == "vpc_endpoint" or description.startswith("VPC Endpoint Interface"):
        match = ENDPOINT_ID.search(description)
        return bool(match and match.group(0) in known.endpoint_ids)
    if description.startswith("ELB "):
        return description in known.lb_descriptions
    efs = EFS_MOUNT_TARGET.match(description)
    if efs:
        return efs.group(1) in known.file_system_ids
    instance = (eni.get("Attachment") or {}).get("InstanceId")
    return bool(instance and instance in known.instance_ids)


def eni_blocker(eni: dict[str, Any], name: str, known: Known) -> Blocker | None:
    """None for the cluster's own interfaces (and those of a foreign owner already named), else a blocker
    naming the interface's owner as well as the description tells it."""
    if eni_is_ours(eni, name, known):
        return None
    eni_id = eni["NetworkInterfaceId"]
    description = str(eni.get("Description", ""))
    instance = (eni.get("Attachment") or {}).get("InstanceId")
    endpoint = ENDPOINT_ID.search(description)
    if {instance, endpoint.group(0) if endpoint else None, description} & known.named:
        return None
    resolver = RESOLVER_ENDPOINT.search(description)
    efs = EFS_MOUNT_TARGET.match(description)
    kind = str(eni.get("InterfaceType", "interface"))
    if resolver:
        return Blocker("Route 53 Resolver endpoint", resolver.group(1), f"interface {eni_id}",
                       "delete the Resolver endpoint or move it to another VPC")
    if efs:
        return Blocker("EFS mount target", efs.group(2), f"file system {efs.group(1)}, not tagged for this cluster",
                       "delete the mount target (the file system keeps its data)")
    if description.startswith("ELB "):
        return Blocker("load balancer", description.removeprefix("ELB "), f"interface {eni_id}",
                       "delete the load balancer (it is not tagged for this cluster)")
    if description.lower().startswith("aws-k8s-") or description.startswith("Amazon EKS "):
        return Blocker("network interface", eni_id, f"{description}, of another EKS cluster",
                       "delete that cluster's resources from this VPC")
    if kind == "lambda":
        return Blocker("Lambda network interface", eni_id, description,
                       "remove this VPC from the function's configuration")
    label = ", ".join(p for p in (description, None if kind == "interface" else kind,
                                  f"attached to {instance}" if instance else None) if p)
    return Blocker("network interface", eni_id, label,
                   "delete it (or the resource that made it)" if not instance else "terminate the instance")


# -- the whole VPC --------------------------------------------------------------------------------------


def _name(item: dict[str, Any]) -> str:
    return tags_of(item).get("Name", "")


def _advice(item: dict[str, Any], default: str) -> str:
    # GuardDuty runtime monitoring puts its own endpoint and security group into cluster VPCs.
    if tags_of(item).get("GuardDutyManaged") == "true":
        return "GuardDuty runtime monitoring made it: delete it (or turn off GuardDuty's agent management for this VPC)"
    return default


def foreign_in(ctx: Context, vpcs: list[str], lbs: list[LoadBalancer] | None = None,
               fs: list[dict[str, Any]] | None = None) -> list[Blocker]:
    """Everything in these VPCs that is not the cluster's and would block their deletion. Read-only: about
    fifteen Describe calls, made side by side."""
    if not vpcs:
        return []
    ec2 = ctx.aws.ec2
    in_vpc = [{"Name": "vpc-id", "Values": vpcs}]
    reads: dict[str, Callable[[], Any]] = {
        "enis": lambda: list(ec2.paginate("describe_network_interfaces", "NetworkInterfaces", Filters=in_vpc)),
        "groups": lambda: list(ec2.paginate("describe_security_groups", "SecurityGroups", Filters=in_vpc)),
        "instances": lambda: [i for r in ec2.paginate("describe_instances", "Reservations", Filters=[
            *in_vpc, {"Name": "instance-state-name", "Values": LIVE_INSTANCE_STATES}]) for i in r["Instances"]],
        "subnets": lambda: list(ec2.paginate("describe_subnets", "Subnets", Filters=in_vpc)),
        "tables": lambda: list(ec2.paginate("describe_route_tables", "RouteTables", Filters=in_vpc)),
        "endpoints": lambda: list(ec2.paginate("describe_vpc_endpoints", "VpcEndpoints", Filters=in_vpc)),
        "acls": lambda: list(ec2.paginate("describe_network_acls", "NetworkAcls", Filters=in_vpc)),
        "igws": lambda: list(ec2.paginate("describe_internet_gateways", "InternetGateways",
                                          Filters=[{"Name": "attachment.vpc-id", "Values": vpcs}])),
        "eigws": lambda: list(ec2.paginate("describe_egress_only_internet_gateways", "EgressOnlyInternetGateways")),
        "nats": lambda: list(ec2.paginate("describe_nat_gateways", "NatGateways", Filter=[
            *in_vpc, {"Name": "state", "Values": ["pending", "available"]}])),
        "vgws": lambda: ec2.describe_vpn_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": vpcs}])[
            "VpnGateways"],
        "peerings": lambda: [
            p for key in ("requester-vpc-info.vpc-id", "accepter-vpc-info.vpc-id")
            for p in ec2.paginate("describe_vpc_peering_connections", "VpcPeeringConnections",
                                  Filters=[{"Name": key, "Values": vpcs}])],
    }
    if lbs is None:
        reads["lbs"] = lambda: load_balancers(ctx, vpcs)
    if fs is None:
        reads["fs"] = lambda: file_systems(ctx)
    reads["zones"] = lambda: hosted_zones(ctx, vpcs)
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="survey") as pool:
        futures = {k: pool.submit(f) for k, f in reads.items()}
    got = {k: f.result() for k, f in futures.items()}
    # The filters asked AWS for these VPCs already; checked again here, as cheap insurance against a filter an
    # implementation ignores (moto ignores some).
    for kind in ("enis", "groups", "instances", "subnets", "tables", "endpoints", "acls", "nats"):
        got[kind] = [item for item in got[kind] if item.get("VpcId") in vpcs]
    got["igws"] = [g for g in got["igws"] if any(a.get("VpcId") in vpcs for a in g.get("Attachments", []))]
    lbs = got.get("lbs", lbs) or []
    fs = got.get("fs", fs) or []
    name = ctx.name
    out: list[Blocker] = []
    known = Known(lb_descriptions={lb.eni_description for lb in lbs if made_by_kubernetes(lb.tags, name)},
                  file_system_ids={f["FileSystemId"] for f in fs})

    for inst in got["instances"]:
        tags = tags_of(inst)
        if made_by_eksprivate(tags, name) or (tags.get(NODE_CLUSTER_TAG) == name and NODEGROUP_TAG in tags):
            known.instance_ids.add(inst["InstanceId"])  # a managed node group's: deleting the group ends it
            continue
        known.named.add(inst["InstanceId"])
        why = ("tagged for this cluster but not in a managed node group (Karpenter? self-managed?): terminate it"
               if tags.get(cluster_tag_key(name)) or tags.get(NODE_CLUSTER_TAG) == name else "terminate it")
        out.append(Blocker("instance", inst["InstanceId"], _name(inst), why))
    for ep in got["endpoints"]:
        if ep.get("State", "").lower() in ("deleted", "deleting", "rejected", "failed"):
            known.endpoint_ids.add(ep["VpcEndpointId"])  # going by itself, with its interfaces
            continue
        if made_by_eksprivate(tags_of(ep), name):
            known.endpoint_ids.add(ep["VpcEndpointId"])
            continue
        known.named.add(ep["VpcEndpointId"])
        out.append(Blocker("VPC endpoint", ep["VpcEndpointId"], ep.get("ServiceName", ""), _advice(ep, "delete it")))
    for lb in lbs:
        if not made_by_kubernetes(lb.tags, name):
            known.named.add(lb.eni_description)
            out.append(Blocker("load balancer", lb.name, lb.kind, "delete it (it is not tagged for this cluster)"))
    for nat in got["nats"]:
        known.named.update(a.get("NetworkInterfaceId", "") for a in nat.get("NatGatewayAddresses", []))
        out.append(Blocker("NAT gateway", nat["NatGatewayId"], _name(nat), "delete it (eksprivate never adds one)"))
    for group in got["groups"]:
        if group.get("GroupName") == "default" or ours(tags_of(group), name):
            continue
        out.append(Blocker("security group", group["GroupId"], group.get("GroupName", ""), _advice(group, "delete it")))
    for sn in got["subnets"]:
        if not made_by_eksprivate(tags_of(sn), name):
            out.append(Blocker("subnet", sn["SubnetId"], _name(sn) or sn.get("CidrBlock", ""), "delete it"))
    for rt in got["tables"]:
        main = any(a.get("Main") for a in rt.get("Associations", []))
        if not main and not made_by_eksprivate(tags_of(rt), name):
            out.append(Blocker("route table", rt["RouteTableId"], _name(rt), "delete it"))
    for acl in got["acls"]:
        if not acl.get("IsDefault") and not made_by_eksprivate(tags_of(acl), name):
            out.append(Blocker("network ACL", acl["NetworkAclId"], _name(acl), "delete it"))
    for igw in got["igws"]:
        out.append(Blocker("internet gateway", igw["InternetGatewayId"], _name(igw),
                           "detach and delete it (eksprivate never adds one)"))
    for eigw in got["eigws"]:
        if any(a.get("VpcId") in vpcs and a.get("State") in ("attached", "attaching")
               for a in eigw.get("Attachments", [])):
            out.append(Blocker("egress-only internet gateway", eigw["EgressOnlyInternetGatewayId"], _name(eigw),
                               "delete it"))
    for vgw in got["vgws"]:
        if any(a.get("VpcId") in vpcs and a.get("State") in ("attached", "attaching")
               for a in vgw.get("VpcAttachments", [])):
            out.append(Blocker("VPN gateway", vgw["VpnGatewayId"], _name(vgw), "detach it from the VPC"))
    seen_peerings: set[str] = set()
    for peering in got["peerings"]:
        pcx = peering["VpcPeeringConnectionId"]
        status = peering.get("Status", {}).get("Code", "")
        ends = {peering.get(side, {}).get("VpcId") for side in ("RequesterVpcInfo", "AccepterVpcInfo")}
        if pcx in seen_peerings or not ends & set(vpcs) or status not in (
                "active", "pending-acceptance", "provisioning", "initiating-request"):
            continue
        seen_peerings.add(pcx)
        # Deleting a VPC also deletes its active peering connections: never do that to someone else's.
        out.append(Blocker("VPC peering connection", pcx, status, "delete it (deleting the VPC would end it)"))
    for zone in got["zones"]:
        # Deleting the VPC would change a zone that is not ours (its association goes with the VPC).
        out.append(Blocker("private hosted zone", zone["HostedZoneId"], zone.get("Name", ""),
                           f"disassociate {zone['VpcId']} from it (or delete the zone, if it is no longer used)"))
    live_lbs = {lb.eni_description for lb in lbs}
    for eni in got["enis"]:
        if str(eni.get("Description", "")).startswith("ELB ") and eni.get("Description") not in live_lbs:
            continue  # its load balancer is gone (a stopped `down` deleted it): AWS is releasing it
        blocker = eni_blocker(eni, name, known)
        if blocker is not None and all(b.ident != blocker.ident for b in out):
            out.append(blocker)
    return out


def foreign_enis(ctx: Context, filters: list[dict[str, Any]]) -> tuple[list[Blocker], list[dict[str, Any]]]:
    """Interfaces matching `filters` (a subnet, a group, a VPC): the foreign ones as blockers, and the
    cluster's own that are still there (what a DependencyViolation waits on). A few Describe calls, made
    only when AWS refused a delete."""
    ec2 = ctx.aws.ec2
    enis = list(ec2.paginate("describe_network_interfaces", "NetworkInterfaces", Filters=filters))
    if not enis:
        return [], []
    vpcs = sorted({e["VpcId"] for e in enis if e.get("VpcId")})
    known = Known(endpoint_ids={e["VpcEndpointId"] for e in ec2.paginate(
        "describe_vpc_endpoints", "VpcEndpoints", Filters=[*ctx.cluster_filter(), {"Name": "vpc-id", "Values": vpcs}])})
    live = load_balancers(ctx, vpcs)
    known.lb_descriptions = {lb.eni_description for lb in live if made_by_kubernetes(lb.tags, ctx.name)}
    live_descriptions = {lb.eni_description for lb in live}
    if any(EFS_MOUNT_TARGET.match(str(e.get("Description", ""))) for e in enis):
        known.file_system_ids = {f["FileSystemId"] for f in file_systems(ctx)}
    attached = sorted({i for e in enis if (i := (e.get("Attachment") or {}).get("InstanceId"))})
    if attached:
        for reservation in ec2.paginate("describe_instances", "Reservations",
                                        Filters=[{"Name": "instance-id", "Values": attached}]):
            for inst in reservation["Instances"]:
                tags = tags_of(inst)
                if made_by_eksprivate(tags, ctx.name) or (tags.get(NODE_CLUSTER_TAG) == ctx.name
                                                         and NODEGROUP_TAG in tags):
                    known.instance_ids.add(inst["InstanceId"])
    foreign: list[Blocker] = []
    waiting: list[dict[str, Any]] = []
    for eni in enis:
        description = str(eni.get("Description", ""))
        # A load balancer already gone is known by its interfaces alone: one named "ELB ..." whose load
        # balancer no longer exists is being released by AWS, never a foreign owner.
        blocker = None if description.startswith("ELB ") and description not in live_descriptions else (
            eni_blocker(eni, ctx.name, known))
        if blocker is None:
            waiting.append(eni)
        elif all(b.ident != blocker.ident for b in foreign):
            foreign.append(blocker)
    return foreign, waiting


def eni_line(eni: dict[str, Any]) -> str:
    description = str(eni.get("Description", "")) or str(eni.get("InterfaceType", ""))
    return f"{eni['NetworkInterfaceId']} ({description}, {eni.get('Status', '')})"
