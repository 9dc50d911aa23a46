"""Session Manager tunnel: target choice, SSM endpoint check, the exact command, run_tunnel (moto, no real aws)."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from eksprivate import tunnel
from eksprivate.aws import Aws
from eksprivate.errors import UsageError
from eksprivate.tunnel import (
    check_ssm_endpoints,
    find_tunnel_target,
    port_forward_command,
    run_tunnel,
)

pytestmark = pytest.mark.plain_moto

REGION = "eu-central-1"
ACCOUNT = "123456789012"
AMI = "ami-12c6146b"


@dataclass
class World:
    vpc_id: str
    subnet_ids: list[str]
    host: str
    arn: str
    ec2: Any = field(repr=False)

    def node(self, cluster: str = "demo", *, stopped: bool = False) -> str:
        tags = [{"Key": "eks:cluster-name", "Value": cluster}, {"Key": "eks:nodegroup-name", "Value": "nodes"}]
        inst = self.ec2.run_instances(
            ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t3.small", SubnetId=self.subnet_ids[0],
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])["Instances"][0]
        if stopped:
            self.ec2.stop_instances(InstanceIds=[inst["InstanceId"]])
        return str(inst["InstanceId"])

    def endpoint(self, service: str, *, vpc_id: str | None = None, kind: str = "Interface") -> str:
        kwargs: dict[str, Any] = {"SubnetIds": self.subnet_ids} if kind == "Interface" else {}
        ep = self.ec2.create_vpc_endpoint(
            VpcId=vpc_id or self.vpc_id, ServiceName=f"com.amazonaws.{REGION}.{service}",
            VpcEndpointType=kind, **kwargs)["VpcEndpoint"]
        return str(ep["VpcEndpointId"])

    def ssm_ready(self) -> None:
        for svc in ("ssm", "ssmmessages", "ec2messages"):
            self.endpoint(svc)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[World]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24",
                                     AvailabilityZone=f"{REGION}{az}")["Subnet"]["SubnetId"]
                   for i, az in enumerate("ab")]
        cluster = boto3.client("eks", region_name=REGION).create_cluster(
            name="demo", roleArn=f"arn:aws:iam::{ACCOUNT}:role/cluster",
            resourcesVpcConfig={"subnetIds": subnets, "endpointPublicAccess": False,
                                "endpointPrivateAccess": True})["cluster"]
        host = cluster["endpoint"].removeprefix("https://").rstrip("/")
        yield World(vpc, subnets, host, cluster["arn"], ec2)


@pytest.fixture
def tools(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend `aws` and the plugin are installed (the real ones are never run: the runner is fake)."""
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/local/bin/{name}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeRunner:
    def __init__(self, code: int = 0, exc: BaseException | None = None) -> None:
        self.calls: list[list[str]] = []
        self.code = code
        self.exc = exc

    def __call__(self, cmd: list[str]) -> subprocess.CompletedProcess[Any]:
        self.calls.append(list(cmd))
        if self.exc is not None:
            raise self.exc
        return subprocess.CompletedProcess(cmd, self.code)


# -- port_forward_command ---------------------------------------------------------------------------

def test_port_forward_command_exact() -> None:
    assert port_forward_command("i-0abc", "ABC.gr7.eu-central-1.eks.amazonaws.com", 8443, REGION, None) == [
        "aws", "ssm", "start-session", "--target", "i-0abc",
        "--document-name", "AWS-StartPortForwardingSessionToRemoteHost",
        "--parameters", "host=ABC.gr7.eu-central-1.eks.amazonaws.com,portNumber=443,localPortNumber=8443",
        "--region", REGION,
    ]


def test_port_forward_command_with_profile() -> None:
    cmd = port_forward_command("i-0abc", "h.example", 9000, "us-east-1", "ops")
    assert cmd[-4:] == ["--region", "us-east-1", "--profile", "ops"]
    assert "host=h.example,portNumber=443,localPortNumber=9000" in cmd


# -- check_ssm_endpoints ----------------------------------------------------------------------------

def test_all_missing(world: World) -> None:
    assert check_ssm_endpoints(Aws(REGION), world.vpc_id) == ["ssm", "ssmmessages", "ec2messages"]


def test_none_missing(world: World) -> None:
    world.ssm_ready()
    world.endpoint("ecr.api")
    assert check_ssm_endpoints(Aws(REGION), world.vpc_id) == []


def test_some_missing(world: World) -> None:
    world.endpoint("ssm")
    world.endpoint("ec2messages")
    assert check_ssm_endpoints(Aws(REGION), world.vpc_id) == ["ssmmessages"]


def test_endpoints_of_another_vpc_do_not_count(world: World) -> None:
    other = world.ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    sub = world.ec2.create_subnet(VpcId=other, CidrBlock="10.30.1.0/24")["Subnet"]["SubnetId"]
    for svc in ("ssm", "ssmmessages", "ec2messages"):
        world.ec2.create_vpc_endpoint(VpcId=other, ServiceName=f"com.amazonaws.{REGION}.{svc}",
                                      VpcEndpointType="Interface", SubnetIds=[sub])
    assert check_ssm_endpoints(Aws(REGION), world.vpc_id) == ["ssm", "ssmmessages", "ec2messages"]
    assert check_ssm_endpoints(Aws(REGION), other) == []


def test_deleted_endpoint_does_not_count(world: World) -> None:
    world.ssm_ready()
    ep = world.endpoint("ssm")  # a duplicate: deleting it leaves the first one
    world.ec2.delete_vpc_endpoints(VpcEndpointIds=[ep])
    assert check_ssm_endpoints(Aws(REGION), world.vpc_id) == []
    eps = world.ec2.describe_vpc_endpoints(
        Filters=[{"Name": "service-name", "Values": [f"com.amazonaws.{REGION}.ssm"]}])["VpcEndpoints"]
    world.ec2.delete_vpc_endpoints(VpcEndpointIds=[e["VpcEndpointId"] for e in eps])
    assert check_ssm_endpoints(Aws(REGION), world.vpc_id) == ["ssm"]


# -- find_tunnel_target ----------------------------------------------------------------------------

def test_target_is_a_running_node_of_this_cluster(world: World) -> None:
    world.node(stopped=True)
    world.node("someone-else")
    node = world.node()
    assert find_tunnel_target(Aws(REGION), "demo") == node


def test_target_is_stable(world: World) -> None:
    nodes = {world.node(), world.node()}
    aws = Aws(REGION)
    first = find_tunnel_target(aws, "demo")
    assert first in nodes
    assert find_tunnel_target(aws, "demo") == first


def test_no_running_node(world: World) -> None:
    world.node(stopped=True)
    world.node("someone-else")
    with pytest.raises(UsageError, match="no running node of cluster 'demo'") as err:
        find_tunnel_target(Aws(REGION), "demo")
    assert err.value.hint and "desired_size" in err.value.hint


# -- run_tunnel ------------------------------------------------------------------------------------

def test_run_tunnel_runs_the_exact_command(world: World, tools: None, tmp_path: Path) -> None:
    world.ssm_ready()
    node = world.node()
    port = free_port()
    runner, said = FakeRunner(), list[str]()
    kubeconfig = tmp_path / "kc" / "config"
    code = run_tunnel(Aws(REGION), "demo", local_port=port, kubeconfig=kubeconfig, profile="ops",
                      say=said.append, runner=runner)
    assert code == 0
    assert runner.calls == [[
        "aws", "ssm", "start-session", "--target", node,
        "--document-name", "AWS-StartPortForwardingSessionToRemoteHost",
        "--parameters", f"host={world.host},portNumber=443,localPortNumber={port}",
        "--region", REGION, "--profile", "ops",
    ]]
    doc = yaml.safe_load(kubeconfig.read_text())
    assert [c["name"] for c in doc["contexts"]] == ["demo-tunnel"]
    assert doc["clusters"][0]["cluster"]["server"] == f"https://127.0.0.1:{port}"
    assert doc["clusters"][0]["cluster"]["tls-server-name"] == world.host
    assert doc["users"][0]["user"]["exec"]["env"] == [{"name": "AWS_PROFILE", "value": "ops"}]
    assert doc["users"][0]["user"]["exec"]["args"][-3:] == ["demo", "--output", "json"]
    assert doc["current-context"] == ""  # the tunnel context works only while the tunnel runs
    text = "\n".join(said)
    assert "kubectl --context demo-tunnel get nodes" in text
    assert node in text and world.host in text and str(kubeconfig) in text


def test_run_tunnel_keeps_current_context(world: World, tools: None, tmp_path: Path) -> None:
    from eksprivate.kube import cluster_entry, merge_context

    world.ssm_ready()
    world.node()
    kubeconfig = tmp_path / "config"
    merge_context(kubeconfig, cluster_entry(Aws(REGION), "demo"), profile=None)
    run_tunnel(Aws(REGION), "demo", local_port=free_port(), kubeconfig=kubeconfig, runner=FakeRunner())
    doc = yaml.safe_load(kubeconfig.read_text())
    assert doc["current-context"] == world.arn
    assert sorted(c["name"] for c in doc["contexts"]) == sorted([world.arn, "demo-tunnel"])


def test_run_tunnel_uses_kubeconfig_env(world: World, tools: None, tmp_path: Path) -> None:
    world.ssm_ready()
    world.node()
    run_tunnel(Aws(REGION), "demo", local_port=free_port(), kubeconfig=None, runner=FakeRunner())
    assert (tmp_path / "kubeconfig").exists()  # $KUBECONFIG from the fixture


def test_run_tunnel_without_profile(world: World, tools: None, tmp_path: Path) -> None:
    world.ssm_ready()
    world.node()
    runner = FakeRunner()
    run_tunnel(Aws(REGION), "demo", local_port=free_port(), kubeconfig=tmp_path / "c", runner=runner)
    assert "--profile" not in runner.calls[0]
    assert "env" not in yaml.safe_load((tmp_path / "c").read_text())["users"][0]["user"]["exec"]


def test_run_tunnel_returns_session_exit_code(world: World, tools: None, tmp_path: Path) -> None:
    world.ssm_ready()
    world.node()
    said: list[str] = []
    code = run_tunnel(Aws(REGION), "demo", local_port=free_port(), kubeconfig=tmp_path / "c",
                      say=said.append, runner=FakeRunner(code=254))
    assert code == 254
    assert "AmazonSSMManagedInstanceCore" in said[-1]


def test_ctrl_c_closes_the_tunnel(world: World, tools: None, tmp_path: Path) -> None:
    world.ssm_ready()
    world.node()
    code = run_tunnel(Aws(REGION), "demo", local_port=free_port(), kubeconfig=tmp_path / "c",
                      runner=FakeRunner(exc=KeyboardInterrupt()))
    assert code == 130


def test_missing_ssm_endpoints_refuse(world: World, tools: None, tmp_path: Path) -> None:
    world.endpoint("ssm")
    world.node()
    runner = FakeRunner()
    with pytest.raises(UsageError) as err:
        run_tunnel(Aws(REGION), "demo", local_port=free_port(), kubeconfig=tmp_path / "c", runner=runner)
    assert "ssmmessages, ec2messages" in err.value.message
    assert world.vpc_id in err.value.message
    assert err.value.hint == ('add endpoints = ["ssm", "ssmmessages", "ec2messages"] to the config, '
                              "then rerun `eksprivate up`")
    assert "\n" not in str(err.value)
    assert runner.calls == []
    assert not (tmp_path / "c").exists()


def test_no_running_node_refuses(world: World, tools: None, tmp_path: Path) -> None:
    world.ssm_ready()
    world.node(stopped=True)
    runner = FakeRunner()
    with pytest.raises(UsageError, match="no running node"):
        run_tunnel(Aws(REGION), "demo", local_port=free_port(), kubeconfig=tmp_path / "c", runner=runner)
    assert runner.calls == []
    assert not (tmp_path / "c").exists()


def test_unknown_cluster_refuses(world: World, tools: None, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no EKS cluster named 'ghost'"):
        run_tunnel(Aws(REGION), "ghost", local_port=free_port(), kubeconfig=tmp_path / "c", runner=FakeRunner())


@pytest.mark.parametrize(("absent", "expected"), [
    ({"aws"}, "AWS CLI v2"),
    ({"session-manager-plugin"}, "Session Manager plugin"),
    ({"aws", "session-manager-plugin"}, "AWS CLI v2"),
])
def test_missing_local_tools(world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                             absent: set[str], expected: str) -> None:
    world.ssm_ready()
    world.node()
    monkeypatch.setattr(shutil, "which", lambda name: None if name in absent else f"/bin/{name}")
    runner = FakeRunner()
    with pytest.raises(UsageError) as err:
        run_tunnel(Aws(REGION), "demo", local_port=free_port(), kubeconfig=tmp_path / "c", runner=runner)
    for name in absent:
        assert f"`{name}`" in err.value.message
    assert err.value.hint and expected in err.value.hint
    assert runner.calls == []
    assert not (tmp_path / "c").exists()


def test_port_in_use(world: World, tools: None, tmp_path: Path) -> None:
    world.ssm_ready()
    world.node()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = int(busy.getsockname()[1])
        with pytest.raises(UsageError, match=f"127.0.0.1:{port} is already in use"):
            run_tunnel(Aws(REGION), "demo", local_port=port, kubeconfig=tmp_path / "c", runner=FakeRunner())


@pytest.mark.parametrize("port", [0, 70000])
def test_port_out_of_range(tools: None, port: int) -> None:
    with pytest.raises(UsageError, match="not a TCP port"):
        tunnel.check_local_port(port)


def test_module_does_not_import_boto() -> None:
    source = Path(tunnel.__file__).read_text() + Path(tunnel.__file__).with_name("kube.py").read_text()
    assert "import boto" not in source and "from boto" not in source
