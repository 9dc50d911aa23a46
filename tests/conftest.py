"""Shared fixtures: one in-process sandbox (moto + real-world lifecycles) per test process, and a way
to run the CLI against it exactly as a user would (AWS_ENDPOINT_URL, dummy credentials).

Timing is scaled so that AWS's order still shows (cluster slower than endpoints slower than IAM) while a
whole `up` takes about a second. moto's state is process-wide; every test that uses the sandbox starts
from an empty account (see `SandboxResets`), so no test pays for the resources of the tests before it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import suite_speed
from typer.testing import CliRunner

suite_speed.cache_bytecode()  # before eksprivate is imported (and compiled)

from eksprivate.sandbox import SandboxServer, Timing  # noqa: E402

REGION = "eu-central-1"
# Real durations x 0.0005: cluster 0.27 s, node group 0.09 s, endpoint 0.045 s, IAM delay 5 ms.
FAST = {"time_scale": 0.0005}
NO_FAULTS: dict[str, Any] = {"throttle_rate": 0.0, "unavailable_rate": 0.0, "seed": 0}


class SandboxResets:
    """Empties moto (every account, region and service: its state is process-wide, shared by every
    in-process sandbox) before each test that uses a sandbox.

    Why: moto filters by scanning every resource it holds (and, for EC2 tags, every tag for every
    resource), so without a reset each `up` in a test process cost more than the one before; measured,
    the last `up` of a serial run took five times the CPU of the first. A fixture wider than one test
    that builds something for several tests to read holds the state while it lives (`held`)."""

    def __init__(self) -> None:
        self._holders = 0
        self._resets = 0

    @contextmanager
    def held(self) -> Iterator[None]:
        self._holders += 1
        try:
            yield
        finally:
            self._holders -= 1

    def before_test(self, server: SandboxServer) -> None:
        if self._holders == 0:
            server.reset()
            self._resets += 1
            suite_speed.freeze_what_lasts(self._resets)


@pytest.fixture(scope="session")
def sandbox_resets() -> SandboxResets:
    return SandboxResets()


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    with SandboxServer(timing=Timing(**FAST)) as server:
        yield server


@pytest.fixture
def stand_in(sandbox_server: SandboxServer, sandbox_resets: SandboxResets) -> Iterator[SandboxServer]:
    """The sandbox, empty, with fast real-world timing and no faults, restored after the test."""
    defaults = {**Timing().__dict__, **FAST}
    sandbox_resets.before_test(sandbox_server)
    sandbox_server.configure(**defaults, **NO_FAULTS)
    yield sandbox_server
    sandbox_server.configure(**defaults, **NO_FAULTS)
    sandbox_server.enforce(None)  # a test's operator policy ends with it


@pytest.fixture
def cluster_name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def user_environment(monkeypatch: pytest.MonkeyPatch, url: str, folder: Path) -> None:
    """A user pointed at the stand-in at `url` with standard AWS settings, working in `folder` (so the
    default `state/` lands there)."""
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
                "EKSPRIVATE_METRICS", "KUBECONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(folder / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(folder / "no-aws-credentials"))
    monkeypatch.setenv("EKSPRIVATE_POLL_INTERVAL", suite_speed.POLL_INTERVAL)
    monkeypatch.chdir(folder)


@contextmanager
def held_empty_sandbox(server: SandboxServer, resets: SandboxResets) -> Iterator[SandboxServer]:
    """For a fixture wider than one test that builds something several tests then read: the sandbox emptied
    and set as `stand_in` sets it, then held (not emptied before each test) until the block ends."""
    server.configure(**{**Timing().as_dict(), **FAST}, **NO_FAULTS)
    resets.before_test(server)
    with resets.held():
        yield server


@pytest.fixture
def aws_env(stand_in: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Environment of a user pointed at the stand-in (`user_environment`) in a fresh folder; returns it."""
    user_environment(monkeypatch, stand_in.url, tmp_path)
    return tmp_path


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None


def run_cli(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> CliResult:
    """`eksprivate ARGS` in-process, in this process's environment, as a user with no terminal runs it."""
    from eksprivate.cli import app

    result = CliRunner().invoke(app, list(args), input=input, env=env, catch_exceptions=True)
    exc = result.exception if not isinstance(result.exception, SystemExit) else None
    return CliResult(result.exit_code, result.stdout, result.stderr, exc)


@pytest.fixture
def cli(aws_env: Path) -> Callable[..., CliResult]:
    """Run `eksprivate ARGS` in-process, as a user with no terminal would (`run_cli` in `aws_env`)."""
    return run_cli


@pytest.fixture
def sandbox_client(stand_in: SandboxServer) -> Callable[[str], Any]:
    """boto3 clients on the sandbox (made once per service), as an operator's other tools would use them."""
    import boto3

    made: dict[str, Any] = {}

    def get(service: str) -> Any:
        if service not in made:
            made[service] = boto3.client(service, endpoint_url=stand_in.url, region_name=REGION,
                                         aws_access_key_id="testing", aws_secret_access_key="testing")
        return made[service]

    return get


@pytest.fixture(autouse=True)
def plain_moto_outside_the_sandbox(request: pytest.FixtureRequest) -> Iterator[None]:
    """The sandbox's lifecycle patches are process-wide (moto's backends are globals). Tests marked
    `plain_moto` (they use `mock_aws`) get moto's own behaviour back for their duration, whichever test
    ran before them in this process (pytest-xdist mixes them)."""
    import sys

    if request.node.get_closest_marker("plain_moto") is None:
        yield
        return
    families = sys.modules.get("eksprivate.sandbox.families")
    clock = sys.modules.get("eksprivate.sandbox.core.clock")
    timing = clock.current_timing() if families is not None and clock is not None and families.installed() else None
    if families is not None and timing is not None:
        families.uninstall()  # this also puts back the environment install() changed
    # No plain-moto test uses AWS managed policies: without them a fresh IAM backend costs ~0.01 s, not ~0.2.
    # Set after uninstall() and restored before install(), which records and restores the value it replaces.
    policies = os.environ.get("MOTO_IAM_LOAD_MANAGED_POLICIES")
    os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "false"
    try:
        yield
    finally:
        if policies is None:
            os.environ.pop("MOTO_IAM_LOAD_MANAGED_POLICIES", None)
        else:
            os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = policies
        if families is not None and timing is not None:
            families.install(timing)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "plain_moto: uses moto's mock_aws without the sandbox's lifecycles")
    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    suite_speed.apply()
    suite_speed.collect_garbage_less_often()
