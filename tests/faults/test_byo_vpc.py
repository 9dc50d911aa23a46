"""Bring your own VPC: a network team's VPC, subnets, route table and `sts` endpoint (private DNS), made by
hand. `up` uses them, reuses the endpoint, creates only what is missing; `down` leaves every one of them
exactly as it was — also after the state is lost. Bad networks are refused before anything is created."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from eksprivate.sandbox import SandboxServer

from .helpers import REGION, Cli, inventory, mutating_calls, refused_on_input

AZS = ("eu-central-1a", "eu-central-1b", "eu-central-1c")


@dataclass
class Network:
    """What the network team made: nothing of it carries eksprivate's tags."""

    ec2: Any
    vpc_id: str
    subnet_ids: list[str]
    route_table_id: str
    group_id: str
    sts_endpoint: str

    def snapshot(self) -> dict[str, Any]:
        """Everything about the team's resources that eksprivate must leave as it found it (free address
        counts aside: the cluster's interfaces use addresses while it exists)."""
        ec2 = self.ec2
        vpc = ec2.describe_vpcs(VpcIds=[self.vpc_id])["Vpcs"][0]
        attributes = {a: ec2.describe_vpc_attribute(VpcId=self.vpc_id, Attribute=a)[a[0].upper() + a[1:]]
                      for a in ("enableDnsSupport", "enableDnsHostnames")}
        subnets = [{k: v for k, v in sn.items() if k != "AvailableIpAddressCount"}
                   for sn in ec2.describe_subnets(SubnetIds=self.subnet_ids)["Subnets"]]
        table = ec2.describe_route_tables(RouteTableIds=[self.route_table_id])["RouteTables"][0]
        group = ec2.describe_security_groups(GroupIds=[self.group_id])["SecurityGroups"][0]
        endpoint = ec2.describe_vpc_endpoints(VpcEndpointIds=[self.sts_endpoint])["VpcEndpoints"][0]
        return json.loads(json.dumps({"vpc": vpc, "attributes": attributes, "subnets": subnets, "table": table,
                                      "group": group, "endpoint": endpoint}, default=str))


def _build(url: str, *, dns_hostnames: bool = True, internet: bool = False, endpoint_443: bool = True,
           azs: tuple[str, ...] = AZS, prefix: int = 24, s3_gateway: bool = False) -> Network:
    ec2 = boto3.client("ec2", endpoint_url=url, region_name=REGION, aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    team = [{"ResourceType": "vpc", "Tags": [{"Key": "owner", "Value": "network-team"}]}]
    vpc_id = ec2.create_vpc(CidrBlock="10.50.0.0/16", TagSpecifications=team)["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": True})
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": dns_hostnames})
    subnets = [ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.50.{i}.0/{prefix}",
                                 AvailabilityZone=az)["Subnet"]["SubnetId"] for i, az in enumerate(azs, start=1)]
    table = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    for subnet in subnets:
        ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
    if internet:
        igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)
        ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    group = ec2.create_security_group(GroupName=f"team-endpoints-{uuid.uuid4().hex[:6]}", VpcId=vpc_id,
                                      Description="the network team's endpoints")["GroupId"]
    source = "10.50.0.0/16" if endpoint_443 else "10.99.0.0/16"
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": source}]}])
    sts = ec2.create_vpc_endpoint(VpcEndpointType="Interface", VpcId=vpc_id, ServiceName=f"com.amazonaws.{REGION}.sts",
                                  SubnetIds=subnets, SecurityGroupIds=[group], PrivateDnsEnabled=True)["VpcEndpoint"]
    if s3_gateway:
        ec2.create_vpc_endpoint(VpcEndpointType="Gateway", VpcId=vpc_id, ServiceName=f"com.amazonaws.{REGION}.s3",
                                RouteTableIds=[table])
    # A team's endpoint is in service before anyone builds on it (and a snapshot taken while it is still
    # `pending` would differ from one taken later for no fault of eksprivate's): wait on the scaled clock.
    for _ in range(2000):
        if ec2.describe_vpc_endpoints(VpcEndpointIds=[sts["VpcEndpointId"]])["VpcEndpoints"][0]["State"] == "available":
            break
        time.sleep(0.005)
    else:
        raise AssertionError(f"the team's sts endpoint {sts['VpcEndpointId']} never became available")
    return Network(ec2, vpc_id, subnets, table, group, sts["VpcEndpointId"])


# The cluster on the team's network need not be a default one for what these tests check (what is made or
# used in the network, and left as found): one node group, no flow logs (and no KMS key where `verify` is not
# asked), a fifth fewer calls than a default `up` and `down`.
LEAN = "flow_logs = false\nper_az = false\n"
LEANER = LEAN + "secrets_encryption = false\n"


@pytest.fixture
def network(stand_in: SandboxServer) -> Network:
    return _build(stand_in.url)


def _config(folder: Path, net: Network, extra: str = "") -> str:
    path = folder / f"byo-{uuid.uuid4().hex[:6]}.toml"
    path.write_text(f'vpc_id = "{net.vpc_id}"\nsubnet_ids = {json.dumps(net.subnet_ids)}\n{extra}')
    return str(path)


def _ours(net: Network, name: str) -> dict[str, str]:
    """The endpoints in the team's VPC that eksprivate made for cluster `name` (service → id)."""
    eps = net.ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [net.vpc_id]},
                                                  {"Name": "tag:eksprivate:cluster", "Values": [name]}])["VpcEndpoints"]
    return {e["ServiceName"].rsplit(".", 1)[-1] if "ecr" not in e["ServiceName"] else e["ServiceName"].split(
        f"{REGION}.", 1)[1]: e["VpcEndpointId"] for e in eps if e["State"] not in ("deleted", "deleting")}


def test_the_sandbox_refuses_a_second_private_dns_endpoint_like_aws(network: Network) -> None:
    """Naive code (create every endpoint it wants) would meet this refusal in a team's VPC."""
    with pytest.raises(ClientError) as refused:
        network.ec2.create_vpc_endpoint(VpcEndpointType="Interface", VpcId=network.vpc_id,
                                        ServiceName=f"com.amazonaws.{REGION}.sts", SubnetIds=network.subnet_ids[:1],
                                        PrivateDnsEnabled=True)
    error = refused.value.response["Error"]
    assert error["Code"] == "InvalidParameter" and "conflicting DNS domain for sts.eu-central-1.amazonaws.com" in \
        error["Message"]
    # Without private DNS it is allowed (it has no DNS name to clash with).
    other = network.ec2.create_vpc_endpoint(VpcEndpointType="Interface", VpcId=network.vpc_id,
                                            ServiceName=f"com.amazonaws.{REGION}.sts",
                                            SubnetIds=network.subnet_ids[:1], PrivateDnsEnabled=False)
    network.ec2.delete_vpc_endpoints(VpcEndpointIds=[other["VpcEndpoint"]["VpcEndpointId"]])


def test_up_uses_the_teams_network_and_down_leaves_it_exactly_as_it_was(
        cli: Cli, aws_env: Path, stand_in: SandboxServer, network: Network, cluster_name: str) -> None:
    before = network.snapshot()
    config = _config(aws_env, network, LEAN)
    built = cli("up", "--name", cluster_name, "--region", REGION, "--config", config)
    assert built.exit_code == 0, built.stderr

    # Made: the missing endpoints only (sts is the team's), the S3 gateway on the team's route table.
    ours = _ours(network, cluster_name)
    # eks-auth: the Pod Identity agent add-on (a default) needs it.
    assert sorted(ours) == ["ec2", "ecr.api", "ecr.dkr", "eks-auth", "logs", "s3"]
    gateway = network.ec2.describe_vpc_endpoints(VpcEndpointIds=[ours["s3"]])["VpcEndpoints"][0]
    assert gateway["RouteTableIds"] == [network.route_table_id]
    tagged = {"Name": "tag:eksprivate:cluster", "Values": [cluster_name]}
    assert network.ec2.describe_vpcs(Filters=[tagged])["Vpcs"] == []
    assert network.ec2.describe_subnets(Filters=[tagged])["Subnets"] == []

    # The state says what was made and what is used.
    steps = json.loads((aws_env / "state" / f"{cluster_name}-{REGION}.json").read_text())["steps"]
    assert steps["vpc"]["ids"] == {"vpc_id": network.vpc_id, "cidr": "10.50.0.0/16", "uses": True}
    assert steps["subnets"]["ids"]["uses"] is True
    assert steps["endpoints-used"]["ids"]["endpoint_ids"] == {"sts": network.sts_endpoint}
    assert "sts" not in steps["endpoints"]["ids"]["endpoint_ids"]

    # A rerun changes nothing; plan --destroy lists what down deletes and what it keeps.
    assert cli("up", "--name", cluster_name, "--region", REGION, "--config", config).exit_code == 0
    plan = cli("plan", "--destroy", "--name", cluster_name, "--region", REGION, "--config", config, "-o", "json")
    assert plan.exit_code == 0, plan.stderr
    actions = {s["key"]: s["action"] for s in json.loads(plan.stdout)["steps"]}
    assert actions["vpc"] == actions["subnets"] == actions["endpoints-used"] == "keep"
    assert actions["endpoints"] == actions["endpoint-sg"] == actions["cluster"] == "delete"

    verified = cli("verify", "--name", cluster_name, "--region", REGION)
    assert verified.exit_code == 0, verified.stdout + verified.stderr

    # The export hands over what eksprivate made, never the team's network: named as used, ids left literal.
    exported = cli("export", "--name", cluster_name, "--region", REGION, "--config", config, "--format", "terraform",
                   "--output", "tf")
    assert exported.exit_code == 0, exported.stderr
    text = "".join(p.read_text() for p in (aws_env / "tf").glob("*.tf"))
    assert 'resource "aws_vpc"' not in text and 'resource "aws_subnet"' not in text
    assert network.sts_endpoint not in text and 'resource "aws_default_security_group"' not in text
    assert f'vpc_id = "{network.vpc_id}"' in " ".join(text.split())  # outside the export: a literal id
    readme = (aws_env / "tf" / "README.md").read_text()
    assert network.vpc_id in readme and network.sts_endpoint in readme

    down = cli("down", "--name", cluster_name, "--region", REGION, "--config", config, "--yes")
    assert down.exit_code == 0, down.stderr
    assert _ours(network, cluster_name) == {}
    assert inventory(stand_in.url, cluster_name) == []
    assert network.snapshot() == before


def test_lost_state_down_tells_made_from_used_by_tags(
        cli: Cli, aws_env: Path, stand_in: SandboxServer, network: Network, cluster_name: str) -> None:
    before = network.snapshot()
    config = _config(aws_env, network, LEANER)
    assert cli("up", "--name", cluster_name, "--region", REGION, "--config", config).exit_code == 0
    for leftover in (aws_env / "state").iterdir():
        leftover.unlink()  # the laptop is gone
    # Not even the config: only tags say what is eksprivate's.
    down = cli("down", "--name", cluster_name, "--region", REGION, "--yes")
    assert down.exit_code == 0, down.stderr
    assert inventory(stand_in.url, cluster_name) == []
    assert network.snapshot() == before


# -- bad networks: one line, exit 2, nothing created ---------------------------------------------------------


Case = Callable[[Network], tuple[str, tuple[str, ...]]]


@pytest.mark.parametrize(("build", "extra", "says"), [
    ({"dns_hostnames": False}, "", ("has DNS hostnames off", "does not change a VPC it did not make")),
    ({"internet": True}, "", ("routes to the internet", "igw-", "allow_internet_routes")),
    ({"endpoint_443": False}, "", ("sts endpoint", "does not admit TCP 443 from subnet")),
    ({"azs": ("eu-central-1a", "eu-central-1a")}, "", ("are all in eu-central-1a", "one private subnet per AZ")),
    ({}, 'availability_zones = ["eu-central-1a", "eu-central-1b"]\n', ("are not the AZs of subnet_ids",)),
    # A /28 has 11 addresses for use, one taken by the team's sts endpoint; 6 for EKS + 4 new endpoints + 2 nodes.
    ({"prefix": 28}, "", ("has 10 free addresses; the cluster needs at least 13",)),
], ids=["dns-hostnames-off", "internet-route", "endpoint-sg-closed", "one-az", "other-azs", "too-small"])
def test_a_network_that_does_not_fit_is_refused_before_anything_is_made(
        cli: Cli, aws_env: Path, stand_in: SandboxServer, cluster_name: str, build: dict[str, Any], extra: str,
        says: tuple[str, ...]) -> None:
    net = _build(stand_in.url, **build)
    stand_in.clear_calls()
    refused_on_input(cli("up", "--name", cluster_name, "--region", REGION, "--config", _config(aws_env, net, extra)),
                     *says)
    assert mutating_calls(stand_in.calls()) == []
    assert not (aws_env / "state").exists()


def test_internet_routes_are_accepted_when_intended(cli: Cli, aws_env: Path, stand_in: SandboxServer,
                                                   cluster_name: str) -> None:
    net = _build(stand_in.url, internet=True)
    result = cli("plan", "--name", cluster_name, "--region", REGION,
                 "--config", _config(aws_env, net, "allow_internet_routes = true\n"))
    assert result.exit_code == 0, result.stderr


def test_unknown_vpc_and_subnets_and_a_subnet_of_another_vpc(
        cli: Cli, aws_env: Path, stand_in: SandboxServer, network: Network, cluster_name: str) -> None:
    other = _build(stand_in.url)
    stand_in.clear_calls()
    cases = [
        ('vpc_id = "vpc-0000000000000dead"\nsubnet_ids = ["subnet-00000000000000aa", "subnet-00000000000000bb"]\n',
         "vpc_id vpc-0000000000000dead does not exist"),
        (f'vpc_id = "{network.vpc_id}"\nsubnet_ids = ["{network.subnet_ids[0]}", "subnet-00000000000000bb"]\n',
         "subnet-00000000000000bb does not exist"),
        (f'vpc_id = "{network.vpc_id}"\nsubnet_ids = ["{network.subnet_ids[0]}", "{other.subnet_ids[1]}"]\n',
         f"is in {other.vpc_id}, not in vpc_id {network.vpc_id}"),
    ]
    for text, says in cases:
        path = aws_env / f"case-{uuid.uuid4().hex[:6]}.toml"
        path.write_text(text)
        refused_on_input(cli("up", "--name", cluster_name, "--region", REGION, "--config", str(path)), says)
    assert mutating_calls(stand_in.calls()) == []


def test_an_s3_gateway_already_on_the_route_table_is_used_not_doubled(
        cli: Cli, aws_env: Path, stand_in: SandboxServer, cluster_name: str) -> None:
    """Naive code would add a second S3 gateway to a route table that has one."""
    net = _build(stand_in.url, s3_gateway=True)
    before = net.snapshot()
    config = _config(aws_env, net, LEANER)
    assert cli("up", "--name", cluster_name, "--region", REGION, "--config", config).exit_code == 0
    assert sorted(_ours(net, cluster_name)) == ["ec2", "ecr.api", "ecr.dkr", "eks-auth", "logs"]
    steps = json.loads((aws_env / "state" / f"{cluster_name}-{REGION}.json").read_text())["steps"]
    assert list(steps["endpoints-used"]["ids"]["gateway_tables"]) == [net.route_table_id]
    assert cli("down", "--name", cluster_name, "--region", REGION, "--config", config, "--yes").exit_code == 0
    assert net.snapshot() == before
