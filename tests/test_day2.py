"""Day 2 through the CLI: EKS managed add-ons and Kubernetes upgrades, against the sandbox's models
(`eksprivate/sandbox/eks_addons.py`, `eks_upgrades.py`)."""

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

import eksprivate.steps as steps_module
from eksprivate.aws import is_mutating
from eksprivate.sandbox import SandboxServer, eks_addons, eks_upgrades
from tests.test_updates_support import CliResult, User

BASE = 'per_az = false\nkubernetes_version = "1.32"\n'


@pytest.fixture
def user(cli: Callable[..., CliResult], cluster_name: str, aws_env: Path, stand_in: SandboxServer) -> User:
    return User(cli, cluster_name, aws_env, stand_in)


def _step(plan: dict[str, object], key: str) -> dict[str, object]:
    steps = plan["steps"]
    assert isinstance(steps, list)
    found: dict[str, object] = next(s for s in steps if s["key"] == key)
    return found


def test_node_groups_made_before_the_cni_never_join(user: User, monkeypatch: pytest.MonkeyPatch) -> None:
    """The naive order (add-ons once the node groups are up, as terraform-aws-eks's default and eksctl before
    0.52 did) on a cluster made without the self-managed add-ons: the nodes boot with no CNI, stay NotReady and
    the node group fails with NodeCreationFailure (moto alone makes it ACTIVE). `up` says so, naming the issue."""
    real = steps_module.build_graph

    def add_ons_after_node_groups(ctx: Any, **kwargs: Any) -> list[Any]:
        graph = real(ctx, **kwargs)
        groups = tuple(s.key for s in graph if s.key.startswith("nodegroup/"))
        for step in graph:
            if step.key.startswith("nodegroup/"):
                step.needs_created = ()
            elif step.key.startswith("addon/"):
                step.needs, step.ready_needs = (*step.needs, *groups), ()
        return graph

    monkeypatch.setattr(steps_module, "build_graph", add_ons_after_node_groups)
    user.write(BASE)
    user.sandbox.clear_calls()
    result = user.run("up", expect=1)
    assert "NodeCreationFailure" in result.stderr and "node group nodes" in result.stderr
    assert "CreateAddon" not in user.calls()
    group = user.eks.describe_nodegroup(clusterName=user.name, nodegroupName="nodes")["nodegroup"]
    assert group["status"] == "CREATE_FAILED"
    assert group["health"]["issues"][0]["code"] == "NodeCreationFailure"


def test_an_addon_removed_from_the_config_is_shown_and_removed_only_with_prune(user: User) -> None:
    user.write(BASE + '[addons]\nvpc-cni = "default"\nkube-proxy = "default"\ncoredns = "default"\n'
               'eks-pod-identity-agent = "default"\naws-ebs-csi-driver = "default"\n')
    user.run("up")
    # The driver's controller gets its IAM role through a Pod Identity association made with the add-on.
    role = boto3.client("iam", endpoint_url=user.sandbox.url, region_name="us-east-1", aws_access_key_id="t",
                        aws_secret_access_key="t").get_role(RoleName=f"{user.name}-eu-central-1-ebs-csi")["Role"]
    trust = role["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert sorted(trust["Action"]) == ["sts:AssumeRole", "sts:TagSession"]
    driver = user.eks.describe_addon(clusterName=user.name, addonName="aws-ebs-csi-driver")["addon"]
    assert driver["podIdentityAssociations"] and driver["podIdentityAssociations"][0].endswith("ebs-csi-controller-sa")
    user.write(BASE + '[addons]\nvpc-cni = "default"\nkube-proxy = "default"\n'
               'coredns = { version = "default", configuration_values = { replicaCount = 3 } }\n'
               'eks-pod-identity-agent = "default"\n')
    plan = json.loads(user.run("plan", "--output", "json").stdout)
    assert "not in the config" in " ".join(_step(plan, "addon/aws-ebs-csi-driver")["details"])  # type: ignore[arg-type]
    assert _step(plan, "addon/coredns")["action"] == "update"
    _, mutations = user.mutations("up")
    assert mutations == ["UpdateAddon"]  # coredns' values; the CSI driver is kept
    live = user.eks.describe_addon(clusterName=user.name, addonName="coredns")["addon"]
    assert json.loads(live["configurationValues"]) == {"replicaCount": 3}
    _, mutations = user.mutations("up", "--prune")
    assert sorted(mutations) == ["DeleteAddon", "DeleteRole", "DetachRolePolicy"]  # the driver and its role
    assert "aws-ebs-csi-driver" not in user.eks.list_addons(clusterName=user.name)["addons"]


def test_a_two_minor_upgrade_end_to_end(user: User) -> None:
    """1.32 -> 1.34: per minor the control plane, then add-ons and node groups side by side. Naive code calls
    UpdateClusterVersion with 1.34 (EKS refuses the skip), upgrades the control plane twice before the nodes
    (refused too), or rolls the nodes only once every add-on update finished (longer than it need be)."""
    user.write(BASE)
    user.run("up")
    user.write(BASE.replace("1.32", "1.34"))
    plan = json.loads(user.run("plan", "--output", "json").stdout)
    details = " ".join(_step(plan, "upgrade")["details"])  # type: ignore[arg-type]
    assert "1.32 -> 1.33" in details and "1.33 -> 1.34" in details
    user.sandbox.configure(addon_update=2000.0)  # x 0.0005 = 1 s: a node roll waiting on it would show
    user.sandbox.clear_calls()
    user.run("up")
    kinds = ("UpdateClusterVersion", "UpdateNodegroupVersion", "UpdateAddon")
    upgrades = [c for c in user.sandbox.calls() if c.operation in kinds]
    ops = [c.operation for c in upgrades]
    assert ops[0] == "UpdateClusterVersion" and ops.count("UpdateClusterVersion") == 2
    second = ops.index("UpdateClusterVersion", 1)
    for minor in (upgrades[1:second], upgrades[second + 1:]):  # after each control plane: 4 add-ons + the nodes
        assert sorted(c.operation for c in minor) == ["UpdateAddon"] * 4 + ["UpdateNodegroupVersion"]
        roll = next(c.timestamp for c in minor if c.operation == "UpdateNodegroupVersion")
        assert roll - min(c.timestamp for c in minor) < 0.5  # sent beside the add-on updates, not after them
    assert user.cluster()["version"] == "1.34"
    ng = user.eks.describe_nodegroup(clusterName=user.name, nodegroupName="nodes")["nodegroup"]
    assert ng["version"] == "1.34" and ng["releaseVersion"] == eks_upgrades.latest_release("1.34")
    for name in user.eks.list_addons(clusterName=user.name)["addons"]:
        live = user.eks.describe_addon(clusterName=user.name, addonName=name)["addon"]
        assert live["addonVersion"] == eks_addons.default_version(name, "1.34")
    assert not [k for k in user.state()["steps"] if k.startswith("upgrade/")]
    _, mutations = user.mutations("up")
    assert mutations == []


def test_an_error_insight_stops_the_upgrade_unless_accepted(user: User, stand_in: SandboxServer) -> None:
    """Naive code upgrades regardless (or passes force always): removed APIs in use break workloads."""
    user.write(BASE)
    user.run("up")
    stand_in.configure(error_insights=user.name)
    try:
        user.write(BASE.replace("1.32", "1.33"))
        plan = json.loads(user.run("plan", "--output", "json").stdout)
        assert any("Deprecated APIs removed in Kubernetes v1.33" in d
                   for d in _step(plan, "upgrade")["details"])  # type: ignore[attr-defined]
        result, mutations = user.mutations("up", expect=1)
        assert "UpdateClusterVersion" not in mutations
        assert "Deprecated APIs removed in Kubernetes v1.33" in result.stderr
        assert user.cluster()["version"] == "1.32"
        user.write(BASE.replace("1.32", "1.33")
                   + 'upgrade_accept_insights = ["Deprecated APIs removed in Kubernetes v1.33"]\n')
        user.run("up")
        assert user.cluster()["version"] == "1.33"
    finally:
        stand_in.configure(error_insights=None)


def test_a_downgrade_is_refused(user: User) -> None:
    """To a version EKS still offers (one it does not is refused before the engine: tests/faults/
    test_kubernetes_versions.py)."""
    user.write(BASE.replace("1.32", "1.33"))
    user.run("up")
    user.write(BASE)
    plan = json.loads(user.run("plan", "--output", "json").stdout)
    assert any("cannot downgrade" in d for d in _step(plan, "upgrade")["details"])  # type: ignore[attr-defined]
    result, mutations = user.mutations("up", expect=1)
    assert "cannot downgrade" in result.stderr and not [m for m in mutations if "Version" in m]


def test_a_newer_ami_release_is_shown_and_rolled_only_when_asked(user: User, stand_in: SandboxServer) -> None:
    """Naive code never looks (nodes stay on their first AMI for years), or rolls every group whenever EKS
    publishes a release (an unplanned node replacement)."""
    base = BASE.replace("1.32", "1.33")
    user.write(base)
    user.run("up")
    before = user.eks.describe_nodegroup(clusterName=user.name, nodegroupName="nodes")["nodegroup"]["releaseVersion"]
    stand_in.configure(newer_ami_release="1.33")  # EKS publishes a newer release for 1.33
    try:
        latest = eks_upgrades.latest_release("1.33")
        assert latest != before
        plan = json.loads(user.run("plan", "--output", "json").stdout)
        group = _step(plan, "nodegroup/nodes")
        assert group["action"] == "none"
        assert any(f"newer AMI release {latest}" in d for d in group["details"])  # type: ignore[attr-defined]
        result, mutations = user.mutations("up")
        assert mutations == [] and f"newer AMI release {latest}" in result.stderr
        user.write(base + "refresh_node_amis = true\n")
        _, mutations = user.mutations("up")
        assert mutations == ["UpdateNodegroupVersion"]
        ng = user.eks.describe_nodegroup(clusterName=user.name, nodegroupName="nodes")["nodegroup"]
        assert ng["releaseVersion"] == latest and ng["version"] == "1.33"
        _, mutations = user.mutations("up")
        assert mutations == []
    finally:
        stand_in.configure(newer_ami_release=None)


def test_addons_config_is_checked_and_the_csi_drivers_missing_role_said() -> None:
    """Naive config reading accepts any value (`coredns = 3`) and says nothing of what the CSI driver lacks."""
    from eksprivate.config import build_settings
    from eksprivate.errors import UsageError

    for bad in ({"coredns": 3}, {"coredns": "latest"}, {"coredns": {"version": "default", "replicas": 2}},
                {"Core DNS": "default"}, {"coredns": {"configuration_values": "replicaCount: 3"}}):
        with pytest.raises(UsageError):
            build_settings({"addons": bad})
    settings = build_settings({"addons": {"aws-ebs-csi-driver": "v1.40.1-eksbuild.1", "vpc-cni": "default"}})
    assert [(a.name, a.version) for a in settings.addons] == [("aws-ebs-csi-driver", "v1.40.1-eksbuild.1"),
                                                              ("vpc-cni", "default")]
    assert any("aws-ebs-csi-driver gets its IAM role through EKS Pod Identity" in w for w in settings.warnings)
    assert "eks-auth" not in settings.interface_endpoints  # no Pod Identity agent listed


def test_down_removes_the_add_ons_with_the_cluster_and_the_csi_role(user: User) -> None:
    """Naive teardown deletes each add-on first (minutes of DELETING for nothing: DeleteCluster removes them), or
    forgets the driver's role."""
    user.write(BASE + '[addons]\nvpc-cni = "default"\nkube-proxy = "default"\ncoredns = "default"\n'
               'eks-pod-identity-agent = "default"\naws-ebs-csi-driver = "default"\n')
    user.run("up")
    _, mutations = user.mutations("down", "--yes")
    assert "DeleteAddon" not in mutations and "DeleteCluster" in mutations
    iam = boto3.client("iam", endpoint_url=user.sandbox.url, region_name="us-east-1", aws_access_key_id="t",
                       aws_secret_access_key="t")
    assert not [r for r in iam.list_roles()["Roles"] if r["RoleName"].startswith(user.name)]


# -- on one built cluster --------------------------------------------------------------------------------
# The tests below read what one `up` of BASE made (the calls it sent, what it left, status, a rerun that must
# change nothing) and change nothing, so they share that `up` (~0.8 CPU s each). While they run, the sandbox
# is held (not emptied between tests: tests/conftest.py `SandboxResets`), which is why they come last here.

@dataclass
class Built:
    name: str
    folder: Path  # the user's folder: state/ and the config are there
    up: CliResult  # the `up` that made it
    calls: list[str]  # the operations the sandbox received during that `up`, in order


@pytest.fixture(scope="module")
def built(sandbox_server: SandboxServer, sandbox_resets: SandboxResets,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    folder = tmp_path_factory.mktemp("day2")
    name = f"t-{uuid.uuid4().hex[:10]}"
    with held_empty_sandbox(sandbox_server, sandbox_resets):
        with pytest.MonkeyPatch.context() as mp:
            user_environment(mp, sandbox_server.url, folder)
            user = User(run_cli, name, folder, sandbox_server)
            user.write(BASE)
            user.sandbox.clear_calls()
            up = user.run("up")
            calls = user.calls()
        yield Built(name, folder, up, calls)


@pytest.fixture
def on_built(built: Built, aws_env: Path, stand_in: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> User:
    """The user of the built cluster, in a test's user environment (`aws_env`) working in its folder."""
    monkeypatch.chdir(built.folder)
    return User(run_cli, built.name, built.folder, stand_in)


def test_up_makes_every_managed_addon_and_ends_with_all_active(built: Built, on_built: User) -> None:
    """Naive code leaves the cluster on whatever EKS bootstrapped (no add-on at all), or makes coredns and then
    fails (or waits 20 min) on its DEGRADED status."""
    user, result = on_built, built.up
    calls = [operation for operation in built.calls if is_mutating(operation)]
    assert calls.count("CreateAddon") == 4
    assert calls.index("CreateAddon") < calls.index("CreateNodegroup")  # the order itself: tests/test_e2e.py
    addons = sorted(user.eks.list_addons(clusterName=user.name)["addons"])
    assert addons == ["coredns", "eks-pod-identity-agent", "kube-proxy", "vpc-cni"]
    for name in addons:
        live = user.eks.describe_addon(clusterName=user.name, addonName=name)["addon"]
        assert live["status"] == "ACTIVE", live
        assert live["addonVersion"] == eks_addons.default_version(name, "1.32")
    assert "DEGRADED" not in result.stderr
    endpoints = user.state()["steps"]["endpoints"]["ids"]
    assert any("eks-auth" in str(v) for v in endpoints.values()), endpoints  # Pod Identity's endpoint
    _, mutations = user.mutations("up")
    assert mutations == []  # converged: nothing to change


def test_status_names_the_support_window_and_warns_near_its_end(
        on_built: User, monkeypatch: pytest.MonkeyPatch) -> None:
    """Naive `status` shows the version alone: the end of standard support (then a 6x bill or a forced upgrade)
    comes as a surprise. (The date matters to what status reads, not to the `up` that made the cluster.)"""
    import datetime
    import importlib

    from eksprivate.sandbox import eks_versions

    user = on_built
    day = datetime.date(2026, 2, 1)  # 50 days before 1.32 leaves standard support (2026-03-23)
    monkeypatch.setattr(importlib.import_module("eksprivate.verify.discover"), "utc_today", lambda: day)
    eks_versions.set_calendar(today=day)
    try:
        report = json.loads(user.run("status", "--output", "json").stdout)
        assert report["kubernetes_support"]["status"] == "WARN"
        assert "standard support ends 2026-03-23 (50 days left)" in report["kubernetes_support"]["detail"]
        text = user.run("status")
        assert "warning: Kubernetes 1.32: standard support ends 2026-03-23" in text.stderr
    finally:
        eks_versions.reset()
