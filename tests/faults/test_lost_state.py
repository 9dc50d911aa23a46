"""Lost state: with the state file gone, everything is found again by its tags and unique names —
`status` and `plan` show the cluster as it is, and `down` deletes all of it."""

from __future__ import annotations

import json
from pathlib import Path

from eksprivate.sandbox import SandboxServer
from eksprivate.steps.foreign_check import TEARDOWN_ONLY

from .helpers import REGION, Cli, inventory, mutating_calls, state_strings


def test_status_plan_and_down_work_from_tags_alone(
        stand_in: SandboxServer, cli: Cli, cluster_name: str, aws_env: Path) -> None:
    where = ("--name", cluster_name, "--region", REGION)
    assert cli("up", *where).exit_code == 0
    state = aws_env / "state" / f"{cluster_name}-{REGION}.json"
    recorded = state_strings(state)
    made = inventory(stand_in.url, cluster_name)
    state.unlink()
    state.with_name(state.name + ".bak").unlink()

    stand_in.clear_calls()
    status = cli("status", *where, "--output", "json")
    assert status.exit_code == 0, status.stderr
    steps = json.loads(status.stdout)["steps"]
    # Looked for, not expected: what only teardown removes, and the pull-through rules (they take no tags, so
    # with a lost state they are searched for through the node role's policy; none were configured here).
    looked_for = {*TEARDOWN_ONLY, "pull-through-cache"}
    assert [s["key"] for s in steps if s["status"] == "absent" and s["key"] not in looked_for] == []
    shown = " ".join(s["resources"] for s in steps)
    for item in made:  # every id status shows is the one the lost state had recorded
        if item.kind in ("vpc", "subnet", "route-table", "endpoint", "kms-key", "flow-log", "launch-template"):
            assert item.ident in shown and item.ident in recorded, item

    plan = cli("plan", *where, "--output", "json")
    assert plan.exit_code == 0, plan.stderr
    actions = {s["key"]: s["action"] for s in json.loads(plan.stdout)["steps"]}
    assert set(actions.values()) == {"none"}, actions
    assert mutating_calls(stand_in.calls()) == [] and not state.exists(), "status/plan changed something"

    down = cli("down", *where, "--yes")
    assert down.exit_code == 0, down.stderr
    assert inventory(stand_in.url, cluster_name) == []
    assert not state.exists()
