"""`plan --check-permissions` against IAM's policy simulator as AWS answers it (botocore's Stubber on the real
clients): whose policies are simulated (an assumed role's ARN with its path, never the session's), what is sent
(each condition value as a context entry of its own request), and how the answer is read (per resource)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from botocore.stub import ANY, Stubber

from eksprivate.aws import Aws
from eksprivate.grants import Arns, Condition
from eksprivate.permission_check import check
from eksprivate.permissions import Entry

ROLE = "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Ops_0123"
SESSION = "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Ops_0123/jane@example.com"
CLUSTER = "arn:aws:eks:eu-central-1:123456789012:cluster/c"


def _ctx() -> Any:
    aws = Aws("eu-central-1", credentials={"aws_access_key_id": "x", "aws_secret_access_key": "x"})
    return SimpleNamespace(aws=aws, arns=Arns("aws", "eu-central-1", "123456789012", "c"))


def _result(action: str, *decisions: tuple[str, str]) -> dict[str, Any]:
    return {"EvalActionName": action, "EvalResourceName": "*", "EvalDecision": "implicitDeny",
            "ResourceSpecificResults": [{"EvalResourceName": r, "EvalResourceDecision": d} for r, d in decisions]}


def test_an_sso_sessions_role_is_simulated_and_each_refusal_named_per_resource() -> None:
    ctx = _ctx()
    entries = [Entry("eks:CreateCluster", (), {"*"}, {"create"}),
               Entry("eks:DescribeCluster", (), {CLUSTER}, {"find"}),
               Entry("ec2:CreateTags", (Condition("StringEquals", "ec2:CreateAction", ("CreateVpc", "CreateSubnet")),),
                     {"arn:aws:ec2:eu-central-1:123456789012:*/*"}, {"create"}),
               Entry("sts:GetCallerIdentity", (), {"*"}, {"find"})]  # needs no permission: never asked about
    with Stubber(ctx.aws.sts.raw) as sts, Stubber(ctx.aws.iam.raw) as iam:
        sts.add_response("get_caller_identity", {"Account": "123456789012", "Arn": SESSION, "UserId": "AROA:jane"})
        iam.add_response("get_role", {"Role": {"Path": "/aws-reserved/sso.amazonaws.com/", "Arn": ROLE,
                                               "RoleName": "AWSReservedSSO_Ops_0123", "RoleId": "AROA0123456789012",
                                               "CreateDate": "2026-01-01T00:00:00Z"}},
                         {"RoleName": "AWSReservedSSO_Ops_0123"})
        # One request per (resources, condition values): sorted, as check() sends them.
        iam.add_response("simulate_principal_policy", {"EvaluationResults": [
            _result("eks:CreateCluster", ("*", "allowed"))]},
            {"PolicySourceArn": ROLE, "ActionNames": ["eks:CreateCluster"], "ResourceArns": ["*"],
             "ContextEntries": []})
        for value, decision in (("CreateSubnet", "allowed"), ("CreateVpc", "implicitDeny")):
            iam.add_response("simulate_principal_policy", {"EvaluationResults": [
                _result("ec2:CreateTags", ("arn:aws:ec2:eu-central-1:123456789012:*/*", decision))]},
                {"PolicySourceArn": ROLE, "ActionNames": ["ec2:CreateTags"], "ResourceArns": ANY,
                 "ContextEntries": [{"ContextKeyName": "ec2:CreateAction", "ContextKeyValues": [value],
                                     "ContextKeyType": "string"}]})
        iam.add_response("simulate_principal_policy", {"EvaluationResults": [
            _result("eks:DescribeCluster", (CLUSTER, "explicitDeny"))]},
            {"PolicySourceArn": ROLE, "ActionNames": ["eks:DescribeCluster"], "ResourceArns": [CLUSTER],
             "ContextEntries": []})
        result = check(ctx, entries)
        iam.assert_no_pending_responses()
    assert result.checked and result.principal == ROLE
    assert [(m.action, m.resource, m.decision) for m in result.missing] == [
        ("ec2:CreateTags", "arn:aws:ec2:eu-central-1:123456789012:*/*", "implicitDeny"),
        ("eks:DescribeCluster", CLUSTER, "explicitDeny")]
    assert "explicitly denied" in result.lines()[-1]


def test_the_root_user_and_a_caller_that_may_not_simulate_are_said_not_checked() -> None:
    ctx = _ctx()
    with Stubber(ctx.aws.sts.raw) as sts:
        sts.add_response("get_caller_identity", {"Account": "123456789012", "Arn": "arn:aws:iam::123456789012:root",
                                                 "UserId": "123456789012"})
        root = check(ctx, [Entry("eks:CreateCluster", (), {"*"}, {"create"})])
    assert not root.checked and "root user" in root.lines()[0]
    ctx = _ctx()
    with Stubber(ctx.aws.sts.raw) as sts, Stubber(ctx.aws.iam.raw) as iam:
        sts.add_response("get_caller_identity", {"Account": "123456789012", "Arn": "arn:aws:iam::123456789012:user/ci",
                                                 "UserId": "AIDA"})
        iam.add_client_error("simulate_principal_policy", "AccessDenied", "User: arn:aws:iam::123456789012:user/ci "
                             "is not authorized to perform: iam:SimulatePrincipalPolicy on resource: "
                             "arn:aws:iam::123456789012:user/ci", 403)
        denied = check(ctx, [Entry("eks:CreateCluster", (), {"*"}, {"create"})])
    assert not denied.checked
    assert denied.lines() == ["permissions not checked: the caller may not call iam:SimulatePrincipalPolicy"]
