"""Fixtures of the crash, fault and bad-input tests (on top of tests/conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_cli, user_environment

from eksprivate.sandbox import SandboxServer, Timing

from .helpers import Children, SdkHooks, child_env, inventory, shape

FAST = {**Timing().__dict__, "time_scale": 0.0005}  # as tests/conftest.py's stand_in
SLOW = 10_000_000.0  # real seconds: at time scale 0.0005 still over an hour, i.e. "until told otherwise"


@pytest.fixture
def children(stand_in: SandboxServer, tmp_path: Path) -> Iterator[Children]:
    """Start `eksprivate` child processes in tmp_path against the sandbox; all are killed at the end."""
    kids = Children(child_env(stand_in.url), tmp_path)
    yield kids
    kids.stop_all()


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch) -> SdkHooks:
    return SdkHooks(monkeypatch)


@pytest.fixture(scope="session")
def clean_shape(sandbox_server: SandboxServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """What an uninterrupted `up` makes (kinds and labels), taken from a real run, then torn down. In-process
    (the same CLI a child runs, in a user's environment): nothing here is about processes, and a child costs
    a CPU second more."""
    sandbox_server.configure(**FAST, throttle_rate=0.0, unavailable_rate=0.0, seed=0)
    name = f"clean-{uuid.uuid4().hex[:8]}"
    target = ("--name", name, "--region", "eu-central-1")
    with pytest.MonkeyPatch.context() as env:
        user_environment(env, sandbox_server.url, tmp_path_factory.mktemp("clean"))
        up = run_cli("up", *target)
        assert up.exit_code == 0, f"`eksprivate up` failed:\n{up.stderr}"
        result = shape(inventory(sandbox_server.url, name))
        down = run_cli("down", *target, "--yes")
        assert down.exit_code == 0, f"`eksprivate down` failed:\n{down.stderr}"
    assert inventory(sandbox_server.url, name) == []
    return result
