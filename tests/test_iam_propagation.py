"""End to end: `up` then `down` through the CLI, on the first try, with IAM propagation slower than eksprivate.

The sandbox keeps every new role and policy attachment unusable for `iam_role_delay` (scaled: 3 s here),
several times the gap between CreateRole and the first CreateCluster / CreateFlowLogs. EKS and EC2 refuse
meanwhile with AWS's messages; `up` must retry them and finish, `down` must remove everything. Then every
policy `up` wrote to IAM must be one `written_policies` returns (so the linter test sees all of them).

CreateNodegroup is not refused here, as on AWS: the node role is made ~10 minutes (scaled: the cluster's
creation) before it is used. tests/steps/test_iam_propagation.py makes it young on purpose.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import boto3

from eksprivate.aws import Aws
from eksprivate.config import build_settings
from eksprivate.sandbox import SandboxServer
from eksprivate.state import Ledger
from eksprivate.steps import Context, written_policies

REGION = "eu-central-1"
ACCOUNT = "123456789012"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
# EKS durations cut so a run takes seconds; IAM propagation 300 s x 0.01 = 3 s, while `up` reaches
# CreateFlowLogs and CreateCluster well under a second after the roles are made. Longer than AWS's usual
# few seconds so that a slow or busy machine still reaches both calls inside the window (at 1.5 s, a
# serial run that had slowed five times did not); eksprivate's retry bound is 3 minutes of wall time.
TIMING = {"time_scale": 0.01, "cluster_create": 27.0, "cluster_delete": 12.0, "nodegroup_create": 9.0,
          "nodegroup_delete": 12.0, "interface_endpoint_create": 4.5, "interface_endpoint_delete": 3.0,
          "gateway_endpoint": 0.1, "iam_role_delay": 300.0}
PROPAGATING = ("CreateCluster", "CreateFlowLogs")


def client(stand_in: SandboxServer, service: str) -> Any:
    return boto3.client(service, endpoint_url=stand_in.url, region_name=REGION, **CREDENTIALS)


def document(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else dict(json.loads(unquote(value)))


def live_policies(stand_in: SandboxServer, name: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(role name, "trust" | "identity", document) for every role of cluster `name` in IAM."""
    iam = client(stand_in, "iam")
    out = []
    for role in iam.get_paginator("list_roles").paginate().build_full_result()["Roles"]:
        if not role["RoleName"].startswith(f"{name}-{REGION}-"):
            continue
        out.append((role["RoleName"], "trust", document(role["AssumeRolePolicyDocument"])))
        for policy in iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]:
            got = iam.get_role_policy(RoleName=role["RoleName"], PolicyName=policy)["PolicyDocument"]
            out.append((role["RoleName"], "identity", document(got)))
        # Only AWS managed policies are attached: eksprivate writes no customer managed policy.
        for attached in iam.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"]:
            assert attached["PolicyArn"].startswith("arn:aws:iam::aws:policy/"), attached
    return out


def context(stand_in: SandboxServer, name: str, folder: Path) -> Context:
    aws = Aws(REGION, endpoint_url=stand_in.url, credentials=CREDENTIALS)
    ledger = Ledger.open(folder / "registry" / f"{name}-{REGION}.json", name, REGION, ACCOUNT)
    return Context(aws=aws, settings=build_settings({}, name=name), ledger=ledger, account=ACCOUNT,
                   azs=[f"{REGION}{z}" for z in "abc"], poll=0.01)


def test_up_and_down_succeed_first_try_while_iam_propagates(
        stand_in: SandboxServer, cli: Any, cluster_name: str, tmp_path: Path) -> None:
    """Naive code (no retry) fails this `up` at CreateFlowLogs and CreateCluster: both are refused (HTTP
    400) for 3 s after their role is made, and `up` reaches them sooner."""
    stand_in.configure(**TIMING)
    stand_in.clear_calls()
    up = cli("up", "--name", cluster_name, "--region", REGION)
    assert up.exit_code == 0, up.stderr
    calls = stand_in.calls()
    for operation in PROPAGATING:
        answers = [c.status for c in calls if c.operation == operation]
        assert 400 in answers, f"{operation} was never refused: the propagation retry was not exercised"
        assert answers[-1] == 200 and answers.count(200) == 1, (operation, answers)

    # Every policy `up` wrote is one the linted registry returns.
    registry = written_policies(context(stand_in, cluster_name, tmp_path))
    known = [(p.kind, p.document) for p in registry]
    live = live_policies(stand_in, cluster_name)
    assert {kind for _, kind, _ in live} == {"trust", "identity"}
    for role, kind, doc in live:
        assert (kind, doc) in known, f"{role}: {kind} policy not in written_policies: {doc}"

    stand_in.clear_calls()
    down = cli("down", "--name", cluster_name, "--region", REGION, "--yes")
    assert down.exit_code == 0, down.stderr
    assert live_policies(stand_in, cluster_name) == []
    ec2 = client(stand_in, "ec2")
    tag = [{"Name": "tag:eksprivate:cluster", "Values": [cluster_name]}]
    assert ec2.describe_vpcs(Filters=tag)["Vpcs"] == []
    assert ec2.describe_flow_logs(Filters=tag)["FlowLogs"] == []
    assert cluster_name not in client(stand_in, "eks").list_clusters()["clusters"]
