"""Throttling, 5xx and an IAM role that EKS cannot assume yet: `up` and `down` still succeed on the first
try, because botocore retries every throttled or failed call and eksprivate retries CreateCluster while
the role propagates. The sandbox injects the faults; its call log shows every attempt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore.retries.standard import ExponentialBackoff

from eksprivate.sandbox import SandboxServer

from .helpers import REGION, Cli, SdkHooks, inventory, shape

# Real AWS: a new role becomes assumable 2-30 s after CreateRole, while `up` reaches CreateCluster ~3 s
# after it (the subnets come first). Here the clock runs 100x fast with EKS durations cut 20x more, so a
# run takes about a second; the role stays unassumable for 2 s, several times the ~0.5 s the sandbox takes
# to reach CreateCluster (which does not shrink with the clock), so the propagation retry has to work.
TIMING = {"time_scale": 0.01, "cluster_create": 27.0, "cluster_delete": 12.0, "nodegroup_create": 9.0,
          "nodegroup_delete": 12.0, "interface_endpoint_create": 4.5, "interface_endpoint_delete": 3.0,
          "gateway_endpoint": 0.1, "iam_role_delay": 200.0}
FAULTS = {"throttle_rate": 0.10, "unavailable_rate": 0.05, "seed": 20240}


@pytest.fixture
def scaled_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's backoff (up to 1 s, doubling, for throttling) on the sandbox's clock: same retries, 1 % of
    the sleep."""
    original = ExponentialBackoff.delay_amount

    def delay_amount(self: ExponentialBackoff, context: Any) -> float:
        return float(original(self, context)) * 0.01

    monkeypatch.setattr(ExponentialBackoff, "delay_amount", delay_amount)


def _run(cli: Cli, stand_in: SandboxServer, metrics: Path, *args: str) -> tuple[int, list[Any]]:
    stand_in.clear_calls()
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    return json.loads(metrics.read_text())["calls"], stand_in.calls()


def test_up_and_down_succeed_first_try_under_throttling_5xx_and_slow_iam(
        stand_in: SandboxServer, cli: Cli, cluster_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        scaled_backoff: None) -> None:
    metrics = tmp_path / "metrics.json"
    monkeypatch.setenv("EKSPRIVATE_METRICS", str(metrics))
    stand_in.configure(**TIMING, **FAULTS)

    logical, server = _run(cli, stand_in, metrics, "up", "--name", cluster_name, "--region", REGION)
    faults = [r for r in server if r.fault]
    assert {r.fault for r in faults} == {"throttle", "unavailable"}
    assert len(faults) >= 0.08 * len(server)
    # Each injected fault cost exactly one more attempt of the same logical call: botocore retried them all.
    assert len(server) == logical + len(faults)
    refused = [r for r in server if r.operation == "CreateCluster" and r.status == 400]
    assert refused, "the IAM role was assumable at once: the propagation retry was not exercised"
    assert [r.status for r in server if r.operation == "CreateCluster"][-1] == 200
    # The inventory is the test's own look, not the tool's: faults off while it looks (its plain clients retry
    # less than the tool's and would make the test flaky), back on for `down`.
    stand_in.configure(throttle_rate=0.0, unavailable_rate=0.0)
    assert {i.kind for i in inventory(stand_in.url, cluster_name)} >= {"vpc", "cluster", "nodegroup", "endpoint"}
    stand_in.configure(**FAULTS)

    logical, server = _run(cli, stand_in, metrics, "down", "--name", cluster_name, "--region", REGION, "--yes")
    faults = [r for r in server if r.fault]
    assert faults and len(server) == logical + len(faults)
    stand_in.configure(throttle_rate=0.0, unavailable_rate=0.0)
    assert inventory(stand_in.url, cluster_name) == []


def test_access_denied_mid_run_names_the_action_and_the_rerun_finishes(
        stand_in: SandboxServer, cli: Cli, hooks: SdkHooks, cluster_name: str,
        clean_shape: dict[str, list[str]]) -> None:
    # IAM permissions cannot be checked before the first create (EC2 ones can: the VPC goes first and
    # alone): the run stops with the denied action named, and once it is granted the rerun completes.
    denied = hooks.fail("iam", "CreateRole", "AccessDenied",
                        "User: arn:aws:iam::123456789012:user/dev is not authorized to perform: iam:CreateRole on "
                        "resource: arn:aws:iam::123456789012:role/x because no identity-based policy allows the "
                        "iam:CreateRole action", status=403, times=3)
    first = cli("up", "--name", cluster_name, "--region", REGION)
    assert first.exit_code == 1 and first.exception is None
    last = first.stderr.strip().splitlines()[-1]
    assert last.startswith("error: up failed at ") and "not allowed to call iam:CreateRole on " in last, last
    assert "arn:aws:iam::123456789012:role/x" in last and "`eksprivate permissions` prints the whole policy" in last
    assert "Traceback" not in first.stderr
    assert denied == [3]
    again = cli("up", "--name", cluster_name, "--region", REGION)  # the permission is there now
    assert again.exit_code == 0, again.stderr
    assert shape(inventory(stand_in.url, cluster_name)) == clean_shape


DENIED_MID_RUN = {
    # EKS checks iam:PassRole on the role CreateCluster hands over: the line names that action and role.
    "cluster-passrole": ("eks", "CreateCluster", "AccessDeniedException", 403,
                         "User: arn:aws:sts::123456789012:assumed-role/operator/jane is not authorized to perform: "
                         "iam:PassRole on resource: arn:aws:iam::123456789012:role/{name}-eu-central-1-cluster "
                         "because no identity-based policy allows the iam:PassRole action",
                         "not allowed to call iam:PassRole on arn:aws:iam::123456789012:role/{name}-eu-central-1-"
                         "cluster", "cluster"),
    # EC2's form, with its encoded message; the endpoints come after the VPC, subnets and group exist.
    "endpoints-ec2": ("ec2", "CreateVpcEndpoint", "UnauthorizedOperation", 403,
                      "You are not authorized to perform this operation. User: arn:aws:sts::123456789012:assumed-role/"
                      "operator/jane is not authorized to perform: ec2:CreateVpcEndpoint on resource: "
                      "arn:aws:ec2:eu-central-1:123456789012:vpc-endpoint/* because no identity-based policy allows "
                      "the ec2:CreateVpcEndpoint action. Encoded authorization failure message: " + "QmFk" * 100,
                      "not allowed to call ec2:CreateVpcEndpoint on arn:aws:ec2:eu-central-1:123456789012:"
                      "vpc-endpoint/*", "endpoint"),
}


@pytest.mark.parametrize("case", sorted(DENIED_MID_RUN))
def test_a_create_refused_mid_run_names_what_to_grant_and_the_rerun_makes_no_duplicate(
        stand_in: SandboxServer, cli: Cli, hooks: SdkHooks, cluster_name: str, aws_env: Path,
        clean_shape: dict[str, list[str]], case: str) -> None:
    service, operation, code, status, message, says, kind = DENIED_MID_RUN[case]
    denied = hooks.fail(service, operation, code, message.format(name=cluster_name), status=status, times=1)
    first = cli("up", "--name", cluster_name, "--region", REGION)
    assert first.exit_code == 1 and first.exception is None, first.stderr
    last = first.stderr.strip().splitlines()[-1]
    assert last.startswith("error: up failed at ") and says.format(name=cluster_name) in last, last
    assert "`eksprivate permissions` prints the whole policy" in last and "QmFk" not in last
    assert denied == [1]
    # The state kept what was made before the refusal (the VPC goes first, alone); the refused kind is short.
    steps = json.loads((aws_env / "state" / f"{cluster_name}-{REGION}.json").read_text())["steps"]
    assert steps["vpc"]["ids"]["vpc_id"]
    made = shape(inventory(stand_in.url, cluster_name))
    assert len(made.get(kind, [])) < len(clean_shape[kind]), made
    # Granted: the rerun converges to exactly what an unrefused run makes, nothing twice.
    again = cli("up", "--name", cluster_name, "--region", REGION)
    assert again.exit_code == 0, again.stderr
    assert shape(inventory(stand_in.url, cluster_name)) == clean_shape


def _without(policy: dict[str, Any], action: str) -> dict[str, Any]:
    """The policy with `action` taken out of every statement (a statement left with none goes)."""
    out = []
    for statement in policy["Statement"]:
        actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        kept = [a for a in actions if a != action]
        if kept:
            out.append({**statement, "Action": kept})
    return {**policy, "Statement": out}


def test_under_a_policy_lacking_one_action_up_names_it_and_the_rerun_after_the_grant_converges(
        stand_in: SandboxServer, cli: Cli, cluster_name: str, aws_env: Path,
        clean_shape: dict[str, list[str]]) -> None:
    """The sandbox enforces the printed policy without eks:CreateNodegroup, as an operator's policy might be:
    `up` makes everything before the node groups, stops with the action and the resource named, keeps the
    state; once the action is granted the rerun makes the node groups and nothing twice."""
    where = ("--name", cluster_name, "--region", REGION)
    printed = cli("permissions", *where)
    assert printed.exit_code == 0, printed.stderr
    policy = json.loads(printed.stdout)
    stand_in.enforce(_without(policy, "eks:CreateNodegroup"))
    first = cli("up", *where)
    assert first.exit_code == 1 and first.exception is None, first.stderr
    last = first.stderr.strip().splitlines()[-1]
    assert (f"not allowed to call eks:CreateNodegroup on arn:aws:eks:{REGION}:123456789012:cluster/{cluster_name}"
            in last), last
    assert "`eksprivate permissions` prints the whole policy" in last
    assert {c.action for c in stand_in.refused()} == {"eks:CreateNodegroup"}
    state = json.loads((aws_env / "state" / f"{cluster_name}-{REGION}.json").read_text())["steps"]
    assert state["cluster"]["ids"] and not any(k.startswith("nodegroup/") and v.get("ids")
                                               for k, v in state.items())
    stand_in.enforce(policy)  # granted
    again = cli("up", *where)
    assert again.exit_code == 0, again.stderr
    assert stand_in.refused() == []
    stand_in.enforce(None)
    assert shape(inventory(stand_in.url, cluster_name)) == clean_shape


SIMULATE = {"Effect": "Allow", "Action": "iam:SimulatePrincipalPolicy", "Resource": "*"}


def test_plan_check_permissions_lists_what_the_caller_lacks_before_anything_is_made(
        stand_in: SandboxServer, cli: Cli, cluster_name: str, aws_env: Path) -> None:
    """IAM's policy simulator, asked by `plan --check-permissions` (the sandbox answers it from the enforced
    policy): the one action taken out is named with its resource and what needs it; nothing is made."""
    where = ("--name", cluster_name, "--region", REGION)
    policy = json.loads(cli("permissions", *where).stdout)
    lacking = _without(policy, "eks:CreateNodegroup")
    stand_in.enforce({**lacking, "Statement": [*lacking["Statement"], SIMULATE]})
    stand_in.clear_calls()
    plan = cli("plan", *where, "--check-permissions", "-o", "json")
    assert plan.exit_code == 0, plan.stderr
    checked = json.loads(plan.stdout)["permissions"]
    assert checked["checked"] is True
    assert checked["missing"] == [{"action": "eks:CreateNodegroup", "decision": "implicitDeny", "verbs": ["create"],
                                   "resource": f"arn:aws:eks:{REGION}:123456789012:cluster/{cluster_name}"}]
    text = cli("plan", *where, "--check-permissions")
    assert "lacks 1" in text.stdout and "missing eks:CreateNodegroup on arn:aws:eks:" in text.stdout, text.stdout
    assert [c for c in stand_in.calls() if not c.operation.startswith(("Describe", "List", "Get", "Simulate"))] == []
    assert stand_in.refused() == []

    # Everything granted: nothing missing. Without iam:SimulatePrincipalPolicy (the printed policy has none):
    # plan says it could not check, and still plans.
    stand_in.enforce({**policy, "Statement": [*policy["Statement"], SIMULATE]})
    full = json.loads(cli("plan", *where, "--check-permissions", "-o", "json").stdout)["permissions"]
    assert full["checked"] is True and full["missing"] == []
    stand_in.enforce(policy)
    unable = cli("plan", *where, "--check-permissions")
    assert unable.exit_code == 0, unable.stderr
    assert "permissions not checked: the caller may not call iam:SimulatePrincipalPolicy" in unable.stdout
