"""`eksprivate up`, then `eksprivate verify` on what it built: the two halves of issue 5 must agree.

Everything goes through the CLI against the sandbox, as a user would. Breakage is made behind the
tool's back with plain boto3; `verify` must name it, and a rerun of `up` must repair what it owns.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from eksprivate.sandbox import CallRecord, SandboxServer

REGION = "eu-central-1"
ALL_IDS = {
    "vpc.dns-support", "vpc.dns-hostnames", "nodegroup.present", "subnet.s3-gateway", "subnet.no-internet-route",
    "endpoint.available", "endpoint.private-dns", "endpoint.azs", "endpoint.sg-443", "cluster.private-access",
    "cluster.public-access", "cluster.logging", "cluster.secrets-encryption", "cluster.support-type",
    "nodegroup.imdsv2", "sg.no-world-ingress", "cluster.version-support", "endpoint.policy",
}
CliRun = Callable[..., Any]
# A date far from any end of standard support of the sandbox's default version (EKS's calendar): verify
# and the sandbox judge support windows on it, so the all-PASS expectations do not depend on today's date.
PINNED_DAY = datetime.date(2026, 1, 15)


@pytest.fixture(autouse=True)
def pinned_day(monkeypatch: pytest.MonkeyPatch) -> Any:
    import importlib

    from eksprivate.sandbox import eks_versions

    discover = importlib.import_module("eksprivate.verify.discover")  # the package exports a function so named
    monkeypatch.setattr(discover, "utc_today", lambda: PINNED_DAY)
    eks_versions.set_calendar(today=PINNED_DAY)
    yield
    eks_versions.reset()


# Where a test checks what verify says of one thing broken (or of the public API), not the shape of the whole
# cluster (test_verify_passes_on_what_up_built counts node groups, subnets and endpoints: a default cluster), a
# lean cluster serves: two AZs, one node group, no flow logs (verify does not audit them); the secrets key
# stays, verify fails a cluster without one. A fifth fewer calls than a default `up`.
LEAN = "flow_logs = false\navailability_zones = 2\nper_az = false\n"


@pytest.fixture
def lean(aws_env: Path) -> tuple[str, str]:
    """`--config` of a lean cluster (LEAN), for every command of a test."""
    (aws_env / "lean.toml").write_text(LEAN)
    return ("--config", "lean.toml")


def ec2_client(url: str) -> Any:
    return boto3.client("ec2", endpoint_url=url, region_name=REGION, aws_access_key_id="intruder",
                        aws_secret_access_key="intruder")


def state_ids(folder: Path, name: str, key: str) -> dict[str, Any]:
    data = json.loads((folder / "state" / f"{name}-{REGION}.json").read_text())
    found: dict[str, Any] = data["steps"][key]["ids"]
    return found


def up(cli: CliRun, name: str, *extra: str) -> Any:
    result = cli("up", "--name", name, *extra)
    assert result.exit_code == 0, (result.stderr, result.exception)
    return result


def verify_json(cli: CliRun, name: str, *extra: str) -> tuple[int, dict[str, Any]]:
    result = cli("verify", "--name", name, "--output", "json", *extra)
    assert result.exception is None, result.exception
    report: dict[str, Any] = json.loads(result.stdout)
    return result.exit_code, report


def failures(report: dict[str, Any]) -> list[dict[str, str]]:
    return [c for c in report["checks"] if c["status"] == "FAIL"]


def reads_only(calls: list[CallRecord]) -> bool:
    return all(r.operation.startswith(("Describe", "List", "Get")) for r in calls)


def test_verify_passes_on_what_up_built(cli: CliRun, aws_env: Path, cluster_name: str,
                                        stand_in: SandboxServer) -> None:
    (aws_env / "eksprivate.toml").write_text('endpoints = ["ssm"]\n')
    up(cli, cluster_name, "--config", "eksprivate.toml")

    first = len(stand_in.calls())
    text = cli("verify", "--name", cluster_name, "--config", "eksprivate.toml")
    assert text.exit_code == 0, text.stdout
    assert "0 fail" in text.stdout and "FAIL" not in text.stdout.replace("0 fail", "")

    code, report = verify_json(cli, cluster_name, "--config", "eksprivate.toml")
    assert code == 0
    assert report["cluster"] == cluster_name and report["region"] == REGION
    assert report["summary"] == {"pass": len(report["checks"]), "warn": 0, "fail": 0}
    assert {c["id"] for c in report["checks"]} == ALL_IDS
    # 3 AZs, 3 node groups, 6 interface endpoints (the 5 a private node needs and the configured ssm).
    assert len([c for c in report["checks"] if c["id"] == "endpoint.available"]) == 6
    assert {c["resource"].split(" ")[1] for c in report["checks"] if c["id"] == "endpoint.available"} == {
        "(ec2)", "(ecr.api)", "(ecr.dkr)", "(sts)", "(logs)", "(ssm)"}
    assert len([c for c in report["checks"] if c["id"] == "nodegroup.imdsv2"]) == 3
    # Every endpoint of the VPC, the Pod Identity one and the S3 gateway included, carries the perimeter.
    assert sorted(c["resource"].split(" ")[1] for c in report["checks"] if c["id"] == "endpoint.policy") == [
        "(ec2)", "(ecr.api)", "(ecr.dkr)", "(eks-auth)", "(logs)", "(s3)", "(ssm)", "(sts)"]
    assert len([c for c in report["checks"] if c["id"] == "subnet.no-internet-route"]) == 3
    assert reads_only(stand_in.calls()[first:])  # verify changes nothing

    # Without the config only the five required endpoints are audited: still all PASS.
    code, report = verify_json(cli, cluster_name)
    assert code == 0 and report["summary"]["fail"] == 0 and report["summary"]["warn"] == 0
    assert len([c for c in report["checks"] if c["id"] == "endpoint.available"]) == 5


def test_an_endpoint_policy_opened_behind_its_back_fails_verify_and_up_restores_it(
        cli: CliRun, aws_env: Path, cluster_name: str, stand_in: SandboxServer, lean: tuple[str, str]) -> None:
    up(cli, cluster_name, *lean)
    s3 = state_ids(aws_env, cluster_name, "endpoints/s3")["endpoint_id"]
    ec2_client(stand_in.url).modify_vpc_endpoint(VpcEndpointId=s3, ResetPolicy=True)  # AWS's full access again
    code, report = verify_json(cli, cluster_name, *lean)
    assert code == 1
    (fail,) = failures(report)
    assert fail["id"] == "endpoint.policy" and fail["resource"] == f"{s3} (s3)"
    assert "writes to other accounts' buckets" in fail["detail"]

    planned = cli("plan", "--name", cluster_name, "--output", "json", *lean)
    steps = {s["key"]: s for s in json.loads(planned.stdout)["steps"]}
    assert steps["endpoints"]["action"] == "update"
    assert "set the s3 endpoint policy (perimeter)" in steps["endpoints"]["details"]
    first = len(stand_in.calls())
    up(cli, cluster_name, *lean)
    made = [r.operation for r in stand_in.calls()[first:] if not r.operation.startswith(("Describe", "List", "Get"))]
    assert made == ["ModifyVpcEndpoint"]  # in place: the endpoint, its routes and its id stay
    assert state_ids(aws_env, cluster_name, "endpoints/s3")["endpoint_id"] == s3
    code, report = verify_json(cli, cluster_name, *lean)
    assert code == 0 and report["summary"]["fail"] == 0 and report["summary"]["warn"] == 0


def test_a_public_but_limited_api_is_a_warning(cli: CliRun, aws_env: Path, cluster_name: str) -> None:
    (aws_env / "eksprivate.toml").write_text(LEAN + 'public_access_cidrs = ["203.0.113.0/24"]\n')
    up(cli, cluster_name, "--config", "eksprivate.toml")
    code, report = verify_json(cli, cluster_name, "--config", "eksprivate.toml")
    assert code == 0
    (public,) = [c for c in report["checks"] if c["status"] != "PASS"]
    assert public["id"] == "cluster.public-access" and public["status"] == "WARN"
    assert "203.0.113.0/24" in public["detail"]


def test_verify_names_what_broke_and_up_repairs_what_it_owns(cli: CliRun, aws_env: Path, cluster_name: str,
                                                             stand_in: SandboxServer, lean: tuple[str, str]) -> None:
    up(cli, cluster_name, *lean)
    ec2 = ec2_client(stand_in.url)
    vpc_id = state_ids(aws_env, cluster_name, "vpc")["vpc_id"]
    sts_id = state_ids(aws_env, cluster_name, "endpoints/sts")["endpoint_id"]
    part = state_ids(aws_env, cluster_name, "subnets")["parts"][f"{REGION}a"]

    # 1. Someone deletes the sts endpoint.
    ec2.delete_vpc_endpoints(VpcEndpointIds=[sts_id])
    code, report = verify_json(cli, cluster_name, *lean)
    assert code == 1
    (fail,) = failures(report)
    assert fail["id"] == "endpoint.available" and fail["resource"] == f"sts (none in {vpc_id})"
    assert "IRSA" in fail["detail"] and "com.amazonaws.eu-central-1.sts" in fail["fix"]
    text = cli("verify", "--name", cluster_name, *lean)
    assert text.exit_code == 1 and "FAIL" in text.stdout and "1 fail" in text.stdout

    # 2. ... and gives one node subnet a way out: an internet gateway and a default route to it.
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)
    ec2.create_route(RouteTableId=part["route_table_id"], DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    code, report = verify_json(cli, cluster_name, *lean)
    assert code == 1
    by_id = {c["id"]: c for c in failures(report)}
    assert set(by_id) == {"endpoint.available", "subnet.no-internet-route"}
    route = by_id["subnet.no-internet-route"]
    assert route["resource"] == f"{part['subnet_id']} / {part['route_table_id']}"
    assert f"0.0.0.0/0 → {igw}" in route["detail"]
    assert route["fix"] == f"aws ec2 delete-route --route-table-id {part['route_table_id']} " \
                           "--destination-cidr-block 0.0.0.0/0"

    # 3. plan: the endpoint is to be completed; the route is flagged "!" (eksprivate never adds one,
    #    so it does not delete one either: it may be someone's deliberate egress).
    planned = cli("plan", "--name", cluster_name, "--output", "json", *lean)
    assert planned.exit_code == 0, planned.stderr
    steps = {s["key"]: s for s in json.loads(planned.stdout)["steps"]}
    assert steps["endpoints"]["action"] == "create"
    (flag,) = steps["subnets"]["details"]
    assert flag.startswith("!") and part["route_table_id"] in flag and "0.0.0.0/0" in flag
    assert steps["subnets"]["action"] == "none"

    # 4. up repairs the endpoint, warns about the route and leaves it.
    first = len(stand_in.calls())
    again = up(cli, cluster_name, *lean)
    made = [r.operation for r in stand_in.calls()[first:] if not r.operation.startswith(("Describe", "List", "Get"))]
    assert made == ["CreateVpcEndpoint"]
    assert f"{part['route_table_id']}" in again.stderr and "warning:" in again.stderr
    new_sts = state_ids(aws_env, cluster_name, "endpoints/sts")["endpoint_id"]
    assert new_sts != sts_id
    code, report = verify_json(cli, cluster_name, *lean)
    assert code == 1
    (fail,) = failures(report)
    assert fail["id"] == "subnet.no-internet-route"
    sts_check = next(c for c in report["checks"] if c["id"] == "endpoint.available" and "(sts)" in c["resource"])
    assert sts_check["status"] == "PASS" and sts_check["resource"] == f"{new_sts} (sts)"

    # 5. The operator follows verify's fix: everything passes again.
    ec2.delete_route(RouteTableId=part["route_table_id"], DestinationCidrBlock="0.0.0.0/0")
    ec2.detach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)
    ec2.delete_internet_gateway(InternetGatewayId=igw)
    code, report = verify_json(cli, cluster_name, *lean)
    assert code == 0 and report["summary"]["fail"] == 0 and report["summary"]["warn"] == 0


def test_up_recreates_an_endpoint_deleted_moments_ago(cli: CliRun, aws_env: Path, cluster_name: str,
                                                      stand_in: SandboxServer, lean: tuple[str, str]) -> None:
    """A deleted endpoint's ClientToken is spent: AWS answers a create that reuses it with the old,
    deleted endpoint. Here the old one is still `deleting` (it takes ~1 min on AWS) when `up` reruns."""
    up(cli, cluster_name, *lean)
    old = state_ids(aws_env, cluster_name, "endpoints/sts")["endpoint_id"]
    # `deleting` for 30 s of sandbox time: all through this `up` (a few seconds), yet a regression (which
    # waits on the old endpoint until it is gone, then fails) costs 30 s, not AWS's 15-min timeout.
    stand_in.configure(interface_endpoint_delete=30.0 / stand_in.settings()["time_scale"])
    ec2 = ec2_client(stand_in.url)
    ec2.delete_vpc_endpoints(VpcEndpointIds=[old])
    assert ec2.describe_vpc_endpoints(VpcEndpointIds=[old])["VpcEndpoints"][0]["State"] == "deleting"

    up(cli, cluster_name, *lean)
    new = state_ids(aws_env, cluster_name, "endpoints/sts")["endpoint_id"]
    assert new != old
    (made,) = ec2.describe_vpc_endpoints(VpcEndpointIds=[new])["VpcEndpoints"]
    assert made["State"] == "available" and made["ServiceName"].endswith(".sts")
    code, report = verify_json(cli, cluster_name, *lean)
    assert code == 0, failures(report)


@pytest.mark.parametrize("output", ["text", "json"])
def test_verify_of_a_cluster_that_does_not_exist(cli: CliRun, aws_env: Path, cluster_name: str, output: str) -> None:
    result = cli("verify", "--name", cluster_name, "--output", output)
    assert result.exit_code == 2 and result.exception is None
    (line,) = result.stderr.strip().splitlines()
    assert f"no EKS cluster named {cluster_name!r}" in line
