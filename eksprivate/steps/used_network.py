"""Bring your own VPC: the cluster goes into a network team's VPC and subnets (`vpc_id`, `subnet_ids`).

eksprivate *uses* them and never changes or deletes them: `UsedVpc` and `UsedSubnets` take the place of
the `vpc` and `subnets` steps (same keys, so every other step reads the same ids from the state), and
record `uses: true` beside the ids. Interface endpoints that already serve a service with private DNS in
the VPC are used too (`UsedEndpoints`): AWS refuses a second private-DNS endpoint for a service ("conflicting
DNS domain"), so `ByoEndpoints` creates only the missing ones, and the S3 gateway only on route tables that
have none. `down` deletes what carries eksprivate's tag and leaves everything used as it was.

`check_vpc` runs before anything is created (target.open_context): the VPC exists with DNS support and
hostnames on, the subnets are in it, one per AZ in two or more AZs, with free addresses and (unless
`allow_internet_routes`) no route to an internet or NAT gateway, and every used endpoint's security groups
admit TCP 443 from the subnets.
"""

from __future__ import annotations

import ipaddress
import math
from typing import Any

from eksprivate.endpoint_services import short_name
from eksprivate.errors import NotFound, UsageError
from eksprivate.grants import Grant, reads
from eksprivate.perimeter import openings
from eksprivate.policy_eval import Unjudged
from eksprivate.steps.base import Change, Context, Found, Step, tags_of
from eksprivate.steps.endpoints import GONE_STATES, Endpoints
from eksprivate.steps.network import route_table_ids
from eksprivate.steps.vpc_contents import made_by_eksprivate

USED_KEY = "endpoints-used"
EKS_MIN_FREE = 6  # EKS: each control-plane subnet needs at least six free addresses (EKS User Guide)
KEEP = "not made by eksprivate (vpc_id in the config): down leaves it as it is"


class Used(Step):
    """A resource eksprivate uses and never changes or deletes (also the roles of steps/given_roles.py)."""

    deleted_as = "kept"
    kept_because = KEEP  # what `plan --destroy` says of it
    status_word = "used"
    vanished_hint = "check vpc_id and subnet_ids, then rerun"

    def create(self, ctx: Context) -> Found:
        found = self.find(ctx)
        if found is None:  # checked before the run (check_vpc, check_given_roles): it vanished meanwhile
            raise UsageError(f"{self.title}: not found any more", self.vanished_hint)
        return found

    def remove(self, ctx: Context, found: Found) -> None:
        return None

    def grants(self, ctx: Context) -> list[Grant]:
        # Read only, never changed or deleted: what the VPC, its subnets and endpoints are.
        return [reads("ec2:DescribeVpcs", "ec2:DescribeSubnets", "ec2:DescribeRouteTables", "ec2:DescribeVpcEndpoints",
                      "ec2:DescribeSecurityGroups",
                      why="the network team's VPC, subnets and endpoints (never changed)"),
                reads("ec2:DescribeVpcAttribute", on=ctx.arns.ec2("vpc/*"), why="the VPC's DNS attributes")]

    def destroy_action(self, found: Found) -> str:
        return "keep"

    def destroy_details(self, ctx: Context, found: Found) -> list[str]:
        return [self.kept_because]

    def status(self, found: Found) -> str:
        return self.status_word


class UsedVpc(Used):
    key = "vpc"
    title = "VPC (yours)"

    def preview(self, ctx: Context) -> list[str]:
        return [f"use {ctx.settings.vpc_id}: never modified or deleted"]

    def find(self, ctx: Context) -> Found | None:
        try:
            vpc = ctx.aws.ec2.describe_vpcs(VpcIds=[ctx.settings.vpc_id])["Vpcs"][0]
        except (NotFound, IndexError):
            return None
        return {"vpc_id": vpc["VpcId"], "cidr": vpc["CidrBlock"], "uses": True}

    def ids(self, found: Found) -> dict[str, Any]:
        return {"vpc_id": found["vpc_id"], "cidr": found["cidr"], "uses": True}

    def describe(self, found: Found) -> str:
        return f"{found['vpc_id']} ({found['cidr']}), used"


class UsedSubnets(Used):
    key = "subnets"
    title = "Private subnets (yours)"
    needs = ("vpc",)

    def preview(self, ctx: Context) -> list[str]:
        return [f"use {', '.join(ctx.settings.subnet_ids)}: never modified or deleted"]

    def find(self, ctx: Context) -> Found | None:
        subnets = _subnets(ctx)
        if not subnets:
            return None
        tables = _route_tables(ctx, subnets)
        parts = {sn["AvailabilityZone"]: {"subnet_id": sn["SubnetId"], "vpc_id": sn["VpcId"],
                                          "route_table_id": tables[sn["SubnetId"]]["RouteTableId"]}
                 for sn in subnets}
        return {"parts": parts, "uses": True}

    def ids(self, found: Found) -> dict[str, Any]:
        return {"parts": found["parts"], "uses": True}

    def describe(self, found: Found) -> str:
        return ", ".join(f"{az}: {p['subnet_id']}/{p['route_table_id']}" for az, p in sorted(found["parts"].items()))


class UsedEndpoints(Used):
    """The VPC's own endpoints that already serve what the nodes need (not eksprivate's)."""

    key = USED_KEY
    title = "VPC endpoints already there"
    needs = ("subnets",)

    def find(self, ctx: Context) -> Found | None:
        listed = _endpoints_in(ctx)
        interface, gateway = used_endpoints(ctx, listed)
        used = {*interface.values(), *gateway.values()}
        policies = {e["VpcEndpointId"]: e.get("PolicyDocument") for e in listed if e["VpcEndpointId"] in used}
        return {"endpoint_ids": interface, "gateway_tables": gateway, "policies": policies, "uses": True}

    def diff(self, ctx: Context, found: Found) -> list[Change]:
        """The used endpoints whose policy is open: said by plan and, every run, by up; never changed."""
        out = []
        services = {**{vpce: svc for svc, vpce in found["endpoint_ids"].items()},
                    **{vpce: "s3" for vpce in found["gateway_tables"].values()}}
        why = ("not eksprivate's (vpc_id): its policy is never changed; ask its owner for a data perimeter "
               "(docs/security.md)")
        for vpce, svc in sorted(services.items()):
            policy = found.get("policies", {}).get(vpce)
            try:
                opened = openings(policy, svc, ctx.account, ctx.partition, ctx.region)
            except (Unjudged, ValueError) as exc:
                out.append(Change(f"the VPC's {svc} endpoint {vpce}: its policy is not judged ({exc})", blocked=why))
                continue
            if opened:
                out.append(Change(f"the VPC's {svc} endpoint {vpce} is open: {'; '.join(o.text for o in opened)}",
                                  blocked=why))
        return out

    def ids(self, found: Found) -> dict[str, Any]:
        return {"endpoint_ids": found["endpoint_ids"], "gateway_tables": found["gateway_tables"], "uses": True}

    def describe(self, found: Found) -> str:
        used = [f"{svc}={vpce}" for svc, vpce in sorted(found["endpoint_ids"].items())]
        used += sorted({f"s3={vpce}" for vpce in found["gateway_tables"].values()})
        return ", ".join(used) + ", used" if used else "none"


class ByoEndpoints(Endpoints):
    """Endpoints eksprivate makes in a used VPC: only for services no endpoint there serves yet."""

    needs: tuple[str, ...] = ("subnets", "endpoint-sg", USED_KEY)

    def wanted(self, ctx: Context) -> dict[str, str]:
        used = ctx.ledger.ids(USED_KEY)
        want = {svc: kind for svc, kind in super().wanted(ctx).items() if svc not in used.get("endpoint_ids", {})}
        if not self.gateway_tables(ctx):
            want.pop("s3", None)
        return want

    def gateway_tables(self, ctx: Context) -> list[str]:
        covered = ctx.ledger.ids(USED_KEY).get("gateway_tables", {})
        return sorted({t for t in route_table_ids(ctx) if t not in covered})


def use_network(ctx: Context, steps: list[Step]) -> list[Step]:
    """With `vpc_id`: the used VPC, subnets and endpoints in place of the ones eksprivate would make."""
    if not ctx.settings.vpc_id:
        return steps
    swap: dict[str, Step] = {"vpc": UsedVpc(), "subnets": UsedSubnets(), "endpoints": ByoEndpoints()}
    out = [swap.get(step.key, step) for step in steps]
    at = next(i for i, step in enumerate(out) if step.key == "endpoints")
    return [*out[:at], UsedEndpoints(), *out[at:]]


# -- what is there ------------------------------------------------------------------------------------


def _subnets(ctx: Context) -> list[dict[str, Any]]:
    try:
        return list(ctx.aws.ec2.describe_subnets(SubnetIds=list(ctx.settings.subnet_ids))["Subnets"])
    except NotFound:
        return []


def _route_tables(ctx: Context, subnets: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each subnet's route table: its explicit association, else the VPC's main route table."""
    vpc_id = str(ctx.settings.vpc_id)
    tables = list(ctx.aws.ec2.paginate("describe_route_tables", "RouteTables",
                                       Filters=[{"Name": "vpc-id", "Values": [vpc_id]}]))
    main = next((t for t in tables if any(a.get("Main") for a in t.get("Associations", []))), None)
    out: dict[str, dict[str, Any]] = {}
    for sn in subnets:
        explicit = next((t for t in tables for a in t.get("Associations", []) if a.get("SubnetId") == sn["SubnetId"]),
                        None)
        table = explicit or main
        if table is None:
            raise UsageError(f"subnet {sn['SubnetId']} has no route table (and the VPC no main one)")
        out[sn["SubnetId"]] = table
    return out


def used_endpoints(ctx: Context, listed: list[dict[str, Any]] | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """The VPC's endpoints that are not eksprivate's and serve what the nodes need: interface endpoints with
    private DNS (service → id), and S3 gateway endpoints (route table → id). `listed`: the VPC's endpoints, when
    already read."""
    wanted = set(ctx.settings.interface_endpoints)
    interface: dict[str, str] = {}
    gateway: dict[str, str] = {}
    for ep in _endpoints_in(ctx) if listed is None else listed:
        if made_by_eksprivate(tags_of(ep), ctx.name):
            continue
        svc = short_name(str(ep.get("ServiceName", "")), ctx.region)
        if ep.get("VpcEndpointType") == "Interface" and svc in wanted and ep.get("PrivateDnsEnabled"):
            interface.setdefault(svc, ep["VpcEndpointId"])
        elif ep.get("VpcEndpointType") == "Gateway" and svc == "s3":
            for table in ep.get("RouteTableIds", []):
                gateway.setdefault(table, ep["VpcEndpointId"])
    return interface, gateway


def _endpoints_in(ctx: Context) -> list[dict[str, Any]]:
    return [e for e in ctx.aws.ec2.paginate("describe_vpc_endpoints", "VpcEndpoints",
                                            Filters=[{"Name": "vpc-id", "Values": [str(ctx.settings.vpc_id)]}])
            if e.get("State") not in GONE_STATES]


# -- the checks before anything is created ---------------------------------------------------------------


def check_vpc(ctx: Context, *, strict: bool) -> tuple[list[str], list[str]] | None:
    """With `vpc_id`: check the VPC and subnets (all of it when `strict`, for up and plan; only that they
    exist otherwise); returns the subnets' AZs (the cluster's) and warnings. None without `vpc_id`."""
    s = ctx.settings
    if not s.vpc_id:
        return None
    try:
        vpc = ctx.aws.ec2.describe_vpcs(VpcIds=[s.vpc_id])["Vpcs"][0]
    except (NotFound, IndexError):
        raise UsageError(f"vpc_id {s.vpc_id} does not exist in {ctx.region}",
                         "check the id and the region (and the account the credentials are for)") from None
    subnets = _subnets(ctx)
    found = {sn["SubnetId"] for sn in subnets}
    missing = [sid for sid in s.subnet_ids if sid not in found]
    if missing:
        raise UsageError(f"subnet_ids: {', '.join(missing)} does not exist in {ctx.region}")
    for sn in subnets:
        if sn["VpcId"] != s.vpc_id:
            raise UsageError(f"subnet_ids: {sn['SubnetId']} is in {sn['VpcId']}, not in vpc_id {s.vpc_id}")
    by_az: dict[str, list[str]] = {}
    for sn in subnets:
        by_az.setdefault(sn["AvailabilityZone"], []).append(sn["SubnetId"])
    crowded = {az: ids for az, ids in by_az.items() if len(ids) > 1}
    if crowded:
        az, ids = sorted(crowded.items())[0]
        raise UsageError(f"subnet_ids: {', '.join(ids)} are all in {az}", "name one private subnet per AZ")
    if len(by_az) < 2:
        raise UsageError(f"subnet_ids are all in {next(iter(by_az))}: EKS needs subnets in at least two AZs")
    azs = [sn["AvailabilityZone"] for sn in sorted(subnets, key=lambda sn: s.subnet_ids.index(sn["SubnetId"]))]
    explicit = s.availability_zones
    if isinstance(explicit, tuple) and sorted(explicit) != sorted(azs):
        raise UsageError(f"availability_zones {', '.join(explicit)} are not the AZs of subnet_ids ({', '.join(azs)})",
                         "with vpc_id the subnets decide the AZs: leave availability_zones out")
    recorded = ctx.ledger.input("availability_zones")
    if strict and recorded and sorted(recorded) != sorted(azs):  # down, status: take what is there
        raise UsageError(f"subnet_ids are in {', '.join(azs)}, but this cluster was built in {', '.join(recorded)} "
                         "(recorded in the state)", "the subnets of an existing cluster cannot change")
    return azs, _check_network(ctx, vpc, subnets) if strict else []


def _check_network(ctx: Context, vpc: dict[str, Any], subnets: list[dict[str, Any]]) -> list[str]:
    s = ctx.settings
    warnings: list[str] = []
    for attribute, key, label in (("enableDnsSupport", "EnableDnsSupport", "DNS support"),
                                  ("enableDnsHostnames", "EnableDnsHostnames", "DNS hostnames")):
        if not ctx.aws.ec2.describe_vpc_attribute(VpcId=vpc["VpcId"], Attribute=attribute)[key]["Value"]:
            raise UsageError(f"vpc_id {vpc['VpcId']} has {label} off: private endpoints and the cluster's private API "
                             "need DNS support and DNS hostnames",
                             f"ask the network team to turn it on (aws ec2 modify-vpc-attribute --{attribute} "
                             f"--vpc-id {vpc['VpcId']}); eksprivate does not change a VPC it did not make")
    primary = ipaddress.ip_network(vpc["CidrBlock"])
    for sn in subnets:  # the endpoint security group eksprivate makes admits the VPC's (primary) CIDR
        if not ipaddress.ip_network(sn["CidrBlock"]).subnet_of(primary):  # type: ignore[arg-type]
            raise UsageError(f"subnet {sn['SubnetId']} ({sn['CidrBlock']}) is outside the VPC's primary CIDR "
                             f"{primary}", "name subnets of the primary CIDR")
    tables = _route_tables(ctx, subnets)
    for sn in subnets:
        table = tables[sn["SubnetId"]]
        exits = [f"{r.get('DestinationCidrBlock') or r.get('DestinationIpv6CidrBlock')} → {target}"
                 for r in table.get("Routes", [])
                 if (target := r.get("NatGatewayId") or r.get("EgressOnlyInternetGatewayId")
                     or (r.get("GatewayId") if str(r.get("GatewayId", "")).startswith("igw-") else None))]
        if exits and not s.allow_internet_routes:
            raise UsageError(f"subnet {sn['SubnetId']} routes to the internet ({table['RouteTableId']}: "
                             f"{', '.join(exits)}): it is not a private subnet",
                             "name private subnets, or set allow_internet_routes = true if that is intended")
        if exits:
            warnings.append(f"subnet {sn['SubnetId']} routes to the internet ({', '.join(exits)}): "
                            "allow_internet_routes is true")
    interface, _ = used_endpoints(ctx)
    to_create = len([svc for svc in s.interface_endpoints if svc not in interface])
    for sn in subnets:
        need = EKS_MIN_FREE + to_create + _nodes_in(ctx, len(subnets))
        free = int(sn.get("AvailableIpAddressCount", 0))
        if free < need:
            raise UsageError(f"subnet {sn['SubnetId']} has {free} free addresses; the cluster needs at least {need} "
                             f"there ({EKS_MIN_FREE} for EKS, {to_create} for new endpoints, the rest for nodes)",
                             "name larger subnets (pods take more addresses as they start)")
    _check_endpoint_groups(ctx, interface, subnets)
    return warnings


def _nodes_in(ctx: Context, az_count: int) -> int:
    """The most nodes one AZ's subnet can get: per-AZ groups their max_size, spanning groups their share."""
    return sum(g.max_size if g.per_az else math.ceil(g.max_size / az_count) for g in ctx.settings.nodegroups)


def _check_endpoint_groups(ctx: Context, interface: dict[str, str], subnets: list[dict[str, Any]]) -> None:
    """A used endpoint must admit TCP 443 from every node subnet, or the nodes cannot reach the service."""
    if not interface:
        return
    endpoints = {e["VpcEndpointId"]: e for e in _endpoints_in(ctx)}
    group_ids = sorted({g["GroupId"] for vpce in interface.values() for g in endpoints[vpce].get("Groups", [])})
    groups = {g["GroupId"]: g for g in ctx.aws.ec2.describe_security_groups(GroupIds=group_ids)["SecurityGroups"]} \
        if group_ids else {}
    for svc, vpce in sorted(interface.items()):
        rules = [r for g in endpoints[vpce].get("Groups", [])
                 for r in groups.get(g["GroupId"], {}).get("IpPermissions", [])]
        for sn in subnets:
            if not any(_admits_443(rule, sn["CidrBlock"]) for rule in rules):
                names = ", ".join(g["GroupId"] for g in endpoints[vpce].get("Groups", [])) or "none"
                raise UsageError(f"the VPC's {svc} endpoint {vpce} does not admit TCP 443 from subnet {sn['SubnetId']} "
                                 f"({sn['CidrBlock']}): nodes there could not reach {svc}",
                                 f"ask the network team to admit it in {names}; eksprivate does not change "
                                 "what it did not make")


def _admits_443(rule: dict[str, Any], cidr: str) -> bool:
    protocol = str(rule.get("IpProtocol"))
    if protocol not in ("-1", "tcp", "6"):
        return False
    if protocol != "-1" and not int(rule.get("FromPort", 0)) <= 443 <= int(rule.get("ToPort", 0)):
        return False
    subnet = ipaddress.ip_network(cidr)
    return any(subnet.subnet_of(ipaddress.ip_network(r["CidrIp"]))  # type: ignore[arg-type]
               for r in rule.get("IpRanges", []) if r.get("CidrIp"))
