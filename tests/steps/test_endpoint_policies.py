"""The endpoints' policies through the real engine on the sandbox: the perimeter written at creation, shown by
`plan`, changed in place with ModifyVpcEndpoint (never a new endpoint), reset to AWS's default for "open", a
rerun making no call although AWS answers every policy reformatted; a network team's open endpoint said, never
changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eksprivate import perimeter
from eksprivate.steps.endpoints import Endpoints, wanted_policy
from eksprivate.steps.network import EndpointSecurityGroup, Subnets, Vpc
from eksprivate.steps.used_network import USED_KEY

from .world import (
    REGION,
    World,
    assert_rerun_is_noop,
    build,
    converge,
    graph_step,
    mutating_during,
    needed_by,
    plan_one,
    requests_to,
    run,
    up_one,
)

CENTRAL = "210987654321"


def live(world: World) -> dict[str, dict[str, Any]]:
    eps = world.client("ec2").describe_vpc_endpoints(Filters=world.tag_filter())["VpcEndpoints"]
    return {e["ServiceName"].removeprefix(f"com.amazonaws.{REGION}."): e for e in eps
            if e["State"].lower() not in ("deleted", "deleting")}


def test_the_perimeter_is_written_at_creation_and_a_rerun_changes_nothing(world: World) -> None:
    ctx = world.ctx()
    build(ctx, Vpc(), Subnets(), EndpointSecurityGroup())
    details = plan_one(ctx, Endpoints()).details
    assert "s3 policy (perimeter):" in details and "ecr.dkr policy (perimeter):" in details
    assert any("EcrImageLayers: s3:GetObject on arn:aws:s3:::prod-eu-central-1-starport-layer-bucket/*" in line
               for line in details)
    sent = requests_to(ctx, "ec2", "CreateVpcEndpoint")
    converge(ctx, Endpoints())
    endpoints = live(world)
    assert {r["ServiceName"].rsplit(".", 1)[-1] for r in sent if "PolicyDocument" in r} >= {"s3", "dkr", "api", "sts"}
    for svc, ep in endpoints.items():
        wanted, source = wanted_policy(ctx, svc)
        assert source == "perimeter" and wanted is not None
        # AWS answers the policy reformatted (the sandbox too): equal as documents, not as text.
        assert ep["PolicyDocument"] != wanted and json.loads(ep["PolicyDocument"]) == json.loads(wanted), svc
        assert perimeter.openings(ep["PolicyDocument"], svc, ctx.account, ctx.partition, REGION) == [], svc
    assert_rerun_is_noop(ctx, Endpoints())


def test_a_wider_perimeter_is_planned_as_a_diff_and_applied_in_place(world: World) -> None:
    ctx = world.ctx()
    build(ctx, Vpc(), Subnets(), EndpointSecurityGroup())
    converge(ctx, Endpoints())
    before = {svc: ep["VpcEndpointId"] for svc, ep in live(world).items()}

    wider = world.ctx(trusted_accounts=[CENTRAL])
    plan = plan_one(wider, Endpoints())
    assert plan.action == "update"
    assert "set the s3 endpoint policy (perimeter)" in plan.details
    assert any(line.startswith("+") and CENTRAL in line for line in plan.details)
    outcome, calls = mutating_during(wider, lambda: up_one(wider, Endpoints()))
    assert set(calls) == {"ec2:ModifyVpcEndpoint"} and len(calls) == len(before)  # one call each, no replacement
    assert "updated endpoint s3: PolicyDocument" in outcome.changes
    after = live(world)
    assert {svc: ep["VpcEndpointId"] for svc, ep in after.items()} == before
    assert CENTRAL in json.dumps(json.loads(after["ecr.dkr"]["PolicyDocument"]))
    assert_rerun_is_noop(wider, Endpoints())


def test_open_resets_every_policy_to_aws_default_and_perimeter_sets_it_again(world: World) -> None:
    ctx = world.ctx()
    build(ctx, Vpc(), Subnets(), EndpointSecurityGroup())
    converge(ctx, Endpoints())

    opened = world.ctx(endpoint_policies="open")
    assert "reset the sts endpoint policy to AWS's full-access default" in plan_one(opened, Endpoints()).details
    sent = requests_to(opened, "ec2", "ModifyVpcEndpoint")
    up_one(opened, Endpoints())
    assert sent and all(r.get("ResetPolicy") is True and "PolicyDocument" not in r for r in sent)
    assert all(perimeter.is_full_access(ep["PolicyDocument"]) for ep in live(world).values())
    assert_rerun_is_noop(opened, Endpoints())

    up_one(world.ctx(), Endpoints())
    assert not any(perimeter.is_full_access(ep["PolicyDocument"]) for ep in live(world).values())


def test_an_open_cluster_is_created_with_aws_default(world: World) -> None:
    ctx = world.ctx(endpoint_policies="open")
    build(ctx, Vpc(), Subnets(), EndpointSecurityGroup())
    sent = requests_to(ctx, "ec2", "CreateVpcEndpoint")
    converge(ctx, Endpoints())
    assert sent and not any("PolicyDocument" in r for r in sent)
    assert_rerun_is_noop(ctx, Endpoints())


def test_a_users_policy_file_replaces_one_service_policy(world: World, tmp_path: Path) -> None:
    own = {"Version": "2012-10-17", "Statement": [{"Sid": "OnlyOurLogs", "Effect": "Allow", "Principal": "*",
                                                   "Action": "logs:*", "Resource": "*", "Condition": {
                                                       "StringEquals": {"aws:PrincipalAccount": "123456789012"}}}]}
    path = tmp_path / "logs.json"
    path.write_text(json.dumps(own))
    ctx = world.ctx(endpoint_policy_files={"logs": str(path)})
    build(ctx, Vpc(), Subnets(), EndpointSecurityGroup())
    assert "logs policy (your file):" in plan_one(ctx, Endpoints()).details
    converge(ctx, Endpoints())
    assert json.loads(live(world)["logs"]["PolicyDocument"]) == own
    assert_rerun_is_noop(ctx, Endpoints())


def test_a_network_teams_open_endpoint_is_said_and_never_changed(world: World) -> None:
    """With vpc_id, the team's sts endpoint (AWS's default policy) is reused: plan and up say it is open, and
    nothing is sent to it. eksprivate's own endpoints in that VPC get the perimeter."""
    ec2 = world.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.61.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.61.{i}.0/24", AvailabilityZone=az)["Subnet"]["SubnetId"]
               for i, az in enumerate(["eu-central-1a", "eu-central-1b", "eu-central-1c"])]
    group = ec2.create_security_group(GroupName=f"team-{world.name[-8:]}", VpcId=vpc, Description="team")["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.61.0.0/16"}]}])
    team_sts = ec2.create_vpc_endpoint(VpcEndpointType="Interface", VpcId=vpc, SubnetIds=subnets,
                                       ServiceName=f"com.amazonaws.{REGION}.sts", SecurityGroupIds=[group],
                                       PrivateDnsEnabled=True)["VpcEndpoint"]["VpcEndpointId"]
    before = ec2.describe_vpc_endpoints(VpcEndpointIds=[team_sts])["VpcEndpoints"][0]["PolicyDocument"]

    ctx = world.ctx(vpc_id=vpc, subnet_ids=subnets)
    build(ctx, *needed_by(ctx, USED_KEY))
    used = graph_step(ctx, USED_KEY)
    details = plan_one(ctx, used).details
    assert len(details) == 1 and details[0].startswith(f"! the VPC's sts endpoint {team_sts} is open: accepts "
                                                       "principals of any account")
    assert "never changed" in details[0]
    sent = requests_to(ctx, "ec2", "ModifyVpcEndpoint")
    (outcome,) = run(ctx, [used])
    assert any(team_sts in w for w in outcome.warnings)
    endpoints = graph_step(ctx, "endpoints")
    build(ctx, *needed_by(ctx, "endpoints"))
    build(ctx, endpoints)
    assert all(r["VpcEndpointId"] != team_sts for r in sent)
    assert ec2.describe_vpc_endpoints(VpcEndpointIds=[team_sts])["VpcEndpoints"][0]["PolicyDocument"] == before
    ours = live(world)
    assert "sts" not in ours and not perimeter.is_full_access(ours["ecr.api"]["PolicyDocument"])
    assert_rerun_is_noop(ctx, endpoints)
