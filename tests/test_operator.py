"""The operator's day, through the CLI against the sandbox: node groups from the config, config changes
applied (or reported) on rerun, endpoints added later, AZ choice, admins, ECR repositories, and the
JSON that scripts read.

Each test works on its own cluster name; AWS is observed with boto3 against the same sandbox, and
"what did the tool change" is the sandbox's server-side call log.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
from conftest import SandboxResets, held_empty_sandbox, run_cli, user_environment

from eksprivate.aws import is_mutating
from eksprivate.sandbox import SandboxServer
from eksprivate.steps.foreign_check import TEARDOWN_ONLY


class CliResult(Protocol):  # what conftest's `cli` fixture returns
    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None


Cli = Callable[..., CliResult]
REGION = "eu-central-1"  # the region conftest's aws_env sets
CLUSTER_TAG = "eksprivate:cluster"
ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"


# -- helpers ------------------------------------------------------------------------------------------

@pytest.fixture
def client(sandbox_client: Callable[[str], Any]) -> Callable[[str], Any]:
    """boto3 clients on the sandbox, as an operator's other tools would use them (tests/conftest.py)."""
    return sandbox_client


class Operator:
    """Edits the config file and runs eksprivate the way a person would."""

    def __init__(self, cli: Cli, name: str, folder: Path, sandbox: SandboxServer,
                 config: str = "cluster.toml") -> None:
        self.cli = cli
        self.name = name
        self.config = folder / config
        self.sandbox = sandbox
        self.head = self.tail = ""  # written around every config body (`op` sets LEAN / NO_ADDONS)

    def write(self, body: str) -> None:
        self.config.write_text(f'name = "{self.name}"\n{self.head}{body}{self.tail}')

    def run(self, *args: str, expect: int = 0) -> CliResult:
        result = self.cli(*args, "--config", str(self.config))
        assert result.exit_code == expect, (
            f"eksprivate {' '.join(args)} exited {result.exit_code} (wanted {expect})\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}\nexception: {result.exception!r}")
        assert result.exception is None
        return result

    def up(self, *extra: str, expect: int = 0) -> CliResult:
        return self.run("up", *extra, expect=expect)

    def plan(self, *extra: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.run("plan", "--output", "json", *extra).stdout)
        return data

    def mutations_of(self, *args: str, expect: int = 0) -> tuple[CliResult, list[str]]:
        """Run a command; return it and the mutating AWS calls the sandbox received meanwhile."""
        self.sandbox.clear_calls()
        result = self.run(*args, expect=expect)
        return result, [f"{c.service}:{c.operation}" for c in self.sandbox.calls() if is_mutating(c.operation)]

    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.config.parent / "state" / f"{self.name}-{REGION}.json").read_text())
        return data


@pytest.fixture
def op(cli: Cli, cluster_name: str, aws_env: Path, stand_in: SandboxServer) -> Operator:
    """An operator whose clusters leave out what no test here looks at (LEAN, NO_ADDONS)."""
    op = Operator(cli, cluster_name, aws_env, stand_in)
    op.head, op.tail = LEAN, NO_ADDONS
    return op


def step(plan: dict[str, Any], key: str) -> dict[str, Any]:
    found = [s for s in plan["steps"] if s["key"] == key]
    assert found, f"no step {key} in {[s['key'] for s in plan['steps']]}"
    item: dict[str, Any] = found[0]
    return item


def nodegroup(client: Callable[[str], Any], cluster: str, name: str) -> dict[str, Any]:
    ng: dict[str, Any] = client("eks").describe_nodegroup(clusterName=cluster, nodegroupName=name)["nodegroup"]
    return ng


def nodegroup_names(client: Callable[[str], Any], cluster: str) -> list[str]:
    return sorted(client("eks").list_nodegroups(clusterName=cluster)["nodegroups"])


def launch_template_names(client: Callable[[str], Any], cluster: str) -> list[str]:
    lts = client("ec2").describe_launch_templates(
        Filters=[{"Name": f"tag:{CLUSTER_TAG}", "Values": [cluster]}])["LaunchTemplates"]
    return sorted(lt["LaunchTemplateName"] for lt in lts)


def warnings(result: CliResult) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("warning:")]


# What no test here looks at, left out of the clusters of `op` (each command then sends about a fifth fewer
# calls): the control-plane logs, the flow logs, the KMS key for secrets (tests/test_secure_defaults.py), and the
# managed add-ons (an empty [addons] table: EKS bootstraps its self-managed networking add-ons instead; the
# managed ones: tests/test_day2.py). The shared `built` cluster below keeps the default graph.
LEAN = "control_plane_logging = false\nsecrets_encryption = false\nflow_logs = false\n"
NO_ADDONS = "\n[addons]\n"  # a TOML table: it goes last

WORKERS = """
availability_zones = 2

[[nodegroups]]
name = "workers"
per_az = false
instance_types = ["t3.small"]
min_size = 1
desired_size = 1
max_size = 3
labels = { team = "a", old = "x" }
taints = [{ key = "k1", value = "v1", effect = "NO_SCHEDULE" }]
"""


# -- node groups from the config ------------------------------------------------------------------------

def test_named_nodegroups_replace_the_defaults_and_reach_create_nodegroup(
        op: Operator, client: Callable[[str], Any]) -> None:
    op.write("""
availability_zones = ["eu-central-1a", "eu-central-1c"]

[[nodegroups]]
name = "general"
instance_types = ["t3.small"]
min_size = 1
desired_size = 2
max_size = 3

[[nodegroups]]
name = "batch"
per_az = false
instance_types = ["m7g.large"]
ami_type = "AL2023_ARM_64_STANDARD"
capacity_type = "SPOT"
min_size = 0
desired_size = 0
max_size = 4
disk_size = 50
labels = { workload = "batch", tier = "2" }
taints = [{ key = "dedicated", value = "batch", effect = "NO_SCHEDULE" },
          { key = "spot", effect = "PREFER_NO_SCHEDULE" }]
""")
    op.up()

    # The config's groups and nothing else: no default "nodes-*" groups.
    assert nodegroup_names(client, op.name) == ["batch", "general-a", "general-c"]
    state = op.state()
    assert state["inputs"]["availability_zones"] == ["eu-central-1a", "eu-central-1c"]
    subnets = {az: part["subnet_id"] for az, part in state["steps"]["subnets"]["ids"]["parts"].items()}
    assert sorted(subnets) == ["eu-central-1a", "eu-central-1c"]
    live = client("ec2").describe_subnets(SubnetIds=list(subnets.values()))["Subnets"]
    assert {s["SubnetId"]: s["AvailabilityZone"] for s in live} == {v: k for k, v in subnets.items()}

    batch = nodegroup(client, op.name, "batch")
    assert sorted(batch["subnets"]) == sorted(subnets.values())  # per_az = false: one group, every subnet
    assert batch["instanceTypes"] == ["m7g.large"]
    assert batch["amiType"] == "AL2023_ARM_64_STANDARD"
    assert batch["capacityType"] == "SPOT"
    assert batch["scalingConfig"] == {"minSize": 0, "desiredSize": 0, "maxSize": 4}
    assert batch["labels"] == {"workload": "batch", "tier": "2"}
    assert sorted((t["key"], t.get("value", ""), t["effect"]) for t in batch["taints"]) == [
        ("dedicated", "batch", "NO_SCHEDULE"), ("spot", "", "PREFER_NO_SCHEDULE")]
    assert batch["tags"][CLUSTER_TAG] == op.name

    for suffix, az in (("a", "eu-central-1a"), ("c", "eu-central-1c")):
        general = nodegroup(client, op.name, f"general-{suffix}")
        assert general["subnets"] == [subnets[az]]  # per_az: one group per AZ, in that AZ's subnet
        assert general["capacityType"] == "ON_DEMAND"
        assert general["scalingConfig"] == {"minSize": 1, "desiredSize": 2, "maxSize": 3}
        assert general["labels"] == {} and not general.get("taints")

    # One launch template per [[nodegroups]] entry, with that entry's disk size.
    assert launch_template_names(client, op.name) == [f"{op.name}-batch-nodes", f"{op.name}-general-nodes"]
    versions = client("ec2").describe_launch_template_versions(
        LaunchTemplateName=f"{op.name}-batch-nodes", Versions=["1"])["LaunchTemplateVersions"]
    assert versions[0]["LaunchTemplateData"]["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] == 50
    assert batch["launchTemplate"]["id"] == versions[0]["LaunchTemplateId"]

    _, mutations = op.mutations_of("up")
    assert mutations == []


# -- changes on rerun -------------------------------------------------------------------------------------

def test_min_max_labels_taints_update_in_place_keeping_the_live_desired_size(
        op: Operator, client: Callable[[str], Any]) -> None:
    op.write(WORKERS)
    op.up()
    # Someone (an autoscaler, the console) scales the group outside eksprivate.
    client("eks").update_nodegroup_config(clusterName=op.name, nodegroupName="workers",
                                          scalingConfig={"desiredSize": 3})

    op.write(WORKERS.replace("max_size = 3", "max_size = 5")
             .replace('labels = { team = "a", old = "x" }', 'labels = { team = "b" }')
             .replace('taints = [{ key = "k1", value = "v1", effect = "NO_SCHEDULE" }]',
                      'taints = [{ key = "k2", value = "v2", effect = "NO_EXECUTE" }]'))
    item = step(op.plan(), "nodegroup/workers")
    assert item["action"] == "update"
    details = "\n".join(item["details"])
    assert "update scalingConfig" in details and "'maxSize': 5" in details
    assert "desiredSize" not in details.split("update labels")[0]  # the live 3 fits 1..5: not touched
    assert "update labels" in details and "removeLabels" in details and "'old'" in details
    assert "update taints" in details and "'k1'" in details and "'k2'" in details
    assert any(d.startswith("! desired_size: 3 nodes (live), 1 in the config") for d in item["details"])

    result, mutations = op.mutations_of("up")
    assert mutations == ["eks:UpdateNodegroupConfig"]  # in place: nothing created or deleted
    ng = nodegroup(client, op.name, "workers")
    assert ng["scalingConfig"] == {"minSize": 1, "desiredSize": 3, "maxSize": 5}
    assert ng["labels"] == {"team": "b"}
    assert [(t["key"], t.get("value"), t["effect"]) for t in ng["taints"]] == [("k2", "v2", "NO_EXECUTE")]
    assert any("desired_size" in w for w in warnings(result))  # told, not applied

    _, mutations = op.mutations_of("up")
    assert mutations == []  # converged

    # New bounds that exclude the live size: only then is desired moved, to the nearest bound.
    op.write(WORKERS.replace("max_size = 3", "max_size = 2")
             .replace('labels = { team = "a", old = "x" }', 'labels = { team = "b" }')
             .replace('taints = [{ key = "k1", value = "v1", effect = "NO_SCHEDULE" }]',
                      'taints = [{ key = "k2", value = "v2", effect = "NO_EXECUTE" }]'))
    assert "'desiredSize': 2" in "\n".join(step(op.plan(), "nodegroup/workers")["details"])
    _, mutations = op.mutations_of("up")
    assert mutations == ["eks:UpdateNodegroupConfig"]
    assert nodegroup(client, op.name, "workers")["scalingConfig"] == {"minSize": 1, "desiredSize": 2, "maxSize": 2}


def test_added_nodegroup_is_created_and_removed_ones_are_kept_until_prune(
        op: Operator, client: Callable[[str], Any]) -> None:
    kept, dropped = f"{op.name}/kept", f"{op.name}/dropped"
    op.write(f'ecr_repositories = ["{kept}", "{dropped}"]\n' + WORKERS)
    op.up()
    extra = """
[[nodegroups]]
name = "extra"
per_az = false
instance_types = ["t3.medium"]
disk_size = 30
"""
    op.write(f'ecr_repositories = ["{kept}", "{dropped}"]\n' + WORKERS + extra)
    plan = op.plan()
    assert step(plan, "nodegroup/extra")["action"] == "create"
    assert step(plan, "launch-template/extra")["action"] == "create"
    assert step(plan, "nodegroup/workers")["action"] == "none"
    _, mutations = op.mutations_of("up")
    assert sorted(mutations) == ["ec2:CreateLaunchTemplate", "eks:CreateNodegroup"]
    assert nodegroup_names(client, op.name) == ["extra", "workers"]
    assert nodegroup(client, op.name, "extra")["instanceTypes"] == ["t3.medium"]

    # Removed from the config: plan shows them, `up` leaves them (and says so), `up --prune` deletes them,
    # the node group's launch template with it.
    op.write(f'ecr_repositories = ["{kept}"]\n' + WORKERS)
    plan = op.plan()
    for key in ("nodegroup/extra", "launch-template/extra", f"ecr/{dropped}"):
        assert step(plan, key)["action"] == "keep"
        assert any("up --prune" in d for d in step(plan, key)["details"])
    pruning = op.plan("--prune")
    for key in ("nodegroup/extra", "launch-template/extra", f"ecr/{dropped}"):
        assert step(pruning, key)["action"] == "delete"
    assert step(pruning, "nodegroup/workers")["action"] == "none"
    assert step(pruning, f"ecr/{kept}")["action"] == "none"

    result, mutations = op.mutations_of("up")
    assert mutations == []
    assert "not in the config" in result.stderr
    assert nodegroup_names(client, op.name) == ["extra", "workers"]

    _, mutations = op.mutations_of("up", "--prune")
    assert sorted(mutations) == ["ec2:DeleteLaunchTemplate", "ecr:DeleteRepository", "eks:DeleteNodegroup"]
    assert nodegroup_names(client, op.name) == ["workers"]
    assert launch_template_names(client, op.name) == [f"{op.name}-workers-nodes"]
    names = [r["repositoryName"] for r in client("ecr").describe_repositories()["repositories"]]
    assert kept in names and dropped not in names
    steps = op.state()["steps"]
    assert "nodegroup/extra" not in steps and f"ecr/{dropped}" not in steps and f"ecr/{kept}" in steps
    plan = op.plan()
    assert {s["action"] for s in plan["steps"]} == {"none"}
    assert not {"nodegroup/extra", f"ecr/{dropped}"} & {s["key"] for s in plan["steps"]}


def test_endpoints_added_to_the_config_are_created_on_rerun(op: Operator, client: Callable[[str], Any]) -> None:
    op.tail = ""  # the default add-ons: the Pod Identity agent's eks-auth endpoint is among those checked here
    op.write(WORKERS)
    op.up()
    op.write('endpoints = ["ssm", "ssmmessages", "ec2messages", "autoscaling"]\n' + WORKERS)
    plan = op.plan()
    assert step(plan, "endpoints")["action"] == "create"
    assert step(plan, "node-role")["details"] == ["attach AmazonSSMManagedInstanceCore"]

    _, mutations = op.mutations_of("up")
    assert sorted(mutations) == ["ec2:CreateVpcEndpoint"] * 4 + ["iam:AttachRolePolicy"]
    eps = client("ec2").describe_vpc_endpoints(
        Filters=[{"Name": f"tag:{CLUSTER_TAG}", "Values": [op.name]}])["VpcEndpoints"]
    services = sorted(e["ServiceName"].removeprefix(f"com.amazonaws.{REGION}.") for e in eps)
    assert services == sorted(["ec2", "ecr.api", "ecr.dkr", "sts", "logs", "s3", "ssm", "ssmmessages",
                               "ec2messages", "autoscaling", "eks-auth"])  # eks-auth: the Pod Identity add-on
    subnets = sorted(p["subnet_id"] for p in op.state()["steps"]["subnets"]["ids"]["parts"].values())
    for e in eps:
        if e["VpcEndpointType"] == "Interface":
            assert sorted(e["SubnetIds"]) == subnets and e["PrivateDnsEnabled"]
    _, mutations = op.mutations_of("up")
    assert mutations == []

    # One removed again: kept (and said) until `up --prune`.
    op.write('endpoints = ["ssm", "ssmmessages", "ec2messages"]\n' + WORKERS)
    item = step(op.plan(), "endpoints")
    assert item["action"] == "none" and any(d.startswith("!") and "autoscaling" in d for d in item["details"])
    result, mutations = op.mutations_of("up")
    assert mutations == [] and any("autoscaling" in w for w in warnings(result))
    assert step(op.plan("--prune"), "endpoints")["action"] == "update"
    _, mutations = op.mutations_of("up", "--prune")
    assert mutations == ["ec2:DeleteVpcEndpoints"]
    assert "autoscaling" not in step(op.plan(), "endpoints")["resources"]

    # A rerun that adds an unknown service is refused before any change.
    before = json.dumps(op.state(), sort_keys=True)
    op.write('endpoints = ["ssm", "nope"]\n' + WORKERS)
    result, mutations = op.mutations_of("up", expect=2)
    assert "endpoints: nope is not a VPC endpoint service" in result.stderr and mutations == []
    assert json.dumps(op.state(), sort_keys=True) == before


def test_unknown_endpoint_service_is_rejected_before_anything_is_created(op: Operator, aws_env: Path) -> None:
    op.write('endpoints = ["ssm", "no-such-service"]\n' + WORKERS)
    result, mutations = op.mutations_of("up", expect=2)
    assert "no-such-service" in result.stderr and "Traceback" not in result.stderr
    assert mutations == []
    assert not (aws_env / "state").exists() or not list((aws_env / "state").glob("*.json"))


def test_bad_nodegroup_config_is_a_usage_error(op: Operator) -> None:
    op.write(WORKERS.replace("per_az = false", 'per_az = "no"'))
    result, mutations = op.mutations_of("plan", expect=2)
    assert "nodegroups[0].per_az" in result.stderr and mutations == []
    op.write(WORKERS.replace('effect = "NO_SCHEDULE"', 'effect = "SOMETIMES"'))
    result, _ = op.mutations_of("up", expect=2)
    assert "SOMETIMES" in result.stderr and "Traceback" not in result.stderr


# -- availability zones -----------------------------------------------------------------------------------

@pytest.fixture
def offerings(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, set[str]]]:
    """Take instance types / endpoint services out of AZs in the sandbox: {name: {az, ...}} to hide.
    (The sandbox runs in this process, so patching moto's EC2 backend changes what it answers.)"""
    from moto.ec2.models import EC2Backend

    hidden: dict[str, set[str]] = {}
    types_orig = EC2Backend.describe_instance_type_offerings
    services_orig = EC2Backend.describe_vpc_endpoint_services

    def describe_instance_type_offerings(self: Any, *args: Any, **kwargs: Any) -> Any:
        return [o for o in types_orig(self, *args, **kwargs)
                if o.get("Location") not in hidden.get(o["InstanceType"], set())]

    def describe_vpc_endpoint_services(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = copy.deepcopy(services_orig(self, *args, **kwargs))
        for detail in result["servicesDetails"]:
            short = detail["ServiceName"].removeprefix(f"com.amazonaws.{REGION}.")
            detail["AvailabilityZones"] = [z for z in detail["AvailabilityZones"] if z not in hidden.get(short, set())]
        return result

    monkeypatch.setattr(EC2Backend, "describe_instance_type_offerings", describe_instance_type_offerings)
    monkeypatch.setattr(EC2Backend, "describe_vpc_endpoint_services", describe_vpc_endpoint_services)
    yield hidden


def test_explicit_availability_zones_are_validated(op: Operator, offerings: dict[str, set[str]]) -> None:
    op.write(WORKERS.replace("availability_zones = 2", 'availability_zones = ["eu-central-1a", "eu-central-1x"]'))
    result, mutations = op.mutations_of("up", expect=2)
    assert "eu-central-1x does not exist" in result.stderr and "eu-central-1a" in result.stderr
    assert mutations == []

    offerings["t3.small"] = {"eu-central-1b"}
    op.write(WORKERS.replace("availability_zones = 2", 'availability_zones = ["eu-central-1a", "eu-central-1b"]'))
    result, mutations = op.mutations_of("plan", expect=2)
    assert "eu-central-1b does not offer t3.small" in result.stderr and mutations == []


def test_count_based_az_choice_skips_zones_missing_a_type_or_service_and_is_kept_on_rerun(
        op: Operator, client: Callable[[str], Any], offerings: dict[str, set[str]]) -> None:
    offerings["t3.small"] = {"eu-central-1a"}
    offerings["ssm"] = {"eu-central-1c"}
    op.write('endpoints = ["ssm"]\n' + WORKERS)
    result, mutations = op.mutations_of("up", expect=2)  # only eu-central-1b offers both
    assert mutations == []
    assert "eu-central-1a (euc1-az1): lacks t3.small" in result.stderr  # skipped zones are named with their IDs
    assert "eu-central-1c (euc1-az3): lacks the ssm endpoint" in result.stderr

    op.write(WORKERS)  # without ssm: 1b and 1c qualify
    op.up()
    chosen = ["eu-central-1b", "eu-central-1c"]
    assert op.state()["inputs"]["availability_zones"] == chosen
    assert sorted(op.state()["steps"]["subnets"]["ids"]["parts"]) == chosen
    assert sorted(nodegroup(client, op.name, "workers")["subnets"]) == sorted(
        p["subnet_id"] for p in op.state()["steps"]["subnets"]["ids"]["parts"].values())

    # Offerings change (1a now offers t3.small): the cluster stays where it is.
    offerings.clear()
    _, mutations = op.mutations_of("up")
    assert mutations == [] and op.state()["inputs"]["availability_zones"] == chosen
    status = json.loads(op.run("status", "--output", "json").stdout)
    assert status["availability_zones"] == chosen

    # Adding an endpoint service one of the cluster's AZs lacks is refused before any change.
    offerings["ssm"] = {"eu-central-1c"}
    op.write('endpoints = ["ssm"]\n' + WORKERS)
    result, mutations = op.mutations_of("up", expect=2)
    assert "eu-central-1c of this cluster (recorded in the state) does not offer the ssm endpoint" in result.stderr
    assert mutations == []


# -- admins -----------------------------------------------------------------------------------------------

def test_admins_get_cluster_admin_access_entries_once(op: Operator, client: Callable[[str], Any]) -> None:
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"}]})
    ops_role = client("iam").create_role(RoleName=f"{op.name}-ops", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    oncall = client("iam").create_user(UserName=f"{op.name}-oncall")["User"]["Arn"]
    op.write(f'admins = ["{ops_role}", "{oncall}"]\n' + WORKERS)
    op.up()

    eks = client("eks")

    def entries() -> list[str]:
        return sorted(eks.list_access_entries(clusterName=op.name)["accessEntries"])

    def admin_entries() -> list[str]:
        return sorted(eks.list_access_entries(clusterName=op.name, associatedPolicyArn=ADMIN_POLICY)["accessEntries"])

    others = sorted(set(entries()) - {ops_role, oncall})  # the creator's and the node role's, made by EKS
    assert len(others) == 2
    for arn in (ops_role, oncall):
        assert arn in entries()
        policies = eks.list_associated_access_policies(clusterName=op.name, principalArn=arn)
        assert [(p["policyArn"], p["accessScope"]["type"]) for p in policies["associatedAccessPolicies"]] == [
            (ADMIN_POLICY, "cluster")]
        assert eks.describe_access_entry(clusterName=op.name, principalArn=arn)["accessEntry"]["tags"][
            CLUSTER_TAG] == op.name
    assert step(op.plan(), "admins")["action"] == "none"
    _, mutations = op.mutations_of("up")
    assert mutations == []  # not re-created

    # A run that died between CreateAccessEntry and AssociateAccessPolicy: the rerun finishes the entry.
    eks.disassociate_access_policy(clusterName=op.name, principalArn=oncall, policyArn=ADMIN_POLICY)
    assert step(op.plan(), "admins")["action"] == "create"
    _, mutations = op.mutations_of("up")
    assert mutations == ["eks:AssociateAccessPolicy"]
    assert oncall in admin_entries()

    # Removed from the config: the entry goes; entries eksprivate did not make stay.
    op.write(f'admins = ["{ops_role}"]\n' + WORKERS)
    item = step(op.plan(), "admins")
    assert item["action"] == "update" and oncall in "\n".join(item["details"])
    _, mutations = op.mutations_of("up")
    assert mutations == ["eks:DeleteAccessEntry"]
    assert entries() == sorted([ops_role, *others])
    op.write(WORKERS)
    _, mutations = op.mutations_of("up")
    assert mutations == ["eks:DeleteAccessEntry"]
    assert entries() == others
    _, mutations = op.mutations_of("up")
    assert mutations == []
    assert "admins" not in [s["key"] for s in op.plan()["steps"]]


# -- ECR repositories -------------------------------------------------------------------------------------

def test_ecr_repositories_created_locked_down_and_removed_by_down(
        op: Operator, client: Callable[[str], Any], aws_env: Path) -> None:
    ecr = client("ecr")
    foreign = f"{op.name}/shared"
    ecr.create_repository(repositoryName=foreign)  # someone else's, also listed in the config
    mine = [f"{op.name}/nginx", f"{op.name}/busybox"]
    repos = f'ecr_repositories = ["{mine[0]}", "{mine[1]}", "{foreign}"]\n'
    op.write(repos + WORKERS)
    result = op.up()
    assert any(foreign in w and "did not make it" in w for w in warnings(result))

    for name in mine:
        repo = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
        assert repo["imageTagMutability"] == "IMMUTABLE"
        assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
        assert repo["encryptionConfiguration"]["encryptionType"] == "AES256"
        tags = {t["Key"]: t["Value"] for t in ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"]}
        assert tags[CLUSTER_TAG] == op.name
        assert op.state()["steps"][f"ecr/{name}"]["ids"]["repository_arn"] == repo["repositoryArn"]
    plan = op.plan()
    assert [step(plan, f"ecr/{n}")["action"] for n in mine] == ["none", "none"]
    assert step(plan, f"ecr/{foreign}")["details"][0].startswith("! repository")
    assert ecr.list_tags_for_resource(resourceArn=ecr.describe_repositories(
        repositoryNames=[foreign])["repositories"][0]["repositoryArn"])["tags"] == []  # never touched
    _, mutations = op.mutations_of("up")
    assert mutations == []

    # Drift is put back in place.
    ecr.put_image_tag_mutability(repositoryName=mine[0], imageTagMutability="MUTABLE")
    assert step(op.plan(), f"ecr/{mine[0]}")["action"] == "update"
    _, mutations = op.mutations_of("up")
    assert mutations == ["ecr:PutImageTagMutability"]

    # An image in one; both mine dropped from the config and the state file lost: `down` still finds
    # them by tag and deletes them, images and all; the foreign repository stays.
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                           "config": {"digest": "sha256:" + "a" * 64, "size": 1, "mediaType":
                                      "application/vnd.docker.container.image.v1+json"}, "layers": []})
    ecr.put_image(repositoryName=mine[0], imageManifest=manifest, imageTag="1.27.0")
    op.write(f'ecr_repositories = ["{foreign}"]\n' + WORKERS)
    plan = op.plan()
    assert step(plan, f"ecr/{mine[0]}")["action"] == "keep"
    assert "1 image" in step(plan, f"ecr/{mine[0]}")["details"][0]
    for path in (aws_env / "state").glob(f"{op.name}-*"):
        path.unlink()
    destroy = op.plan("--destroy")
    assert [step(destroy, f"ecr/{n}")["action"] for n in mine] == ["delete", "delete"]
    assert step(destroy, f"ecr/{foreign}")["action"] == "absent"
    _, mutations = op.mutations_of("down", "--yes")
    assert mutations.count("ecr:DeleteRepository") == 2
    left = [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]]
    assert foreign in left and not set(mine) & set(left)
    assert client("eks").list_clusters()["clusters"].count(op.name) == 0


def test_down_without_ecr_permissions_still_works_when_no_repository_was_made(tmp_path: Path) -> None:
    """The tag scan `down` and `status` run must not make ECR permissions a requirement for clusters
    that never had repositories."""
    from types import SimpleNamespace

    from eksprivate.aws import typed_error
    from eksprivate.config import Settings
    from eksprivate.state import Ledger
    from eksprivate.steps.base import Context
    from eksprivate.steps.ecr import other_repositories

    def denied(operation: str, key: str, **kwargs: Any) -> Iterator[Any]:
        raise typed_error("ecr", "DescribeRepositories", "AccessDeniedException", "not allowed")  # as aws.py does
        yield  # a generator, like Client.paginate

    aws: Any = SimpleNamespace(ecr=SimpleNamespace(paginate=denied), region=REGION)
    ledger = Ledger(tmp_path / "s.json", "c", REGION, "123456789012", persist=False)
    ctx = Context(aws=aws, settings=Settings(name="c"), ledger=ledger, account="123456789012", azs=[], poll=0)
    assert other_repositories(ctx, set(), scan=True) == []
    ledger.record("ecr/mirror/old", repository_name="mirror/old")  # what the state remembers still counts
    assert other_repositories(ctx, set(), scan=True) == ["mirror/old"]
    assert other_repositories(ctx, {"mirror/old"}, scan=True) == []


# -- on one built cluster ---------------------------------------------------------------------------------
# The tests below read what one `up` of `mirrored(name)` made (plan, status, a rerun that must change
# nothing) and change nothing in AWS or in the state, so they share that `up` (~0.8 CPU s each) and each
# writes its own config file beside its state. While they run, the sandbox is held (not emptied between
# tests: tests/conftest.py `SandboxResets`), which is why they come last in this file.

def mirrored(name: str) -> str:
    """WORKERS with one ECR repository (an `ecr/` step among the default graph's steps)."""
    return f'ecr_repositories = ["mirror-{name}"]\n' + WORKERS


@dataclass
class Built:
    name: str
    folder: Path  # the user's folder: state/ is there
    plan_before_up: dict[str, Any]  # `plan --output json` on the empty account, before the `up` that made it


@pytest.fixture(scope="module")
def built(sandbox_server: SandboxServer, sandbox_resets: SandboxResets,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    folder = tmp_path_factory.mktemp("operator")
    name = f"t-{uuid.uuid4().hex[:10]}"
    with held_empty_sandbox(sandbox_server, sandbox_resets):
        with pytest.MonkeyPatch.context() as mp:
            user_environment(mp, sandbox_server.url, folder)
            op = Operator(run_cli, name, folder, sandbox_server, config="built.toml")
            op.write(mirrored(name))
            plan_before_up = op.plan()
            op.up()
        yield Built(name, folder, plan_before_up)


@pytest.fixture
def on_built(built: Built, aws_env: Path, stand_in: SandboxServer, monkeypatch: pytest.MonkeyPatch,
             request: pytest.FixtureRequest) -> Operator:
    """An operator of the built cluster, in a test's user environment (`aws_env`) working in the folder that
    holds its state, with a config file of the test's own that starts as the one `built` used."""
    monkeypatch.chdir(built.folder)
    op = Operator(run_cli, built.name, built.folder, stand_in, config=f"{request.node.name}.toml")
    op.write(mirrored(built.name))
    return op


def test_settings_that_cannot_change_in_place_are_reported_and_never_applied(
        on_built: Operator, client: Callable[[str], Any]) -> None:
    op = on_built
    changed = (mirrored(op.name)
               .replace("availability_zones = 2", 'availability_zones = 3\nvpc_cidr = "10.30.0.0/16"\n'
                        "imds_hop_limit = 2")
               .replace('instance_types = ["t3.small"]', 'instance_types = ["t3.medium"]\ncapacity_type = "SPOT"\n'
                        'ami_type = "BOTTLEROCKET_x86_64"\ndisk_size = 40'))
    op.write(changed)

    plan = op.plan()
    reported = {key: [d for d in step(plan, key)["details"] if d.startswith("!")]
                for key in ("vpc", "subnets", "nodegroup/workers", "launch-template/workers")}
    assert any("vpc_cidr" in d and "10.30.0.0/16" in d and "down" in d for d in reported["vpc"])
    assert any("availability_zones" in d and "cannot change" in d for d in reported["subnets"])
    group = "\n".join(reported["nodegroup/workers"])
    for words in ("instance types", "capacity_type", "ami_type"):
        assert words in group
    assert group.count("up --prune") >= 3  # each says what to do
    template = "\n".join(reported["launch-template/workers"])
    assert "disk_size" in template and "imds_hop_limit" in template
    for key in reported:  # nothing applicable: `up` has nothing to do there
        assert step(plan, key)["action"] == "none"
    assert step(plan, "endpoint-sg")["action"] == "none"  # the rule stays on the VPC's real CIDR

    text = op.run("plan").stdout
    assert "vpc_cidr" in text and "instance types" in text

    result, mutations = op.mutations_of("up")
    assert mutations == []  # not even part of it (no subnet, no security group rule for the new CIDR)
    said = "\n".join(warnings(result))
    for words in ("vpc_cidr", "availability_zones", "instance types", "capacity_type", "ami_type", "disk_size"):
        assert words in said
    assert op.state()["inputs"]["availability_zones"] == ["eu-central-1a", "eu-central-1b"]
    assert nodegroup(client, op.name, "workers")["instanceTypes"] == ["t3.small"]


# -- JSON for scripts -------------------------------------------------------------------------------------

TARGET_KEYS = {"name", "region", "account", "state", "availability_zones"}
STEP_KEYS = {"key", "title", "action", "resources", "details", "status"}


def test_plan_and_status_json_shapes_are_stable(built: Built, on_built: Operator) -> None:
    op = on_built

    def check(data: dict[str, Any], top: set[str]) -> None:
        assert set(data) == top
        assert isinstance(data["availability_zones"], list) and isinstance(data["steps"], list)
        assert data["name"] == op.name and data["region"] == REGION and data["account"] == "123456789012"
        for item in data["steps"]:
            assert set(item) == STEP_KEYS, item
            assert all(isinstance(item[k], str) for k in STEP_KEYS - {"details"})
            assert isinstance(item["details"], list) and all(isinstance(d, str) for d in item["details"])

    before = built.plan_before_up
    check(before, TARGET_KEYS | {"destroy", "steps", "skipped_zones", "cost"})  # cost: docs/cost.md
    # "upgrade" makes nothing: it runs a kubernetes_version raise (none here).
    assert before["destroy"] is False and {s["action"] for s in before["steps"] if s["key"] != "upgrade"} == {"create"}
    assert step(before, "upgrade")["action"] == "none"
    after = op.plan()
    check(after, TARGET_KEYS | {"destroy", "steps", "skipped_zones", "cost"})
    assert [s["key"] for s in after["steps"]] == [s["key"] for s in before["steps"]]
    assert {s["action"] for s in after["steps"]} == {"none"}
    assert f"ecr/mirror-{op.name}" in [s["key"] for s in after["steps"]]
    destroy = op.plan("--destroy")
    check(destroy, TARGET_KEYS | {"destroy", "steps", "skipped_zones"})
    assert destroy["destroy"] is True
    assert {s["action"] for s in destroy["steps"] if s["key"] not in TEARDOWN_ONLY} == {"delete"}

    status = json.loads(op.run("status", "--output", "json").stdout)
    check(status, TARGET_KEYS | {"steps", "cost", "kubernetes_support"})
    # status also shows down's teardown-only steps (what Kubernetes made, foreign blockers): none here.
    assert {s["action"] for s in status["steps"] if s["key"] not in TEARDOWN_ONLY} == {"exists"}
    assert {s["key"] for s in status["steps"]} == {s["key"] for s in after["steps"]} - {"upgrade"} | set(TEARDOWN_ONLY)
    assert step(status, "nodegroup/workers")["status"] == "ACTIVE"
