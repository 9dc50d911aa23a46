"""`eksprivate permissions`: the operator policy, derived from the steps' declarations, and the sandbox
enforcing it.

* Under exactly the printed policy the whole life of a cluster works (default config, and a config with an
  S3 state, a pull-through cache, repositories, admins and a permissions boundary): the sandbox authorises
  every call, and the checks AWS makes beside it, and refuses none. Every call the life made is one the
  policy allows: that is what keeps the declarations complete.
* Dropping one action from it makes a command fail, with that action refused (a sample).
* Its shape: parliament finds nothing; no action wildcard but reads; IAM writes and PassRole on the role
  ARNs only; the boundary condition on every IAM write that could widen a role; partition-aware.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import parliament
import pytest
from botocore.exceptions import ClientError

from eksprivate.grants import ALWAYS_ALLOWED, iam_action
from eksprivate.sandbox import CallRecord, SandboxServer
from tests.faults.helpers import Cli, CliResult

REGION = "eu-central-1"
ACCOUNT = "123456789012"
BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/eks-boundary"
BUCKET = "perms-state"
RICH = f"""
pull_through_cache = ["k8s", "quay"]
ecr_repositories = ["mirror/nginx"]
admins = ["arn:aws:iam::{ACCOUNT}:role/platform-admins"]
permissions_boundary = "{BOUNDARY}"
state = "s3://{BUCKET}/eks/"
"""
IAM_WRITES = {"iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:DetachRolePolicy",
              "iam:DeleteRolePolicy", "iam:DeleteRole", "iam:TagRole", "iam:PassRole", "iam:UpdateAssumeRolePolicy",
              "iam:PutRolePermissionsBoundary", "iam:RemoveRoleFromInstanceProfile"}
BOUNDED = {"iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:DetachRolePolicy",
           "iam:DeleteRolePolicy", "iam:PutRolePermissionsBoundary"}


def ok(result: CliResult) -> CliResult:
    assert result.exception is None, result.exception
    assert result.exit_code == 0, result.stderr
    return result


def printed(cli: Cli, *args: str) -> dict[str, Any]:
    policy: dict[str, Any] = json.loads(ok(cli("permissions", *args)).stdout)
    return policy


def statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**s, "Action": _list(s["Action"]), "Resource": _list(s["Resource"])} for s in policy["Statement"]]


def _list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def without(policy: dict[str, Any], action: str) -> dict[str, Any]:
    """The policy with one action taken out of every statement (a statement left empty goes)."""
    kept = []
    for s in statements(policy):
        actions = [a for a in s["Action"] if a != action]
        if actions:
            kept.append({**s, "Action": actions})
    assert len(kept) < len(policy["Statement"]) or sum(len(s["Action"]) for s in kept) < sum(
        len(s["Action"]) for s in statements(policy)), f"{action} is not in the policy"
    return {**policy, "Statement": kept}


def lint(policy: dict[str, Any]) -> list[str]:
    return [f"{f.issue}: {f.detail}" for f in parliament.analyze_policy_string(json.dumps(policy)).findings]


def write(folder: Path, text: str) -> Path:
    path = folder / "cluster.toml"
    path.write_text(text)
    return path


def prepare_rich(stand_in: SandboxServer) -> None:
    """What the rich config expects to exist: the state bucket, the admins' role, the boundary policy."""
    kw: dict[str, Any] = {"endpoint_url": stand_in.url, "region_name": REGION, "aws_access_key_id": "testing",
                          "aws_secret_access_key": "testing"}
    boto3.client("s3", **kw).create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    iam = boto3.client("iam", **kw)
    iam.create_role(RoleName="platform-admins", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT},
                                                "Action": "sts:AssumeRole"}]}))
    iam.create_policy(PolicyName="eks-boundary", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))


def declared(policy: dict[str, Any], action: str) -> bool:
    """Some statement allows `action` (on some resource, under its conditions): the sandbox checked those."""
    return any(fnmatch.fnmatchcase(action.lower(), a.lower()) for s in statements(policy) for a in s["Action"])


def assert_every_call_allowed(stand_in: SandboxServer, calls: list[CallRecord], policy: dict[str, Any]) -> set[str]:
    """Nothing refused, and every call eksprivate made is an action the policy allows: the declarations cover
    every call the code makes (a call no step declares is refused by the sandbox, and shows here)."""
    assert [(c.action, c.resource) for c in stand_in.refused()] == []
    actions = {iam_action(c.service, c.operation) for c in calls} - ALWAYS_ALLOWED
    assert sorted(a for a in actions if not declared(policy, a)) == []
    assert not [c for c in calls if c.status == 403]
    return actions


# -- the whole life under exactly the printed policy ----------------------------------------------------------


def test_the_whole_life_runs_under_exactly_the_printed_policy(cli: Cli, stand_in: SandboxServer, cluster_name: str,
                                                              aws_env: Path) -> None:
    name = ["--name", cluster_name]
    policy = printed(cli, *name)
    stand_in.enforce(policy)
    mark = len(stand_in.calls())
    ok(cli("up", *name))
    rerun = len(stand_in.calls())
    ok(cli("up", *name))
    assert all(c.operation.startswith(("Describe", "List", "Get", "Head")) for c in stand_in.calls()[rerun:])
    ok(cli("status", *name))
    ok(cli("plan", *name))
    ok(cli("plan", *name, "--destroy"))
    ok(cli("verify", *name))
    ok(cli("export", *name, "--format", "terraform", "--output", str(aws_env / "export")))
    ok(cli("kubeconfig", *name, "--kubeconfig", str(aws_env / "kubeconfig")))
    ok(cli("down", *name, "--yes"))
    actions = assert_every_call_allowed(stand_in, stand_in.calls()[mark:], policy)
    # The calls AWS checks beside others were checked too (the sandbox authorises them as AWS does).
    assert {"eks:CreateCluster", "eks:CreateNodegroup", "ec2:CreateVpc", "eks:DeleteCluster"} <= actions


def test_a_config_with_every_feature_runs_under_its_printed_policy(cli: Cli, stand_in: SandboxServer,
                                                                  cluster_name: str, aws_env: Path,
                                                                  sandbox_client: Callable[[str], Any]) -> None:
    prepare_rich(stand_in)
    args = ["--name", cluster_name, "--config", str(write(aws_env, RICH))]
    policy = printed(cli, *args)
    assert lint(policy) == []
    stand_in.enforce(policy)
    mark = len(stand_in.calls())
    ok(cli("up", *args))
    assert stand_in.refused() == []
    stand_in.enforce(None)  # the test's own look is not the operator's
    looking = len(stand_in.calls())
    iam = sandbox_client("iam")
    made = [r for r in iam.list_roles()["Roles"] if r["RoleName"].startswith(f"{cluster_name}-")]
    assert len(made) == 3 and all(iam.get_role(RoleName=r["RoleName"])["Role"]["PermissionsBoundary"][
        "PermissionsBoundaryArn"] == BOUNDARY for r in made)
    calls = stand_in.calls()[mark:looking]
    stand_in.enforce(policy)
    mark = len(stand_in.calls())
    ok(cli("up", *args))
    ok(cli("status", *args))
    ok(cli("export", *args, "--format", "cloudformation", "--output", str(aws_env / "export")))
    ok(cli("down", *args, "--yes"))
    actions = assert_every_call_allowed(stand_in, calls + stand_in.calls()[mark:], policy)
    assert {"ecr:CreatePullThroughCacheRule", "s3:PutObject", "eks:CreateAccessEntry", "iam:PutRolePolicy"} <= actions


# -- dropping one action fails a command, naming it --------------------------------------------------------------
# On a lean cluster (one node group over two AZs, no logs or add-ons; the KMS key kept, for kms:CreateGrant): each
# dropped action is one every cluster needs, and the rest of a default cluster would only cost CPU.

LEAN = 'per_az = false\navailability_zones = 2\ncontrol_plane_logging = false\nflow_logs = false\n[addons]\n'


@pytest.mark.parametrize("action", ["ec2:CreateVpc", "ec2:CreateTags", "iam:PassRole", "kms:CreateGrant"])
def test_without_one_action_up_fails_naming_it(cli: Cli, stand_in: SandboxServer, cluster_name: str,
                                               aws_env: Path, action: str) -> None:
    name = ["--name", cluster_name, "--config", str(write(aws_env, LEAN))]
    stand_in.enforce(without(printed(cli, *name), action))
    result = cli("up", *name)
    assert result.exit_code == 1 and result.exception is None
    assert action in result.stderr
    assert action in {c.action for c in stand_in.refused()}


def test_without_delete_nodegroup_down_fails_and_the_full_policy_finishes_it(cli: Cli, stand_in: SandboxServer,
                                                                           cluster_name: str, aws_env: Path) -> None:
    name = ["--name", cluster_name, "--config", str(write(aws_env, LEAN))]
    policy = printed(cli, *name)
    stand_in.enforce(policy)
    ok(cli("up", *name))
    stand_in.enforce(without(policy, "eks:DeleteNodegroup"))
    result = cli("down", *name, "--yes")
    assert result.exit_code == 1 and "eks:DeleteNodegroup" in result.stderr
    stand_in.enforce(policy)
    ok(cli("down", *name, "--yes"))


# -- the policy's shape ---------------------------------------------------------------------------------------


def test_it_asks_aws_nothing_but_who_is_calling(cli: Cli, stand_in: SandboxServer) -> None:
    mark = len(stand_in.calls())
    printed(cli, "--name", "demo", "--account", ACCOUNT)
    assert stand_in.calls()[mark:] == []  # with --account: nothing at all
    stand_in.enforce({"Version": "2012-10-17", "Statement": []})  # an operator with no permission yet
    printed(cli, "--name", "demo")
    assert [f"{c.service}:{c.operation}" for c in stand_in.calls()[mark:]] == ["sts:GetCallerIdentity"]


def test_least_privilege_and_a_clean_lint(cli: Cli, aws_env: Path) -> None:
    name = "demo"
    policy = printed(cli, "--name", name, "--account", ACCOUNT)
    assert lint(policy) == []
    roles = {f"arn:aws:iam::{ACCOUNT}:role/{name}-{REGION}-{s}" for s in ("cluster", "node", "flow-logs")}
    for s in statements(policy):
        for action in s["Action"]:
            verb = action.split(":")[1]
            assert "*" not in verb or verb.startswith(("Describe", "List", "Get")), action
            if action in IAM_WRITES:
                assert "*" not in s["Resource"], action
        if "iam:PassRole" in s["Action"]:
            assert set(s["Resource"]) <= roles
        if any(a.startswith("eks:") for a in s["Action"]) and s["Resource"] != ["*"]:
            assert all(f":cluster/{name}" in r or f"/{name}/" in r or ":cluster-access-policy/" in r
                       for r in s["Resource"]), s
        if any(a.startswith("logs:") for a in s["Action"]) and s["Resource"] != ["*"]:
            assert all(f"/{name}/" in r for r in s["Resource"]), s
    passed = {r: s.get("Condition", {}) for s in statements(policy) if "iam:PassRole" in s["Action"]
              for r in s["Resource"]}
    assert set(passed) == roles
    assert passed[f"arn:aws:iam::{ACCOUNT}:role/{name}-{REGION}-cluster"] == {
        "StringEquals": {"iam:PassedToService": "eks.amazonaws.com"}}
    actions = {a for s in statements(policy) for a in s["Action"]}
    assert not any(a.startswith("s3:") for a in actions)  # a local state: no S3
    assert "ecr:CreatePullThroughCacheRule" not in actions  # no pull-through cache configured


def test_what_the_config_adds_and_the_boundary_condition(cli: Cli, aws_env: Path) -> None:
    policy = printed(cli, "--name", "demo", "--account", ACCOUNT, "--config", str(write(aws_env, RICH)))
    assert lint(policy) == []
    by_action: dict[str, list[dict[str, Any]]] = {}
    for s in statements(policy):
        for a in s["Action"]:
            by_action.setdefault(a, []).append(s)
    assert "ecr:CreatePullThroughCacheRule" in by_action and "eks:CreateAccessEntry" in by_action
    for action in BOUNDED:
        for s in by_action[action]:
            assert s["Condition"]["ArnEquals"]["iam:PermissionsBoundary"] == BOUNDARY, (action, s)
    objects = {r for s in by_action["s3:PutObject"] for r in s["Resource"]}
    state = f"arn:aws:s3:::{BUCKET}/eks/demo-{REGION}.json"
    assert objects == {state, f"{state}.lock"}


def test_the_partition_comes_with_the_region(cli: Cli, aws_env: Path) -> None:
    policy = printed(cli, "--name", "demo", "--region", "cn-north-1", "--account", ACCOUNT)
    arns = {r for s in statements(policy) for r in s["Resource"] if r != "*"}
    assert arns and all(r.startswith("arn:aws-cn:") for r in arns), sorted(arns)[:5]


def test_text_explains_it_per_service(cli: Cli, aws_env: Path) -> None:
    text = ok(cli("permissions", "--name", "demo", "--account", ACCOUNT, "--output", "text")).stdout
    assert text.startswith(f"IAM policy for cluster demo in {REGION}, account {ACCOUNT}")
    for heading in ("EC2 (", "EKS (", "IAM (", "KMS (", "CloudWatch Logs ("):
        assert f"\n{heading}" in text
    assert re.search(r"iam:PassRole  \[create\]\n\s+on .*-cluster.*\n\s+only if iam:PassedToService", text)


def test_bad_input_is_one_line_and_exit_2(cli: Cli, aws_env: Path) -> None:
    for args in (["--account", "12345"], ["--output", "yaml"]):
        result = cli("permissions", "--name", "demo", *args)
        assert result.exit_code == 2 and "Traceback" not in result.stderr, result.stderr
    # A misspelt region: refused, with the region meant, before a policy is written for it (with --account AWS
    # is not asked, and without it AWS is asked first, as `up` does).
    for args in (["--account", ACCOUNT], []):
        result = cli("permissions", "--name", "demo", "--region", "eu-centrl-1", *args)
        assert result.exit_code == 2 and result.stdout == "", result.stdout
        assert "did you mean eu-central-1?" in result.stderr.strip().splitlines()[-1], result.stderr
    bad = write(aws_env, 'permissions_boundary = "eks-boundary"\n')
    result = cli("permissions", "--name", "demo", "--account", ACCOUNT, "--config", str(bad))
    assert result.exit_code == 2 and "permissions_boundary" in result.stderr


# -- the sandbox answers a refusal as each service does ----------------------------------------------------------

ONLY_READS = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["ec2:DescribeVpcs", "eks:CreateCluster"], "Resource": "*"}]}


@pytest.mark.parametrize(("service", "call", "code", "status"), [
    ("ec2", lambda c: c.create_vpc(CidrBlock="10.0.0.0/16"), "UnauthorizedOperation", 403),
    ("iam", lambda c: c.get_role(RoleName="x"), "AccessDenied", 403),
    ("kms", lambda c: c.list_keys(), "AccessDeniedException", 400),
    ("logs", lambda c: c.describe_log_groups(), "AccessDeniedException", 400),
    ("eks", lambda c: c.describe_cluster(name="x"), "AccessDeniedException", 403),
    ("s3", lambda c: c.get_object(Bucket="nothing-here", Key="k"), "AccessDenied", 403),
])
def test_a_refusal_comes_in_the_services_own_format(sandbox_client: Callable[[str], Any], stand_in: SandboxServer,
                                                     service: str, call: Callable[[Any], Any], code: str,
                                                     status: int) -> None:
    client = sandbox_client(service)
    stand_in.enforce(ONLY_READS)
    with pytest.raises(ClientError) as refused:
        call(client)
    assert refused.value.response["Error"]["Code"] == code
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    stand_in.enforce(None)  # without a policy: allowed again (moto's own answer, whatever it is)
    assert sandbox_client("ec2").describe_vpcs()["Vpcs"] is not None


def test_a_call_that_hands_over_a_role_needs_pass_role(sandbox_client: Callable[[str], Any],
                                                      stand_in: SandboxServer) -> None:
    stand_in.enforce(ONLY_READS)
    with pytest.raises(ClientError) as refused:
        sandbox_client("eks").create_cluster(name="c", roleArn=f"arn:aws:iam::{ACCOUNT}:role/r",
                                             resourcesVpcConfig={"subnetIds": ["subnet-1"]})
    assert "iam:PassRole on resource: arn:aws:iam::123456789012:role/r" in refused.value.response["Error"]["Message"]
    assert [(c.action, dict(c.context)) for c in stand_in.refused()] == [
        ("iam:PassRole", {"iam:PassedToService": "eks.amazonaws.com"})]


def test_create_role_is_refused_without_the_boundary_the_policy_demands(sandbox_client: Callable[[str], Any],
                                                                       stand_in: SandboxServer) -> None:
    iam = sandbox_client("iam")
    iam.create_policy(PolicyName="eks-boundary", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    stand_in.enforce({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["iam:CreateRole", "iam:TagRole"], "Resource": "*",
         "Condition": {"StringEquals": {"iam:PermissionsBoundary": BOUNDARY}}}]})
    trust = json.dumps({"Version": "2012-10-17", "Statement": []})
    with pytest.raises(ClientError) as refused:
        iam.create_role(RoleName="free", AssumeRolePolicyDocument=trust)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    iam.create_role(RoleName="bounded", AssumeRolePolicyDocument=trust, PermissionsBoundary=BOUNDARY)


CONFIGS = {
    "default": "",
    "network team's VPC": 'vpc_id = "vpc-0a1b2c3d4e5f60718"\n'
                          'subnet_ids = ["subnet-0a1b2c3d4e5f60711", "subnet-0a1b2c3d4e5f60722"]\n',
    "EBS CSI driver": '[addons]\nvpc-cni = "default"\nkube-proxy = "default"\ncoredns = "default"\n'
                      'eks-pod-identity-agent = "default"\naws-ebs-csi-driver = "default"\n',
    "own key, nothing optional": 'kms_key_arn = "arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-'
                                 '1234567890ab"\ncontrol_plane_logging = false\nflow_logs = false\n',
    "everything": RICH,
}


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_every_step_declares_what_it_calls_and_the_policy_lints_clean(cli: Cli, aws_env: Path, config: str) -> None:
    from eksprivate.permissions import sources_for
    from eksprivate.target import Options, permissions_context

    path = write(aws_env, CONFIGS[config])
    ctx, s3_state = permissions_context(Options(name="demo", region=REGION, config=path), ACCOUNT)
    sources = sources_for(ctx, s3_state)
    steps = [s for s in sources if not s.name.startswith("command:")]
    assert steps and [s.name for s in steps if not any("find" in g.verbs for g in s.grants)] == []
    policy = printed(cli, "--name", "demo", "--account", ACCOUNT, "--config", str(path))
    assert lint(policy) == []
    documents = json.loads(ok(cli("permissions", "--name", "demo", "--account", ACCOUNT, "--config", str(path),
                                  "--split")).stdout)
    assert all(size_of(d) <= 6144 and lint(d) == [] for d in documents)
    assert [s for d in documents for s in d["Statement"]] == policy["Statement"]


def size_of(document: dict[str, Any]) -> int:
    return len(re.sub(r"\s+", "", json.dumps(document)))


ADDONS = ('[addons]\nvpc-cni = "default"\nkube-proxy = "default"\ncoredns = "default"\n'
          'eks-pod-identity-agent = "default"\n')
BEFORE = f'per_az = false\nkubernetes_version = "1.32"\n{ADDONS}aws-ebs-csi-driver = "default"\n'
AFTER = ('per_az = false\nkubernetes_version = "1.33"\npublic_access_cidrs = ["203.0.113.0/24"]\nmax_size = 3\n'
         f'log_retention_days = 30\nendpoints = ["ssm"]\n{ADDONS}')


def test_config_changes_an_upgrade_and_a_pruned_addon_run_under_the_printed_policy(
        cli: Cli, stand_in: SandboxServer, cluster_name: str, aws_env: Path) -> None:
    """The policy is the config's: printed again after the config changed (a Kubernetes upgrade, public API
    access, sizes, retention, an endpoint and its node-role policy, an add-on dropped and pruned), every
    change `up` applies is allowed by it, and `down` too."""
    before, after = aws_env / "before.toml", aws_env / "after.toml"
    before.write_text(BEFORE)
    after.write_text(AFTER)
    name = ["--name", cluster_name]
    stand_in.enforce(printed(cli, *name, "--config", str(before)))
    ok(cli("up", *name, "--config", str(before)))  # with the EBS CSI driver: a Pod Identity association
    assert stand_in.refused() == []
    policy = printed(cli, *name, "--config", str(after))
    stand_in.enforce(policy)
    mark = len(stand_in.calls())
    ok(cli("up", *name, "--config", str(after), "--prune"))
    ok(cli("down", *name, "--config", str(after), "--yes"))
    actions = assert_every_call_allowed(stand_in, stand_in.calls()[mark:], policy)
    assert {"eks:UpdateClusterVersion", "eks:UpdateNodegroupVersion", "eks:UpdateClusterConfig",
            "eks:UpdateNodegroupConfig", "eks:DeleteAddon", "logs:PutRetentionPolicy",
            "iam:AttachRolePolicy"} <= actions
