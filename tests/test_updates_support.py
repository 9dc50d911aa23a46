"""Updates judged by DescribeUpdate, the support type (no silent extended-support bill), and DEGRADED node
groups: through the CLI, against the sandbox's model of EKS (`eksprivate/sandbox/eks_updates.py`).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import boto3
import pytest
from conftest import SandboxResets, held_empty_sandbox, run_cli, user_environment

from eksprivate.aws import is_mutating
from eksprivate.sandbox import SandboxServer

REGION = "eu-central-1"
LEAN = "flow_logs = false\nsecrets_encryption = false\navailability_zones = 2\n"
# The clusters of this file's tests also leave out the managed add-ons (EKS bootstraps its self-managed
# networking add-ons instead): what they check is the cluster's and the node groups' updates and statuses.
# tests/test_day2.py, whose subject the add-ons are, uses `User` with them.
NO_ADDONS = "\n[addons]\n"  # a TOML table: it goes last
UPDATE_ID = re.compile(r"update ([0-9a-f-]{36}) \((\w+)\) Failed")


class CliResult(Protocol):
    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None


class User:
    """Writes the config and runs eksprivate; sees AWS through boto3 and the sandbox's call log."""

    def __init__(self, cli: Callable[..., CliResult], name: str, folder: Path, sandbox: SandboxServer,
                 config: str = "cluster.toml") -> None:
        self.cli, self.name, self.folder, self.sandbox = cli, name, folder, sandbox
        self.config = folder / config
        self.tail = ""  # written after every config body (NO_ADDONS for this file's tests)
        self.eks = boto3.client("eks", endpoint_url=sandbox.url, region_name=REGION,
                                aws_access_key_id="testing", aws_secret_access_key="testing")

    def write(self, body: str) -> None:
        self.config.write_text(f'name = "{self.name}"\n{LEAN}{body}{self.tail}')

    def run(self, *args: str, expect: int = 0) -> CliResult:
        result = self.cli(*args, "--config", str(self.config))
        assert result.exit_code == expect, (f"eksprivate {' '.join(args)}: exit {result.exit_code}, wanted {expect}\n"
                                            f"{result.stdout}\n{result.stderr}\n{result.exception!r}")
        assert result.exception is None
        return result

    def mutations(self, *args: str, expect: int = 0) -> tuple[CliResult, list[str]]:
        self.sandbox.clear_calls()
        result = self.run(*args, expect=expect)
        return result, [c.operation for c in self.sandbox.calls() if is_mutating(c.operation)]

    def calls(self) -> list[str]:
        return [c.operation for c in self.sandbox.calls()]

    def cluster(self) -> dict[str, Any]:
        cluster: dict[str, Any] = self.eks.describe_cluster(name=self.name)["cluster"]
        return cluster

    def logging_on(self) -> bool:
        return any(e["enabled"] for e in self.cluster()["logging"]["clusterLogging"])

    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.folder / "state" / f"{self.name}-{REGION}.json").read_text())
        return data


@pytest.fixture
def user(cli: Callable[..., CliResult], cluster_name: str, aws_env: Path, stand_in: SandboxServer) -> User:
    user = User(cli, cluster_name, aws_env, stand_in)
    user.tail = NO_ADDONS
    return user


def warnings(result: CliResult) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("warning:")]


# -- updates ---------------------------------------------------------------------------------------------

def test_a_failed_cluster_update_fails_up_naming_the_update(user: User, stand_in: SandboxServer) -> None:
    """Naive code waits for the cluster to be ACTIVE after UpdateClusterConfig: the sandbox (like EKS) makes
    it ACTIVE again after a failed update too, so naive code reports "updated" and exits 0."""
    user.write("control_plane_logging = true\n")
    user.run("up")
    user.write("control_plane_logging = false\n")
    stand_in.configure(fail_next_update=user.name)
    result, mutations = user.mutations("up", expect=1)
    assert mutations.count("UpdateClusterConfig") == 1
    match = UPDATE_ID.search(result.stderr)
    assert match is not None, result.stderr
    assert match[2] == "LoggingUpdate"
    assert "OperationNotPermitted" in result.stderr and "failure injected by the sandbox" in result.stderr
    failed = user.eks.describe_update(name=user.name, updateId=match[1])["update"]
    assert failed["status"] == "Failed"
    assert user.logging_on()  # not changed
    assert user.cluster()["status"] == "ACTIVE"  # what naive code would have read as done
    assert not [k for k in user.state()["steps"] if k.startswith("cluster/update")]  # judged, forgotten

    _, mutations = user.mutations("up")  # the next run tries again, and it succeeds
    assert mutations == ["UpdateClusterConfig"]
    assert not user.logging_on()
    _, mutations = user.mutations("up")
    assert mutations == []


def test_update_calls_are_judged_by_describe_update(user: User) -> None:
    """Each config change is one UpdateClusterConfig followed by DescribeUpdate polls until Successful."""
    user.write('public_access_cidrs = ["203.0.113.0/24"]\n')
    user.run("up")
    user.write("")
    user.sandbox.clear_calls()
    result = user.run("up")
    calls = user.calls()
    assert calls.count("UpdateClusterConfig") == 1
    assert "DescribeUpdate" in calls[calls.index("UpdateClusterConfig"):]
    assert user.cluster()["resourcesVpcConfig"]["endpointPublicAccess"] is False
    assert "updated" in result.stderr


# -- support type ----------------------------------------------------------------------------------------

def test_extended_support_by_config_warns_and_verify_warns(user: User) -> None:
    user.write('support_type = "EXTENDED"\n')
    plan = json.loads(user.run("plan", "--output", "json").stdout)
    cluster = next(s for s in plan["steps"] if s["key"] == "cluster")
    assert any("support type EXTENDED" in d for d in cluster["details"])
    result = user.run("up")
    assert any("support_type is EXTENDED" in w for w in warnings(result))
    assert user.cluster()["upgradePolicy"] == {"supportType": "EXTENDED"}

    report = json.loads(user.cli("verify", "--name", user.name, "--region", REGION, "--output", "json").stdout)
    support = [c for c in report["checks"] if c["id"] == "cluster.support-type"]
    assert [c["status"] for c in support] == ["WARN"]
    assert "supportType=STANDARD" in support[0]["fix"]


def test_support_type_change_applies_to_an_existing_cluster(user: User) -> None:
    """A cluster whose support type differs from the config is changed with UpdateClusterConfig(upgradePolicy),
    judged by DescribeUpdate like any update."""
    user.write('support_type = "EXTENDED"\n')
    user.run("up")
    user.write('support_type = "standard"\n')  # case does not matter
    plan = json.loads(user.run("plan", "--output", "json").stdout)
    cluster = next(s for s in plan["steps"] if s["key"] == "cluster")
    assert cluster["action"] == "update"
    assert "set support type STANDARD (the cluster has EXTENDED)" in cluster["details"]
    _, mutations = user.mutations("up")
    assert mutations == ["UpdateClusterConfig"]
    assert "DescribeUpdate" in user.calls()
    assert user.cluster()["upgradePolicy"] == {"supportType": "STANDARD"}
    report = json.loads(user.cli("verify", "--name", user.name, "--region", REGION, "--output", "json").stdout)
    assert [c["status"] for c in report["checks"] if c["id"] == "cluster.support-type"] == ["PASS"]


def test_a_bad_support_type_is_refused_before_anything_is_made(user: User) -> None:
    user.write('support_type = "CHEAP"\n')
    user.sandbox.clear_calls()
    result = user.run("up", expect=2)
    assert "support_type 'CHEAP' must be STANDARD or EXTENDED" in result.stderr
    assert "Traceback" not in result.stderr
    assert [c for c in user.calls() if is_mutating(c)] == []
    assert not (user.folder / "state").exists()


# -- on one built cluster --------------------------------------------------------------------------------
# The tests below share one `up` of BUILT (~0.8 CPU s each): the plan before it, the `up` itself (made while
# the sandbox reads the cluster's node groups DEGRADED), and reruns that change nothing in AWS (a degraded
# group; a node group update the sandbox fails, which leaves the group as it was: the test checks it). Each
# writes its own config file beside the shared state. While they run, the sandbox is held (not emptied
# between tests: tests/conftest.py `SandboxResets`), which is why they come last in this file.

BUILT = "per_az = false\nmax_size = 2\n"


@dataclass
class Built:
    name: str
    folder: Path  # the user's folder: state/ is there
    plan_before_up: dict[str, Any]  # `plan --output json` on the empty account
    up: CliResult  # the `up` that made it, while the sandbox read its node groups DEGRADED


@pytest.fixture(scope="module")
def built(sandbox_server: SandboxServer, sandbox_resets: SandboxResets,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    folder = tmp_path_factory.mktemp("updates")
    name = f"t-{uuid.uuid4().hex[:10]}"
    with held_empty_sandbox(sandbox_server, sandbox_resets):
        with pytest.MonkeyPatch.context() as mp:
            user_environment(mp, sandbox_server.url, folder)
            user = User(run_cli, name, folder, sandbox_server, config="built.toml")
            user.tail = NO_ADDONS
            user.write(BUILT)
            plan_before_up = json.loads(user.run("plan", "--output", "json").stdout)
            sandbox_server.configure(degraded_nodegroups=name)
            try:
                up = user.run("up")
            finally:
                sandbox_server.configure(degraded_nodegroups=None)
        yield Built(name, folder, plan_before_up, up)


@pytest.fixture
def on_built(built: Built, aws_env: Path, stand_in: SandboxServer, monkeypatch: pytest.MonkeyPatch,
             request: pytest.FixtureRequest) -> User:
    """The user of the built cluster, in a test's user environment (`aws_env`) working in the folder that holds
    its state, with a config file of the test's own that starts as BUILT."""
    monkeypatch.chdir(built.folder)
    user = User(run_cli, built.name, built.folder, stand_in, config=f"{request.node.name}.toml")
    user.tail = NO_ADDONS
    user.write(BUILT)
    return user


def test_create_sends_standard_support_by_default(built: Built, on_built: User) -> None:
    """Naive code sends no upgradePolicy: EKS (and the sandbox) then make the cluster EXTENDED."""
    plan = built.plan_before_up  # BUILT sets no support_type
    cluster = next(s for s in plan["steps"] if s["key"] == "cluster")
    assert any("support type STANDARD" in d for d in cluster["details"])
    assert on_built.cluster()["upgradePolicy"] == {"supportType": "STANDARD"}


def test_a_failed_nodegroup_update_fails_up_naming_the_update(on_built: User, stand_in: SandboxServer) -> None:
    """Naive code waits for the node group to be ACTIVE again, which it also is after a failed update."""
    user = on_built  # made with max_size = 2
    user.write(BUILT.replace("max_size = 2", "max_size = 3"))
    stand_in.configure(fail_next_update=user.name)
    try:
        result = user.run("up", expect=1)
    finally:
        stand_in.configure(fail_next_update=None)  # spent by that run; a test failing sooner leaves none behind
    match = UPDATE_ID.search(result.stderr)
    assert match is not None and match[2] == "ConfigUpdate", result.stderr
    assert "node group nodes" in result.stderr and "OperationNotPermitted" in result.stderr
    ng = user.eks.describe_nodegroup(clusterName=user.name, nodegroupName="nodes")["nodegroup"]
    assert ng["scalingConfig"]["maxSize"] == 2 and ng["status"] == "ACTIVE"


# -- DEGRADED node groups -----------------------------------------------------------------------------------

def test_a_degraded_nodegroup_is_a_warning_not_a_failure(on_built: User, stand_in: SandboxServer) -> None:
    """Naive code counts DEGRADED among the failed statuses: `up` exits 1 although the group serves."""
    user = on_built
    stand_in.configure(degraded_nodegroups=user.name)
    try:
        result = user.run("up")
        said = [w for w in warnings(result) if "DEGRADED" in w]
        assert said and "AsgInstanceLaunchFailures" in said[0] and "nodes" in said[0]
    finally:
        stand_in.configure(degraded_nodegroups=None)


def test_a_nodegroup_that_turns_degraded_while_created_ends_the_wait(built: Built) -> None:
    """botocore's NodegroupActive waiter does not stop on DEGRADED: naive code would poll until its
    40-minute timeout. Here the first `up` ends, with the warning (`built` made the cluster so)."""
    assert any("is DEGRADED" in w for w in warnings(built.up))
