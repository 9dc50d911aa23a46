"""The data perimeter's policies, judged by an IAM-style evaluator on the requests a node, a pod and an intruder
make, and by an IAM linter (parliament). Pure: no sandbox.

The requests that matter are where a naive perimeter breaks the cluster: image layers come from an AWS-owned
bucket through a URL ECR signed (not this account's principal), the VPC CNI image from the EKS registry account
of the region, packages anonymously from Amazon Linux's buckets, and IRSA's AssumeRoleWithWebIdentity carries no
caller account at all. Each test of a need also shows the naive policy failing it.
"""

from __future__ import annotations

import json
from typing import Any

import parliament
import pytest

from eksprivate import partitions
from eksprivate.perimeter import (
    ECR_PULL,
    FULL_ACCESS,
    Perimeter,
    blocked_needs,
    canonical,
    check_document,
    diff_lines,
    eks_image_registry,
    is_full_access,
    openings,
)
from eksprivate.policy_eval import Request, Unjudged, allows, decide

ACCOUNT = "123456789012"
CENTRAL = "210987654321"  # a company's central image registry account
INTRUDER = "444455556666"
ORG = "o-a1b2c3d4e5"
REGION = "eu-central-1"
AWS = partitions.AWS
SERVICES = ("s3", "ecr.api", "ecr.dkr", "sts", "ec2", "logs", "eks-auth", "ssm")


def perimeter(**kw: Any) -> Perimeter:
    return Perimeter(**{"partition": AWS, "region": REGION, "account": ACCOUNT, **kw})


def signed(action: str, resource: str, account: str, resource_account: str | None = None,
           org: str | None = None, resource_org: str | None = None) -> Request:
    """A request signed by a principal of `account` (a node's or a pod's role)."""
    context: dict[str, str] = {"aws:PrincipalAccount": account}
    if resource_account:
        context["aws:ResourceAccount"] = resource_account
    if org:
        context["aws:PrincipalOrgID"] = org
    if resource_org:
        context["aws:ResourceOrgID"] = resource_org
    return Request(action, resource, account, f"arn:aws:sts::{account}:assumed-role/role/session", context=context)


# -- the evaluator ------------------------------------------------------------------------------------------


def test_missing_keys_are_treated_as_iam_treats_them() -> None:
    """IAM: a missing key fails a positive operator, satisfies a negated one and every ...IfExists;
    ForAnyValue is false and ForAllValues true on a missing key; Null asks whether it is missing."""
    def allowed(condition: dict[str, Any], context: dict[str, str]) -> bool:
        policy = {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*",
                                 "Condition": condition}]}
        return allows(policy, Request("s3:GetObject", "arn:aws:s3:::b/k", context=context))

    key = "aws:PrincipalAccount"
    assert not allowed({"StringEquals": {key: ACCOUNT}}, {})
    assert allowed({"StringNotEquals": {key: ACCOUNT}}, {})
    assert allowed({"StringEqualsIfExists": {key: ACCOUNT}}, {})
    assert not allowed({"StringEqualsIfExists": {key: ACCOUNT}}, {key: INTRUDER})
    assert allowed({"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/x"}}, {})
    assert not allowed({"ForAnyValue:StringEquals": {"aws:TagKeys": "a"}}, {})
    assert allowed({"ForAllValues:StringEquals": {"aws:TagKeys": "a"}}, {})
    assert allowed({"Null": {key: "true"}}, {})
    assert not allowed({"Null": {key: "false"}}, {})
    assert allowed({"StringLike": {key: "1234*"}}, {key: ACCOUNT})
    assert allowed({"StringEquals": {key: [INTRUDER, ACCOUNT]}}, {key: ACCOUNT})  # any value of a key
    assert not allowed({"StringEquals": {key: ACCOUNT, "aws:ResourceAccount": ACCOUNT}}, {key: ACCOUNT})  # AND


def test_explicit_deny_wins_and_wildcards_match_as_in_iam() -> None:
    policy = {"Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:Get*", "Resource": "arn:aws:s3:::bucket-?/*"},
        {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket-x/secret"}]}
    assert decide(policy, Request("S3:GETOBJECT", "arn:aws:s3:::bucket-a/key")) == "Allow"  # actions: any case
    assert decide(policy, Request("s3:GetObject", "arn:aws:s3:::BUCKET-a/key")) == "ImplicitDeny"  # resources: not
    assert decide(policy, Request("s3:GetObject", "arn:aws:s3:::bucket-x/secret")) == "Deny"
    assert decide(policy, Request("s3:PutObject", "arn:aws:s3:::bucket-a/key")) == "ImplicitDeny"
    by_account = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                                 "Action": "*", "Resource": "*"}]}
    assert allows(by_account, signed("ec2:DescribeInstances", "*", ACCOUNT))
    assert not allows(by_account, signed("ec2:DescribeInstances", "*", INTRUDER))
    assert not allows(by_account, Request("ec2:DescribeInstances", "*"))  # anonymous
    with pytest.raises(Unjudged):
        allows({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*",
                               "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]}, Request("a:b", "*"))


# -- the perimeter against the cluster's requests -------------------------------------------------------------


@pytest.mark.parametrize("kw", [{}, {"trusted_accounts": (CENTRAL,)}, {"trusted_org_id": ORG},
                                {"trusted_accounts": (CENTRAL,), "trusted_org_id": ORG}])
def test_the_perimeter_lets_nodes_and_pods_work_and_keeps_intruders_out(kw: dict[str, Any]) -> None:
    drawn = perimeter(**kw)
    for service in SERVICES:
        policy = drawn.policy(service)
        assert blocked_needs(json.dumps(policy), service, drawn) == [], service
        assert openings(json.dumps(policy), service, ACCOUNT, AWS, REGION) == [], service
        # Every principal of this account reaches the service and this account's resources through it.
        prefix = service.split(".")[0]
        assert allows(policy, signed(f"{prefix}:DescribeThings", f"arn:aws:{prefix}:{REGION}:{ACCOUNT}:thing/x",
                                     ACCOUNT, ACCOUNT)), service
        # A principal of another account does not, whatever it asks for.
        assert not allows(policy, signed(f"{prefix}:DescribeThings", "*", INTRUDER, ACCOUNT)), service


def test_s3_gateway_own_buckets_layers_and_packages_only() -> None:
    drawn = perimeter()
    s3 = drawn.policy("s3")
    node = ACCOUNT
    assert allows(s3, signed("s3:PutObject", "arn:aws:s3:::our-bucket/k", node, ACCOUNT))
    assert not allows(s3, signed("s3:PutObject", "arn:aws:s3:::their-bucket/k", node, INTRUDER))  # exfiltration
    assert not allows(s3, signed("s3:GetObject", "arn:aws:s3:::their-bucket/k", node, INTRUDER))
    assert not allows(s3, signed("s3:GetObject", "arn:aws:s3:::our-bucket/k", INTRUDER, ACCOUNT))  # stolen keys
    layers = f"arn:aws:s3:::prod-{REGION}-starport-layer-bucket/sha256/abc"
    ecr_signed = signed("s3:GetObject", layers, "000000000001")  # ECR's pre-signed URL: not our principal
    assert allows(s3, ecr_signed)
    assert not allows(s3, signed("s3:PutObject", layers, node))  # a read, not a write
    # dnf/yum read the Amazon Linux repositories anonymously; reads only.
    for repo in (f"al2023-repos-{REGION}-de612dc2", f"amazonlinux-2-repos-{REGION}",
                 f"amazonlinux.{REGION}.amazonaws.com"):
        assert allows(s3, Request("s3:GetObject", f"arn:aws:s3:::{repo}/core/repodata.xml")), repo
        assert not allows(s3, Request("s3:PutObject", f"arn:aws:s3:::{repo}/core/repodata.xml")), repo
    assert not allows(s3, Request("s3:GetObject", f"arn:aws:s3:::al2023-repos-{REGION}-other/x"))

    # The naive perimeter (every statement tied to this account's principals) stops every image pull.
    naive = {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*",
                            "Condition": {"StringEquals": {"aws:PrincipalAccount": ACCOUNT}}}]}
    assert "download image layers (ECR pre-signed URLs)" in blocked_needs(json.dumps(naive), "s3", drawn)


def test_ecr_own_and_trusted_registries_auth_token_and_the_regions_addon_registry() -> None:
    drawn = perimeter(trusted_accounts=(CENTRAL,))
    for service in ("ecr.api", "ecr.dkr"):
        ecr = drawn.policy(service)
        assert allows(ecr, signed("ecr:GetAuthorizationToken", "*", ACCOUNT))
        assert not allows(ecr, signed("ecr:GetAuthorizationToken", "*", INTRUDER))
        own = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/app"
        central = f"arn:aws:ecr:{REGION}:{CENTRAL}:repository/base/python"
        foreign = f"arn:aws:ecr:{REGION}:{INTRUDER}:repository/drop"
        addon = f"arn:aws:ecr:{REGION}:602401143452:repository/amazon-k8s-cni"
        for action in (*ECR_PULL, "ecr:PutImage", "ecr:InitiateLayerUpload"):
            assert allows(ecr, signed(action, own, ACCOUNT, ACCOUNT)), action
            assert allows(ecr, signed(action, central, ACCOUNT, CENTRAL)), action
            assert not allows(ecr, signed(action, foreign, ACCOUNT, INTRUDER)), action
        for action in ECR_PULL:
            assert allows(ecr, signed(action, addon, ACCOUNT, "602401143452")), action
        assert not allows(ecr, signed("ecr:PutImage", addon, ACCOUNT, "602401143452"))  # pulls only
        # The pull-through cache: its repositories are this account's, made on the first pull.
        cached = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/k8s/pause"
        for action in ("ecr:BatchImportUpstreamImage", "ecr:CreateRepository", *ECR_PULL):
            assert allows(ecr, signed(action, cached, ACCOUNT, ACCOUNT)), action

    naive = {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "ecr:*", "Resource": "*",
                            "Condition": {"StringEquals": {"aws:ResourceAccount": ACCOUNT}}}]}
    assert any("pull EKS add-on images" in need for need in blocked_needs(json.dumps(naive), "ecr.dkr", drawn))


def test_the_addon_registry_is_the_regions_own_from_aws_table() -> None:
    """Not 602401143452 everywhere: opt-in regions, China and GovCloud have their own accounts."""
    assert eks_image_registry("us-east-1") == "602401143452"
    assert eks_image_registry("af-south-1") == "877085696533"
    assert eks_image_registry("ap-southeast-7") == "121268973566"
    assert eks_image_registry("cn-north-1") == "918309763551"
    assert eks_image_registry("us-gov-west-1") == "013241004608"
    assert eks_image_registry("xx-nowhere-1") is None
    cape_town = Perimeter(partition=AWS, region="af-south-1", account=ACCOUNT).policy("ecr.dkr")
    text = json.dumps(cape_town)
    assert "arn:aws:ecr:af-south-1:877085696533:repository/*" in text and "602401143452" not in text
    assert allows(cape_town, signed("ecr:BatchGetImage", "arn:aws:ecr:af-south-1:877085696533:repository/kube-proxy",
                                    ACCOUNT, "877085696533"))


def test_sts_and_eks_auth_which_call_carries_an_account() -> None:
    """AssumeRoleWithWebIdentity (IRSA) is unsigned: no principal account, so the principal rule cannot admit it;
    the perimeter admits it into this account's roles only. AssumeRoleForPodIdentity is signed by the node role
    (AmazonEKSWorkerNodePolicy grants it): the principal rule admits it, and an unsigned one is refused."""
    drawn = perimeter()
    sts = drawn.policy("sts")
    irsa = Request("sts:AssumeRoleWithWebIdentity", f"arn:aws:iam::{ACCOUNT}:role/pod-role",
                   context={"aws:ResourceAccount": ACCOUNT})
    assert irsa.principal_account is None and allows(sts, irsa)
    principal_only = {"Version": "2012-10-17", "Statement": drawn.policy("ec2")["Statement"]}
    assert not allows(principal_only, irsa)  # the naive policy breaks every pod with an IAM role
    assert not allows(sts, Request("sts:AssumeRoleWithWebIdentity", f"arn:aws:iam::{INTRUDER}:role/any",
                                   context={"aws:ResourceAccount": INTRUDER}))
    assert not allows(sts, Request("sts:AssumeRole", f"arn:aws:iam::{ACCOUNT}:role/admin"))  # unsigned: no
    eks_auth = drawn.policy("eks-auth")
    cluster = f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/c"
    assert allows(eks_auth, signed("eks-auth:AssumeRoleForPodIdentity", cluster, ACCOUNT, ACCOUNT))
    assert not allows(eks_auth, Request("eks-auth:AssumeRoleForPodIdentity", cluster))
    assert not allows(eks_auth, signed("eks-auth:AssumeRoleForPodIdentity", cluster, INTRUDER, ACCOUNT))


def test_trusted_organisation_widens_principals_and_resources() -> None:
    drawn = perimeter(trusted_org_id=ORG)
    sibling = "777788889999"
    s3 = drawn.policy("s3")
    assert allows(s3, signed("s3:GetObject", "arn:aws:s3:::shared/k", ACCOUNT, sibling, resource_org=ORG))
    assert allows(s3, signed("s3:GetObject", "arn:aws:s3:::our/k", sibling, ACCOUNT, org=ORG))
    assert not allows(s3, signed("s3:GetObject", "arn:aws:s3:::other/k", ACCOUNT, INTRUDER,
                                 resource_org="o-zzzzzzzzzz"))
    ecr = drawn.policy("ecr.dkr")
    assert allows(ecr, signed("ecr:BatchGetImage", f"arn:aws:ecr:{REGION}:{sibling}:repository/x", ACCOUNT, sibling,
                              resource_org=ORG))
    assert allows(drawn.policy("sts"), Request("sts:AssumeRoleWithWebIdentity", f"arn:aws:iam::{sibling}:role/r",
                                               context={"aws:ResourceOrgID": ORG}))


@pytest.mark.parametrize(("name", "region"), [("aws-cn", "cn-north-1"), ("aws-us-gov", "us-gov-west-1")])
def test_arns_are_the_partitions(name: str, region: str) -> None:
    partition = partitions.Partition(name, "x")
    drawn = Perimeter(partition=partition, region=region, account=ACCOUNT)
    for service in SERVICES:
        text = json.dumps(drawn.policy(service))
        assert "arn:aws:" not in text, service
        assert blocked_needs(text, service, drawn) == [], service
        assert openings(text, service, ACCOUNT, partition, region) == [], service


def test_full_access_is_judged_open_and_a_perimeter_is_not() -> None:
    for service in SERVICES:
        kinds = {o.kind for o in openings(None, service, ACCOUNT, AWS, REGION)}
        assert "principal" in kinds, service
        if service in ("s3", "ecr.api", "ecr.dkr", "sts"):
            assert "resource" in kinds, service
    text = [o.text for o in openings(json.dumps(FULL_ACCESS), "s3", ACCOUNT, AWS, REGION)]
    assert "writes to other accounts' buckets" in text
    assert is_full_access(None) and is_full_access('{"Version": "2008-10-17", "Statement": [{"Effect": "Allow", '
                                                   '"Principal": "*", "Action": "*", "Resource": "*"}]}')
    assert not is_full_access(perimeter().policy("s3"))


def test_policies_compare_as_documents_and_diff_by_line() -> None:
    drawn = perimeter()
    policy = drawn.policy("ec2")
    reformatted = json.dumps(policy, indent=4, sort_keys=True)
    assert canonical(reformatted) == canonical(json.dumps(policy))
    wider = perimeter(trusted_accounts=(CENTRAL,)).policy("ec2")
    lines = diff_lines(reformatted, wider)
    assert any(line.startswith("+") and CENTRAL in line for line in lines)
    assert diff_lines(reformatted, policy) == []


def test_every_perimeter_policy_passes_the_linter() -> None:
    """parliament on each policy; RESOURCE_STAR is the perimeter's design (conditions, not ARNs, decide)."""
    for drawn in (perimeter(), perimeter(trusted_accounts=(CENTRAL,), trusted_org_id=ORG)):
        for service in SERVICES:
            linted = parliament.analyze_policy_string(json.dumps(drawn.policy(service)))
            assert [f"{f.issue} {f.detail}" for f in linted.findings if f.issue != "RESOURCE_STAR"] == [], service


def test_a_users_policy_document_is_checked_as_aws_would() -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        check_document("{", "f")
    with pytest.raises(ValueError, match="no Principal"):
        check_document(json.dumps({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}), "f")
    with pytest.raises(ValueError, match="20480"):
        check_document(json.dumps({"Statement": [], "Pad": "x" * 20480}), "f")
    assert check_document(json.dumps(FULL_ACCESS), "f") == FULL_ACCESS


def test_what_a_perimeter_cannot_be_is_refused_before_anything_is_made(tmp_path: Any) -> None:
    """A region without a known add-on registry: a perimeter there would keep the nodes from the VPC CNI image,
    refused (exit 2, one line) unless the ECR endpoints get the user's own policies, or the policies are "open".
    Trusted accounts past AWS's 20,480 characters per endpoint policy: refused, naming the way out."""
    from types import SimpleNamespace

    from eksprivate.config import build_settings
    from eksprivate.errors import UsageError
    from eksprivate.steps.endpoints import check_perimeter

    def ctx(region: str = "xx-nowhere-1", **values: Any) -> Any:
        return SimpleNamespace(settings=build_settings(values), region=region, partition=AWS, account=ACCOUNT)

    with pytest.raises(UsageError) as refused:
        check_perimeter(ctx())
    assert refused.value.exit_code == 2 and "\n" not in str(refused.value)
    assert "xx-nowhere-1 is not in eksprivate's table of EKS add-on image registries" in str(refused.value)
    check_perimeter(ctx(endpoint_policies="open"))
    own = tmp_path / "ecr.json"
    own.write_text(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "ecr:BatchGetImage", "Resource": "*"}]}))
    check_perimeter(ctx(endpoint_policy_files={"ecr.api": str(own), "ecr.dkr": str(own)}))

    check_perimeter(ctx(REGION, trusted_accounts=[f"{n:012d}" for n in range(1, 50)]))
    with pytest.raises(UsageError, match="trusted_org_id"):
        check_perimeter(ctx(REGION, trusted_accounts=[f"{n:012d}" for n in range(1, 400)]))
