"""The VPC, its private subnets with one route table each, and the endpoints' security group.

Nothing here ever creates an internet gateway, a NAT gateway or a default route.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from functools import partial
from typing import Any

from eksprivate.config import subnet_cidrs
from eksprivate.errors import DependencyViolation, EksPrivateError, InUse, InvalidParameter, NotFound
from eksprivate.grants import Arns, Grant, ec2_tag_on_create, ec2_write, reads
from eksprivate.steps.base import Change, Context, Found, Step, tags_of
from eksprivate.steps.vpc_contents import (
    Blocker,
    blocked_error,
    cni_leftover,
    contents_reads,
    eni_line,
    foreign_enis,
    foreign_in,
    made_by_eksprivate,
    ours,
)

AZ_TAG = "eksprivate:az"

# `delete_retrying` with a sweep: the detached interfaces the VPC CNI and EKS leave behind are deleted, and on a
# refusal what is in the way is read (`contents_reads`).
def sweep_grants(arns: Arns) -> list[Grant]:
    return [*contents_reads(arns),
            ec2_write(arns, "remove", "ec2:DeleteNetworkInterface",
                      why="interfaces the VPC CNI and EKS left detached in the subnets")]


def first_by_tag(items: list[dict[str, Any]], id_key: str, known_id: str | None) -> dict[str, Any] | None:
    """Prefer the resource the state names; else the oldest-looking one (ids sort by creation)."""
    if not items:
        return None
    for item in items:
        if item[id_key] == known_id:
            return item
    return sorted(items, key=lambda i: str(i[id_key]))[0]


def delete_leftover_enis(ctx: Context, filters: list[dict[str, Any]]) -> int:
    """Detached interfaces the VPC CNI (or EKS) left for this cluster ("aws-K8S-...", "Amazon EKS <name>",
    status `available`) block subnet and group deletion: delete them. Only those: any other detached
    interface is someone else's, and stays. One AWS still reports in use or detaching is skipped this
    time: the delete that swept is retried, and sweeps again (`down` goes on; it used to abort here)."""
    enis = list(ctx.aws.ec2.paginate("describe_network_interfaces", "NetworkInterfaces",
                                     Filters=[*filters, {"Name": "status", "Values": ["available"]}]))
    deleted = 0
    for eni in enis:
        # EKS's own control-plane interfaces, when EKS detached one without deleting it, are this cluster's too.
        if not (cni_leftover(eni, ctx.name) or eni.get("Description") == f"Amazon EKS {ctx.name}"
                or made_by_eksprivate(tags_of({"Tags": eni.get("TagSet", [])}), ctx.name)):
            continue
        try:
            ctx.aws.ec2.delete_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"])
            deleted += 1
        except NotFound:
            pass
        except (InUse, InvalidParameter) as exc:
            # EC2 says "Network interface 'eni-...' is currently in use." (InvalidParameterValue) or
            # InvalidNetworkInterface.InUse while an interface is still attached or detaching.
            if isinstance(exc, InvalidParameter) and "in use" not in exc.aws_message:
                raise
    return deleted


Explain = Callable[[], tuple[list[Blocker], list[str]]]


def delete_retrying(ctx: Context, call: Any, sweep: list[dict[str, Any]] | None = None, *,
                    explain: Explain | None = None, key: str = "", what: str = "", **kwargs: Any) -> None:
    """Delete, treating NotFound as done and retrying DependencyViolation while AWS frees dependencies.

    `sweep`: ENI filters; the CNI's interfaces there that turn `available` while we retry (the VPC CNI and
    EKS release theirs minutes after the cluster is gone) are deleted before each new attempt.
    `explain`: on each refusal, what is in the way: resources that are not the cluster's end the wait at
    once, named (waiting cannot make them go); the cluster's own ones still being released by AWS are
    waited for, and the progress line (step `key`) says which. Only that wait is long.
    """
    end = time.monotonic() + ctx.timeouts.dependency_violation
    # A poll for AWS to free the dependency, at the status-poll pace: a backoff (up to 4 x poll, 60 s against
    # real AWS) would leave each teardown stage waiting up to a minute after it could go on.
    pause = max(ctx.poll, 0.05)
    waiting: list[str] = []
    explained_at: float | None = None
    while True:
        try:
            if sweep is not None:
                delete_leftover_enis(ctx, sweep)
            call(**kwargs)
            return
        except NotFound:
            return
        except DependencyViolation as exc:
            # Asked on the first refusal, then at most once a minute: a VPC's answer takes ~17 reads.
            if explain is not None and (explained_at is None or time.monotonic() - explained_at >= 60):
                explained_at = time.monotonic()
                foreign, waiting = explain()
                if foreign:
                    raise blocked_error(what or exc.aws_message, foreign) from exc
                if waiting and key:
                    ctx.say(key, f"{what or 'delete'}: waiting for AWS to release {', '.join(waiting[:3])}"
                                 + (f" and {len(waiting) - 3} more" if len(waiting) > 3 else ""))
            if time.monotonic() + pause > end:
                if waiting:
                    exc.message += f" (still in use after {ctx.timeouts.dependency_violation / 60:.0f} min: " \
                                   f"{', '.join(waiting)})"
                raise
            ctx.check_cancel()
            time.sleep(pause)


def subnet_blockers(ctx: Context, subnet_id: str) -> tuple[list[Blocker], list[str]]:
    foreign, waiting = foreign_enis(ctx, [{"Name": "subnet-id", "Values": [subnet_id]}])
    return foreign, [eni_line(e) for e in waiting]


def group_blockers(ctx: Context, group_id: str) -> tuple[list[Blocker], list[str]]:
    """Interfaces using the group, and other groups whose rules name it (both block DeleteSecurityGroup)."""
    foreign, waiting = foreign_enis(ctx, [{"Name": "group-id", "Values": [group_id]}])
    referencing = {g["GroupId"]: g for key in ("ip-permission.group-id", "egress.ip-permission.group-id")
                   for g in ctx.aws.ec2.paginate("describe_security_groups", "SecurityGroups",
                                                 Filters=[{"Name": key, "Values": [group_id]}])}
    lines = [eni_line(e) for e in waiting]
    for gid, group in sorted(referencing.items()):
        if gid == group_id:
            continue
        if ours(tags_of(group), ctx.name):
            lines.append(f"a rule of {gid}")
        else:
            foreign.append(Blocker("security group", gid, group.get("GroupName", ""),
                                   f"its rules name {group_id}: remove those rules"))
    return foreign, lines


def vpc_blockers(ctx: Context, vpc_id: str) -> tuple[list[Blocker], list[str]]:
    return foreign_in(ctx, [vpc_id]), []


def revoke_group_rules(ctx: Context, groups: list[dict[str, Any]], only_naming: set[str] | None = None) -> None:
    """Drop the rules of the cluster's own `groups` before deleting groups: a rule naming another group blocks
    that group's deletion. All ingress rules (the groups are going), and the egress rules that name a group;
    with `only_naming`, just the rules (both ways) that name one of those groups."""
    for group in groups:
        for direction, key in (("ingress", "IpPermissions"), ("egress", "IpPermissionsEgress")):
            rules = []
            for rule in group.get(key) or []:
                pairs = rule.get("UserIdGroupPairs") or []
                if only_naming is not None:
                    pairs = [p for p in pairs if p.get("GroupId") in only_naming]
                    if pairs:
                        rules.append({k: v for k, v in rule.items() if k in ("IpProtocol", "FromPort", "ToPort")}
                                     | {"UserIdGroupPairs": pairs})
                elif direction == "ingress":
                    rules.append(rule)
                elif pairs:
                    rules.append({k: v for k, v in rule.items() if k in ("IpProtocol", "FromPort", "ToPort")}
                                 | {"UserIdGroupPairs": pairs})
            if not rules:
                continue
            revoke = (ctx.aws.ec2.revoke_security_group_ingress if direction == "ingress"
                      else ctx.aws.ec2.revoke_security_group_egress)
            _ignore_missing(lambda r=revoke, g=group["GroupId"], p=rules: r(GroupId=g, IpPermissions=p))


class Vpc(Step):
    key = "vpc"
    title = "VPC"

    def preview(self, ctx: Context) -> list[str]:
        return [f"{ctx.settings.vpc_cidr}, DNS support and hostnames on", "no internet gateway, no NAT"]

    def grants(self, ctx: Context) -> list[Grant]:
        return [reads("ec2:DescribeVpcs", why="find the VPC by its tag"),
                reads("ec2:DescribeVpcAttribute", on=ctx.arns.ec2("vpc/*"), why="its DNS attributes"),
                ec2_write(ctx.arns, "create", "ec2:CreateVpc", why="the VPC"),
                ec2_tag_on_create(ctx.arns, "ec2:CreateVpc"),
                ec2_write(ctx.arns, ("create", "update"), "ec2:ModifyVpcAttribute", why="DNS support and hostnames on"),
                reads("ec2:DescribeSecurityGroups", why="the VPC's default security group and its rules"),
                ec2_write(ctx.arns, ("create", "update"), "ec2:RevokeSecurityGroupIngress",
                          "ec2:RevokeSecurityGroupEgress", why="empty the VPC's default security group"),
                ec2_write(ctx.arns, "remove", "ec2:DeleteVpc", "ec2:DeleteSecurityGroup",
                      why="the VPC, and the groups left in it that are the cluster's"),
                *sweep_grants(ctx.arns)]

    def find(self, ctx: Context) -> Found | None:
        known = ctx.ledger.ids(self.key).get("vpc_id")
        vpcs = list(ctx.aws.ec2.paginate("describe_vpcs", "Vpcs", Filters=ctx.cluster_filter()))
        vpc = first_by_tag(vpcs, "VpcId", known)
        if vpc is None:
            return None
        vpc_id = vpc["VpcId"]
        support = ctx.aws.ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsSupport")
        hostnames = ctx.aws.ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsHostnames")
        return {
            "vpc_id": vpc_id,
            "cidr": vpc["CidrBlock"],
            "status": vpc.get("State", "available"),
            "dns_support": support["EnableDnsSupport"]["Value"],
            "dns_hostnames": hostnames["EnableDnsHostnames"]["Value"],
            "default_group": default_group(ctx, vpc_id),
            "duplicates": [v["VpcId"] for v in vpcs if v["VpcId"] != vpc_id],
        }

    def create(self, ctx: Context) -> Found:
        ctx.intent(self.key)  # CreateVpc takes no token: `find` by tag is what prevents a duplicate
        vpc = ctx.aws.ec2.create_vpc(CidrBlock=ctx.settings.vpc_cidr,
                                     TagSpecifications=ctx.tag_spec("vpc", ctx.resource_name("vpc")))["Vpc"]
        ctx.ledger.record(self.key, vpc_id=vpc["VpcId"], cidr=vpc["CidrBlock"])
        found = {"vpc_id": vpc["VpcId"], "cidr": vpc["CidrBlock"], "status": vpc.get("State", "pending"),
                 "dns_support": False, "dns_hostnames": False, "duplicates": [],
                 "default_group": default_group(ctx, vpc["VpcId"])}  # EC2 makes it with the VPC
        self.update(ctx, found)
        return found

    def ready(self, ctx: Context, found: Found) -> None:
        if found["status"] != "available":
            ctx.aws.wait("ec2", "vpc_available", delay=min(ctx.poll, 2.0), timeout=300,
                         what=f"VPC {found['vpc_id']}", VpcIds=[found["vpc_id"]])
            found["status"] = "available"

    def diff(self, ctx: Context, found: Found) -> list[Change]:
        out = []
        # Private DNS of interface endpoints and the EKS private API zone need both attributes.
        for attribute, field_name, what in (("EnableDnsSupport", "dns_support", "DNS support"),
                                            ("EnableDnsHostnames", "dns_hostnames", "DNS hostnames")):
            if not found[field_name]:
                out.append(Change(f"enable {what}", partial(self._enable, ctx, found, attribute, field_name, what)))
        group = found.get("default_group")
        if group and (group["ingress"] or group["egress"]):
            # AWS gives every new VPC a default group that admits its own members and lets everything out.
            # Nothing eksprivate makes uses it (endpoints have their group, EKS makes the cluster's), so it
            # is emptied: an interface someone launches without a group then reaches nothing (CIS 5.4,
            # checkov CKV2_AWS_12).
            out.append(Change(f"remove the rules of the VPC's default security group {group['group_id']} "
                              "(nothing uses it)", partial(self._empty_default_group, ctx, group)))
        if found["cidr"] != ctx.settings.vpc_cidr:
            out.append(Change(f"vpc_cidr is {found['cidr']} in AWS but {ctx.settings.vpc_cidr} in the config",
                              blocked="a VPC CIDR cannot change in place (restore the config value, or `down` "
                                      "then `up`)"))
        return out

    @staticmethod
    def _empty_default_group(ctx: Context, group: dict[str, Any]) -> str:
        if group["ingress"]:
            _ignore_missing(lambda: ctx.aws.ec2.revoke_security_group_ingress(
                GroupId=group["group_id"], IpPermissions=group["ingress"]))
        if group["egress"]:
            _ignore_missing(lambda: ctx.aws.ec2.revoke_security_group_egress(
                GroupId=group["group_id"], IpPermissions=group["egress"]))
        group.update(ingress=[], egress=[])
        return "emptied the default security group"

    @staticmethod
    def _enable(ctx: Context, found: Found, attribute: str, field_name: str, what: str) -> str:
        # One attribute per ModifyVpcAttribute call (the API takes one at a time).
        ctx.aws.ec2.modify_vpc_attribute(VpcId=found["vpc_id"], **{attribute: {"Value": True}})
        found[field_name] = True
        return f"enabled {what}"

    def remove(self, ctx: Context, found: Found) -> None:
        for vpc_id in [found["vpc_id"], *found.get("duplicates", [])]:
            self._remove_one(ctx, vpc_id)

    def _remove_one(self, ctx: Context, vpc_id: str) -> None:
        vpc_filter = [{"Name": "vpc-id", "Values": [vpc_id]}]
        # Only the cluster's groups: eksprivate's, the cluster security group EKS leaves behind (tagged
        # aws:eks:cluster-name) and Kubernetes' (gone already with the k8s-leftovers step, unless a stopped
        # run left one). Anyone else's group is never touched; DeleteVpc then names it at once.
        groups = ctx.aws.ec2.describe_security_groups(Filters=vpc_filter)["SecurityGroups"]
        leftovers = [g for g in groups if g.get("GroupName") != "default" and ours(tags_of(g), ctx.name)]
        revoke_group_rules(ctx, leftovers)
        for group in leftovers:
            ctx.say(self.key, f"deleting leftover security group {group['GroupId']}")
            delete_retrying(ctx, ctx.aws.ec2.delete_security_group, sweep=vpc_filter, key=self.key,
                            what=f"deleting security group {group['GroupId']}",
                            explain=partial(group_blockers, ctx, group["GroupId"]), GroupId=group["GroupId"])
        delete_retrying(ctx, ctx.aws.ec2.delete_vpc, sweep=vpc_filter, key=self.key, what=f"deleting VPC {vpc_id}",
                        explain=lambda: vpc_blockers(ctx, vpc_id), VpcId=vpc_id)

    def describe(self, found: Found) -> str:
        return f"{found['vpc_id']} ({found['cidr']})"

    def ids(self, found: Found) -> dict[str, Any]:
        return {"vpc_id": found["vpc_id"], "cidr": found["cidr"]}


def default_group(ctx: Context, vpc_id: str) -> dict[str, Any] | None:
    """The VPC's default security group (EC2 makes it with the VPC, named `default`) and its rules."""
    groups = ctx.aws.ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                                          {"Name": "group-name", "Values": ["default"]}])
    for group in groups.get("SecurityGroups", []):
        return {"group_id": group["GroupId"], "ingress": _rules(group.get("IpPermissions")),
                "egress": _rules(group.get("IpPermissionsEgress"))}
    return None


def _rules(permissions: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Rules as a revoke takes them back (DescribeSecurityGroups adds empty lists and owner ids)."""
    keep = ("IpProtocol", "FromPort", "ToPort", "IpRanges", "Ipv6Ranges", "PrefixListIds", "UserIdGroupPairs")
    out = []
    for rule in permissions or []:
        cleaned = {k: v for k, v in rule.items() if k in keep and v not in ([], None)}
        if "UserIdGroupPairs" in cleaned:
            cleaned["UserIdGroupPairs"] = [{"GroupId": p["GroupId"]} for p in cleaned["UserIdGroupPairs"]]
        out.append(cleaned)
    return out


def vpc_cidr(ctx: Context) -> str:
    """The VPC's real CIDR (recorded by the vpc step): a changed `vpc_cidr` in the config is reported by
    plan, never half-applied to subnets or security group rules."""
    return str(ctx.ledger.ids("vpc").get("cidr") or ctx.settings.vpc_cidr)


def _ignore_missing(call: Any) -> None:
    with suppress(NotFound):  # also InvalidPermission.NotFound: a rule already revoked
        call()


class Subnets(Step):
    """One private subnet per AZ, each with its own route table (so each can get its own routes)."""

    key = "subnets"
    title = "Private subnets"
    needs = ("vpc",)

    def preview(self, ctx: Context) -> list[str]:
        cidrs = ctx.settings.subnet_cidrs()
        return [*(f"{az}: {cidr}" for az, cidr in zip(ctx.azs, cidrs, strict=False)),
                "a route table each, no default route"]

    def grants(self, ctx: Context) -> list[Grant]:
        return [reads("ec2:DescribeSubnets", "ec2:DescribeRouteTables", why="find the subnets by their tag"),
                ec2_write(ctx.arns, "create", "ec2:CreateSubnet", "ec2:CreateRouteTable", "ec2:AssociateRouteTable",
                      why="a private subnet and its own route table per AZ"),
                ec2_tag_on_create(ctx.arns, "ec2:CreateSubnet", "ec2:CreateRouteTable"),
                ec2_write(ctx.arns, ("create", "update"), "ec2:ModifySubnetAttribute", why="no public IPs on launch"),
                ec2_write(ctx.arns, "remove", "ec2:DisassociateRouteTable", "ec2:DeleteSubnet", "ec2:DeleteRouteTable",
                      why="the subnets and route tables"),
                *sweep_grants(ctx.arns)]

    def find(self, ctx: Context) -> Found | None:
        subnets = list(ctx.aws.ec2.paginate("describe_subnets", "Subnets", Filters=ctx.cluster_filter()))
        tables = list(ctx.aws.ec2.paginate("describe_route_tables", "RouteTables", Filters=ctx.cluster_filter()))
        if not subnets and not tables:
            return None
        parts: dict[str, dict[str, Any]] = {}
        extra_subnets, extra_tables = [], []
        for sn in subnets:
            az = tags_of(sn).get(AZ_TAG, sn["AvailabilityZone"])
            if az in parts and "subnet_id" in parts[az]:
                extra_subnets.append(sn["SubnetId"])
                continue
            parts.setdefault(az, {}).update({"subnet_id": sn["SubnetId"], "cidr": sn["CidrBlock"],
                                             "vpc_id": sn["VpcId"], "public_ip": sn.get("MapPublicIpOnLaunch")})
        for rt in tables:
            az = tags_of(rt).get(AZ_TAG, "")
            if az in parts and "route_table_id" in parts[az]:
                extra_tables.append(rt["RouteTableId"])
                continue
            part = parts.setdefault(az, {})
            part["route_table_id"] = rt["RouteTableId"]
            part["associated"] = [a["SubnetId"] for a in rt.get("Associations", []) if a.get("SubnetId")]
            part["association_ids"] = [a["RouteTableAssociationId"] for a in rt.get("Associations", [])
                                       if a.get("SubnetId") and not a.get("Main")]
            part["default_routes"] = [r.get("DestinationCidrBlock") or r.get("DestinationIpv6CidrBlock")
                                      for r in rt.get("Routes", [])
                                      if r.get("GatewayId", "").startswith("igw-") or r.get("NatGatewayId")
                                      or r.get("DestinationCidrBlock") == "0.0.0.0/0"]
        complete = all(
            az in parts and {"subnet_id", "route_table_id"} <= parts[az].keys()
            and parts[az]["subnet_id"] in parts[az].get("associated", [])
            for az in ctx.azs)
        return {"parts": parts, "incomplete": not complete, "extra_subnets": extra_subnets,
                "extra_tables": extra_tables}

    def create(self, ctx: Context) -> Found:
        """Adopt what a crashed run left, create the rest: subnet, route table, association per AZ.

        The AZs are independent, so they are made side by side: the cluster waits for the subnets, and
        three calls in a row per AZ instead of nine for all keep that wait off the critical path."""
        found = self.find(ctx) or {"parts": {}, "extra_subnets": [], "extra_tables": []}
        parts: dict[str, dict[str, Any]] = found["parts"]
        vpc_id = ctx.ledger.ids("vpc")["vpc_id"]
        cidrs = dict(zip(ctx.azs, subnet_cidrs(vpc_cidr(ctx), len(ctx.azs)), strict=True))
        for az in ctx.azs:
            parts.setdefault(az, {})
        lock = threading.Lock()  # `parts` is recorded whole: no AZ may change it while another records it
        with ThreadPoolExecutor(max_workers=len(ctx.azs), thread_name_prefix=self.key) as pool:
            futures = [pool.submit(self._create_in, ctx, az, cidrs[az], vpc_id, parts, lock) for az in ctx.azs]
        for future in futures:  # every AZ has finished (and recorded what it made): raise the first failure
            future.result()
        found.update(parts=parts, incomplete=False)
        return found

    def _create_in(self, ctx: Context, az: str, cidr: str, vpc_id: str, parts: dict[str, dict[str, Any]],
                   lock: threading.Lock) -> None:
        ctx.check_cancel()
        part = parts[az]
        suffix = az.removeprefix(ctx.region)
        if "subnet_id" not in part:
            ctx.intent(f"{self.key}/{az}/subnet")
            extra = {AZ_TAG: az, f"kubernetes.io/cluster/{ctx.name}": "shared",
                     "kubernetes.io/role/internal-elb": "1"}
            sn = ctx.aws.ec2.create_subnet(
                VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=az,
                TagSpecifications=ctx.tag_spec("subnet", ctx.resource_name(f"private-{suffix}"), extra))["Subnet"]
            with lock:
                part.update({"subnet_id": sn["SubnetId"], "cidr": sn["CidrBlock"], "vpc_id": vpc_id})
                self._record(ctx, parts)
        if "route_table_id" not in part:
            token = ctx.intent(f"{self.key}/{az}/route-table")
            rt = ctx.aws.ec2.create_route_table(
                VpcId=vpc_id, ClientToken=token,
                TagSpecifications=ctx.tag_spec("route-table", ctx.resource_name(f"private-{suffix}"),
                                               {AZ_TAG: az}))["RouteTable"]
            with lock:
                part.update({"route_table_id": rt["RouteTableId"], "associated": [], "default_routes": []})
                self._record(ctx, parts)
        if part["subnet_id"] not in part.get("associated", []):
            ctx.aws.ec2.associate_route_table(RouteTableId=part["route_table_id"], SubnetId=part["subnet_id"])
            with lock:
                part["associated"] = [part["subnet_id"]]

    def _record(self, ctx: Context, parts: dict[str, dict[str, Any]]) -> None:
        ctx.ledger.record(self.key, **self.ids({"parts": parts}))

    def ids(self, found: Found) -> dict[str, Any]:
        # Only the ids: live attributes (associations, public IPs, routes) would rewrite the state on reruns.
        return {"parts": {az: {k: v for k, v in p.items() if k.endswith("_id")} for az, p in found["parts"].items()}}

    def diff(self, ctx: Context, found: Found) -> list[Change]:
        out = []
        want = ctx.settings.availability_zones
        if (sorted(map(ctx.zone_name, want)) != sorted(ctx.azs)) if isinstance(want, tuple) else want != len(ctx.azs):
            out.append(Change(f"availability_zones: the cluster uses {', '.join(ctx.azs)} (recorded in the state), "
                              f"the config asks for {', '.join(want) if isinstance(want, tuple) else want}",
                              blocked="the AZs of an existing cluster cannot change (restore the config value, or "
                                      "`down` then `up`)"))
        for az, part in sorted(found["parts"].items()):
            if part.get("default_routes"):
                out.append(Change(f"route table {part['route_table_id']} ({az}) has internet routes "
                                  f"{part['default_routes']} that eksprivate never adds",
                                  blocked="remove them by hand"))
            if part.get("public_ip"):
                out.append(Change(f"turn off public IPs on launch in {part['subnet_id']}",
                                  partial(self._no_public_ip, ctx, part)))
        return out

    @staticmethod
    def _no_public_ip(ctx: Context, part: dict[str, Any]) -> str:
        ctx.aws.ec2.modify_subnet_attribute(SubnetId=part["subnet_id"], MapPublicIpOnLaunch={"Value": False})
        part["public_ip"] = False
        return f"public IPs off in {part['subnet_id']}"

    def remove(self, ctx: Context, found: Found) -> None:
        parts = found["parts"]
        for part in parts.values():
            if "subnet_id" in part:
                delete_leftover_enis(ctx, [{"Name": "subnet-id", "Values": [part["subnet_id"]]}])
        # Drop the associations first: a route table with associations cannot be deleted.
        for part in parts.values():
            for assoc in part.get("association_ids", []):
                _ignore_missing(lambda a=assoc: ctx.aws.ec2.disassociate_route_table(AssociationId=a))
        for sid in [p["subnet_id"] for p in parts.values() if "subnet_id" in p] + found.get("extra_subnets", []):
            ctx.say(self.key, f"deleting {sid}")
            delete_retrying(ctx, ctx.aws.ec2.delete_subnet, sweep=[{"Name": "subnet-id", "Values": [sid]}],
                            key=self.key, what=f"deleting subnet {sid}",
                            explain=partial(subnet_blockers, ctx, sid),
                            SubnetId=sid)
        tables = [p["route_table_id"] for p in parts.values() if "route_table_id" in p]
        for rtb in tables + found.get("extra_tables", []):
            delete_retrying(ctx, ctx.aws.ec2.delete_route_table, RouteTableId=rtb)

    def describe(self, found: Found) -> str:
        return ", ".join(f"{az}: {p.get('subnet_id', '-')}/{p.get('route_table_id', '-')}"
                         for az, p in sorted(found["parts"].items()))

    def status(self, found: Found) -> str:
        return "incomplete" if found.get("incomplete") else "available"

    def subnet_ids(self, found: Found, azs: list[str]) -> list[str]:
        return [found["parts"][az]["subnet_id"] for az in azs]


def subnet_ids(ctx: Context) -> list[str]:
    """The node subnets, in AZ order, from the state the `subnets` step recorded."""
    parts = ctx.ledger.ids("subnets").get("parts", {})
    try:
        return [parts[az]["subnet_id"] for az in ctx.azs]
    except KeyError as exc:
        raise EksPrivateError(f"no subnet recorded for {exc}: rerun `eksprivate up`") from None


def route_table_ids(ctx: Context) -> list[str]:
    parts = ctx.ledger.ids("subnets").get("parts", {})
    return [parts[az]["route_table_id"] for az in ctx.azs if "route_table_id" in parts.get(az, {})]


class EndpointSecurityGroup(Step):
    """Admits HTTPS from the VPC to the interface endpoints, and nothing else."""

    key = "endpoint-sg"
    title = "Endpoint security group"
    needs = ("vpc",)

    def preview(self, ctx: Context) -> list[str]:
        return [f"inbound TCP 443 from {ctx.settings.vpc_cidr} only"]

    def grants(self, ctx: Context) -> list[Grant]:
        return [reads("ec2:DescribeSecurityGroups", "ec2:DescribeVpcs", why="find the group by its tag"),
                ec2_write(ctx.arns, "create", "ec2:CreateSecurityGroup", why="the endpoints' security group"),
                ec2_tag_on_create(ctx.arns, "ec2:CreateSecurityGroup", "ec2:AuthorizeSecurityGroupIngress",
                                  verbs=("create", "update")),  # the rule is tagged too
                ec2_write(ctx.arns, ("create", "update"), "ec2:AuthorizeSecurityGroupIngress",
                          "ec2:RevokeSecurityGroupEgress",
                      why="HTTPS in from the VPC only; no egress"),
                ec2_write(ctx.arns, "remove", "ec2:RevokeSecurityGroupIngress", "ec2:DeleteSecurityGroup",
                      why="the group (rules naming it first)"),
                *sweep_grants(ctx.arns)]

    def _rule(self, ctx: Context) -> dict[str, Any]:
        return {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                "IpRanges": [{"CidrIp": vpc_cidr(ctx),
                              "Description": "HTTPS from the VPC to the interface endpoints"}]}

    def find(self, ctx: Context) -> Found | None:
        known = ctx.ledger.ids(self.key).get("group_id")
        groups = ctx.aws.ec2.describe_security_groups(
            Filters=[*ctx.cluster_filter(), {"Name": "tag:eksprivate:role", "Values": ["endpoints"]}])
        group = first_by_tag(groups["SecurityGroups"], "GroupId", known)
        if group is None:
            return None
        has_443 = any(p.get("IpProtocol") in ("tcp", "6") and p.get("FromPort") == 443 and p.get("ToPort") == 443
                      and any(r.get("CidrIp") == vpc_cidr(ctx) for r in p.get("IpRanges", []))
                      for p in group.get("IpPermissions", []))
        return {"group_id": group["GroupId"], "vpc_id": group["VpcId"], "has_443": has_443,
                "egress": group.get("IpPermissionsEgress", []), "status": "available"}

    def create(self, ctx: Context) -> Found:
        ctx.intent(self.key)
        vpc_id = ctx.ledger.ids("vpc")["vpc_id"]
        name = ctx.resource_name("endpoints")
        group = ctx.aws.ec2.create_security_group(
            GroupName=name, VpcId=vpc_id, Description=f"Interface VPC endpoints of EKS cluster {ctx.name}",
            TagSpecifications=ctx.tag_spec("security-group", name, {"eksprivate:role": "endpoints"}))
        ctx.ledger.record(self.key, group_id=group["GroupId"], vpc_id=vpc_id)  # all `ids`: reruns write nothing
        found: Found = {"group_id": group["GroupId"], "vpc_id": vpc_id, "has_443": False, "egress": None}
        self.update(ctx, found)
        return found

    def diff(self, ctx: Context, found: Found) -> list[Change]:
        out = [] if found["has_443"] else [Change(f"admit TCP 443 from {vpc_cidr(ctx)}",
                                                  partial(self._admit_https, ctx, found))]
        egress = found.get("egress")
        if egress is None:  # just created: AWS adds allow-all egress we do not want
            egress = [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
        if egress:
            out.append(Change("remove the default allow-all egress rule (endpoints never initiate connections)",
                              partial(self._revoke_egress, ctx, found, egress)))
        return out

    def _admit_https(self, ctx: Context, found: Found) -> str:
        ctx.aws.ec2.authorize_security_group_ingress(
            GroupId=found["group_id"], IpPermissions=[self._rule(ctx)],
            TagSpecifications=ctx.tag_spec("security-group-rule", ctx.resource_name("endpoints-https")))
        found["has_443"] = True
        return "admitted TCP 443 from the VPC"

    @staticmethod
    def _revoke_egress(ctx: Context, found: Found, egress: list[dict[str, Any]]) -> str:
        _ignore_missing(lambda: ctx.aws.ec2.revoke_security_group_egress(GroupId=found["group_id"],
                                                                         IpPermissions=egress))
        found["egress"] = []
        return "removed allow-all egress"

    def remove(self, ctx: Context, found: Found) -> None:
        delete_retrying(ctx, ctx.aws.ec2.delete_security_group,
                        sweep=[{"Name": "group-id", "Values": [found["group_id"]]}], key=self.key,
                        what=f"deleting security group {found['group_id']}",
                        explain=lambda: group_blockers(ctx, found["group_id"]), GroupId=found["group_id"])

    def describe(self, found: Found) -> str:
        return str(found["group_id"])
