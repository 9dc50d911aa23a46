"""IAM roles: each trusts exactly one service and carries exactly the managed policies it needs."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

import pytest

from eksprivate.errors import EksPrivateError
from eksprivate.steps.iam import ClusterRole, FlowLogsRole, NodeRole, Role

from .world import (
    World,
    adopt,
    assert_delete_and_delete_again,
    assert_recorded,
    assert_rerun_is_noop,
    converge,
    mutating_during,
    plan_one,
    up_one,
)

POLICY = "arn:aws:iam::aws:policy/"
ROLES: list[tuple[type[Role], str, list[str]]] = [
    (ClusterRole, "eks.amazonaws.com", ["AmazonEKSClusterPolicy"]),
    (NodeRole, "ec2.amazonaws.com",
     ["AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"]),
    (FlowLogsRole, "vpc-flow-logs.amazonaws.com", []),
]


def trust_of(role: dict[str, Any]) -> dict[str, Any]:
    doc = role["AssumeRolePolicyDocument"]
    return doc if isinstance(doc, dict) else dict(json.loads(unquote(doc)))


def attached(iam: Any, name: str) -> list[str]:
    return sorted(p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"])


@pytest.mark.parametrize(("kind", "service", "policies"), ROLES, ids=[r[0].__name__ for r in ROLES])
def test_role_lifecycle(world: World, kind: type[Role], service: str, policies: list[str]) -> None:
    ctx = world.ctx()
    iam = world.client("iam")

    found = converge(ctx, kind())
    name = found["role_name"]
    assert name == f"{world.name}-eu-central-1-{kind.suffix}"
    assert_recorded(ctx, kind.key, role_name=name, role_arn=found["role_arn"])
    role = iam.get_role(RoleName=name)["Role"]
    statements = trust_of(role)["Statement"]
    assert len(statements) == 1  # trusts one service and nothing else
    assert statements[0]["Effect"] == "Allow" and statements[0]["Action"] == "sts:AssumeRole"
    assert statements[0]["Principal"] == {"Service": service}
    assert {t["Key"]: t["Value"] for t in role["Tags"]}["eksprivate:cluster"] == world.name
    assert attached(iam, name) == sorted(POLICY + p for p in policies)

    assert_rerun_is_noop(ctx, kind())

    lost = world.ctx(fresh=True)
    assert adopt(lost, kind())[kind.key]["role_arn"] == found["role_arn"]
    assert lost.ledger.ids(kind.key)["role_arn"] == found["role_arn"]
    assert_rerun_is_noop(lost, kind())

    assert_delete_and_delete_again(ctx, kind(), found)
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_role(RoleName=name)


def test_node_role_gets_session_manager_policy_with_the_ssm_endpoint(world: World) -> None:
    ctx = world.ctx(endpoints=["ssm", "ssmmessages", "ec2messages"])
    name = converge(ctx, NodeRole())["role_name"]
    assert POLICY + "AmazonSSMManagedInstanceCore" in attached(world.client("iam"), name)


def test_flow_logs_role_may_only_write_its_log_group(world: World) -> None:
    ctx = world.ctx()
    name = converge(ctx, FlowLogsRole())["role_name"]
    iam = world.client("iam")
    assert iam.list_role_policies(RoleName=name)["PolicyNames"] == ["eksprivate"]
    doc = iam.get_role_policy(RoleName=name, PolicyName="eksprivate")["PolicyDocument"]
    doc = doc if isinstance(doc, dict) else json.loads(unquote(doc))
    group = f"arn:aws:logs:eu-central-1:123456789012:log-group:/eksprivate/{world.name}/vpc-flow-logs"
    assert doc["Statement"][0]["Resource"] == [group, f"{group}:*"]

    iam.delete_role_policy(RoleName=name, PolicyName="eksprivate")  # someone removed it
    assert plan_one(ctx, FlowLogsRole()).details == ["put the log delivery policy"]
    outcome, mutating = mutating_during(ctx, lambda: up_one(ctx, FlowLogsRole()))
    assert mutating == ["iam:PutRolePolicy"] and outcome.changes == ["put the log delivery policy"]
    assert_rerun_is_noop(ctx, FlowLogsRole())


def test_role_reattaches_a_detached_policy(world: World) -> None:
    ctx = world.ctx()
    name = converge(ctx, NodeRole())["role_name"]
    iam = world.client("iam")
    iam.detach_role_policy(RoleName=name, PolicyArn=POLICY + "AmazonEKS_CNI_Policy")

    assert plan_one(ctx, NodeRole()).details == ["attach AmazonEKS_CNI_Policy"]
    assert mutating_during(ctx, lambda: up_one(ctx, NodeRole()))[1] == ["iam:AttachRolePolicy"]
    assert POLICY + "AmazonEKS_CNI_Policy" in attached(iam, name)


def test_role_made_by_a_crashed_run_is_adopted_on_create(world: World) -> None:
    """CreateRole takes no token: a run killed after it and before recording the ARN leaves a role the
    state does not know. A create that meets EntityAlreadyExists adopts it."""
    first = converge(world.ctx(), ClusterRole())
    lost = world.ctx(fresh=True)
    again, mutating = mutating_during(lost, lambda: ClusterRole().create(lost))
    assert again["role_arn"] == first["role_arn"]
    # ...and records it: CreateCluster/CreateNodegroup read the role ARN from the state.
    assert lost.ledger.ids("cluster-role")["role_arn"] == first["role_arn"]
    assert mutating == ["iam:CreateRole"]  # refused; nothing else needed doing


def test_role_with_our_name_that_we_did_not_make_is_refused(world: World) -> None:
    ctx = world.ctx()
    iam = world.client("iam")
    name = ClusterRole().role_name(ctx)
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
    try:
        with pytest.raises(EksPrivateError, match=f"IAM role {name} exists but was not made by eksprivate"):
            ClusterRole().find(ctx)
        with pytest.raises(EksPrivateError, match="not made by eksprivate"):
            converge(ctx, ClusterRole())
    finally:
        iam.delete_role(RoleName=name)


BOUNDARY_DOC = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def test_a_permissions_boundary_is_set_at_creation_and_put_on_older_roles(world: World) -> None:
    """permissions_boundary: CreateRole carries it (the role never exists without it); a role made before it was
    configured gets it as a change, before any policy is attached; a rerun then changes nothing."""
    iam = world.client("iam")
    boundary = iam.create_policy(PolicyName=f"{world.name}-boundary",
                                 PolicyDocument=json.dumps(BOUNDARY_DOC))["Policy"]["Arn"]

    bounded = world.ctx(permissions_boundary=boundary)
    found = converge(bounded, ClusterRole())
    assert boundary_of(iam, found["role_name"]) == boundary
    assert_rerun_is_noop(bounded, ClusterRole())

    older = converge(world.ctx(), NodeRole())  # made without one
    assert boundary_of(iam, older["role_name"]) is None
    bounded = world.ctx(permissions_boundary=boundary)
    item = plan_one(bounded, NodeRole())
    assert item.action == "update" and item.details[0] == f"set the permissions boundary {world.name}-boundary"
    up_one(bounded, NodeRole())
    assert boundary_of(iam, older["role_name"]) == boundary
    assert_rerun_is_noop(bounded, NodeRole())


def boundary_of(iam: Any, name: str) -> str | None:
    return iam.get_role(RoleName=name)["Role"].get("PermissionsBoundary", {}).get("PermissionsBoundaryArn")
