"""VPC endpoints: the nodes' only way to AWS APIs (interface endpoints) and to S3 (gateway endpoint)."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from eksprivate import endpoint_services, perimeter
from eksprivate.endpoint_services import EndpointService, short_name
from eksprivate.errors import NotFound, UsageError
from eksprivate.grants import Grant, ec2_tag_on_create, ec2_write, grant, reads
from eksprivate.steps.base import Change, Context, Found, Step, raise_unsuccessful
from eksprivate.steps.network import route_table_ids, subnet_ids

GONE_STATES = ("deleted", "Deleted", "deleting", "Deleting")


def services(ctx: Context, wanted: dict[str, str]) -> dict[str, EndpointService]:
    """The endpoint services `wanted` names, as the region lists them: resolved once per run (normally by
    target.open_context; here when a step runs without it) and kept on the Context."""
    if not set(wanted) <= set(ctx.endpoint_services):
        ctx.endpoint_services = {**ctx.endpoint_services,
                                 **endpoint_services.resolve(ctx.aws, ctx.region, wanted)}
    return ctx.endpoint_services


def perimeter_of(ctx: Context) -> perimeter.Perimeter:
    """The perimeter this configuration draws: this account and the trusted ones."""
    s = ctx.settings
    return perimeter.Perimeter(partition=ctx.partition, region=ctx.region, account=ctx.account,
                               trusted_accounts=s.trusted_accounts, trusted_org_id=s.trusted_org_id)


def wanted_policy(ctx: Context, svc: str) -> tuple[str | None, str]:
    """The policy the endpoint of `svc` should carry (None: AWS's full-access default) and where it comes from."""
    files = dict(ctx.settings.endpoint_policy_files)
    if svc in files:
        return files[svc], "your file"
    if ctx.settings.endpoint_policies == "open":
        return None, "open: AWS's full-access default"
    return json.dumps(perimeter_of(ctx).policy(svc)), "perimeter"


def check_perimeter(ctx: Context) -> None:
    """Before anything is made: a perimeter needs the region's EKS add-on image registry (AWS's table), or the
    nodes could not pull the VPC CNI and would never become Ready."""
    s = ctx.settings
    if s.endpoint_policies != "perimeter":
        return
    for svc in ("s3", *s.interface_endpoints):  # the ECR and S3 policies name every trusted account most often
        size = len(json.dumps(perimeter_of(ctx).policy(svc)))
        if size > perimeter.MAX_POLICY_CHARS:
            raise UsageError(f"trusted_accounts: the {svc} endpoint's perimeter policy would be {size} characters; AWS "
                             f"takes {perimeter.MAX_POLICY_CHARS}", "trust the organisation (trusted_org_id) instead "
                             "of listing its accounts")
    if perimeter.eks_image_registry(ctx.region) is not None:
        return
    if all(svc in dict(s.endpoint_policy_files) for svc in perimeter.ECR_SERVICES):
        return
    raise UsageError(f"endpoint_policies = \"perimeter\": {ctx.region} is not in eksprivate's table of EKS add-on "
                     "image registries (AWS's \"Amazon container image registries\"), so the ECR endpoints' policy "
                     "could not let the nodes pull the VPC CNI", "give ecr.api and ecr.dkr your own policy in "
                     "endpoint_policy_files, add the registry's account to trusted_accounts, or set "
                     "endpoint_policies = \"open\"")


class Endpoints(Step):
    key = "endpoints"
    title = "VPC endpoints"
    needs: tuple[str, ...] = ("subnets", "endpoint-sg")

    def preview(self, ctx: Context) -> list[str]:
        lines = [f"interface, private DNS: {', '.join(ctx.settings.interface_endpoints)}",
                 "gateway: s3, on every route table"]
        for svc in self.wanted(ctx):
            lines += self._policy_preview(ctx, svc)
        return lines

    def _policy_preview(self, ctx: Context, svc: str) -> list[str]:
        """`plan`'s view of the policy an endpoint gets: one line per statement."""
        if not self._takes_policy(ctx, svc):
            return [f"{svc} policy: none (AWS takes no endpoint policy for this service)"]
        policy, source = wanted_policy(ctx, svc)
        if policy is None:
            return [f"{svc} policy: {source}"]
        return [f"{svc} policy ({source}):", *(f"  {line}" for line in perimeter.summary(json.loads(policy)))]

    def _takes_policy(self, ctx: Context, svc: str) -> bool:
        return services(ctx, {svc: self.wanted(ctx).get(svc, "Interface")})[svc].policy_supported

    def grants(self, ctx: Context) -> list[Grant]:
        return [reads("ec2:DescribeVpcEndpoints", "ec2:DescribeVpcEndpointServices",
                      why="find the endpoints by their tag; each service's full name and zones"),
                ec2_write(ctx.arns, "create", "ec2:CreateVpcEndpoint",
                          extra=[ctx.arns.arn("ec2", "vpc-endpoint-service/*").replace(f":{ctx.account}:", ":*:")],
                          why="the interface endpoints and the S3 gateway (the endpoint service is AWS's)"),
                ec2_tag_on_create(ctx.arns, "ec2:CreateVpcEndpoint"),
                # Private DNS: EC2 associates the VPC with the service's private hosted zone on the caller's
                # behalf, and authorises that too (Service Authorization Reference: a dependent action of
                # CreateVpcEndpoint and ModifyVpcEndpoint).
                grant(("create", "update"), "route53:AssociateVPCWithHostedZone",
                      why="private DNS of the interface endpoints (checked by EC2 beside CreateVpcEndpoint)"),
                ec2_write(ctx.arns, "update", "ec2:ModifyVpcEndpoint",
                          why="add subnets, turn on private DNS, add route tables, set or reset the policy"),
                ec2_write(ctx.arns, "remove", "ec2:DeleteVpcEndpoints", why="the endpoints")]

    def wanted(self, ctx: Context) -> dict[str, str]:
        """Service short name → endpoint type, for this configuration."""
        want = {svc: "Interface" for svc in ctx.settings.interface_endpoints}
        want["s3"] = "Gateway"
        return want

    def gateway_tables(self, ctx: Context) -> list[str]:
        """The route tables the S3 gateway endpoint is attached to (all the node subnets' tables)."""
        return route_table_ids(ctx)

    def find(self, ctx: Context) -> Found | None:
        items = list(ctx.aws.ec2.paginate("describe_vpc_endpoints", "VpcEndpoints", Filters=ctx.cluster_filter()))
        live = [e for e in items if e.get("State") not in GONE_STATES]
        # Endpoints already deleting (a stopped `down`): nothing `up` can use, but `down` must still wait for
        # them to be gone before it deletes their subnets and security group (their ENIs block both).
        deleting = sorted(e["VpcEndpointId"] for e in items if e.get("State") in ("deleting", "Deleting"))
        if not live and not deleting:
            return None
        eps: dict[str, dict[str, Any]] = {}
        duplicates = []
        for e in sorted(live, key=lambda e: str(e["VpcEndpointId"])):
            # By suffix: the region's prefix may not be com.amazonaws (cn.com.amazonaws.<region>.<svc>).
            short = short_name(str(e["ServiceName"]), ctx.region) or str(e["ServiceName"])
            if short in eps:
                duplicates.append(e["VpcEndpointId"])
                continue
            eps[short] = {"endpoint_id": e["VpcEndpointId"], "state": e.get("State", ""),
                          "type": e.get("VpcEndpointType", ""), "subnets": sorted(e.get("SubnetIds", [])),
                          "route_tables": sorted(e.get("RouteTableIds", [])),
                          "private_dns": bool(e.get("PrivateDnsEnabled")), "policy": e.get("PolicyDocument")}
        missing = [svc for svc in self.wanted(ctx) if svc not in eps]
        return {"endpoints": eps, "incomplete": bool(missing), "duplicates": duplicates, "deleting": deleting}

    def ids(self, found: Found) -> dict[str, Any]:
        return {"endpoint_ids": {svc: e["endpoint_id"] for svc, e in found["endpoints"].items()}}

    def create(self, ctx: Context) -> Found:
        found = self.find(ctx) or {"endpoints": {}, "duplicates": []}
        eps: dict[str, dict[str, Any]] = found["endpoints"]
        vpc_id = ctx.ledger.ids("vpc")["vpc_id"]
        group_id = ctx.ledger.ids("endpoint-sg")["group_id"]
        subnets, tables = subnet_ids(ctx), self.gateway_tables(ctx)
        wanted = self.wanted(ctx)
        offered = services(ctx, wanted)
        for svc, kind in wanted.items():
            if svc in eps:
                continue
            ctx.check_cancel()
            token = ctx.intent(f"{self.key}/{svc}")
            private_dns = kind == "Interface" and offered[svc].private_dns
            args: dict[str, Any] = {
                "VpcEndpointType": kind, "VpcId": vpc_id, "ServiceName": offered[svc].name,
                "ClientToken": token,
                "TagSpecifications": ctx.tag_spec("vpc-endpoint", ctx.resource_name(svc),
                                                  {"eksprivate:service": svc}),
            }
            policy = wanted_policy(ctx, svc)[0] if offered[svc].policy_supported else None
            if policy is not None:
                args["PolicyDocument"] = policy
            if kind == "Interface":
                # Private DNS only where the service has a private DNS name: AWS refuses it otherwise.
                args.update(SubnetIds=subnets, SecurityGroupIds=[group_id], PrivateDnsEnabled=private_dns)
            else:
                args.update(RouteTableIds=tables)
            ep = ctx.aws.ec2.create_vpc_endpoint(**args)["VpcEndpoint"]
            ctx.ledger.record(f"{self.key}/{svc}", endpoint_id=ep["VpcEndpointId"])
            eps[svc] = {"endpoint_id": ep["VpcEndpointId"], "state": ep.get("State", "pending"), "type": kind,
                        "subnets": sorted(ep.get("SubnetIds", [])), "route_tables": sorted(ep.get("RouteTableIds", [])),
                        "private_dns": private_dns, "policy": ep.get("PolicyDocument", policy)}
        found.update(endpoints=eps, incomplete=False)
        ctx.ledger.sync(self.key, self.ids(found))  # the summary `ids` gives, so a rerun has nothing to add
        return found

    def ready(self, ctx: Context, found: Found) -> None:
        waiting = [e["endpoint_id"] for e in found["endpoints"].values() if e["state"].lower() != "available"]
        if waiting:  # one line for the group (the ids and states), not one per endpoint
            states = ", ".join(f"{svc}={e['endpoint_id']} {e['state'] or 'pending'}"
                               for svc, e in sorted(found["endpoints"].items()) if e["endpoint_id"] in waiting)
            ctx.say(self.key, f"waiting for {len(waiting)} endpoint(s) to become available: {states}")
            ctx.aws.wait("ec2", "VpcEndpointsAvailable", delay=ctx.poll, timeout=ctx.timeouts.endpoint_create,
                         seen_now=True, what=f"VPC endpoints {', '.join(waiting)}", VpcEndpointIds=waiting)
            for e in found["endpoints"].values():
                e["state"] = "available"

    def diff(self, ctx: Context, found: Found) -> list[Change]:
        out = []
        subnets, tables = set(subnet_ids(ctx)), set(self.gateway_tables(ctx))
        wanted = self.wanted(ctx)
        for svc, e in sorted(found["endpoints"].items()):
            if svc not in wanted:
                what = f"endpoint {svc} {e['endpoint_id']}"
                out.append(Change(f"delete: {what}", partial(self._prune, ctx, found, svc)) if ctx.prune else
                           Change("", blocked=f"not in the config (kept; --prune deletes): {what}"))
                continue
            # Each difference is its own line; one ModifyVpcEndpoint makes them all (the first line's apply).
            args: dict[str, Any] = {}
            lines = []
            if e["type"] == "Interface":
                if not subnets <= set(e["subnets"]):
                    args["AddSubnetIds"] = sorted(subnets - set(e["subnets"]))
                    lines.append(f"add subnets {args['AddSubnetIds']} to endpoint {svc}")
                if not e["private_dns"] and self._offers_private_dns(ctx, svc):
                    args["PrivateDnsEnabled"] = True
                    lines.append(f"turn on private DNS for endpoint {svc}")
            elif not tables <= set(e["route_tables"]):
                args["AddRouteTableIds"] = sorted(tables - set(e["route_tables"]))
                lines.append(f"attach route tables {args['AddRouteTableIds']} to the {svc} gateway")
            lines += self._policy_change(ctx, svc, e, args)
            if lines:
                out.append(Change(lines[0], partial(self._modify, ctx, svc, e, args)))
                out += [Change(line) for line in lines[1:]]
        return out

    def _policy_change(self, ctx: Context, svc: str, e: dict[str, Any], args: dict[str, Any]) -> list[str]:
        """The policy difference of one endpoint, as plan's lines (the first says what, the rest the diff), with
        what ModifyVpcEndpoint needs put into `args`. Compared as documents: AWS answers a policy reformatted."""
        if not self._takes_policy(ctx, svc):
            return []
        policy, source = wanted_policy(ctx, svc)
        current = e.get("policy")
        if policy is None:
            if perimeter.is_full_access(current):
                return []
            args["ResetPolicy"] = True
            return [f"reset the {svc} endpoint policy to AWS's full-access default",
                    *perimeter.diff_lines(current, None)]
        if perimeter.canonical(current) == perimeter.canonical(policy):
            return []
        args["PolicyDocument"] = policy
        return [f"set the {svc} endpoint policy ({source})", *perimeter.diff_lines(current, policy)]

    def _prune(self, ctx: Context, found: Found, svc: str) -> str:
        self._delete(ctx, [found["endpoints"][svc]["endpoint_id"]])
        del found["endpoints"][svc]
        return f"deleted endpoint {svc}"

    @staticmethod
    def _modify(ctx: Context, svc: str, e: dict[str, Any], args: dict[str, Any]) -> str:
        # Never a replacement: the endpoint, its ENIs and its DNS names stay; only what differs is sent.
        ctx.aws.ec2.modify_vpc_endpoint(VpcEndpointId=e["endpoint_id"], **args)
        if "PolicyDocument" in args:
            e["policy"] = args["PolicyDocument"]
        elif args.get("ResetPolicy"):
            e["policy"] = None
        return f"updated endpoint {svc}: {', '.join(args)}"

    def _offers_private_dns(self, ctx: Context, svc: str) -> bool:
        return services(ctx, {svc: "Interface"})[svc].private_dns

    def remove(self, ctx: Context, found: Found) -> None:
        ids = [e["endpoint_id"] for e in found["endpoints"].values()] + found.get("duplicates", [])
        if ids:
            self._delete(ctx, ids)

    def _delete(self, ctx: Context, ids: list[str]) -> None:
        try:
            result = ctx.aws.ec2.delete_vpc_endpoints(VpcEndpointIds=ids)
        except NotFound:
            return
        raise_unsuccessful(result, "DeleteVpcEndpoints")

    def gone(self, ctx: Context, found: Found) -> None:
        # Interface endpoint ENIs (which block subnet and SG deletion) disappear only with the endpoint.
        ids = [e["endpoint_id"] for e in found["endpoints"].values()] + found.get("duplicates", [])
        ids += found.get("deleting", [])
        # One at a time: DescribeVpcEndpoints answers InvalidVpcEndpointId.NotFound for the whole list as soon
        # as one of them is gone (a gateway endpoint goes in seconds), which the waiter rightly takes as
        # "gone" for a single id only. Waiting for the slowest costs the same as waiting for all.
        for endpoint_id in ids:
            ctx.aws.wait("ec2", "VpcEndpointsDeleted", delay=ctx.poll, timeout=ctx.timeouts.endpoint_delete,
                         what=f"deleting VPC endpoint {endpoint_id}", VpcEndpointIds=[endpoint_id])

    def describe(self, found: Found) -> str:
        return ", ".join(f"{svc}={e['endpoint_id']}" for svc, e in sorted(found["endpoints"].items()))

    def status(self, found: Found) -> str:
        states = sorted({e["state"] for e in found["endpoints"].values()})
        if not states and found.get("deleting"):
            return "deleting"
        return "incomplete" if found.get("incomplete") else "/".join(states)
