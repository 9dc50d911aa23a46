"""A refused call says what to grant: every service's way of refusing (EC2 UnauthorizedOperation with its encoded
message, IAM/STS/S3 AccessDenied, the JSON services' AccessDeniedException, S3's bare 403 on HEAD) becomes one
typed error at the boundary, naming the IAM action (the one AWS names when it is not the call's own, such as
iam:PassRole on CreateCluster), the resource where AWS says it, and `eksprivate permissions`. Answered through
botocore's Stubber on the real clients, so botocore parses each service's error shape itself."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.stub import Stubber

from eksprivate.aws import Aws
from eksprivate.errors import AccessDenied

USER = "User: arn:aws:sts::123456789012:assumed-role/operator/jane is not authorized to perform: "
NO_POLICY = "because no identity-based policy allows the {} action"
ENCODED = "Encoded authorization failure message: " + "Ab3-_x" * 60


@pytest.fixture(scope="module")
def aws() -> Aws:
    return Aws("eu-central-1", credentials={"aws_access_key_id": "x", "aws_secret_access_key": "x"})


# service, method, params, code, HTTP status, AWS's message, (action, resource) the error must name
CASES: list[tuple[str, str, dict[str, Any], str, int, str, tuple[str, str | None]]] = [
    ("ec2", "create_vpc", {"CidrBlock": "10.0.0.0/16"}, "UnauthorizedOperation", 403,
     "You are not authorized to perform this operation. " + USER + "ec2:CreateVpc on resource: "
     "arn:aws:ec2:eu-central-1:123456789012:vpc/* " + NO_POLICY.format("ec2:CreateVpc") + ". " + ENCODED,
     ("ec2:CreateVpc", "arn:aws:ec2:eu-central-1:123456789012:vpc/*")),
    ("iam", "create_role", {"RoleName": "r", "AssumeRolePolicyDocument": "{}"}, "AccessDenied", 403,
     USER + "iam:CreateRole on resource: arn:aws:iam::123456789012:role/r " + NO_POLICY.format("iam:CreateRole"),
     ("iam:CreateRole", "arn:aws:iam::123456789012:role/r")),
    # EKS checks iam:PassRole on the role CreateCluster hands over: the action to grant is not eks:CreateCluster.
    ("eks", "create_cluster", {"name": "c", "roleArn": "arn:aws:iam::123456789012:role/c",
                               "resourcesVpcConfig": {}}, "AccessDeniedException", 403,
     USER + "iam:PassRole on resource: arn:aws:iam::123456789012:role/c " + NO_POLICY.format("iam:PassRole"),
     ("iam:PassRole", "arn:aws:iam::123456789012:role/c")),
    ("kms", "create_key", {}, "AccessDeniedException", 400,
     USER + "kms:CreateKey on resource: * " + NO_POLICY.format("kms:CreateKey"), ("kms:CreateKey", "*")),
    ("logs", "create_log_group", {"logGroupName": "g"}, "AccessDeniedException", 400,
     USER + "logs:CreateLogGroup on resource: arn:aws:logs:eu-central-1:123456789012:log-group:g "
     "with an explicit deny in a service control policy",
     ("logs:CreateLogGroup", "arn:aws:logs:eu-central-1:123456789012:log-group:g")),
    ("sts", "get_caller_identity", {}, "AccessDenied", 403, "Access denied", ("sts:GetCallerIdentity", None)),
    # S3 quotes the resource in its detailed messages; an older or anonymous answer says "Access Denied" only.
    ("s3", "get_object", {"Bucket": "b", "Key": "k"}, "AccessDenied", 403,
     USER + 's3:GetObject on resource: "arn:aws:s3:::b/k" ' + NO_POLICY.format("s3:GetObject"),
     ("s3:GetObject", "arn:aws:s3:::b/k")),
    ("s3", "put_object", {"Bucket": "b", "Key": "k"}, "AccessDenied", 403, "Access Denied", ("s3:PutObject", None)),
    # A HEAD answer has no body: botocore gives the status as the code. HeadBucket is authorised as ListBucket.
    ("s3", "head_bucket", {"Bucket": "b"}, "403", 403, "Forbidden", ("s3:ListBucket", None)),
    # The action prefix is the service's signing name, not boto3's client name.
    ("elbv2", "delete_load_balancer", {"LoadBalancerArn": "arn:x"}, "AccessDenied", 403, "Access Denied",
     ("elasticloadbalancing:DeleteLoadBalancer", None)),
    ("efs", "delete_mount_target", {"MountTargetId": "fsmt-0123456789"}, "AccessDeniedException", 403, "denied",
     ("elasticfilesystem:DeleteMountTarget", None)),
]


def _refused(aws: Aws, service: str, method: str, params: dict[str, Any], code: str, status: int,
             message: str) -> AccessDenied:
    """The error a call gets when AWS answers it with this refusal."""
    client = aws.client(service)
    with Stubber(client.raw) as stub:
        stub.add_client_error(method, code, message, status)
        with pytest.raises(AccessDenied) as refused:
            getattr(client, method)(**params)
    return refused.value


@pytest.mark.parametrize(("service", "method", "params", "code", "status", "message", "names"), CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[3]}" for c in CASES])
def test_every_refusal_is_one_typed_error_naming_what_to_grant(
        aws: Aws, service: str, method: str, params: dict[str, Any], code: str, status: int, message: str,
        names: tuple[str, str | None]) -> None:
    error = _refused(aws, service, method, params, code, status, message)
    action, resource = names
    assert (error.action, error.resource) == (action, resource)
    line = str(error)
    assert "\n" not in line and f"not allowed to call {action}" in line
    assert (f" on {resource}" in line) if resource else " on " not in line.split(" — ")[0]
    assert "`eksprivate permissions` prints the whole policy" in (error.hint or "")
    assert error.aws_message == message  # AWS's own words stay on the error (--debug shows the traceback)


def test_ec2s_encoded_message_is_kept_and_pointed_at_not_printed(aws: Aws) -> None:
    error = _refused(aws, *CASES[0][:6])
    assert error.encoded == "Ab3-_x" * 60
    assert error.encoded not in str(error)
    assert "aws sts decode-authorization-message" in str(error)
    assert "because no identity-based policy allows the ec2:CreateVpc action" in str(error)


def test_an_explicit_deny_is_not_something_to_grant(aws: Aws) -> None:
    error = _refused(aws, *CASES[4][:6])
    assert "explicit deny in a service control policy" in str(error)
    assert "must lift it" in (error.hint or "") and "grant " not in (error.hint or "")
