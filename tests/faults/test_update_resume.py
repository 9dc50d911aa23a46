"""A run killed while an EKS update runs: the rerun waits on that same update (its id is in the state file)
and never starts a second one; killed between the update call and the recording of its id: the rerun
sends the same token, which EKS answers with the update it already started.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import boto3

from eksprivate.sandbox import SandboxServer, eks_updates

from .conftest import FAST, SLOW
from .helpers import REGION, Children

LEAN = "flow_logs = false\nsecrets_encryption = false\navailability_zones = 2\nper_az = false\n"
ACCOUNT = "123456789012"  # moto's account for the dummy credentials


def _up(name: str, config: Path) -> list[str]:
    return ["up", "--name", name, "--region", REGION, "--config", str(config)]


def _state(children: Children, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((children.cwd / "state" / f"{name}-{REGION}.json").read_text())
    return data


def _recorded_update(children: Children, name: str) -> str | None:
    entry = _state(children, name)["steps"].get("cluster/update/logging") or {}
    update_id: str | None = (entry.get("ids") or {}).get("update_id")
    return update_id


def _eks(stand_in: SandboxServer) -> Any:
    return boto3.client("eks", endpoint_url=stand_in.url, region_name=REGION, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def _updates_made(name: str) -> int:
    """How many updates the cluster has had (the sandbox runs in this process)."""
    from moto.eks.models import eks_backends

    return len(eks_updates.updates_of(eks_backends[ACCOUNT][REGION].clusters[name]))


def _logging_on(stand_in: SandboxServer, name: str) -> bool:
    logging = _eks(stand_in).describe_cluster(name=name)["cluster"]["logging"]["clusterLogging"]
    return any(entry["enabled"] for entry in logging)


def test_up_killed_while_an_update_runs_waits_on_it_when_rerun(
        stand_in: SandboxServer, children: Children, cluster_name: str) -> None:
    """Naive code (no update id in the state) sees the old config on the rerun and sends UpdateClusterConfig
    again: refused while the first runs, then a second update on top of it."""
    config = children.cwd / "cluster.toml"
    config.write_text(LEAN + "control_plane_logging = true\n")
    children.ok(*_up(cluster_name, config))
    config.write_text(LEAN + "control_plane_logging = false\n")
    stand_in.configure(cluster_update=SLOW)
    child = children.start(*_up(cluster_name, config))
    deadline = time.monotonic() + 60
    while (update_id := _recorded_update(children, cluster_name)) is None:
        assert time.monotonic() < deadline and child.proc.poll() is None, child.stderr
        time.sleep(0.02)
    assert child.signal(signal.SIGKILL) == -signal.SIGKILL
    eks = _eks(stand_in)
    assert eks.describe_update(name=cluster_name, updateId=update_id)["update"]["status"] == "InProgress"
    assert _logging_on(stand_in, cluster_name)  # EKS has not applied it yet

    stand_in.configure(cluster_update=FAST["cluster_update"])  # the update finishes meanwhile
    stand_in.clear_calls()
    children.ok(*_up(cluster_name, config))
    calls = [c.operation for c in stand_in.calls()]
    assert "UpdateClusterConfig" not in calls and "DescribeUpdate" in calls
    assert _updates_made(cluster_name) == 1
    assert eks.describe_update(name=cluster_name, updateId=update_id)["update"]["status"] == "Successful"
    assert not _logging_on(stand_in, cluster_name)
    assert [k for k in _state(children, cluster_name)["steps"] if k.startswith("cluster/update")] == []


def test_killed_before_the_update_id_is_recorded_the_same_update_is_answered(
        stand_in: SandboxServer, children: Children, cluster_name: str) -> None:
    """Naive code sends no token of its own (botocore makes a new one per call): the rerun's call starts a
    second update."""
    config = children.cwd / "cluster.toml"
    config.write_text(LEAN + "control_plane_logging = true\n")
    children.ok(*_up(cluster_name, config))
    config.write_text(LEAN + "control_plane_logging = false\n")
    stand_in.configure(cluster_update=SLOW)
    child = children.run(*_up(cluster_name, config), crash_at=["cluster/update/logging"])
    assert child.proc.returncode == -signal.SIGKILL, child.stderr
    entry = _state(children, cluster_name)["steps"]["cluster/update/logging"]
    assert entry["token"] and not entry["ids"]  # the intent, no id

    stand_in.configure(cluster_update=FAST["cluster_update"])
    children.ok(*_up(cluster_name, config))
    assert _updates_made(cluster_name) == 1
    assert not _logging_on(stand_in, cluster_name)
