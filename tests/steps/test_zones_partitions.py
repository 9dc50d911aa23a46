"""Zone IDs EKS refuses, partitions (aws, aws-cn, aws-us-gov), region names botocore may not know, endpoint
service names as the region lists them, and private DNS only where a service offers it."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from eksprivate import endpoint_services, partitions, target
from eksprivate.aws import home_region, is_mutating
from eksprivate.endpoint_services import EndpointService, short_name
from eksprivate.errors import NotFound, UsageError
from eksprivate.sandbox import SandboxServer
from eksprivate.steps import written_policies
from eksprivate.steps.cluster import ClusterAdmins
from eksprivate.steps.endpoints import Endpoints
from eksprivate.steps.iam import ClusterRole, FlowLogsRole, NodeRole
from eksprivate.steps.network import EndpointSecurityGroup, Subnets, Vpc
from eksprivate.zones import EKS_UNSUPPORTED_ZONE_IDS, eks_refuses

from .world import World, build, converge, down_one, plan_one

US_EAST_1 = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
Cli = Callable[..., Any]


def client(stand_in: SandboxServer, service: str, region: str = US_EAST_1) -> Any:
    return boto3.client(service, endpoint_url=stand_in.url, region_name=region, **CREDENTIALS)


def mutating(stand_in: SandboxServer) -> list[str]:
    return [f"{r.service}:{r.operation}" for r in stand_in.calls() if is_mutating(r.operation)]


def refused_in_one_line(result: Any, *says: str) -> str:
    assert result.exception is None, result.exception
    assert result.exit_code == 2, result.stderr
    lines: list[str] = str(result.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for text in says:
        assert text in lines[0], lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    return lines[0]


# -- the restricted zone ID, in the sandbox as in AWS ----------------------------------------------------------

def test_the_naive_choice_of_the_first_three_names_would_meet_a_zone_eks_refuses(stand_in: SandboxServer) -> None:
    """Naive code takes the first three AZ names of us-east-1; in this account (as in many real ones) they
    include use1-az3, and EKS refuses CreateCluster there with UnsupportedAvailabilityZoneException."""
    ec2, eks = client(stand_in, "ec2"), client(stand_in, "eks")
    zones = sorted(ec2.describe_availability_zones()["AvailabilityZones"], key=lambda z: z["ZoneName"])
    first_three = {z["ZoneName"]: z["ZoneId"] for z in zones[:3]}
    assert "use1-az3" in first_three.values()
    assert [z for z, zid in first_three.items() if eks_refuses(US_EAST_1, zid)] == ["us-east-1b"]

    vpc = ec2.create_vpc(CidrBlock="10.91.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.91.{i}.0/24", AvailabilityZone=name)["Subnet"]["SubnetId"]
               for i, name in enumerate(first_three)]
    with pytest.raises(ClientError) as refused:
        eks.create_cluster(name="naive-zones", roleArn="arn:aws:iam::123456789012:role/whatever",
                           resourcesVpcConfig={"subnetIds": subnets})
    error = refused.value.response
    assert error["Error"]["Code"] == "UnsupportedAvailabilityZoneException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "us-east-1b" in error["Error"]["Message"]
    assert "us-east-1b" not in error["validZones"] and "us-east-1a" in error["validZones"]
    for subnet in subnets:
        ec2.delete_subnet(SubnetId=subnet)
    ec2.delete_vpc(VpcId=vpc)


def test_the_restricted_list_is_the_user_guides(stand_in: SandboxServer) -> None:
    """One place, AWS's table: use1-az3, usw1-az2, cac1-az3 (cnn1-az4 is allowed again)."""
    documented = {US_EAST_1: {"use1-az3"}, "us-west-1": {"usw1-az2"}, "ca-central-1": {"cac1-az3"}}
    assert documented == EKS_UNSUPPORTED_ZONE_IDS
    assert not eks_refuses("cn-north-1", "cnn1-az4")
    assert not eks_refuses("us-west-2", "use1-az3")  # zone IDs belong to their region


def test_up_then_down_in_us_east_1_avoids_the_zone_eks_refuses(
        cli: Cli, stand_in: SandboxServer, cluster_name: str, aws_env: Path) -> None:
    """`up` chooses by zone ID: it skips us-east-1b (use1-az3) and says so; naive code would have put a subnet
    there and CreateCluster would have failed. `down` then removes everything."""
    plan = cli("plan", "--name", cluster_name, "--region", US_EAST_1)
    assert plan.exit_code == 0, plan.stderr
    assert "zone skipped: us-east-1b (use1-az3): EKS does not accept control-plane subnets" in plan.stdout
    as_json = json.loads(cli("plan", "--name", cluster_name, "--region", US_EAST_1, "--output", "json").stdout)
    assert as_json["availability_zones"] == ["us-east-1a", "us-east-1c", "us-east-1d"]
    assert {"zone": "us-east-1b", "zone_id": "use1-az3", "reason": as_json["skipped_zones"][0]["reason"]} \
        == as_json["skipped_zones"][0]

    up = cli("up", "--name", cluster_name, "--region", US_EAST_1)
    assert up.exit_code == 0, up.stderr
    assert "zone skipped: us-east-1b (use1-az3)" in up.stderr
    ec2 = client(stand_in, "ec2")
    tagged = [{"Name": "tag:eksprivate:cluster", "Values": [cluster_name]}]
    subnets = ec2.describe_subnets(Filters=tagged)["Subnets"]
    assert sorted(s["AvailabilityZoneId"] for s in subnets) == ["use1-az2", "use1-az4", "use1-az6"]
    assert client(stand_in, "eks").describe_cluster(name=cluster_name)["cluster"]["status"] == "ACTIVE"

    down = cli("down", "--name", cluster_name, "--region", US_EAST_1, "--yes")
    assert down.exit_code == 0, down.stderr
    assert ec2.describe_subnets(Filters=tagged)["Subnets"] == []
    assert not (aws_env / "state" / f"{cluster_name}-{US_EAST_1}.json").exists()


@pytest.mark.parametrize("named", ["us-east-1b", "use1-az3"])
def test_an_explicit_zone_eks_refuses_is_refused_before_anything_is_created(
        cli: Cli, stand_in: SandboxServer, cluster_name: str, aws_env: Path, named: str) -> None:
    """Naive code would create the VPC and subnets, and fail at CreateCluster minutes later."""
    config = aws_env / "eksprivate.toml"
    config.write_text(f'availability_zones = ["us-east-1a", "{named}", "us-east-1c"]\n')
    stand_in.clear_calls()
    line = refused_in_one_line(cli("up", "--name", cluster_name, "--region", US_EAST_1, "--config", str(config)),
                               "us-east-1b (use1-az3)", "EKS does not accept control-plane subnets")
    assert "choose others: us-east-1a (use1-az6)" in line
    assert mutating(stand_in) == []
    assert not (aws_env / "state").exists() or list((aws_env / "state").glob("*.json")) == []


def test_explicit_zones_may_be_zone_ids(cli: Cli, cluster_name: str, aws_env: Path) -> None:
    """Zone IDs name the same physical zone in every account; they are mapped to this account's names."""
    config = aws_env / "eksprivate.toml"
    config.write_text('availability_zones = ["use1-az6", "use1-az2", "us-east-1d"]\n')
    plan = cli("plan", "--name", cluster_name, "--region", US_EAST_1, "--config", str(config), "--output", "json")
    assert plan.exit_code == 0, plan.stderr
    assert json.loads(plan.stdout)["availability_zones"] == ["us-east-1a", "us-east-1c", "us-east-1d"]
    config.write_text('availability_zones = ["use1-az6", "us-east-1a"]\n')
    refused_in_one_line(cli("plan", "--name", cluster_name, "--region", US_EAST_1, "--config", str(config)),
                        "names us-east-1a (use1-az6) twice")


def test_zones_that_are_not_availability_zones_are_skipped() -> None:
    from eksprivate.zones import why_unusable

    local = {"ZoneName": "us-west-2-lax-1a", "ZoneId": "usw2-lax1-az1", "ZoneType": "local-zone", "State": "available"}
    assert "local-zone, not an Availability Zone" in str(why_unusable("us-west-2", local))
    wavelength = {**local, "ZoneType": "wavelength-zone"}
    assert "wavelength-zone" in str(why_unusable("us-west-2", wavelength))
    assert why_unusable("us-west-2", {**local, "ZoneType": "availability-zone"}) is None


# -- regions ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["eu_central_1", "central", "EU-CENTRAL-1", "eu-central-", "../etc"])
def test_a_region_that_is_not_a_region_name_is_refused_without_a_call(
        cli: Cli, stand_in: SandboxServer, cluster_name: str, bad: str) -> None:
    stand_in.clear_calls()
    refused_in_one_line(cli("plan", "--name", cluster_name, "--region", bad), f"unknown region {bad!r}")
    assert stand_in.calls() == []


@pytest.fixture
def old_botocore(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An installed botocore that knows no region at all: every region is "newer" than it."""
    monkeypatch.setattr(target, "known_regions", lambda: [])
    yield


def test_a_region_botocore_does_not_know_is_asked_of_aws(
        cli: Cli, stand_in: SandboxServer, cluster_name: str, old_botocore: None) -> None:
    """The old code refused any region missing from botocore's data; a region newer than botocore must work
    when the account has it (DescribeRegions from the partition's home region says so)."""
    stand_in.clear_calls()
    plan = cli("plan", "--name", cluster_name, "--region", "eu-central-1")
    assert plan.exit_code == 0, plan.stderr
    assert ("ec2", "DescribeRegions") in [(r.service, r.operation) for r in stand_in.calls()]
    refused_in_one_line(cli("plan", "--name", cluster_name, "--region", "eu-middle-9"),
                        "unknown region 'eu-middle-9'", "has no such region")
    refused_in_one_line(cli("plan", "--name", cluster_name, "--region", "ap-east-1"),
                        "region 'ap-east-1' is not enabled for this account")


@pytest.mark.parametrize("region", ["eu-central-1", "cn-north-1", "us-gov-west-1"])
def test_a_region_botocore_knows_costs_no_call(cli: Cli, stand_in: SandboxServer, cluster_name: str,
                                               region: str) -> None:
    stand_in.clear_calls()
    assert cli("status", "--name", cluster_name, "--region", region).exit_code == 0
    assert "DescribeRegions" not in [r.operation for r in stand_in.calls()]


def test_home_region_per_partition() -> None:
    assert home_region("eu-middle-9") == "us-east-1"
    assert home_region("cn-south-7") == "cn-northwest-1"
    assert home_region("us-gov-north-3") == "us-gov-west-1"


# -- partitions ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "suffix", "ec2_principal"), [
    ("aws", "amazonaws.com", "ec2.amazonaws.com"),
    ("aws-cn", "amazonaws.com.cn", "ec2.amazonaws.com.cn"),
    ("aws-us-gov", "amazonaws.com", "ec2.amazonaws.com"),
])
def test_partition_arns_and_principals(name: str, suffix: str, ec2_principal: str) -> None:
    part = partitions.of_arn(f"arn:{name}:sts::123456789012:assumed-role/dev/me")
    assert part == partitions.Partition(name, suffix)
    assert part.managed_policy("AmazonEKSClusterPolicy") == f"arn:{name}:iam::aws:policy/AmazonEKSClusterPolicy"
    assert part.arn("logs", "r-1", "123456789012", "log-group:/x") == f"arn:{name}:logs:r-1:123456789012:log-group:/x"
    assert part.principal("ec2") == ec2_principal
    assert part.principal("eks") == "eks.amazonaws.com"  # the same in every partition (eksctl, EKS guide)
    assert part.principal("vpc-flow-logs") == "vpc-flow-logs.amazonaws.com"


@pytest.mark.parametrize("name", ["aws", "aws-cn", "aws-us-gov"])
def test_every_arn_and_principal_eksprivate_writes_follows_the_partition(world: World, name: str) -> None:
    """The old code guessed the partition from the region prefix and hard-coded `ec2.amazonaws.com`."""
    ctx = dataclasses.replace(world.ctx(), partition=partitions.named(name))
    assert ClusterRole().policies(ctx) == [f"arn:{name}:iam::aws:policy/AmazonEKSClusterPolicy"]
    assert all(p.startswith(f"arn:{name}:iam::aws:policy/") for p in NodeRole().policies(ctx))
    assert ClusterAdmins().policy_arn(ctx) == f"arn:{name}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
    inline = FlowLogsRole().inline_policy(ctx)
    assert inline is not None and inline["Statement"][0]["Resource"][0].startswith(f"arn:{name}:logs:")
    trusts = {p.role_key: p.document["Statement"][0] for p in written_policies(ctx) if p.kind == "trust"}
    assert trusts["node-role"]["Principal"] == {"Service": partitions.named(name).principal("ec2")}
    assert trusts["cluster-role"]["Principal"] == {"Service": "eks.amazonaws.com"}
    text = json.dumps([p.document for p in written_policies(ctx)])
    assert "arn:aws:" not in text or name == "aws"


@pytest.mark.parametrize(("region", "partition"), [("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov"),
                                                   ("eu-central-1", "aws")])
def test_the_context_takes_the_partition_from_the_caller_arn(aws_env: Path, region: str, partition: str) -> None:
    ctx = target.open_context(target.Options(name="partition-probe", region=region), mutate=False, need_azs=False)
    assert ctx.partition.name == partition


# -- endpoint service names and private DNS ---------------------------------------------------------------------

class ListingAws:
    """Just enough of `Aws` for `endpoint_services.resolve`: a fixed DescribeVpcEndpointServices listing."""

    def __init__(self, details: list[dict[str, Any]]) -> None:
        self.details = details
        self.ec2 = self
        self.asked: list[list[str] | None] = []  # the ServiceNames of each call (None: the whole listing)

    def paginate(self, operation: str, key: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        assert (operation, key) == ("describe_vpc_endpoint_services", "ServiceDetails")
        names = kwargs.get("ServiceNames")
        self.asked.append(names)
        if names is None:
            yield from self.details
            return
        # As EC2 does: one name it does not list refuses the whole call (InvalidServiceName).
        listed = {d["ServiceName"] for d in self.details}
        if set(names) - listed:
            raise NotFound("ec2", "DescribeVpcEndpointServices", "InvalidServiceName",
                           f"The Vpc Endpoint Service '{sorted(set(names) - listed)[0]}' does not exist")
        yield from (d for d in self.details if d["ServiceName"] in names)


def detail(name: str, kind: str = "Interface", dns: str | None = "x.example") -> dict[str, Any]:
    entry: dict[str, Any] = {"ServiceName": name, "ServiceType": [{"ServiceType": kind}], "Owner": "amazon",
                             "AvailabilityZones": ["z-a", "z-b"]}
    if dns:
        entry["PrivateDnsName"] = dns
    return entry


@pytest.mark.parametrize(("region", "prefix"), [("eu-central-1", "com.amazonaws"), ("cn-north-1", "cn.com.amazonaws"),
                                                ("cn-northwest-1", "com.amazonaws"),
                                                ("us-gov-west-1", "com.amazonaws")])
def test_endpoint_service_names_come_from_the_region_listing(region: str, prefix: str) -> None:
    """Naive code builds `com.amazonaws.<region>.<svc>`, which is not every China service's name."""
    listing = [detail(f"{prefix}.{region}.ecr.api"), detail(f"{prefix}.{region}.s3", "Gateway", None),
               detail(f"{prefix}.{region}.s3", "Interface"), detail(f"com.amazonaws.{region}.ecr.api.fips"),
               detail(f"aws.sagemaker.{region}.notebook"), detail("com.amazonaws.eu-west-1.sts")]
    aws = ListingAws(listing)
    got = endpoint_services.resolve(aws, region, {"ecr.api": "Interface", "s3": "Gateway"})  # type: ignore[arg-type]
    # By exact name first (a few kB); the whole listing only when AWS refuses one (China's cn.com prefix).
    assert aws.asked[0] == [f"com.amazonaws.{region}.ecr.api", f"com.amazonaws.{region}.s3"]
    assert len(aws.asked) == (1 if prefix == "com.amazonaws" else 2) and aws.asked[-1] == (
        aws.asked[0] if prefix == "com.amazonaws" else None)
    assert got["ecr.api"] == EndpointService("ecr.api", f"{prefix}.{region}.ecr.api", ("Interface",), ("z-a", "z-b"),
                                             True)
    assert got["s3"].name == f"{prefix}.{region}.s3" and got["s3"].types == ("Gateway", "Interface")
    assert got["s3"].private_dns is False  # the Gateway entry's, the type asked for
    assert short_name(f"cn.com.amazonaws.{region}.ecr.dkr", region) == "ecr.dkr"
    with pytest.raises(UsageError, match="sts is not a VPC endpoint service"):
        endpoint_services.resolve(ListingAws(listing), region, {"sts": "Interface"})  # type: ignore[arg-type]


def test_private_dns_only_where_the_service_offers_a_private_dns_name(world: World) -> None:
    """iot.data lists no private DNS name (as AWS IoT's data endpoint): AWS refuses PrivateDnsEnabled there, so
    naive code (private DNS on every interface endpoint) fails; its endpoint gets none, the others get it."""
    ctx = world.ctx(endpoints=["iot.data"])
    net = build(ctx, Vpc(), Subnets(), EndpointSecurityGroup())
    ec2 = world.client("ec2")
    naive = dict(VpcEndpointType="Interface", VpcId=net["vpc"]["vpc_id"],
                 ServiceName="com.amazonaws.eu-central-1.iot.data", SubnetIds=[p["subnet_id"] for p in
                                                                               net["subnets"]["parts"].values()],
                 SecurityGroupIds=[net["endpoint-sg"]["group_id"]], PrivateDnsEnabled=True)
    with pytest.raises(ClientError, match="does not provide a private DNS name"):
        ec2.create_vpc_endpoint(**naive)

    found = converge(ctx, Endpoints())
    assert found["endpoints"]["iot.data"]["private_dns"] is False
    live = {e["ServiceName"].rsplit("eu-central-1.", 1)[1]: e for e in ec2.describe_vpc_endpoints(
        Filters=world.tag_filter())["VpcEndpoints"] if e["State"].lower() not in ("deleted", "deleting")}
    assert live["iot.data"]["PrivateDnsEnabled"] is False
    assert all(live[s]["PrivateDnsEnabled"] for s in ("ec2", "ecr.api", "ecr.dkr", "sts", "logs"))
    again = Endpoints()
    assert plan_one(ctx, again).details == []  # not "turn on private DNS" forever
    assert down_one(ctx, again).phase == "deleted"
