"""Vpc, Subnets, EndpointSecurityGroup: create, rerun, adopt, delete, delete again — and what makes the
network private (DNS attributes, no public IPs, no route out, HTTPS from the VPC only)."""

from __future__ import annotations

import ipaddress

from eksprivate.steps.network import EndpointSecurityGroup, Subnets, Vpc

from .world import (
    AZS,
    World,
    adopt,
    assert_delete_and_delete_again,
    assert_recorded,
    assert_rerun_is_noop,
    converge,
    ec2_tags,
    mutating_during,
    plan_one,
    up_one,
)

# -- VPC ----------------------------------------------------------------------------------------------


def test_vpc_lifecycle(world: World) -> None:
    ctx = world.ctx()
    ec2 = world.client("ec2")

    found, mutating = mutating_during(ctx, lambda: converge(ctx, Vpc()))
    assert mutating[0] == "ec2:CreateVpc" and len(mutating) >= 3
    vpc_id = found["vpc_id"]
    assert_recorded(ctx, "vpc", vpc_id=vpc_id)
    vpc = ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]
    assert vpc["CidrBlock"] == "10.20.0.0/16"
    tags = ec2_tags(vpc)
    assert tags["eksprivate:cluster"] == world.name and tags["Name"] == f"{world.name}-vpc"
    # Private DNS of the interface endpoints and the EKS private API zone need both attributes.
    assert ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsSupport")["EnableDnsSupport"]["Value"]
    assert ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsHostnames")["EnableDnsHostnames"]["Value"]
    # Never a way out: no internet gateway attached.
    gateways = ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}])
    assert gateways["InternetGateways"] == []

    assert assert_rerun_is_noop(ctx, Vpc())["vpc_id"] == vpc_id

    lost = world.ctx(fresh=True)  # the state file is gone: find by tag, adopt, nothing to do
    assert lost.ledger.ids("vpc") == {}
    assert adopt(lost, Vpc())["vpc"]["vpc_id"] == vpc_id
    assert_recorded(lost, "vpc", vpc_id=vpc_id)
    assert_rerun_is_noop(lost, Vpc())

    assert_delete_and_delete_again(ctx, Vpc(), found)
    assert ec2.describe_vpcs(Filters=world.tag_filter())["Vpcs"] == []


def test_vpc_turns_dns_hostnames_back_on(world: World) -> None:
    ctx = world.ctx()
    vpc_id = converge(ctx, Vpc())["vpc_id"]
    ec2 = world.client("ec2")
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": False})  # someone turned it off

    assert plan_one(ctx, Vpc()).details == ["enable DNS hostnames"]
    outcome, mutating = mutating_during(ctx, lambda: up_one(ctx, Vpc()))
    assert outcome.changes == ["enabled DNS hostnames"] and mutating == ["ec2:ModifyVpcAttribute"]
    assert ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsHostnames")["EnableDnsHostnames"]["Value"]
    assert_rerun_is_noop(ctx, Vpc())


def test_vpc_default_security_group_is_emptied_and_kept_empty(world: World) -> None:
    ctx = world.ctx()
    ec2 = world.client("ec2")
    vpc_id = converge(ctx, Vpc())["vpc_id"]
    only = [{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "group-name", "Values": ["default"]}]
    group = ec2.describe_security_groups(Filters=only)["SecurityGroups"][0]
    # AWS's rules (its members reach each other, everything goes out) are gone: nothing eksprivate makes uses it.
    assert group["IpPermissions"] == [] and group["IpPermissionsEgress"] == []
    assert_rerun_is_noop(ctx, Vpc())

    ec2.authorize_security_group_egress(GroupId=group["GroupId"], IpPermissions=[
        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])  # someone put one back
    assert plan_one(ctx, Vpc()).details == [f"remove the rules of the VPC's default security group "
                                            f"{group['GroupId']} (nothing uses it)"]
    outcome, mutating = mutating_during(ctx, lambda: up_one(ctx, Vpc()))
    assert outcome.changes == ["emptied the default security group"]
    assert mutating == ["ec2:RevokeSecurityGroupEgress"]
    assert ec2.describe_security_groups(Filters=only)["SecurityGroups"][0]["IpPermissionsEgress"] == []


def test_vpc_cidr_change_is_reported_not_applied(world: World) -> None:
    converge(world.ctx(), Vpc())
    ctx = world.ctx(vpc_cidr="10.30.0.0/16")
    item = plan_one(ctx, Vpc())
    assert item.action == "none" and len(item.details) == 1 and item.details[0].startswith("! vpc_cidr is 10.20.0.0/16")
    outcome, mutating = mutating_during(ctx, lambda: up_one(ctx, Vpc()))
    assert mutating == [] and outcome.warnings == [item.details[0].removeprefix("! ")]  # said, never applied


# -- subnets ------------------------------------------------------------------------------------------


def test_subnets_lifecycle(world: World) -> None:
    ctx = world.ctx()
    vpc_id = converge(ctx, Vpc())["vpc_id"]
    ec2 = world.client("ec2")

    found = converge(ctx, Subnets())
    parts = found["parts"]
    assert sorted(parts) == AZS
    subnet_ids = [parts[az]["subnet_id"] for az in AZS]
    table_ids = [parts[az]["route_table_id"] for az in AZS]
    recorded = ctx.ledger.ids("subnets")["parts"]
    assert {az: (p["subnet_id"], p["route_table_id"]) for az, p in recorded.items()} == {
        az: (parts[az]["subnet_id"], parts[az]["route_table_id"]) for az in AZS}

    subnets = {s["SubnetId"]: s for s in ec2.describe_subnets(SubnetIds=subnet_ids)["Subnets"]}
    assert len({s["AvailabilityZone"] for s in subnets.values()}) == 3  # three distinct AZs
    expected_cidrs = ctx.settings.subnet_cidrs()
    for az, cidr in zip(AZS, expected_cidrs, strict=True):
        sn = subnets[parts[az]["subnet_id"]]
        assert sn["AvailabilityZone"] == az and sn["CidrBlock"] == cidr and sn["VpcId"] == vpc_id
        assert sn["MapPublicIpOnLaunch"] is False
        tags = ec2_tags(sn)
        assert tags[f"kubernetes.io/cluster/{world.name}"] == "shared"
        assert tags["kubernetes.io/role/internal-elb"] == "1"
        assert tags["eksprivate:cluster"] == world.name
    vpc_net = ipaddress.IPv4Network("10.20.0.0/16")
    assert all(ipaddress.IPv4Network(c).subnet_of(vpc_net) for c in expected_cidrs)

    # One route table per subnet, associated to it, and no route leaves the VPC.
    tables = {t["RouteTableId"]: t for t in ec2.describe_route_tables(RouteTableIds=table_ids)["RouteTables"]}
    for az in AZS:
        table = tables[parts[az]["route_table_id"]]
        assert [a["SubnetId"] for a in table["Associations"] if a.get("SubnetId")] == [parts[az]["subnet_id"]]
    all_tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["RouteTables"]
    for table in all_tables:  # the VPC's main table too
        for route in table["Routes"]:
            assert route.get("DestinationCidrBlock") != "0.0.0.0/0", route
            assert not route.get("GatewayId", "").startswith("igw-") and "NatGatewayId" not in route, route
    assert ec2.describe_nat_gateways(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["NatGateways"] == []

    assert_rerun_is_noop(ctx, Subnets())

    lost = world.ctx(fresh=True)
    adopted = adopt(lost, Vpc(), Subnets())["subnets"]
    assert {az: p["subnet_id"] for az, p in adopted["parts"].items()} == dict(zip(AZS, subnet_ids, strict=True))
    assert_rerun_is_noop(lost, Subnets())

    assert_delete_and_delete_again(ctx, Subnets(), found)
    assert ec2.describe_subnets(Filters=world.tag_filter())["Subnets"] == []
    assert ec2.describe_route_tables(Filters=world.tag_filter())["RouteTables"] == []


def test_subnets_resume_a_half_built_set(world: World) -> None:
    """A run killed after the first subnet: the next one adopts it and makes only what is missing."""
    ctx = world.ctx()
    converge(ctx, Vpc())
    full = converge(ctx, Subnets())
    ec2 = world.client("ec2")
    # Take the last AZ's part away again, as if the run had died before making it.
    last = full["parts"][AZS[2]]
    found = Subnets().find(ctx)
    assert found is not None
    for assoc in found["parts"][AZS[2]]["association_ids"]:
        ec2.disassociate_route_table(AssociationId=assoc)
    ec2.delete_subnet(SubnetId=last["subnet_id"])
    ec2.delete_route_table(RouteTableId=last["route_table_id"])

    half = Subnets().find(ctx)
    assert half is not None and half["incomplete"]
    resumed, mutating = mutating_during(ctx, lambda: converge(ctx, Subnets()))
    assert sorted(mutating) == ["ec2:AssociateRouteTable", "ec2:CreateRouteTable", "ec2:CreateSubnet"]
    for az in AZS[:2]:
        assert resumed["parts"][az]["subnet_id"] == full["parts"][az]["subnet_id"]
    assert len(ec2.describe_subnets(Filters=world.tag_filter())["Subnets"]) == 3
    assert_rerun_is_noop(ctx, Subnets())


def test_subnets_turn_public_ips_back_off(world: World) -> None:
    ctx = world.ctx()
    converge(ctx, Vpc())
    subnet_id = converge(ctx, Subnets())["parts"][AZS[1]]["subnet_id"]
    ec2 = world.client("ec2")
    ec2.modify_subnet_attribute(SubnetId=subnet_id, MapPublicIpOnLaunch={"Value": True})

    assert plan_one(ctx, Subnets()).details == [f"turn off public IPs on launch in {subnet_id}"]
    assert mutating_during(ctx, lambda: up_one(ctx, Subnets()))[1] == ["ec2:ModifySubnetAttribute"]
    assert ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]["MapPublicIpOnLaunch"] is False


def test_subnets_report_a_route_to_the_internet(world: World) -> None:
    """eksprivate never adds a default route, and says so when someone else did (it does not delete it)."""
    ctx = world.ctx()
    vpc_id = converge(ctx, Vpc())["vpc_id"]
    table_id = converge(ctx, Subnets())["parts"][AZS[0]]["route_table_id"]
    ec2 = world.client("ec2")
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)
    ec2.create_route(RouteTableId=table_id, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)

    changes = plan_one(ctx, Subnets()).details
    assert len(changes) == 1 and changes[0].startswith(f"! route table {table_id}") and "0.0.0.0/0" in changes[0]

    ec2.delete_route(RouteTableId=table_id, DestinationCidrBlock="0.0.0.0/0")
    ec2.detach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)
    ec2.delete_internet_gateway(InternetGatewayId=igw)


# -- endpoint security group --------------------------------------------------------------------------


def test_endpoint_security_group_lifecycle(world: World) -> None:
    ctx = world.ctx()
    vpc_id = converge(ctx, Vpc())["vpc_id"]
    ec2 = world.client("ec2")

    found = converge(ctx, EndpointSecurityGroup())
    group_id = found["group_id"]
    assert ctx.ledger.ids("endpoint-sg")["group_id"] == group_id
    group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    assert group["VpcId"] == vpc_id and group["Description"]
    assert ec2_tags(group)["eksprivate:cluster"] == world.name
    # Exactly one rule: TCP 443 from the VPC CIDR, with a description. Nothing else gets in.
    assert len(group["IpPermissions"]) == 1
    rule = group["IpPermissions"][0]
    assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 443, 443)
    assert [r["CidrIp"] for r in rule["IpRanges"]] == ["10.20.0.0/16"]
    assert rule["IpRanges"][0]["Description"]
    assert not rule.get("UserIdGroupPairs") and not rule.get("Ipv6Ranges") and not rule.get("PrefixListIds")
    assert group["IpPermissionsEgress"] == []  # endpoints never start connections

    assert_rerun_is_noop(ctx, EndpointSecurityGroup())

    lost = world.ctx(fresh=True)
    assert adopt(lost, EndpointSecurityGroup())["endpoint-sg"]["group_id"] == group_id
    assert_rerun_is_noop(lost, EndpointSecurityGroup())

    assert_delete_and_delete_again(ctx, EndpointSecurityGroup(), found)
    assert ec2.describe_security_groups(Filters=world.tag_filter())["SecurityGroups"] == []


def test_endpoint_security_group_restores_https_rule(world: World) -> None:
    ctx = world.ctx()
    converge(ctx, Vpc())
    group_id = converge(ctx, EndpointSecurityGroup())["group_id"]
    ec2 = world.client("ec2")
    rule = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]["IpPermissions"]
    ec2.revoke_security_group_ingress(GroupId=group_id, IpPermissions=rule)

    assert plan_one(ctx, EndpointSecurityGroup()).details == ["admit TCP 443 from 10.20.0.0/16"]
    converge(ctx, EndpointSecurityGroup())
    perms = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]["IpPermissions"]
    assert [(p["FromPort"], [r["CidrIp"] for r in p["IpRanges"]]) for p in perms] == [(443, ["10.20.0.0/16"])]
    assert_rerun_is_noop(ctx, EndpointSecurityGroup())
