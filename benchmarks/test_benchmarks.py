"""Checks of the benchmark's own arithmetic and of the retry pacing it led to (no wall clock: sleeps are
recorded, not slept). Run with `pytest benchmarks`."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from eksprivate import aws
from eksprivate.config import build_settings, load_file
from eksprivate.errors import EksPrivateError, InvalidParameter
from eksprivate.propagation import retry_while_propagating
from eksprivate.steps.base import Timeouts

_spec = importlib.util.spec_from_file_location("eksprivate_benchmark_run", Path(__file__).with_name("run.py"))
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bench  # dataclasses look their module up while the file runs
_spec.loader.exec_module(bench)

NOT_ASSUMABLE = "Role with arn: arn:aws:iam::123456789012:role/x, could not be assumed"


def test_floors_follow_the_critical_path() -> None:
    timing = {"time_scale": 0.5, "iam_role_delay": 10.0, "cluster_create": 540.0, "nodegroup_create": 180.0,
              "interface_endpoint_create": 90.0, "nodegroup_delete": 240.0, "cluster_delete": 240.0}
    assert bench.floors(timing) == {"up": (10 + 540 + 180) * 0.5, "down": (240 + 240) * 0.5, "upgrade": 0.0}
    # Managed add-ons are not on the physical path: they must fit beside the node groups.
    with_addons = {**timing, "addon_create": 45.0, "addon_update": 30.0}
    assert bench.floors(with_addons)["up"] == (10 + 540 + 180) * 0.5
    # Upgrade: per minor (two), the control plane then the node roll; the add-on updates beside the roll.
    upgrade = {**with_addons, "cluster_version_update": 540.0, "nodegroup_version_update": 600.0}
    assert bench.floors(upgrade)["upgrade"] == 2 * (540 + 600) * 0.5
    # Endpoints slower than role + cluster would put them on the path instead.
    slow_endpoints = {**timing, "interface_endpoint_create": 1000.0}
    assert bench.floors(slow_endpoints)["up"] == (1000 + 180) * 0.5


def test_real_terms_separate_stretched_phases_from_fixed_seconds() -> None:
    """Two scales of one command whose phases stretch x1.02 and which adds 3 s of its own: k and the fixed
    seconds come back, and at real durations the fixed seconds nearly vanish."""
    real_floor = 730.0

    def span(scale: float) -> tuple[float, float]:
        return real_floor * scale, 1.02 * real_floor * scale + 3.0

    got = bench.real_terms(span(0.02), span(0.05), real_floor)
    assert (got["k"], got["fixed_s"]) == (pytest.approx(1.02), pytest.approx(3.0))
    assert got["ratio"] == pytest.approx(1.02 + 3.0 / 730, abs=1e-4)
    one_scale = span(0.02)[1] / span(0.02)[0]
    assert one_scale > got["ratio"] + 0.15  # one compressed scale overstates it: 3 s against a 14.6 s floor
    # A lead-in taken out of both makespans comes back in the fixed seconds: the same answer.
    (fa, sa), (fb, sb) = span(0.02), span(0.05)
    apart = bench.real_terms((fa, sa - 2.0), (fb, sb - 2.0), real_floor, lead_in=2.0)
    assert apart == got


def test_machine_load_names_the_load_and_a_fixed_loop() -> None:
    load = bench.machine_load()
    assert set(load) == {"load_1m", "load_5m", "load_15m", "cpu_loop_wall_s", "cpu_loop_cpu_s"}
    assert load["cpu_loop_cpu_s"] > 0


@pytest.mark.parametrize(("count", "groups", "per_az"), [(3, 1, True), (6, 2, True), (2, 2, False)])
def test_config_text_is_a_valid_config(tmp_path: Path, count: int, groups: int, per_az: bool) -> None:
    path = tmp_path / "c.toml"
    path.write_text(bench.config_text("bench-x", count))
    settings = build_settings(load_file(path))
    assert settings.name == "bench-x"
    assert settings.az_count == 3
    assert len(settings.nodegroups) == groups
    assert all(spec.per_az is per_az for spec in settings.nodegroups)
    planned = sum(settings.az_count if spec.per_az else 1 for spec in settings.nodegroups)
    assert planned == count


def test_timeline_names_the_critical_events() -> None:
    start = 1000.0
    reqs = [bench.Request("iam", "CreateRole", start + 0.5, 200),
            bench.Request("eks", "CreateCluster", start + 0.6, 400),
            bench.Request("eks", "CreateCluster", start + 0.8, 200),
            bench.Request("eks", "CreateNodegroup", start + 11.0, 200),
            bench.Request("eks", "CreateNodegroup", start + 11.2, 200)]
    events = bench.timeline("up", reqs, start, 15.0)
    assert events["create_cluster_tried"] == 0.6
    assert events["create_cluster_ok"] == 0.8
    assert (events["first_nodegroup_ok"], events["last_nodegroup_ok"]) == (11.0, 11.2)
    assert events["exit"] == 15.0


def test_breakdown_adds_up_to_makespan_minus_floor() -> None:
    timing = {"time_scale": 0.02, "iam_role_delay": 10.0, "cluster_create": 540.0, "nodegroup_create": 180.0,
              "interface_endpoint_create": 90.0, "nodegroup_delete": 240.0, "cluster_delete": 240.0}
    floor = bench.floors(timing)
    up = {"first_request": 0.4, "create_role": 0.6, "create_cluster_ok": 1.0, "first_nodegroup_ok": 12.0,
          "last_nodegroup_ok": 12.1, "last_request": 15.9, "exit": 16.0}
    parts = bench.breakdown("up", up, timing)
    assert sum(parts.values()) == pytest.approx(up["exit"] - floor["up"])
    assert parts["cluster_poll"] == pytest.approx(12.0 - 1.0 - 10.8)
    down = {"first_request": 0.4, "first_delete_nodegroup": 0.6, "last_delete_nodegroup": 0.62,
            "delete_cluster_ok": 5.6, "delete_vpc": 10.6, "exit": 10.65}
    parts = bench.breakdown("down", down, timing)
    assert sum(parts.values()) == pytest.approx(down["exit"] - floor["down"])
    assert bench.breakdown("up", {"first_request": 0.4, "exit": 1.0}, timing) == {}


class Flaky:
    """Fails with an IAM-propagation refusal `failures` times, then succeeds."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise aws.typed_error("eks", "CreateCluster", "InvalidParameterException", NOT_ASSUMABLE)
        return "ok"


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    return slept


def test_retry_transient_backs_off_by_default(pauses: list[float]) -> None:
    call = Flaky(4)
    assert aws.retry_transient(call, InvalidParameter, timeout=600, delay=2.0) == "ok"
    assert pauses == [2.0, 3.0, 4.5, 6.75]


def test_retry_transient_can_keep_a_fixed_pace(pauses: list[float]) -> None:
    call = Flaky(4)
    assert aws.retry_transient(call, InvalidParameter, timeout=600, delay=2.0, backoff=1.0) == "ok"
    assert pauses == [2.0] * 4


@pytest.mark.parametrize(("poll", "pace"), [(15.0, 5.0), (60.0, 5.0), (0.3, 0.1), (0.01, 0.05)])
def test_iam_propagation_retry_is_a_third_of_the_poll_capped_at_5_s(pauses: list[float], poll: float,
                                                                     pace: float) -> None:
    ctx: Any = SimpleNamespace(poll=poll, timeouts=Timeouts())
    call = Flaky(6)  # propagation can take 30 s: six refusals at 5 s
    assert retry_while_propagating(ctx, call, role="x") == "ok"
    assert pauses == pytest.approx([pace] * 6)


def test_iam_propagation_retry_still_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(time, "sleep", lambda s: clock.__setitem__(0, clock[0] + s))
    ctx: Any = SimpleNamespace(poll=15.0, timeouts=Timeouts(iam_propagation=60))
    call = Flaky(1000)
    with pytest.raises(EksPrivateError, match=r"IAM role x is still not usable by EKS \(CreateCluster\) after 6\d s: "
                       "Role with arn: .* could not be assumed"):
        retry_while_propagating(ctx, call, role="x")
    assert 12 <= call.calls <= 13  # every 5 s for 60 s
