"""Roles given instead of made: an IAM team's cluster, node, flow logs and EBS CSI roles, made by hand on the
sandbox. `up` uses them and calls no IAM write; a rerun changes nothing; `down` leaves every one exactly as it
was, also after the state is lost. A role that does not fit is refused before anything is created."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import SandboxResets, held_empty_sandbox, run_cli, user_environment

from eksprivate.sandbox import CallRecord, SandboxServer
from eksprivate.sandbox.operator_policy import Check

from .helpers import REGION, Cli, CliResult, Item, SdkHooks, Seen, inventory, mutating_calls, refused_on_input

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


def make_team(iam: Any) -> Team:
    made = Team(iam, {})
    made.arns = {setting: made.make(setting) for setting in ROLES}
    # What AWS makes once per account on first use, made here by the team as AWS would name it.
    for service, name in SERVICE_LINKED.items():
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": service},
                                                         "Action": "sts:AssumeRole"}]}
        made.iam.create_role(RoleName=name, Path=f"/aws-service-role/{service}/",
                             AssumeRolePolicyDocument=json.dumps(trust))
    return made


@pytest.fixture
def team(sandbox_client: Callable[[str], Any]) -> Team:
    return make_team(sandbox_client("iam"))


def _iam(server: SandboxServer) -> Any:
    """An IAM client on the sandbox for fixtures wider than a test (`sandbox_client` is one test's)."""
    return boto3.client("iam", endpoint_url=server.url, region_name=REGION, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def _config(folder: Path, roles: dict[str, str], extra: str = "") -> str:
    path = folder / f"given-{uuid.uuid4().hex[:6]}.toml"
    path.write_text("".join(f'{k} = "{v}"\n' for k, v in roles.items()) + extra + ADDONS)
    return str(path)


def _iam_writes(records: list[CallRecord]) -> list[str]:
    return [c for c in mutating_calls(records) if c.startswith("iam:")]


# -- one life with every role given, under exactly the policy `permissions` prints for it ----------------------
# The four tests after the fixture each paid for a life of this config (`up` ... `down`, without a policy but the
# second); now it runs once, and each reads only the calls of the commands it asserts on (the sandbox's log, cut
# per command). The ssm endpoints are in the config for the warning test: the others do not look at endpoints.

SSM = 'endpoints = ["ssm", "ssmmessages", "ec2messages"]\n'

LIFE = {"up": ("up",), "rerun": ("up",), "status": ("status",), "plan": ("plan",),
        "plan --destroy": ("plan", "--destroy"), "plan --destroy json": ("plan", "--destroy", "-o", "json"),
        "down": ("down", "--yes")}


@dataclass
class Run:
    command: tuple[str, ...]
    result: CliResult
    calls: list[CallRecord]  # the requests this command made, and only those


@dataclass
class GivenLife:
    name: str
    arns: dict[str, str]
    runs: dict[str, Run]  # by LIFE's labels, in order
    refused: list[Check]  # every check the printed policy refused, over the whole life
    sent_by_up: list[Seen]  # CreateCluster, CreateNodegroup, CreateAddon, CreateFlowLogs as `up` sent them
    roles_after_up: list[Item]  # roles eksprivate made (tagged as its own) after `up`
    steps_after_up: dict[str, Any]  # the state file's steps after `up`
    swaps: dict[str, CliResult]  # `up` with another cluster role given, and with none, before `down`
    swap_calls: list[CallRecord]
    left_after_down: list[Item]
    before: dict[str, Any]  # the team's roles (Team.snapshot) before `up`
    after: dict[str, Any]  # and after `down`


@pytest.fixture(scope="module")
def given_life(sandbox_server: SandboxServer, sandbox_resets: SandboxResets,
               tmp_path_factory: pytest.TempPathFactory) -> GivenLife:
    """Every role given (`team`'s, made in an emptied sandbox); the policy `permissions` prints for that config is
    enforced from `up` to `down`. It is lifted only for the look around right after `up` (inventory, state file:
    the test's look is not the operator's) and for the two swap attempts before `down` (run without a policy, as
    their test always was). The life is over when this returns, so the tests after it start empty."""
    folder = tmp_path_factory.mktemp("given")
    name = f"t-{uuid.uuid4().hex[:10]}"
    with held_empty_sandbox(sandbox_server, sandbox_resets), pytest.MonkeyPatch.context() as mp:
        user_environment(mp, sandbox_server.url, folder)
        hooks = SdkHooks(mp)
        team = make_team(_iam(sandbox_server))
        before = team.snapshot()
        where = ("--name", name, "--region", REGION, "--config", _config(folder, team.arns, SSM))
        printed = run_cli("permissions", *where)
        assert printed.exit_code == 0, printed.stderr
        policy = json.loads(printed.stdout)
        hooks.watch("eks.CreateCluster", "eks.CreateNodegroup", "eks.CreateAddon", "ec2.CreateFlowLogs")
        runs: dict[str, Run] = {}
        refused: list[Check] = []
        state = folder / "state" / f"{name}-{REGION}.json"
        sandbox_server.enforce(policy)
        try:
            for label, command in LIFE.items():
                mark = len(sandbox_server.calls())
                result = run_cli(*command, *where)
                runs[label] = Run(command, result, sandbox_server.calls()[mark:])
                if label == "up":
                    sent_by_up = list(hooks.seen)
                    refused += sandbox_server.refused()
                    sandbox_server.enforce(None)
                    roles_after_up = [i for i in inventory(sandbox_server.url, name) if i.kind == "role"]
                    steps_after_up = json.loads(state.read_text())["steps"] if state.exists() else {}
                    sandbox_server.enforce(policy)
                if label == "plan --destroy json":  # the next is `down`
                    refused += sandbox_server.refused()
                    sandbox_server.enforce(None)
                    other = team.make("cluster_role_arn")
                    mark = len(sandbox_server.calls())
                    swaps = {"another role": run_cli("up", *where[:4], "--config", _config(
                                 folder, {**team.arns, "cluster_role_arn": other}, SSM)),
                             "no role": run_cli("up", *where[:4], "--config", _config(
                                 folder, {k: v for k, v in team.arns.items() if k != "cluster_role_arn"}, SSM))}
                    swap_calls = sandbox_server.calls()[mark:]
                    sandbox_server.enforce(policy)
            refused += sandbox_server.refused()
        finally:
            sandbox_server.enforce(None)
        return GivenLife(name, dict(team.arns), runs, refused, sent_by_up, roles_after_up, steps_after_up, swaps,
                         swap_calls, inventory(sandbox_server.url, name), before, team.snapshot())


def test_up_uses_every_given_role_and_down_leaves_them(given_life: GivenLife) -> None:
    life, arns = given_life, given_life.arns
    up = life.runs["up"]
    assert up.result.exit_code == 0, up.result.stderr
    assert _iam_writes(up.calls) == [], "up wrote to IAM although every role was given"

    # Each role went where it belongs.
    sent = {s.operation: s.params for s in life.sent_by_up}
    assert sent["CreateCluster"]["roleArn"] == arns["cluster_role_arn"]
    assert sent["CreateNodegroup"]["nodeRole"] == arns["node_role_arn"]
    assert sent["CreateFlowLogs"]["DeliverLogsPermissionArn"] == arns["flow_logs_role_arn"]
    ebs = next(s.params for s in life.sent_by_up if s.operation == "CreateAddon" and s.params["addonName"] ==
               "aws-ebs-csi-driver")
    assert ebs["podIdentityAssociations"] == [{"serviceAccount": "ebs-csi-controller-sa",
                                               "roleArn": arns["ebs_csi_role_arn"]}]
    # No role of eksprivate's own; the state says which are given.
    assert life.roles_after_up == []
    steps = life.steps_after_up
    for key, setting in (("cluster-role", "cluster_role_arn"), ("node-role", "node_role_arn"),
                         ("flow-logs-role", "flow_logs_role_arn"), ("ebs-csi-role", "ebs_csi_role_arn")):
        assert steps[key]["ids"] == {"role_name": arns[setting].rsplit("/", 1)[1],
                                     "role_arn": arns[setting], "given": True}

    # A rerun changes nothing at all; plan --destroy keeps the given roles.
    again = life.runs["rerun"]
    assert again.result.exit_code == 0, again.result.stderr
    assert mutating_calls(again.calls) == []
    plan = life.runs["plan --destroy json"].result
    assert plan.exit_code == 0, plan.stderr
    actions = {s["key"]: s["action"] for s in json.loads(plan.stdout)["steps"]}
    assert {actions[k] for k in ("cluster-role", "node-role", "flow-logs-role", "ebs-csi-role")} == {"keep"}

    down = life.runs["down"]
    assert down.result.exit_code == 0, down.result.stderr
    assert _iam_writes(down.calls) == []
    assert life.left_after_down == []
    assert life.after == life.before


def test_under_the_printed_policy_with_every_role_given_the_whole_life_works(given_life: GivenLife) -> None:
    """The sandbox enforces exactly what `permissions` prints (no IAM write in it): up, a no-op rerun, status,
    plan, down; no call refused, and the team's roles as they were."""
    for run in given_life.runs.values():
        assert run.result.exit_code == 0, (run.command, given_life.refused, run.result.stderr[-300:])
    assert given_life.refused == []
    assert given_life.left_after_down == []
    assert given_life.after == given_life.before


def test_a_recorded_role_is_not_swapped(given_life: GivenLife) -> None:
    refused_on_input(given_life.swaps["another role"], "cluster_role_arn: this cluster uses the given role",
                     given_life.arns["cluster_role_arn"])
    refused_on_input(given_life.swaps["no role"], "cluster_role_arn: this cluster uses the given role")
    assert mutating_calls(given_life.swap_calls) == []
    assert given_life.runs["down"].result.exit_code == 0  # the refused runs left the cluster as `down` knows it


def test_a_policy_only_a_feature_needs_is_warned_about_not_refused(given_life: GivenLife) -> None:
    # The ssm endpoint: eksprivate's own node role gets AmazonSSMManagedInstanceCore (eksprivate tunnel); EKS runs
    # without it, so a given role lacking it is said, and up goes on.
    built = given_life.runs["up"].result
    assert built.exit_code == 0, built.stderr
    assert f"node_role_arn: role {given_life.arns['node_role_arn']} lacks AmazonSSMManagedInstanceCore" in built.stderr
    assert given_life.runs["down"].result.exit_code == 0


# The tests below that build a cluster of their own leave out what they never look at: two of the three node groups,
# an AZ, the control-plane logs and the KMS key (flow logs and the EBS CSI add-on stay where a role is given for them).
LEAN = 'per_az = false\navailability_zones = 2\ncontrol_plane_logging = false\nsecrets_encryption = false\n'


@pytest.mark.parametrize("with_config", [True, False], ids=["config-kept", "config-lost-too"])
def test_lost_state_down_leaves_the_given_roles(
        cli: Cli, aws_env: Path, stand_in: SandboxServer, team: Team, cluster_name: str, with_config: bool) -> None:
    before = team.snapshot()
    config = _config(aws_env, team.arns, LEAN)
    assert cli("up", "--name", cluster_name, "--region", REGION, "--config", config).exit_code == 0
    for leftover in (aws_env / "state").iterdir():
        leftover.unlink()  # the laptop is gone
    args = ("--config", config) if with_config else ()
    stand_in.clear_calls()
    down = cli("down", "--name", cluster_name, "--region", REGION, *args, "--yes")
    assert down.exit_code == 0, down.stderr
    assert _iam_writes(stand_in.calls()) == []
    assert inventory(stand_in.url, cluster_name) == []
    assert team.snapshot() == before


def test_a_role_eksprivate_made_is_not_swapped_for_a_given_one(
        cli: Cli, aws_env: Path, stand_in: SandboxServer, team: Team, cluster_name: str) -> None:
    where = ("--name", cluster_name, "--region", REGION)
    made = aws_env / "made.toml"
    made.write_text(f"{LEAN}flow_logs = false\n[addons]\n")
    assert cli("up", *where, "--config", str(made)).exit_code == 0  # its own cluster and node roles made
    stand_in.clear_calls()
    given = cli("up", *where, "--config", _config(aws_env, {"node_role_arn": team.arns["node_role_arn"]}, LEAN))
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


@pytest.fixture(scope="class")
def misfit_team(sandbox_server: SandboxServer, sandbox_resets: SandboxResets) -> Iterator[Team]:
    """One team for every misfit test (made once; the sandbox is held, not emptied, while `TestMisfits` runs):
    each test only adds its own misfit role, under a name of its own, and nothing else is made."""
    with held_empty_sandbox(sandbox_server, sandbox_resets):
        yield make_team(_iam(sandbox_server))


class TestMisfits:
    @pytest.mark.parametrize("case", sorted(MISFITS))
    def test_a_role_that_does_not_fit_is_refused_before_anything_is_made(
            self, cli: Cli, aws_env: Path, stand_in: SandboxServer, misfit_team: Team, cluster_name: str,
            case: str) -> None:
        build, says = MISFITS[case]
        setting, arn = build(misfit_team)
        config = _config(aws_env, {**misfit_team.arns, setting: arn})
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
