"""Endpoints: the nodes' only way to AWS APIs (interface endpoints with private DNS in every subnet) and
to S3 (the gateway endpoint on every route table)."""

from __future__ import annotations

from typing import Any

from eksprivate.steps.endpoints import Endpoints
from eksprivate.steps.network import EndpointSecurityGroup, Subnets, Vpc

from .world import (
    ACCOUNT,
    AZS,
    REGION,
    World,
    adopt,
    assert_delete_and_delete_again,
    assert_recorded,
    assert_rerun_is_noop,
    build,
    converge,
    ec2_tags,
    mutating_during,
    plan_one,
    requests_to,
    up_one,
)

REQUIRED = ["ec2", "ecr.api", "ecr.dkr", "sts", "logs", "eks-auth"]  # eks-auth: the default Pod Identity add-on
EXTRAS = ["ssm", "elasticloadbalancing"]


def network(world: World, **overrides: Any) -> tuple[Any, dict[str, Any]]:
    ctx = world.ctx(**overrides)
    return ctx, build(ctx, Vpc(), Subnets(), EndpointSecurityGroup())


def by_service(world: World) -> dict[str, dict[str, Any]]:
    eps = world.client("ec2").describe_vpc_endpoints(Filters=world.tag_filter())["VpcEndpoints"]
    live = [e for e in eps if e["State"].lower() not in ("deleted", "deleting")]
    out = {e["ServiceName"].removeprefix(f"com.amazonaws.{REGION}."): e for e in live}
    assert len(out) == len(live), "two endpoints for one service"
    return out


def test_endpoints_lifecycle(world: World) -> None:
    ctx, net = network(world, endpoints=EXTRAS)
    subnet_ids = sorted(p["subnet_id"] for p in net["subnets"]["parts"].values())
    table_ids = sorted(p["route_table_id"] for p in net["subnets"]["parts"].values())
    group_id = net["endpoint-sg"]["group_id"]

    found = converge(ctx, Endpoints())
    assert sorted(found["endpoints"]) == sorted([*REQUIRED, *EXTRAS, "s3"])
    assert all(e["state"] == "available" for e in found["endpoints"].values())

    live = by_service(world)
    assert sorted(live) == sorted([*REQUIRED, *EXTRAS, "s3"])
    for svc in [*REQUIRED, *EXTRAS]:
        ep = live[svc]
        assert ep["VpcEndpointType"] == "Interface", svc
        assert ep["PrivateDnsEnabled"] is True, svc
        assert sorted(ep["SubnetIds"]) == subnet_ids, svc  # one ENI in every node subnet
        assert [g["GroupId"] for g in ep["Groups"]] == [group_id], svc
        assert ep["State"] == "available"
        assert ec2_tags(ep)["eksprivate:cluster"] == world.name
        assert_recorded(ctx, f"endpoints/{svc}", endpoint_id=ep["VpcEndpointId"])
    s3 = live["s3"]
    assert s3["VpcEndpointType"] == "Gateway"
    assert sorted(s3["RouteTableIds"]) == table_ids  # image layers come from S3 through every route table

    assert_rerun_is_noop(ctx, Endpoints())

    lost = world.ctx(fresh=True, endpoints=EXTRAS)
    adopted = adopt(lost, Vpc(), Subnets(), EndpointSecurityGroup(), Endpoints())["endpoints"]
    assert {s: e["endpoint_id"] for s, e in adopted["endpoints"].items()} == {
        s: e["VpcEndpointId"] for s, e in live.items()}
    assert_rerun_is_noop(lost, Endpoints())

    assert_delete_and_delete_again(ctx, Endpoints(), found)
    assert by_service(world) == {}


def test_endpoints_rerun_adds_a_new_extra_and_nothing_else(world: World) -> None:
    ctx, _ = network(world)
    before = {s: e["endpoint_id"] for s, e in converge(ctx, Endpoints())["endpoints"].items()}

    more = world.ctx(endpoints=["ssm"])
    found = Endpoints().find(more)
    assert found is not None and found["incomplete"]
    after, mutating = mutating_during(more, lambda: converge(more, Endpoints()))
    assert mutating == ["ec2:CreateVpcEndpoint"]
    ids = {s: e["endpoint_id"] for s, e in after["endpoints"].items()}
    assert {s: ids[s] for s in before} == before and "ssm" in ids
    assert_rerun_is_noop(more, Endpoints())


def test_endpoints_repair_a_missing_subnet(world: World) -> None:
    ctx, net = network(world)
    converge(ctx, Endpoints())
    ec2 = world.client("ec2")
    sts = by_service(world)["sts"]
    dropped = net["subnets"]["parts"][AZS[2]]["subnet_id"]
    ec2.modify_vpc_endpoint(VpcEndpointId=sts["VpcEndpointId"], RemoveSubnetIds=[dropped])

    assert plan_one(ctx, Endpoints()).details == [f"add subnets ['{dropped}'] to endpoint sts"]
    assert mutating_during(ctx, lambda: converge(ctx, Endpoints()))[1] == ["ec2:ModifyVpcEndpoint"]
    assert dropped in by_service(world)["sts"]["SubnetIds"]
    assert_rerun_is_noop(ctx, Endpoints())


def test_endpoints_turn_private_dns_back_on(world: World) -> None:
    from moto.ec2.models import ec2_backends

    ctx, _ = network(world)
    converge(ctx, Endpoints())
    sts_id = by_service(world)["sts"]["VpcEndpointId"]
    # moto's ModifyVpcEndpoint ignores PrivateDnsEnabled: switch it off in the fake, check the request.
    endpoint = ec2_backends[ACCOUNT][REGION].vpc_end_points[sts_id]
    endpoint.private_dns_enabled = False
    try:
        assert plan_one(ctx, Endpoints()).details == ["turn on private DNS for endpoint sts"]
        sent = requests_to(ctx, "ec2", "ModifyVpcEndpoint")
        assert up_one(ctx, Endpoints()).changes == ["updated endpoint sts: PrivateDnsEnabled"]
        assert sent == [{"VpcEndpointId": sts_id, "PrivateDnsEnabled": True}]
    finally:
        endpoint.private_dns_enabled = True


def test_endpoint_not_in_the_config_is_kept_unless_pruned(world: World) -> None:
    ctx, _ = network(world, endpoints=["ssm"])
    converge(ctx, Endpoints())

    fewer = world.ctx()
    assert next(c for c in plan_one(fewer, Endpoints()).details if "ssm" in c).startswith("! not in the config")
    assert mutating_during(fewer, lambda: up_one(fewer, Endpoints()))[1] == []

    pruning = world.ctx()
    pruning.prune = True
    found = Endpoints().find(pruning)
    assert found is not None
    assert Endpoints().update(pruning, found) == ["deleted endpoint ssm"]
    assert "ssm" not in by_service(world)
