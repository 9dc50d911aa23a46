"""`up` killed during each phase of a Kubernetes upgrade (control plane, add-ons, node groups): the rerun
waits on the update in flight (its id is in the state file) and never starts a second one on top."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from eksprivate.sandbox import SandboxServer, eks_updates

from .conftest import FAST, SLOW
from .helpers import REGION, Children

LEAN = 'flow_logs = false\nsecrets_encryption = false\navailability_zones = 2\nper_az = false\n'
ACCOUNT = "123456789012"  # moto's account for the dummy credentials

# phase -> (ledger key of its update, the Timing field that keeps it running)
PHASES = {
    "control plane": ("upgrade/cluster", "cluster_version_update"),
    "add-ons": ("upgrade/addon/coredns", "addon_update"),
    "node groups": ("upgrade/nodegroup/nodes", "nodegroup_version_update"),
}


def _up(name: str, config: Path) -> list[str]:
    return ["up", "--name", name, "--region", REGION, "--config", str(config)]


def _recorded(children: Children, name: str, key: str) -> str | None:
    path = children.cwd / "state" / f"{name}-{REGION}.json"
    try:
        steps: dict[str, Any] = json.loads(path.read_text())["steps"]
    except (OSError, ValueError):
        return None  # being written
    update_id: str | None = ((steps.get(key) or {}).get("ids") or {}).get("update_id")
    return update_id


def _version_updates(name: str, key: str) -> int:
    """How many updates EKS (the sandbox, in this process) has started for the phase's resource."""
    from moto.eks.models import eks_backends

    cluster = eks_backends[ACCOUNT][REGION].clusters[name]
    resource: Any = cluster
    if key.startswith("upgrade/nodegroup/"):
        resource = cluster.nodegroups[key.rsplit("/", 1)[1]]
    elif key.startswith("upgrade/addon/"):
        resource = vars(cluster)["_sandbox_addons"][key.rsplit("/", 1)[1]]
    return sum(1 for u in eks_updates.updates_of(resource).values() if u.type in ("VersionUpdate", "AddonUpdate"))


@pytest.mark.parametrize("phase", list(PHASES))
def test_up_killed_during_an_upgrade_phase_resumes_it(
        stand_in: SandboxServer, children: Children, cluster_name: str, phase: str) -> None:
    """Naive code (no update id in the state) reads the half-upgraded cluster on the rerun and starts the phase
    again: EKS refuses it while the first runs (ResourceInUseException), or a second update follows the first."""
    key, timing = PHASES[phase]
    config = children.cwd / "cluster.toml"
    config.write_text(LEAN + 'kubernetes_version = "1.32"\n')
    children.ok(*_up(cluster_name, config))
    config.write_text(LEAN + 'kubernetes_version = "1.33"\n')
    stand_in.configure(**{timing: SLOW})
    child = children.start(*_up(cluster_name, config))
    deadline = time.monotonic() + 60
    while _recorded(children, cluster_name, key) is None:
        assert time.monotonic() < deadline and child.proc.poll() is None, child.stderr
        time.sleep(0.02)
    assert child.signal(signal.SIGKILL) == -signal.SIGKILL

    stand_in.configure(**{timing: FAST[timing]})  # the update finishes meanwhile
    stand_in.clear_calls()
    children.ok(*_up(cluster_name, config))
    assert _version_updates(cluster_name, key) == 1  # waited on, never started again
    assert "DescribeUpdate" in [c.operation for c in stand_in.calls()]
    import boto3

    eks = boto3.client("eks", endpoint_url=stand_in.url, region_name=REGION, aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    assert eks.describe_cluster(name=cluster_name)["cluster"]["version"] == "1.33"
    assert eks.describe_nodegroup(clusterName=cluster_name, nodegroupName="nodes")["nodegroup"]["version"] == "1.33"
    state = json.loads((children.cwd / "state" / f"{cluster_name}-{REGION}.json").read_text())
    assert not [k for k in state["steps"] if k.startswith("upgrade/")]
