"""Roles given instead of made: an IAM team's cluster, node, flow logs and EBS CSI roles, made by hand on the
sandbox. `up` uses them and calls no IAM write; a rerun changes nothing; `down` leaves every one exactly as it
was, also after the state is lost. A role that does not fit is refused before anything is created."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from eksprivate.sandbox import SandboxServer

from .helpers import REGION, Cli, SdkHooks, inventory, mutating_calls, refused_on_input

ACCOUNT = "123456789012"  # the sandbox's account
POLICY = "arn:aws:iam::aws:policy/"
ADDONS = ('\n[addons]\nvpc-cni = "default"\nkube-proxy = "default"\ncoredns = "default"\n'
          'eks-pod-identity-agent = "default"\naws-ebs-csi-driver = "default"\n')
# setting → (trusted service, trust actions, managed policies) as an IAM team following the EKS guides makes them
ROLES: dict[str, tuple[str, list[str], list[str]]] = {
    "cluster_role_arn": ("eks.amazonaws.com", ["sts:AssumeRole"], ["AmazonEKSClusterPolicy"]),
    "node_role_arn": ("ec2.amazonaws.com", ["sts:AssumeRole"],
                      ["AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly", "AmazonEKS_CNI_Policy"]),
    "flow_logs_role_arn": ("vpc-flow-logs.amazonaws.com", ["sts:AssumeRole"], []),
    "ebs_csi_role_arn": ("pods.eks.amazonaws.com", ["sts:AssumeRole", "sts:TagSession"],
                         ["service-role/AmazonEBSCSIDriverPolicy"]),
}


@dataclass
class Team:
    """The IAM team's roles (under a path, as teams often keep them), none carrying eksprivate's tags."""

    iam: Any
    arns: dict[str, str]

    def make(self, setting: str, *, name: str | None = None, service: str | None = None,
             actions: list[str] | None = None, policies: list[str] | None = None) -> str:
        want_service, want_actions, want_policies = ROLES[setting]
        role_name = name or f"team-{uuid.uuid4().hex[:8]}-{setting.removesuffix('_role_arn')}"
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {
            "Service": service or want_service}, "Action": actions or want_actions}]}
        arn = str(self.iam.create_role(RoleName=role_name, Path="/platform/",
                                       AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])
        for policy in want_policies if policies is None else policies:
            self.iam.attach_role_policy(RoleName=role_name, PolicyArn=POLICY + policy)
        if setting == "flow_logs_role_arn":  # the delivery permissions, as the VPC user guide writes them
            self.iam.put_role_policy(RoleName=role_name, PolicyName="deliver", PolicyDocument=json.dumps({
                "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*", "Action": [
                    "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogGroups",
                    "logs:DescribeLogStreams"]}]}))
        return arn

    def snapshot(self) -> dict[str, Any]:
        """Everything about each role eksprivate must leave as it was."""
        out = {}
        for setting, arn in self.arns.items():
            name = arn.rsplit("/", 1)[1]
            role = self.iam.get_role(RoleName=name)["Role"]
            out[setting] = json.loads(json.dumps({
                "role": role, "attached": self.iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"],
                "inline": self.iam.list_role_policies(RoleName=name)["PolicyNames"],
                "tags": self.iam.list_role_tags(RoleName=name)["Tags"]}, default=str))
        return out


SERVICE_LINKED = {"eks.amazonaws.com": "AWSServiceRoleForAmazonEKS",
                  "eks-nodegroup.amazonaws.com": "AWSServiceRoleForAmazonEKSNodegroup"}


@pytest.fixture
def team(sandbox_client: Callable[[str], Any]) -> Team:
    made = Team(sandbox_client("iam"), {})
    made.arns = {setting: made.make(setting) for setting in ROLES}
    # What AWS makes once per account on first use, made here by the team as AWS would name it.
    for service, name in SERVICE_LINKED.items():
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": service},
                                                         "Action": "sts:AssumeRole"}]}
        made.iam.create_role(RoleName=name, Path=f"/aws-service-role/{service}/",
                             AssumeRolePolicyDocument=json.dumps(trust))
    return made


def _config(folder: Path, roles: dict[str, str], extra: str = "") -> str:
    path = folder / f"given-{uuid.uuid4().hex[:6]}.toml"
    path.write_text("".join(f'{k} = "{v}"\n' for k, v in roles.items()) + extra + ADDONS)
    return str(path)


def _iam_writes(stand_in: SandboxServer) -> list[str]:
    return [c for c in mutating_calls(stand_in.calls()) if c.startswith("iam:")]


def test_up_uses_every_given_role_and_down_leaves_them(
        cli: Cli, aws_env: Path, stand_in: SandboxServer, team: Team, hooks: SdkHooks, cluster_name: str) -> None:
    before = team.snapshot()
    config = _config(aws_env, team.arns)
    where = ("--name", cluster_name, "--region", REGION, "--config", config)
    hooks.watch("eks.CreateCluster", "eks.CreateNodegroup", "eks.CreateAddon", "ec2.CreateFlowLogs")
    stand_in.clear_calls()
    built = cli("up", *where)
    assert built.exit_code == 0, built.stderr
    assert _iam_writes(stand_in) == [], "up wrote to IAM although every role was given"

    # Each role went where it belongs.
    sent = {s.operation: s.params for s in hooks.seen}
    assert sent["CreateCluster"]["roleArn"] == team.arns["cluster_role_arn"]
    assert sent["CreateNodegroup"]["nodeRole"] == team.arns["node_role_arn"]
    assert sent["CreateFlowLogs"]["DeliverLogsPermissionArn"] == team.arns["flow_logs_role_arn"]
    ebs = next(s.params for s in hooks.seen if s.operation == "CreateAddon" and s.params["addonName"] ==
               "aws-ebs-csi-driver")
    assert ebs["podIdentityAssociations"] == [{"serviceAccount": "ebs-csi-controller-sa",
                                               "roleArn": team.arns["ebs_csi_role_arn"]}]
    # No role of eksprivate's own; the state says which are given.
    assert [i for i in inventory(stand_in.url, cluster_name) if i.kind == "role"] == []
    steps = json.loads((aws_env / "state" / f"{cluster_name}-{REGION}.json").read_text())["steps"]
    for key, setting in (("cluster-role", "cluster_role_arn"), ("node-role", "node_role_arn"),
                         ("flow-logs-role", "flow_logs_role_arn"), ("ebs-csi-role", "ebs_csi_role_arn")):
        assert steps[key]["ids"] == {"role_name": team.arns[setting].rsplit("/", 1)[1],
                                     "role_arn": team.arns[setting], "given": True}

    # A rerun changes nothing at all; plan --destroy keeps the given roles.
    stand_in.clear_calls()
    again = cli("up", *where)
    assert again.exit_code == 0, again.stderr
    assert mutating_calls(stand_in.calls()) == []
    plan = cli("plan", "--destroy", *where, "-o", "json")
    assert plan.exit_code == 0, plan.stderr
    actions = {s["key"]: s["action"] for s in json.loads(plan.stdout)["steps"]}
    assert {actions[k] for k in ("cluster-role", "node-role", "flow-logs-role", "ebs-csi-role")} == {"keep"}

    stand_in.clear_calls()
    down = cli("down", *where, "--yes")
    assert down.exit_code == 0, down.stderr
    assert _iam_writes(stand_in) == []
    assert inventory(stand_in.url, cluster_name) == []
    assert team.snapshot() == before


@pytest.mark.parametrize("with_config", [True, False], ids=["config-kept", "config-lost-too"])
def test_lost_state_down_leaves_the_given_roles(
        cli: Cli, aws_env: Path, stand_in: SandboxServer, team: Team, cluster_name: str, with_config: bool) -> None:
    before = team.snapshot()
    config = _config(aws_env, team.arns)
    assert cli("up", "--name", cluster_name, "--region", REGION, "--config", config).exit_code == 0
    for leftover in (aws_env / "state").iterdir():
        leftover.unlink()  # the laptop is gone
    args = ("--config", config) if with_config else ()
    stand_in.clear_calls()
    down = cli("down", "--name", cluster_name, "--region", REGION, *args, "--yes")
    assert down.exit_code == 0, down.stderr
    assert _iam_writes(stand_in) == []
    assert inventory(stand_in.url, cluster_name) == []
    assert team.snapshot() == before


def test_a_recorded_role_is_not_swapped(cli: Cli, aws_env: Path, stand_in: SandboxServer, team: Team,
                                        cluster_name: str) -> None:
    where = ("--name", cluster_name, "--region", REGION)
    assert cli("up", *where, "--config", _config(aws_env, team.arns)).exit_code == 0
    other = team.make("cluster_role_arn")
    stand_in.clear_calls()
    swapped = cli("up", *where, "--config", _config(aws_env, {**team.arns, "cluster_role_arn": other}))
    refused_on_input(swapped, "cluster_role_arn: this cluster uses the given role", team.arns["cluster_role_arn"])
    made = cli("up", *where, "--config", _config(aws_env, {k: v for k, v in team.arns.items()
                                                            if k != "cluster_role_arn"}))
    refused_on_input(made, "cluster_role_arn: this cluster uses the given role")
    assert mutating_calls(stand_in.calls()) == []
    assert cli("down", *where, "--config", _config(aws_env, team.arns), "--yes").exit_code == 0


def test_a_role_eksprivate_made_is_not_swapped_for_a_given_one(
        cli: Cli, aws_env: Path, stand_in: SandboxServer, team: Team, cluster_name: str) -> None:
    where = ("--name", cluster_name, "--region", REGION)
    assert cli("up", *where).exit_code == 0  # every role made
    stand_in.clear_calls()
    given = cli("up", *where, "--config", _config(aws_env, {"node_role_arn": team.arns["node_role_arn"]}))
    refused_on_input(given, "node_role_arn: this cluster uses the role eksprivate made",
                     f"{cluster_name}-{REGION}-node", "remove node_role_arn from the config")
    assert mutating_calls(stand_in.calls()) == []
    assert cli("down", *where, "--yes").exit_code == 0


# -- roles that do not fit: one line naming the key, exit 2, nothing created -------------------------------


Bad = Callable[[Team], tuple[str, str]]  # makes a misfit role: (setting, arn)

MISFITS: dict[str, tuple[Bad, tuple[str, ...]]] = {
    "missing": (lambda t: ("cluster_role_arn", f"arn:aws:iam::{ACCOUNT}:role/platform/nobody-made-this"),
                ("cluster_role_arn: role", "nobody-made-this does not exist")),
    "other-path": (lambda t: ("node_role_arn", t.arns["node_role_arn"].replace("/platform/", "/elsewhere/")),
                   ("node_role_arn: role", "does not exist")),
    "other-account": (lambda t: ("cluster_role_arn", t.arns["cluster_role_arn"].replace(ACCOUNT, "210987654321")),
                      ("cluster_role_arn", "is in account 210987654321, not in this account (123456789012)")),
    "trusts-another-service": (lambda t: ("node_role_arn", t.make("node_role_arn", service="eks.amazonaws.com")),
                               ("node_role_arn: role", "does not trust ec2.amazonaws.com")),
    "pod-identity-without-tag-session": (lambda t: ("ebs_csi_role_arn", t.make("ebs_csi_role_arn",
                                                                               actions=["sts:AssumeRole"])),
                                         ("ebs_csi_role_arn", "does not trust pods.eks.amazonaws.com",
                                          "sts:TagSession")),
    "flow-logs-trusting-ec2": (lambda t: ("flow_logs_role_arn", t.make("flow_logs_role_arn",
                                                                       service="ec2.amazonaws.com")),
                               ("flow_logs_role_arn", "does not trust vpc-flow-logs.amazonaws.com")),
    "cluster-policy-missing": (lambda t: ("cluster_role_arn", t.make("cluster_role_arn", policies=[])),
                               ("cluster_role_arn", "lacks the AWS managed policy AmazonEKSClusterPolicy")),
    "cni-policy-missing": (lambda t: ("node_role_arn", t.make("node_role_arn", policies=[
        "AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryReadOnly"])),
                           ("node_role_arn", "lacks the AWS managed policy AmazonEKS_CNI_Policy")),
    "ecr-and-cni-missing": (lambda t: ("node_role_arn", t.make("node_role_arn",
                                                               policies=["AmazonEKSWorkerNodePolicy"])),
                            ("lacks the AWS managed policies AmazonEC2ContainerRegistryPullOnly or "
                             "AmazonEC2ContainerRegistryReadOnly, AmazonEKS_CNI_Policy",)),
    "ebs-policy-missing": (lambda t: ("ebs_csi_role_arn", t.make("ebs_csi_role_arn", policies=[])),
                           ("ebs_csi_role_arn", "lacks the AWS managed policy service-role/AmazonEBSCSIDriverPolicy")),
}


@pytest.mark.parametrize("case", sorted(MISFITS))
def test_a_role_that_does_not_fit_is_refused_before_anything_is_made(
        cli: Cli, aws_env: Path, stand_in: SandboxServer, team: Team, cluster_name: str, case: str) -> None:
    build, says = MISFITS[case]
    setting, arn = build(team)
    config = _config(aws_env, {**team.arns, setting: arn})
    stand_in.clear_calls()
    for command in ("up", "plan"):
        refused_on_input(cli(command, "--name", cluster_name, "--region", REGION, "--config", config), *says)
    assert mutating_calls(stand_in.calls()) == []
    assert not (aws_env / "state" / f"{cluster_name}-{REGION}.json").exists()


@pytest.mark.parametrize(("setting", "service"), [("cluster_role_arn", "eks.amazonaws.com"),
                                                    ("node_role_arn", "eks-nodegroup.amazonaws.com")])
def test_a_given_role_without_its_service_linked_role_is_refused(
        cli: Cli, aws_env: Path, stand_in: SandboxServer, team: Team, cluster_name: str, setting: str,
        service: str) -> None:
    # The operator's policy has no iam:CreateServiceLinkedRole when roles are given: EKS could not make it.
    team.iam.delete_role(RoleName=SERVICE_LINKED[service])
    stand_in.clear_calls()
    refused_on_input(cli("up", "--name", cluster_name, "--region", REGION, "--config", _config(aws_env, team.arns)),
                     f"{setting} is given, and the service-linked role {SERVICE_LINKED[service]} does not exist",
                     f"aws iam create-service-linked-role --aws-service-name {service}")
    assert mutating_calls(stand_in.calls()) == []


def test_a_policy_only_a_feature_needs_is_warned_about_not_refused(
        cli: Cli, aws_env: Path, stand_in: SandboxServer, team: Team, cluster_name: str) -> None:
    # The ssm endpoint: eksprivate's own node role gets AmazonSSMManagedInstanceCore (eksprivate tunnel); EKS runs
    # without it, so a given role lacking it is said, and up goes on.
    where = ("--name", cluster_name, "--region", REGION, "--config",
             _config(aws_env, team.arns, 'endpoints = ["ssm", "ssmmessages", "ec2messages"]\n'))
    built = cli("up", *where)
    assert built.exit_code == 0, built.stderr
    assert f"node_role_arn: role {team.arns['node_role_arn']} lacks AmazonSSMManagedInstanceCore" in built.stderr
    assert cli("down", *where, "--yes").exit_code == 0


def _iam_actions(document: dict[str, Any]) -> dict[str, set[str]]:
    """IAM action → the resources a policy document allows it on."""
    out: dict[str, set[str]] = {}
    for statement in document["Statement"]:
        actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        resources = [statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]
        for action in actions:
            if action.startswith("iam:"):
                out.setdefault(action, set()).update(resources)
    return out


def test_with_every_role_given_the_policy_has_no_iam_write(cli: Cli, aws_env: Path, team: Team,
                                                           cluster_name: str) -> None:
    where = ("--name", cluster_name, "--region", REGION)
    given = cli("permissions", *where, "--config", _config(aws_env, team.arns))
    assert given.exit_code == 0, given.stderr
    iam = _iam_actions(json.loads(given.stdout))
    writes = sorted(a for a in iam if not a.split(":")[1].startswith(("Get", "List")) and a != "iam:PassRole")
    assert writes == []
    assert iam["iam:PassRole"] == set(team.arns.values())
    # The same config with the roles made: role writes, and PassRole on eksprivate's own roles.
    made = cli("permissions", *where, "--config", _config(aws_env, {}))
    assert made.exit_code == 0, made.stderr
    iam = _iam_actions(json.loads(made.stdout))
    assert {"iam:CreateRole", "iam:AttachRolePolicy", "iam:DeleteRole", "iam:CreateServiceLinkedRole"} <= set(iam)
    assert not iam["iam:PassRole"] & set(team.arns.values())


def test_under_the_printed_policy_with_every_role_given_the_whole_life_works(
        cli: Cli, aws_env: Path, stand_in: SandboxServer, team: Team, cluster_name: str) -> None:
    """The sandbox enforces exactly what `permissions` prints (no IAM write in it): up, a no-op rerun, status,
    plan, down; no call refused, and the team's roles as they were."""
    before = team.snapshot()
    config = _config(aws_env, team.arns)
    where = ("--name", cluster_name, "--region", REGION, "--config", config)
    printed = cli("permissions", *where)
    assert printed.exit_code == 0, printed.stderr
    stand_in.enforce(json.loads(printed.stdout))
    for command in (("up",), ("up",), ("status",), ("plan",), ("plan", "--destroy"), ("down", "--yes")):
        result = cli(*command, *where)
        assert result.exit_code == 0, (command, stand_in.refused(), result.stderr[-300:])
    assert stand_in.refused() == []
    stand_in.enforce(None)  # the test's own look around is not the operator's
    assert inventory(stand_in.url, cluster_name) == []
    assert team.snapshot() == before


@pytest.mark.parametrize(("values", "says"), [
    ({"node_role_arn": "arn:aws:iam::123456789012:user/platform"}, "node_role_arn 'arn:aws:iam::123456789012:user/"),
    ({"cluster_role_arn": "eks-cluster"}, "cluster_role_arn 'eks-cluster' is not an IAM role ARN"),
    ({"cluster_role_arn": "arn:aws:iam::123456789012:role/one", "node_role_arn": "arn:aws:iam::123456789012:role/one"},
     "cluster_role_arn and node_role_arn name the same role"),
])
def test_a_malformed_role_setting_is_refused_without_a_call(
        cli: Cli, aws_env: Path, stand_in: SandboxServer, cluster_name: str, values: dict[str, str], says: str) -> None:
    stand_in.clear_calls()
    refused_on_input(cli("up", "--name", cluster_name, "--region", REGION, "--config", _config(aws_env, values)), says)
    assert stand_in.calls() == []
