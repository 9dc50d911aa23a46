"""The terminal: the live table rendered at fixed widths, the last frame against the summary line, and
the plain lines' throttling, driven through `ui.Progress` with a fake clock.

The live table is rendered with rich `Console(width=N, record=True)` for real step graphs (the default
config: 16 steps; admins + 3 single-AZ node groups: 18; five node group specs: 22) with long ids and
AWS details, at 80, 100, 120 and 200 columns.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from rich.cells import cell_len
from rich.console import Console

from eksprivate import ui
from eksprivate.config import build_settings
from eksprivate.engine import Outcome
from eksprivate.steps import build_graph
from eksprivate.steps.base import Step

WIDTHS = (80, 100, 120, 200)
AZS = ["eu-central-1a", "eu-central-1b", "eu-central-1c"]
ADMIN = "arn:aws:iam::123456789012:role/platform-team-break-glass-administrators"
CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "18 steps": {"admins": [ADMIN], "nodegroups": [
        {"name": n, "per_az": False} for n in ("system", "general-purpose", "memory-optimised")]},
    "5 node group specs": {"nodegroups": [
        {"name": n, "per_az": False} for n in ("system", "general-purpose", "memory-optimised", "gpu-inference",
                                               "batch-spot")]},
}
# Long ids and AWS details, as real AWS gives them.
LONG_DETAIL = ("eu-central-1a: subnet-0a1b2c3d4e5f60718/rtb-0f1e2d3c4b5a69788, eu-central-1b: "
               "subnet-0b1c2d3e4f5a60718/rtb-0e1d2c3b4a5f69788, eu-central-1c: subnet-0c1d2e3f4a5b60718/rtb-0d1c2b3a")
LONG_NOTE = "vpce-0123456789abcdef0 pending (ec2, ecr.api, ecr.dkr, sts, logs: 4 of 6 still pending)"


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(ui, "_now", fake)
    return fake


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    """ui's progress console replaced by one that records (not a terminal: plain lines, final frame)."""
    console = Console(file=io.StringIO(), width=200, record=True, color_system=None)
    monkeypatch.setattr(ui, "err", console)
    yield console


def graph(config: str) -> list[Step]:
    """The real step graph for the named config (titles as users see them)."""
    settings = build_settings({"name": "analytics-platform-prod", **CONFIGS[config]})
    ctx = SimpleNamespace(settings=settings, name=settings.name, azs=AZS, region="eu-central-1",
                          ledger=SimpleNamespace(ids=lambda key: {}, input=lambda key: None))
    return build_graph(ctx)  # type: ignore[arg-type]


def render(progress: ui.Progress, width: int) -> list[str]:
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(progress._render())
    return console.export_text().splitlines()


def row_of(lines: list[str], title: str) -> str:
    hits = [line for line in lines[1:] if re.match(rf"^. {re.escape(title)}  ", line)]
    assert len(hits) == 1, f"no single row for {title!r} in\n" + "\n".join(lines)
    return hits[0]


def assert_row(line: str, width: int, icon: str, title: str, word: str, elapsed: str) -> None:
    assert cell_len(line) <= width, f"row wider than {width}: {line!r}"
    assert line.startswith(f"{icon} {title} "), f"icon or title lost: {line!r}"
    found = re.search(rf" {re.escape(word)} +{re.escape(elapsed)}(  |$)", line)
    assert found, f"status word {word!r} with elapsed {elapsed} lost: {line!r}"
    if "…" in line:  # only the detail gives way, never the status or the timer
        assert line.index("…") > found.end(), f"ellipsis before the status: {line!r}"


# -- the live table ------------------------------------------------------------------------------------

MID_UP = [("created", "✓"), ("creating", "•"), ("ready", "✓"), ("updated", "✓"), ("failed", "✗"),
          ("creating", "•"), ("created", "✓")]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("config", CONFIGS)
def test_every_row_keeps_icon_title_status_and_time_at_every_width(clock: FakeClock, config: str,
                                                                  width: int) -> None:
    """A few seconds into `up`, with long ids and AWS details: each row keeps its icon, its full title, its
    status word and its elapsed time; only the detail is cut, with an ellipsis. The rich Table it replaces
    squeezed the status column away at 80 and 100 columns and cut step names instead of ids."""
    steps = graph(config)
    assert len(steps) >= (18 if config != "default" else 16)
    progress = ui.Progress("up", live=True, started=clock.now)
    expected = []
    for i, step in enumerate(steps):
        phase, icon = MID_UP[i % len(MID_UP)]
        progress.phase(step.key, step.title, "pending")
        clock.now += 1.5
        progress.phase(step.key, step.title, "checking")
        if phase == "creating":
            progress.phase(step.key, step.title, "creating")
            progress.phase(step.key, step.title, "waiting", LONG_DETAIL)  # still shown as creating
            progress.note(step.key, LONG_NOTE)
        else:
            progress.phase(step.key, step.title, phase, LONG_DETAIL)
        expected.append((step.title, icon, phase))
    clock.now += 61
    lines = render(progress, width)
    assert len(lines) == len(steps) + 1
    assert lines[0].startswith("eksprivate up — ")
    for i, (title, icon, phase) in enumerate(expected):
        started = 1000.0 + 1.5 * (i + 1)
        elapsed = ui._clock(clock.now - started) if phase == "creating" else "0:00"
        assert_row(row_of(lines, title), width, icon, title, phase, elapsed)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("config", CONFIGS)
def test_final_frame_after_down_says_deleted_on_every_row(clock: FakeClock, config: str, width: int) -> None:
    """After `down`, every row says it is deleted (the KMS key: scheduled), ids cut first. The old table
    showed the ids without a status at 80/100 columns, as if everything still existed."""
    progress = ui.Progress("down", live=True, started=clock.now)
    steps = graph(config)
    for step in steps:
        progress.phase(step.key, step.title, "pending")
    for step in reversed(steps):
        progress.phase(step.key, step.title, "deleting", LONG_DETAIL)
        clock.now += 12
        progress.phase(step.key, step.title, step.deleted_as, LONG_DETAIL)
    lines = render(progress, width)
    for step in steps:
        word = "scheduled" if step.key == "kms-key" else "deleted"
        assert_row(row_of(lines, step.title), width, "✓", step.title, word, "0:12")
    assert "for deletion (7 days)" in row_of(lines, "Secrets KMS key") or width < 100


def test_title_is_shortened_only_when_nothing_else_can_give_way(clock: FakeClock) -> None:
    """At a width where even an empty detail does not fit, the title is cut (with an ellipsis), never the
    status word or the timer."""
    progress = ui.Progress("up", live=True, started=clock.now)
    progress.phase("nodegroup/x", "Node group gpu-inference-workers-with-a-long-name", "creating", LONG_DETAIL)
    clock.now += 75
    line = render(progress, 40)[1]
    assert cell_len(line) <= 40
    assert line.startswith("• Node group gpu-infer…  creating")
    assert re.search(r" creating +1:15$", line), line


def test_last_frame_timer_equals_the_summary(clock: FakeClock, recorded: Console) -> None:
    """The last frame's timer and "finished in" count the same span: from the command's start (before
    the connection and the state) to the last frame. Before, the frame counted from when the table was
    made and the summary from the command's start, measured later: they disagreed."""
    started = clock.now
    clock.now += 4.2  # connecting, reading the state: before the table exists
    with ui.Progress("up", live=True, started=started) as progress:
        progress.phase("vpc", "VPC", "creating")
        clock.now += 70.5
        progress.phase("vpc", "VPC", "created", "vpc-0123456789abcdef0")
        clock.now += 0.9  # the rest of the run, up to the last frame
    clock.now += 3.0  # metrics, call counts: after the last frame
    ui.print_outcomes([Outcome("vpc", "VPC", "created")], "up", progress.elapsed)
    text = recorded.export_text()
    frames = re.findall(r"eksprivate up — (\d+:\d\d)", text)
    summary = re.search(r"up finished in (\d+:\d\d)", text)
    assert frames and summary
    assert frames[-1] == summary.group(1) == "1:15"


# -- plain lines -------------------------------------------------------------------------------------

def plain_lines(console: Console) -> list[str]:
    """The lines, without their wall-clock stamp."""
    return [re.sub(r"^\[\d\d:\d\d:\d\d\] ", "", line) for line in console.export_text().splitlines()]


def test_plain_lines_are_wall_clock_stamped(clock: FakeClock, recorded: Console) -> None:
    """The README promises timestamped lines: the stamp is the time of day, not the time since start."""
    progress = ui.Progress("up", live=False, started=clock.now)
    progress.phase("vpc", "VPC", "creating")
    line = recorded.export_text().splitlines()[0]
    stamp = re.match(r"^\[(\d\d):(\d\d):(\d\d)\] vpc: creating$", line)
    assert stamp, line
    import time

    now = time.localtime()
    assert abs(int(stamp.group(1)) * 60 + int(stamp.group(2)) - (now.tm_hour * 60 + now.tm_min)) <= 1


def test_a_waiting_step_repeats_itself_at_most_once_a_minute(clock: FakeClock, recorded: Console) -> None:
    """A cluster polled every 15 s for 9 minutes: news are said at once, the same status at most once a
    minute (naive code printed one line per poll: 36 "CREATING" lines)."""
    progress = ui.Progress("up", live=False, started=clock.now)
    progress.phase("cluster", "EKS cluster", "pending")
    progress.phase("cluster", "EKS cluster", "checking")
    progress.phase("cluster", "EKS cluster", "creating")
    progress.note("cluster", "CREATING: EKS takes ~9 min (up to 30)")
    progress.phase("cluster", "EKS cluster", "waiting", "analytics-platform-prod")
    for _ in range(36):
        clock.now += 15
        progress.note("cluster", "CREATING")
    progress.note("cluster", "ACTIVE")
    progress.phase("cluster", "EKS cluster", "created", "analytics-platform-prod")
    lines = plain_lines(recorded)
    stills = [line for line in lines if line.startswith("cluster: still creating: CREATING")]
    assert 8 <= len(stills) <= 9  # 540 s of waiting: once a minute
    assert lines[0] == "cluster: creating"
    assert lines[1] == "cluster: CREATING: EKS takes ~9 min (up to 30)"
    # ACTIVE is what "created" says next (issue 21: each thing once).
    assert lines[-1] == "cluster: created: analytics-platform-prod" and "cluster: ACTIVE" not in lines
    assert not any(line.startswith("cluster: waiting") for line in lines)


def test_what_find_sees_and_repeats_of_many_endpoints_are_not_lines(clock: FakeClock, recorded: Console) -> None:
    """Six endpoints polled until available: the group's line once (the step says it), no line per
    endpoint's pending or available (issue 21: 16 lines for seven endpoints), nothing of what `find` saw
    on a step that changes nothing."""
    progress = ui.Progress("up", live=False, started=clock.now)
    ids = [f"vpce-0{i}23456789abcdef" for i in range(6)]
    progress.phase("endpoints", "VPC endpoints", "checking")
    progress.phase("endpoints", "VPC endpoints", "creating")
    progress.note("endpoints", "waiting for 6 endpoint(s) to become available: " + ", ".join(
        f"{svc}={ep} pending" for svc, ep in zip(("ec2", "ecr.api", "ecr.dkr", "sts", "logs", "s3"), ids, strict=True)))
    for poll in range(10):
        clock.now += 5
        for n, ep in enumerate(ids):
            progress.note("endpoints", f"{ep} {'available' if n < poll else 'pending'}")
    progress.phase("endpoints", "VPC endpoints", "created", ", ".join(ids))
    progress.phase("vpc", "VPC", "checking")
    progress.note("vpc", "available")  # a no-op rerun's find
    progress.phase("vpc", "VPC", "waiting", "vpc-1")
    progress.phase("vpc", "VPC", "ready", "vpc-1")
    lines = plain_lines(recorded)
    assert len(lines) == len(set(lines)), lines
    assert " ".join(lines).count("waiting for 6 endpoint(s)") == 1, lines  # the group's line
    assert not [line for line in lines if re.match(r"^endpoints: (still \w+: )?vpce-\S+ (pending|available)$", line)]
    assert [line for line in lines if line.startswith("endpoints: created: ")], lines
    assert [line for line in lines if line.startswith("vpc:")] == ["vpc: ready: vpc-1"]


def test_scheduled_kms_key_reads_as_scheduled_in_the_summary(recorded: Console) -> None:
    outcomes = [Outcome("vpc", "VPC", "deleted"), Outcome("kms-key", "Secrets KMS key",
                                                          "scheduled for deletion (7 days)")]
    ui.print_outcomes(outcomes, "down", 65)
    assert "down finished in 1:05: 1 deleted, 1 scheduled for deletion (7 days)" in recorded.export_text()


def test_fit_cuts_with_an_ellipsis() -> None:
    fit: Callable[..., str] = ui._fit
    assert fit("abcdef", 4) == "abc…"
    assert fit("ab", 4) == "ab  "
    assert fit("ab", 4, pad=False) == "ab"
