"""End to end through the CLI, as a user with no terminal runs it, against the sandbox:
up → rerun (reads only) → status → plan → down, and what `down` must refuse or say.

Two logs are read: the sandbox's server-side call log (service, operation, HTTP status, in arrival
order: what AWS saw) and a client-side trace of the same calls with their parameters and answers
(which role was deleted, which status a DescribeCluster returned). Teardown order is checked from
them, since moto enforces only part of it.
"""

from __future__ import annotations

import json
import os
import stat
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import FAST, NO_FAULTS, SandboxResets, held_empty_sandbox, run_cli, user_environment

from eksprivate.aws import Aws, is_mutating
from eksprivate.sandbox import CallRecord, SandboxServer, Timing
from eksprivate.steps.foreign_check import TEARDOWN_ONLY
from tests.faults.helpers import Cli, CliResult

REGION = "eu-central-1"  # the `aws_env` fixture's
INTERFACE = ["ec2", "ecr.api", "ecr.dkr", "eks-auth", "logs", "sts"]  # eks-auth: the Pod Identity add-on
# Issue 22: at most 45 (the benchmark's goal too). 40 before day 2; the four managed add-ons read DescribeAddon
# and DescribeAddonVersions (their default for the cluster's version) each, once per run shared reads.
RERUN_CALL_BUDGET = 45



@dataclass(frozen=True)
class Traced:
    kind: str  # "call" (parameters) or "answer" (parsed response, errors included)
    service: str
    operation: str
    data: dict[str, Any]


class Trace:
    """Every call any `Aws` in this process makes, client side, in order."""

    def __init__(self) -> None:
        self.items: list[Traced] = []
        self._lock = threading.Lock()

    def _add(self, kind: str, model: Any, data: Any) -> None:
        with self._lock:
            self.items.append(Traced(kind, model.service_model.endpoint_prefix, model.name, dict(data or {})))

    def on_params(self, params: Any = None, model: Any = None, **_: Any) -> None:
        self._add("call", model, params)

    def on_answer(self, parsed: Any = None, model: Any = None, **_: Any) -> None:
        self._add("answer", model, parsed)

    def mark(self) -> int:
        return len(self.items)

    def index(self, since: int, kind: str, operation: str,
              match: Callable[[dict[str, Any]], bool] = lambda _: True) -> int:
        """Where the first `kind` of `operation` at or after `since` that `match`es is."""
        hits = [i for i, t in enumerate(self.items) if i >= since and t.kind == kind and t.operation == operation
                and match(t.data)]
        assert hits, f"no {kind} {operation} matching"
        return hits[0]


def traced(monkeypatch: pytest.MonkeyPatch) -> Trace:
    """A trace of every `Aws` made while `monkeypatch` lasts."""
    seen = Trace()
    original = Aws.__init__

    def init(self: Aws, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        events = self.session._session.get_component("event_emitter")
        events.register("provide-client-params", seen.on_params)
        events.register("after-call", seen.on_answer)

    monkeypatch.setattr(Aws, "__init__", init)
    return seen


@pytest.fixture
def trace(monkeypatch: pytest.MonkeyPatch) -> Trace:
    return traced(monkeypatch)


@pytest.fixture
def look(sandbox_client: Callable[[str], Any]) -> Callable[[str], Any]:
    """Plain boto3 clients on the sandbox, to inspect what the CLI left behind (tests/conftest.py)."""
    return sandbox_client


def since(stand_in: SandboxServer, mark: int) -> list[CallRecord]:
    return stand_in.calls()[mark:]


def ops(records: list[CallRecord]) -> list[str]:
    return [f"{r.service}:{r.operation}" for r in records]


def first(records: list[CallRecord], op: str, status: int | None = None, after: int = -1) -> int:
    return next(i for i, r in enumerate(records) if i > after and f"{r.service}:{r.operation}" == op
                and (status is None or r.status == status))


def last(records: list[CallRecord], op: str) -> int:
    return max(i for i, r in enumerate(records) if f"{r.service}:{r.operation}" == op)


def metrics(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def ok(result: CliResult) -> CliResult:
    assert result.exception is None, result.exception
    assert result.exit_code == 0, result.stderr
    return result


def assert_nodegroups_came_after_cluster_and_endpoints(trace: Trace, start: int) -> None:
    """Every CreateNodegroup was sent after a DescribeCluster answered ACTIVE and after AWS had said,
    for every endpoint of the cluster, that it is available."""
    creates = [i for i, t in enumerate(trace.items) if i >= start and t.kind == "call"
               and t.operation == "CreateNodegroup"]
    assert len(creates) == 3
    active = trace.index(start, "answer", "DescribeCluster", lambda d: d.get("cluster", {}).get("status") == "ACTIVE")
    assert active < min(creates)
    made = {t.data["VpcEndpoint"]["VpcEndpointId"] for t in trace.items[start:]
            if t.kind == "answer" and t.operation == "CreateVpcEndpoint"}
    assert len(made) == len(INTERFACE) + 1
    available: set[str] = set()
    for t in trace.items[start:min(creates)]:
        if t.kind != "answer":
            continue
        listed = t.data.get("VpcEndpoints", []) if t.operation == "DescribeVpcEndpoints" else (
            [t.data["VpcEndpoint"]] if t.operation == "CreateVpcEndpoint" else [])
        available |= {e["VpcEndpointId"] for e in listed if e.get("State") == "available"}
    assert made <= available, f"node groups started before {sorted(made - available)} were available"


# -- the whole life of a cluster ------------------------------------------------------------------------
# One `up` is shared by the three tests below: the life (which goes on from it to rerun, status, plan and
# `down`) and the two ordering tests, which read only what this `up` sent and got (its trace), never the account,
# so the life's `down` cannot change what they see, whatever the order. The `up` runs with the endpoints slower
# than the cluster and the add-ons slower than both, so that a node group sent too early, or a wait on an add-on
# before the node groups, shows in its trace; nothing the life asserts depends on those durations. Its waits
# are polled every 0.3 s, not the usual 0.03 (suite_speed.POLL_INTERVAL): the node groups wait out the add-ons
# (no node is Ready without the CNI), and at 0.03 s polls that `up` made ~660 calls (~270 now). What these tests
# read is the order of calls and answers, which the pace of polls does not change. The margins stay wide: the
# add-ons (2.5 s, where the original add-on test had 2 s and no slow endpoints) are made once the cluster is
# ACTIVE and the node groups once the endpoints are (0.8 s, seen within a poll), ~1.5 s before any add-on is
# ACTIVE; coredns, made beside the node groups, is made ~0.5 s after the networking add-ons the groups wait on.
ENDPOINTS_SLOWER = 1600.0  # x 0.0005 = 0.8 s; the cluster 0.27 s
ADDONS_SLOWER = 5000.0  # x 0.0005 = 2.5 s; a node group 0.09 s
SLOW_UP_POLL = "0.3"


@dataclass
class Built:
    name: str
    folder: Path  # the user's folder: state/ is there
    result: CliResult  # the `up`
    calls: list[CallRecord]  # what the sandbox saw during it
    trace: Trace  # what the client sent and got during it
    metrics: dict[str, Any]  # its EKSPRIVATE_METRICS


@pytest.fixture(scope="module")
def built(sandbox_server: SandboxServer, sandbox_resets: SandboxResets,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    folder = tmp_path_factory.mktemp("e2e")
    name = f"t-{uuid.uuid4().hex[:10]}"
    defaults = {**Timing().as_dict(), **FAST, **NO_FAULTS}
    with held_empty_sandbox(sandbox_server, sandbox_resets):
        slow = {"interface_endpoint_create": ENDPOINTS_SLOWER, "addon_create": ADDONS_SLOWER}
        sandbox_server.configure(**{**defaults, **slow})
        try:
            with pytest.MonkeyPatch.context() as mp:
                user_environment(mp, sandbox_server.url, folder)
                mp.setenv("EKSPRIVATE_METRICS", str(folder / "up-metrics.json"))
                mp.setenv("EKSPRIVATE_POLL_INTERVAL", SLOW_UP_POLL)
                seen = traced(mp)
                mark = len(sandbox_server.calls())
                result = run_cli("up", "--name", name)
                calls = sandbox_server.calls()[mark:]
        finally:
            sandbox_server.configure(**defaults)
        ok(result)
        yield Built(name, folder, result, calls, seen, metrics(folder / "up-metrics.json"))


def test_up_rerun_status_plan_down(cli: Cli, built: Built, stand_in: SandboxServer, trace: Trace,
                                   look: Callable[[str], Any], monkeypatch: pytest.MonkeyPatch) -> None:
    cluster_name = built.name
    name = ["--name", cluster_name]
    monkeypatch.chdir(built.folder)
    state = built.folder / "state" / f"{cluster_name}-{REGION}.json"
    metrics_file = built.folder / "metrics.json"
    monkeypatch.setenv("EKSPRIVATE_METRICS", str(metrics_file))

    # -- up (the shared one) ---------------------------------------------------------------------------
    made = built.metrics["by_operation"]
    for op, count in {"ec2:CreateVpc": 1, "ec2:CreateSubnet": 3, "ec2:CreateRouteTable": 3,
                      "ec2:CreateSecurityGroup": 1, "ec2:CreateVpcEndpoint": len(INTERFACE) + 1,
                      "eks:CreateCluster": 1, "eks:CreateNodegroup": 3, "iam:CreateRole": 3,
                      "ec2:CreateLaunchTemplate": 1, "kms:CreateKey": 1, "ec2:CreateFlowLogs": 1}.items():
        assert made.get(op) == count, (op, made.get(op))
    assert not any(op.endswith(("InternetGateway", "NatGateway", ":CreateRoute")) for op in made)
    assert_nodegroups_came_after_cluster_and_endpoints(built.trace, 0)
    assert not any(r.status and r.status >= 500 for r in built.calls)
    # The state: every id, 0600 in a 0700 folder.
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.parent.stat().st_mode) == 0o700
    recorded = json.loads(state.read_text())
    assert (recorded["name"], recorded["region"], recorded["account"]) == (cluster_name, REGION, "123456789012")
    vpc_id = recorded["steps"]["vpc"]["ids"]["vpc_id"]
    key_id = recorded["steps"]["kms-key"]["ids"]["key_id"]
    group_id = recorded["steps"]["endpoint-sg"]["ids"]["group_id"]
    roles = {k: recorded["steps"][k]["ids"]["role_name"] for k in ("cluster-role", "node-role", "flow-logs-role")}

    # -- rerun: reads only ---------------------------------------------------------------------------
    before = state.read_bytes()
    mark = len(stand_in.calls())
    ok(cli("up", *name))
    rerun = metrics(metrics_file)
    assert rerun["mutating"] == 0 and rerun["mutating_calls"] == []
    assert rerun["calls"] <= RERUN_CALL_BUDGET, rerun["by_operation"]
    seen = since(stand_in, mark)
    assert [op for op in ops(seen) if is_mutating(op.split(":")[1])] == []  # what AWS saw agrees
    assert len(seen) == rerun["calls"]
    assert state.read_bytes() == before  # and the state file is left alone

    # -- status ----------------------------------------------------------------------------------------
    mark = len(stand_in.calls())
    text = ok(cli("status", *name)).stdout
    assert vpc_id in text and "ACTIVE" in text and "EKS cluster" in text
    report = json.loads(ok(cli("status", *name, "--output", "json")).stdout)
    assert (report["name"], report["region"], report["account"]) == (cluster_name, REGION, "123456789012")
    steps = {s["key"]: s for s in report["steps"]}
    assert {"vpc", "subnets", "endpoint-sg", "endpoints", "cluster-role", "node-role", "cluster",
            "nodegroup/nodes-a", "nodegroup/nodes-b", "nodegroup/nodes-c"} <= set(steps)
    # Nothing Kubernetes made and nothing foreign in the VPC: those teardown steps find nothing.
    assert [k for k, s in steps.items() if s["status"] == "absent" and k not in TEARDOWN_ONLY] == [], steps
    assert steps["cluster"]["status"] == "ACTIVE" and vpc_id in steps["vpc"]["resources"]
    assert all(steps[f"nodegroup/nodes-{z}"]["status"] == "ACTIVE" for z in "abc")

    # -- plan: nothing to do ---------------------------------------------------------------------------
    plan = json.loads(ok(cli("plan", *name, "--output", "json")).stdout)
    assert {s["key"]: s["action"] for s in plan["steps"] if s["action"] != "none"} == {}
    text = ok(cli("plan", *name)).stdout
    assert not any(word in text for word in ("to create", "to update", "to delete"))
    destroy = json.loads(ok(cli("plan", *name, "--destroy", "--output", "json")).stdout)
    assert {s["action"] for s in destroy["steps"] if s["key"] not in TEARDOWN_ONLY} == {"delete"}
    assert [op for op in ops(since(stand_in, mark)) if is_mutating(op.split(":")[1])] == []
    assert state.read_bytes() == before

    # -- down without --yes and without a terminal: refused, nothing touched ---------------------------
    mark = len(stand_in.calls())
    refused = cli("down", *name)
    assert refused.exit_code == 2 and refused.exception is None
    assert "--yes" in refused.stderr and "Traceback" not in refused.stderr
    assert [op for op in ops(since(stand_in, mark)) if is_mutating(op.split(":")[1])] == []

    # -- down ----------------------------------------------------------------------------------------
    mark, start = len(stand_in.calls()), trace.mark()
    ok(cli("down", *name, "--yes"))
    down = since(stand_in, mark)
    assert not state.exists() and not state.with_name(state.name + ".lock").exists()
    assert_nothing_left(look, cluster_name, vpc_id, key_id, roles)
    assert_teardown_order(down, trace, start, group_id, roles)


def assert_nothing_left(look: Callable[[str], Any], name: str, vpc_id: str, key_id: str,
                        roles: dict[str, str]) -> None:
    ec2, tagged = look("ec2"), [{"Name": "tag:eksprivate:cluster", "Values": [name]}]
    in_vpc = [{"Name": "vpc-id", "Values": [vpc_id]}]
    assert ec2.describe_vpcs(Filters=tagged)["Vpcs"] == []
    assert ec2.describe_subnets(Filters=tagged)["Subnets"] == []
    assert ec2.describe_subnets(Filters=in_vpc)["Subnets"] == []
    assert ec2.describe_route_tables(Filters=tagged)["RouteTables"] == []
    assert ec2.describe_security_groups(Filters=tagged)["SecurityGroups"] == []
    endpoints = ec2.describe_vpc_endpoints(Filters=tagged)["VpcEndpoints"]
    assert [e["VpcEndpointId"] for e in endpoints if e["State"].lower() != "deleted"] == []
    assert ec2.describe_flow_logs(Filters=tagged)["FlowLogs"] == []
    assert ec2.describe_launch_templates(Filters=tagged)["LaunchTemplates"] == []
    assert ec2.describe_network_interfaces(Filters=in_vpc)["NetworkInterfaces"] == []

    eks = look("eks")
    with pytest.raises(eks.exceptions.ResourceNotFoundException):
        eks.describe_cluster(name=name)
    iam = look("iam")
    for role in roles.values():
        with pytest.raises(iam.exceptions.NoSuchEntityException):
            iam.get_role(RoleName=role)
    assert [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"].startswith(f"{name}-")] == []
    logs = look("logs")
    for prefix in (f"/aws/eks/{name}/", f"/eksprivate/{name}/"):
        assert logs.describe_log_groups(logGroupNamePrefix=prefix)["logGroups"] == []
    kms = look("kms")
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    assert kms.list_aliases(KeyId=key_id)["Aliases"] == []


def assert_teardown_order(down: list[CallRecord], trace: Trace, start: int, group_id: str,
                          roles: dict[str, str]) -> None:
    seq = ops(down)
    # Node groups (all of them, gone) before the cluster.
    delete_cluster = first(down, "eks:DeleteCluster")
    assert seq.count("eks:DeleteNodegroup") == 3
    assert last(down, "eks:DeleteNodegroup") < delete_cluster
    gone_groups = [i for i, r in enumerate(down) if r.operation == "DescribeNodegroup" and r.status == 404]
    assert len([i for i in gone_groups if i < delete_cluster]) >= 3
    # The cluster gone (DeleteCluster, then waited for until DescribeCluster says 404) before IAM and KMS.
    cluster_gone = first(down, "eks:DescribeCluster", status=404, after=delete_cluster)
    for op in ("kms:ScheduleKeyDeletion", "ec2:DeleteSubnet", "ec2:DeleteVpc"):
        assert first(down, op) > cluster_gone, op
    gone_client = trace.index(trace.index(start, "call", "DeleteCluster"), "answer", "DescribeCluster",
                              lambda d: d.get("Error", {}).get("Code") == "ResourceNotFoundException")

    def role(key: str) -> Callable[[dict[str, Any]], bool]:
        return lambda d: d.get("RoleName") == roles[key]

    for key in ("cluster-role", "node-role"):
        assert trace.index(start, "call", "DeleteRole", role(key)) > gone_client, (
            f"{key} deleted while the cluster still existed")
    assert trace.index(start, "call", "DeleteRole", role("flow-logs-role")) > trace.index(
        start, "call", "DeleteFlowLogs")
    # Endpoints deleted, and waited for, before the subnets and the endpoint security group.
    delete_endpoints = first(down, "ec2:DeleteVpcEndpoints")
    endpoints_gone = last(down, "ec2:DescribeVpcEndpoints")
    assert delete_endpoints < endpoints_gone < first(down, "ec2:DeleteSubnet")
    delete_sg = trace.index(start, "call", "DeleteSecurityGroup", lambda d: d.get("GroupId") == group_id)
    assert trace.index(start, "call", "DeleteVpcEndpoints") < delete_sg
    # Route tables after their subnets' associations; the VPC last of everything in it.
    assert last(down, "ec2:DisassociateRouteTable") < first(down, "ec2:DeleteRouteTable")
    vpc_scoped = ("DeleteSubnet", "DeleteRouteTable", "DisassociateRouteTable", "DeleteSecurityGroup",
                  "RevokeSecurityGroupIngress", "DeleteVpcEndpoints", "DeleteFlowLogs", "DeleteNetworkInterface")
    assert seq.count("ec2:DeleteVpc") == 1
    assert max(i for i, r in enumerate(down) if r.operation in vpc_scoped) < first(down, "ec2:DeleteVpc")


# -- ordering that the sandbox's fast paths could hide ----------------------------------------------------


def test_nodegroups_wait_for_endpoints_slower_than_the_cluster(built: Built) -> None:
    """Nodes that start before the endpoints are available cannot join (NodeCreationFailure). Here the
    endpoints take longer than the cluster (`built`), so only the graph keeps node groups waiting."""
    trace = built.trace
    assert_nodegroups_came_after_cluster_and_endpoints(trace, 0)
    create = trace.index(0, "call", "CreateNodegroup")
    active = trace.index(0, "answer", "DescribeCluster", lambda d: d.get("cluster", {}).get("status") == "ACTIVE")
    assert active < create


def test_nodegroups_start_once_the_networking_addons_exist_coredns_beside_them(built: Built) -> None:
    """Node groups need the networking add-ons to *exist* when their nodes boot, not to be ACTIVE; coredns is
    made beside them and waited on once they are ready. Naive code waits for each add-on's ACTIVE before the
    node groups (a minute or more on AWS), or makes coredns only after them: both lengthen `up`. Add-ons made
    slow here (`built`), so that any wait on them shows."""
    trace, start, result = built.trace, 0, built.result

    def addon(name: str, status: str | None = None) -> Callable[[dict[str, Any]], bool]:
        return lambda d: (d.get("addonName", d.get("addon", {}).get("addonName")) == name
                          and status in (None, d.get("addon", {}).get("status")))

    first_group = trace.index(start, "call", "CreateNodegroup")
    for name in ("vpc-cni", "kube-proxy", "eks-pod-identity-agent"):
        assert trace.index(start, "call", "CreateAddon", addon(name)) < first_group
    assert first_group < trace.index(start, "answer", "DescribeAddon",
                                     lambda d: d.get("addon", {}).get("status") == "ACTIVE")
    group_active = trace.index(start, "answer", "DescribeNodegroup",
                               lambda d: d.get("nodegroup", {}).get("status") == "ACTIVE")
    assert trace.index(start, "call", "CreateAddon", addon("coredns")) < group_active
    assert trace.index(start, "answer", "DescribeAddon", addon("coredns", "ACTIVE")) > group_active
    assert "DEGRADED" not in result.stderr


# -- down's edges -----------------------------------------------------------------------------------------


def test_down_when_nothing_exists_succeeds_and_says_so(cli: Cli, cluster_name: str, stand_in: SandboxServer,
                                                       aws_env: Path) -> None:
    mark = len(stand_in.calls())
    result = ok(cli("down", "--name", cluster_name, "--yes"))
    assert f"nothing to delete: no resources of {cluster_name} in {REGION}" in result.stderr
    assert [op for op in ops(since(stand_in, mark)) if is_mutating(op.split(":")[1])] == []
    assert not (aws_env / "state" / f"{cluster_name}-{REGION}.json").exists()


def test_down_without_yes_and_without_a_terminal_refuses(cli: Cli, cluster_name: str) -> None:
    result = cli("down", "--name", cluster_name)
    assert result.exit_code == 2 and result.exception is None
    assert result.stderr.count("error:") == 1 and "--yes" in result.stderr and "Traceback" not in result.stderr


def test_bad_config_changes_nothing(cli: Cli, cluster_name: str, stand_in: SandboxServer, aws_env: Path) -> None:
    config = aws_env / "bad.toml"
    config.write_text('vpc_cidr = "10.20.0.0/16"\nnode_count = 3\n')
    mark = len(stand_in.calls())
    result = cli("up", "--name", cluster_name, "--config", str(config))
    assert result.exit_code == 2 and "node_count" in result.stderr and "Traceback" not in result.stderr
    assert since(stand_in, mark) == []  # rejected before any call to AWS
    assert not (aws_env / "state").exists() or os.listdir(aws_env / "state") == []
