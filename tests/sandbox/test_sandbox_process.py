"""The detached sandbox process: ensure_running / read_running / stop."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import boto3

from eksprivate.sandbox import SandboxInfo, ensure_running, read_running, stop

from .helpers import REGION


def _post(url: str) -> Any:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    # The timeout only stops a hung test: a reset in a fresh sandbox process builds moto's backends again,
    # which took over 5 s on the shared 2-core machine under load (the test failed on it, not on an answer).
    with opener.open(urllib.request.Request(url, data=b"", method="POST"), timeout=120) as response:
        return json.load(response)


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_ensure_running_and_stop(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    assert read_running(state_dir) is None
    assert stop(state_dir) is False

    info = ensure_running(state_dir, time_scale=0.01)
    try:
        assert info.time_scale == 0.01
        assert info.url == f"http://127.0.0.1:{info.port}"
        assert read_running(state_dir) == info
        record = state_dir / "sandbox.json"
        assert stat.S_IMODE(record.stat().st_mode) == 0o600
        assert json.loads(record.read_text())["pid"] == info.pid
        assert (state_dir / "sandbox.log").exists()

        # It is a real AWS stand-in, outliving this call.
        eks = boto3.client(
            "eks",
            endpoint_url=info.url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        assert eks.list_clusters()["clusters"] == []
        iam = boto3.client(
            "iam",
            endpoint_url=info.url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        iam.create_role(RoleName="kept", AssumeRolePolicyDocument="{}")

        # Reset (tested here: in the test process it would wipe other tests' resources).
        assert _post(f"{info.url}/_sandbox/reset") == {"ok": True}
        assert iam.list_roles()["Roles"] == []
        assert _post(f"{info.url}/_sandbox/calls/clear") == {"ok": True}
        # The real-world behaviour and the AWS managed policies survive a reset.
        assert iam.get_policy(PolicyArn="arn:aws:iam::aws:policy/AmazonEKSClusterPolicy")["Policy"]

        # A second command finds the same sandbox; a new time scale is applied to it in place.
        assert ensure_running(state_dir) == info
        faster = ensure_running(state_dir, time_scale=0.001)
        assert (faster.pid, faster.time_scale) == (info.pid, 0.001)
        assert read_running(state_dir) == faster
    finally:
        assert stop(state_dir) is True
    assert not _alive(info.pid)
    assert read_running(state_dir) is None
    assert not (state_dir / "sandbox.json").exists()
    assert stop(state_dir) is False


def test_stale_record_is_replaced(tmp_path: Path) -> None:
    stale = SandboxInfo(
        pid=_dead_pid(), port=1, url="http://127.0.0.1:1", time_scale=0.5, started_at="2020-01-01T00:00:00+00:00"
    )
    (tmp_path / "sandbox.json").write_text(json.dumps(stale.as_dict()))
    assert read_running(tmp_path) is None

    info = ensure_running(tmp_path)
    try:
        assert info.pid != stale.pid
        assert info.time_scale == 0.03  # the default Timing
        assert read_running(tmp_path) == info
    finally:
        stop(tmp_path)


def test_corrupt_record_counts_as_none(tmp_path: Path) -> None:
    (tmp_path / "sandbox.json").write_text("{not json")
    assert read_running(tmp_path) is None
    assert stop(tmp_path) is False
    assert not (tmp_path / "sandbox.json").exists()


def test_a_reused_pid_is_never_signalled(tmp_path: Path) -> None:
    # The record names a live process that is no sandbox: this very test run.
    alien = SandboxInfo(
        pid=os.getpid(), port=1, url="http://127.0.0.1:1", time_scale=0.5, started_at="2020-01-01T00:00:00+00:00"
    )
    (tmp_path / "sandbox.json").write_text(json.dumps(alien.as_dict()))
    assert read_running(tmp_path) is None
    assert stop(tmp_path) is False  # and we are still here
