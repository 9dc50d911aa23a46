"""Every IAM policy eksprivate writes passes an IAM linter (parliament), and the flow-logs role's policies
are the ones AWS documents: its trust limited to this account's flow logs, its writes to its log group.

The documents come from ONE function, `eksprivate.steps.written_policies(ctx)`: every Role subclass's
trust policy and identity (inline) policy, so a policy added later is linted too. The end-to-end test
(tests/test_iam_propagation.py) checks that `up` writes no policy this function does not return.
"""

from __future__ import annotations

import json
from typing import Any

import parliament
import pytest

from eksprivate import partitions
from eksprivate.steps import Context, written_policies
from eksprivate.steps.iam import FlowLogsRole, flow_log_group_arn
from eksprivate.steps.policies import WrittenPolicy

from .world import World, assert_rerun_is_noop, converge, mutating_during, plan_one, up_one

ACCOUNT = "123456789012"
# parliament 1.6.4's bundled IAM reference is older than AWS's for these actions: AWS's Service Authorization
# Reference for ECR lists ecr:BatchImportUpstreamImage with resource type `repository*`, parliament lists no
# resource type (so it wants "*"). Only this finding, only for this action, only on repository ARNs, is ignored.
STALE_IN_PARLIAMENT = {("RESOURCE_MISMATCH", "ecr:BatchImportUpstreamImage")}


def findings(policy: WrittenPolicy, role_arn: str) -> list[str]:
    """parliament's findings on a policy eksprivate writes.

    parliament lints identity policies. A trust policy has no Resource element (its resource is the role
    itself) and parliament then stops at "MALFORMED: neither Resource nor NotResource" before checking
    anything; so the linted copy gets `Resource: <the role's ARN>`. parliament then checks the principal,
    the action and every condition key against sts:AssumeRole (an unknown or misspelt key is a finding).
    """
    document: dict[str, Any] = json.loads(json.dumps(policy.document))
    if policy.kind == "trust":
        for statement in document["Statement"]:
            statement["Resource"] = role_arn
    linted = parliament.analyze_policy_string(json.dumps(document))
    out = []
    for finding in linted.findings:
        details = finding.detail if isinstance(finding.detail, list) else [finding.detail]
        if all(isinstance(d, dict) and (finding.issue, d.get("action")) in STALE_IN_PARLIAMENT for d in details) \
                and _only_repository_resources(document, "ecr:BatchImportUpstreamImage"):
            continue
        out.append(f"{finding.issue}: {finding.detail}")
    return out


def _only_repository_resources(document: dict[str, Any], action: str) -> bool:
    resources = [r for st in document["Statement"] if action in st.get("Action", [])
                 for r in ([st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"])]
    return bool(resources) and all(":ecr:" in r and ":repository/" in r for r in resources)


def contexts(world: World) -> list[Context]:
    """Configurations that change what is written: the defaults, Session Manager on the nodes, and the
    other partitions (their ARNs and service principals)."""
    out = [world.ctx(), world.ctx(endpoints=["ssm", "ssmmessages", "ec2messages"]), world.ctx(flow_logs=False),
           world.ctx(pull_through_cache=["ecr-public", "k8s", "quay"])]
    for name in ("aws-cn", "aws-us-gov"):
        ctx = world.ctx()
        ctx.partition = partitions.named(name)
        out.append(ctx)
    return out


def test_every_policy_eksprivate_writes_passes_the_linter(world: World) -> None:
    """Fails on the flow-logs policy as it was: logs:DescribeLogGroups scoped to the log group's ARN
    (RESOURCE_MISMATCH: that action takes only "*", so it was never granted)."""
    for ctx in contexts(world):
        policies = written_policies(ctx)
        kinds = {(p.role_key, p.kind) for p in policies}
        assert {("cluster-role", "trust"), ("node-role", "trust"), ("flow-logs-role", "trust"),
                ("flow-logs-role", "identity")} <= kinds
        if ctx.settings.pull_through_cache:  # the node role's first-pull policy (steps/pull_through.py)
            assert ("node-role", "identity") in kinds
        for policy in policies:
            arn = ctx.partition.arn("iam", "", ctx.account, f"role/{ctx.iam_name(policy.role_key)}")
            assert findings(policy, arn) == [], f"{ctx.partition.name} {policy.role_key} {policy.kind}"


def test_the_linter_catches_what_it_is_here_for() -> None:
    """The check can fail: the old flow-logs policy, a misspelt condition key, an unknown action."""
    group = f"arn:aws:logs:eu-central-1:{ACCOUNT}:log-group:/eksprivate/x/vpc-flow-logs"
    old = WrittenPolicy("flow-logs-role", "identity", {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogGroups",
                                      "logs:DescribeLogStreams"], "Resource": [group, f"{group}:*"]}]})
    assert [f.split(":")[0] for f in findings(old, "")] == ["RESOURCE_MISMATCH"]
    misspelt = WrittenPolicy("flow-logs-role", "trust", {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "vpc-flow-logs.amazonaws.com"}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAcount": ACCOUNT}}}]})
    assert [f.split(":")[0] for f in findings(misspelt, f"arn:aws:iam::{ACCOUNT}:role/r")] == [
        "UNKNOWN_CONDITION_FOR_ACTION"]
    unknown = WrittenPolicy("node-role", "trust", {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AsumeRole"}]})
    assert [f.split(":")[0] for f in findings(unknown, f"arn:aws:iam::{ACCOUNT}:role/r")] == ["UNKNOWN_ACTION"]


def test_flow_logs_policies_are_the_ones_aws_documents(world: World) -> None:
    """AWS's flow-logs delivery role (VPC user guide, "IAM role for publishing flow logs to CloudWatch
    Logs"): DescribeLogGroups on "*", the writes (here) on the one log group; trust limited with
    aws:SourceAccount and aws:SourceArn (confused deputy)."""
    ctx = world.ctx()
    role = FlowLogsRole()
    group = flow_log_group_arn(ctx)
    statements = {s["Sid"]: s for s in (role.inline_policy(ctx) or {})["Statement"]}
    assert statements["FindTheFlowLogGroup"]["Action"] == "logs:DescribeLogGroups"
    assert statements["FindTheFlowLogGroup"]["Resource"] == "*"
    assert statements["DeliverToTheFlowLogGroup"]["Resource"] == [group, f"{group}:*"]
    assert "logs:CreateLogGroup" not in json.dumps(statements)  # eksprivate makes the group itself
    trust = role.trust_document(ctx)["Statement"]
    assert trust == [{"Effect": "Allow", "Principal": {"Service": "vpc-flow-logs.amazonaws.com"},
                      "Action": "sts:AssumeRole",
                      "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT},
                                    "ArnLike": {"aws:SourceArn": f"arn:aws:ec2:eu-central-1:{ACCOUNT}:"
                                                                 "vpc-flow-log/*"}}}]


@pytest.mark.parametrize("drift", ["old policy", "no trust conditions"])
def test_a_flow_logs_role_made_by_an_older_eksprivate_is_brought_up_to_date(world: World, drift: str) -> None:
    """A role made before these fixes keeps the scoped DescribeLogGroups or an unconditioned trust: a naive
    `find` that only checks the inline policy's name would leave it so. `up` rewrites what differs, once."""
    ctx = world.ctx()
    name = converge(ctx, FlowLogsRole())["role_name"]
    iam = world.client("iam")
    if drift == "old policy":
        group = flow_log_group_arn(ctx)
        iam.put_role_policy(RoleName=name, PolicyName="eksprivate", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [
                "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogGroups", "logs:DescribeLogStreams"],
                "Resource": [group, f"{group}:*"]}]}))
        change, call = "update the log delivery policy", "iam:PutRolePolicy"
    else:
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {
                "Service": "vpc-flow-logs.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
        change = "limit the trust policy to this account's flow logs (aws:SourceAccount, aws:SourceArn)"
        call = "iam:UpdateAssumeRolePolicy"
    assert plan_one(ctx, FlowLogsRole()).details == [change]
    assert mutating_during(ctx, lambda: up_one(ctx, FlowLogsRole()))[1] == [call]
    assert_rerun_is_noop(ctx, FlowLogsRole())
