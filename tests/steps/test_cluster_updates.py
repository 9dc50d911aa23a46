"""The cluster step's update path: an update that outlasts the wait stays recorded for the next run, and a
cancelled update is reported with AWS's reason."""

from __future__ import annotations

from typing import Any, cast

import pytest

from eksprivate.aws import Aws
from eksprivate.errors import ResourceFailed, WaitTimeout
from eksprivate.sandbox import SandboxServer
from eksprivate.steps.cluster import Cluster

from .world import World, build, converge, graph_step, needed_by, plan_one, requests_to, up_one

LONG = 10_000_000.0  # real seconds: "until told otherwise" at any test time scale


def test_an_update_that_outlasts_the_wait_is_waited_on_by_the_next_run(world: World, stand_in: SandboxServer) -> None:
    """Naive code forgets the update when its wait times out: the next run sends UpdateClusterConfig again
    (refused while the first runs, then a second update)."""
    ctx = world.ctx(secrets_encryption=False, control_plane_logging=True)
    build(ctx, *needed_by(ctx, "cluster"))
    converge(ctx, graph_step(ctx, "cluster"))

    off = world.ctx(secrets_encryption=False, control_plane_logging=False)
    off.timeouts.cluster_update = 0.2
    stand_in.configure(cluster_update=LONG)
    with pytest.raises(WaitTimeout, match="rerun to wait on the same update"):
        up_one(off, Cluster(()))
    update_id = off.ledger.ids("cluster/update/logging")["update_id"]
    assert "wait for update " + update_id in " ".join(plan_one(off, Cluster(())).details)  # plan says so

    stand_in.configure(cluster_update=120.0)
    rerun = world.ctx(secrets_encryption=False, control_plane_logging=False)
    sent = requests_to(rerun, "eks", "UpdateClusterConfig")
    outcome = up_one(rerun, Cluster(()))
    assert outcome.changes == [f"finished update {update_id} (LoggingUpdate) started by an earlier run"]
    assert sent == []
    found = outcome.found or {}
    assert found["logging"] == [] and rerun.ledger.ids("cluster/update/logging") == {}


class _CancellingEks:
    def describe_update(self, **_: Any) -> dict[str, Any]:
        return {"update": {"id": "u-1", "status": "Cancelled", "type": "VersionUpdate", "errors": [],
                           "cancellation": {"status": "Successful", "reason": "cancelled by an operator"}}}


class _FakeAws:
    eks = _CancellingEks()


def test_a_cancelled_update_fails_with_its_reason() -> None:
    """Cancelled is as final as Failed (EKS model: UpdateStatus); naive code treating only Failed as an
    end would poll a cancelled update until the timeout."""
    with pytest.raises(ResourceFailed) as failed:
        Aws.wait_update(cast(Aws, _FakeAws()), "c", "u-1", delay=0.0, timeout=60.0, what="EKS cluster c")
    assert "update u-1 (VersionUpdate) Cancelled: cancelled: cancelled by an operator" in str(failed.value)
