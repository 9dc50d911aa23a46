"""Kubernetes versions on an existing cluster, through the CLI against the sandbox's calendar
(eksprivate/sandbox/eks_versions.py, pinned here to 2026-12-07: 1.32 and 1.33 in extended support, 1.34 in
extended support since 2026-12-02, 1.35 in standard support, 1.31 unsupported).

Naive code checked the version only for a new cluster: on an existing one, `plan` laid out six upgrades to
1.40 and `up` upgraded the control plane to 1.35 (one-way) before EKS refused 1.36.
"""

from __future__ import annotations

import importlib
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from conftest import SandboxResets, held_empty_sandbox, run_cli, user_environment

from eksprivate.sandbox import SandboxServer, eks_versions
from tests.test_updates_support import CliResult, User

from .helpers import SdkHooks

BASE = 'per_az = false\nkubernetes_version = "{}"\n'
TODAY = date(2026, 12, 7)


@contextmanager
def pinned_to_today(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The client's date and the sandbox's calendar both on TODAY."""
    discover = importlib.import_module("eksprivate.verify.discover")  # the package exports a function so named
    monkeypatch.setattr(discover, "utc_today", lambda: TODAY)  # the client's date, as the sandbox's
    eks_versions.set_calendar(today=TODAY)
    try:
        yield
    finally:
        eks_versions.reset()


@pytest.fixture
def user(cli: Callable[..., CliResult], cluster_name: str, aws_env: Path, stand_in: SandboxServer,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[User]:
    with pinned_to_today(monkeypatch):
        yield User(cli, cluster_name, aws_env, stand_in)


@pytest.fixture(scope="module")
def built_on_134(sandbox_server: SandboxServer, sandbox_resets: SandboxResets,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A cluster made on 1.34 (its name and the folder of its state), shared by the tests that only try
    versions it refuses: a refusal changes nothing (each asserts so). The sandbox is held while they run."""
    folder = tmp_path_factory.mktemp("on-134")
    name = f"t-{uuid.uuid4().hex[:10]}"
    with held_empty_sandbox(sandbox_server, sandbox_resets):
        with pytest.MonkeyPatch.context() as mp, pinned_to_today(mp):
            user_environment(mp, sandbox_server.url, folder)
            maker = User(run_cli, name, folder, sandbox_server)
            maker.write(BASE.format("1.34"))
            maker.run("up")
        yield name, folder


@pytest.fixture
def user_of_134(built_on_134: tuple[str, Path], cli: Callable[..., CliResult], stand_in: SandboxServer,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[User]:
    name, folder = built_on_134
    monkeypatch.chdir(folder)
    with pinned_to_today(monkeypatch):
        yield User(cli, name, folder, stand_in)


def _error(result: CliResult) -> str:
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and len([x for x in lines if x.startswith("error")]) == 1, result.stderr
    return lines[-1]


@pytest.mark.parametrize(("wanted", "why"), [
    ("1.40", 'kubernetes_version "1.40" is not a Kubernetes version EKS offers in eu-central-1'),
    ("1.31", 'kubernetes_version "1.31" reached end of extended support on 2026-11-26'),
], ids=["not-offered", "past-extended-support"])
def test_an_unoffered_version_is_refused_on_an_existing_cluster_before_any_change(
        user_of_134: User, wanted: str, why: str) -> None:
    user = user_of_134
    user.write(BASE.format(wanted))
    for command in ("plan", "up"):
        result, mutations = user.mutations(command, expect=2)
        line = _error(result)
        assert why in line, line
        # The versions offered, and which of them this cluster can go to.
        assert "the cluster runs 1.34: use one of 1.34, 1.35" in line, line
        assert "EKS offers 1.32, 1.33, 1.34, 1.35; in standard support: 1.35" in line, line
        assert mutations == [], mutations
        assert "DescribeClusterVersions" in user.calls()
    assert user.cluster()["version"] == "1.34"  # naive code: 1.35, a one-way change, then a failure


def test_an_upgrade_says_its_path_one_line_per_minor_before_it_starts(user: User) -> None:
    user.write(BASE.format("1.33"))
    user.run("up")
    user.write(BASE.format("1.35"))
    result = user.run("up")
    lines = [line.split("] ", 1)[1] for line in result.stderr.splitlines() if "] upgrade: " in line]
    first_call = next(n for n, line in enumerate(lines) if "waiting for update" in line)
    announced = [line for line in lines[:first_call] if " (1/2, one-way)" in line or " (2/2, one-way)" in line]
    assert len(announced) == 2, lines
    assert "1.33 -> 1.34 (1/2" in announced[0] and "1.34 -> 1.35 (2/2" in announced[1]
    assert user.cluster()["version"] == "1.35"


def test_without_describe_cluster_versions_only_a_one_minor_upgrade_goes_ahead(
        user: User, hooks: SdkHooks) -> None:
    """Nothing can be judged without the call: EKS itself refuses a one-minor upgrade it does not offer before
    changing anything, so that goes ahead with a warning; a longer path could stop part-way: refused."""
    user.write(BASE.format("1.33"))
    user.run("up")
    hooks.fail("eks", "DescribeClusterVersions", "AccessDeniedException",
               "User is not authorized to perform: eks:DescribeClusterVersions")
    user.write(BASE.format("1.35"))
    result, mutations = user.mutations("up", expect=2)
    line = _error(result)
    assert "2 minors above the cluster's 1.33" in line and "allow eks:DescribeClusterVersions" in line, line
    assert mutations == []
    user.write(BASE.format("1.34"))
    result, mutations = user.mutations("up")
    assert "kubernetes_version not checked: DescribeClusterVersions is not available (AccessDeniedException)" in (
        result.stderr)
    assert mutations.count("UpdateClusterVersion") == 1 and user.cluster()["version"] == "1.34"


def test_a_control_plane_upgrade_is_not_silent(
        user: User, stand_in: SandboxServer) -> None:
    """Progress lines while EKS upgrades the control plane (once a minute of AWS time; at most every 5 s of
    wall time on a fast sandbox): here the upgrade is made to last ~6 s of wall time."""
    user.write(BASE.format("1.34"))
    user.run("up")
    stand_in.configure(cluster_version_update=12000.0)  # x 0.0005: 6 s
    user.write(BASE.format("1.35"))
    result = user.run("up")
    ticks = [line for line in result.stderr.splitlines() if "upgrade to 1.35: InProgress for 0:0" in line]
    assert ticks, result.stderr


# -- a new cluster's version, support type and cost ----------------------------------------------------------

def test_a_new_cluster_gets_the_newest_version_in_standard_support(user: User) -> None:
    """EKS's default is flagged on 1.34, in extended support since 2026-12-02: a cluster made without
    kubernetes_version gets 1.35, and neither `status` nor `verify` warns about its version (naive code
    omitted the version and got a cluster already in extended support)."""
    user.write("per_az = false\n")
    plan = json.loads(user.run("plan", "--output", "json").stdout)
    assert "Kubernetes 1.35 (in standard support)" in _step(plan, "cluster")["details"]
    user.run("up")
    assert user.cluster()["version"] == "1.35"
    status = user.run("status", "--output", "json")
    assert json.loads(status.stdout)["kubernetes_support"]["status"] == "PASS"
    report = json.loads(user.run("verify", "--output", "json", expect=1).stdout)  # FAIL: LEAN has no KMS key
    support = next(c for c in report["checks"] if c["id"] == "cluster.version-support")
    assert support["status"] == "PASS", support


def test_standard_support_type_past_standard_support_says_eks_upgrades_it(user: User) -> None:
    user.write(BASE.format("1.34") + 'support_type = "STANDARD"\n')
    user.run("up")
    status = user.run("status")
    assert "support type STANDARD: EKS upgrades the control plane automatically" in status.stderr, status.stderr
    report = json.loads(user.run("verify", "--output", "json", expect=1).stdout)  # FAIL: LEAN has no KMS key
    checks = {c["id"]: c for c in report["checks"]}
    assert "EKS upgrades the control plane automatically" in checks["cluster.version-support"]["detail"]
    assert "EKS upgrades the control plane automatically" in checks["cluster.support-type"]["detail"]
    assert "no extended-support charge" not in checks["cluster.support-type"]["detail"]


@pytest.mark.parametrize(("version", "rate", "says"), [
    ("1.33", 0.60, "is past standard support, billed at the extended-support rate"),
    ("1.35", 0.10, "this price applies until Kubernetes 1.35 leaves standard support, then $0.60/h"),
], ids=["in-extended-support-now", "in-standard-support"])
def test_the_control_plane_cost_follows_the_version_support_today(
        user: User, version: str, rate: float, says: str) -> None:
    """Naive: $0.10/h "until the version leaves standard support" for a version that already has."""
    user.write(BASE.format(version) + 'support_type = "EXTENDED"\n')
    plan = json.loads(user.run("plan", "--output", "json").stdout)
    line = next(x for x in plan["cost"]["lines"] if x["item"] == "EKS control plane")
    assert line["unit_price"] == pytest.approx(rate) and says in line["note"], line


def _step(plan: dict[str, Any], key: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in plan["steps"] if s["key"] == key)
    return found
