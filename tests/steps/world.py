"""Helpers for the step tests: a Context on the sandbox, and the real `Engine` on a one-step graph.

Each test drives one step through `Engine` (find → create or update → ready; find → remove → gone), with
the steps it needs built first (a need outside the graph counts as satisfied), so what a step does to AWS
can be checked call by call (`aws.log`) and resource by resource (plain boto3 clients that do not count in
that log).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from eksprivate.aws import Aws, is_mutating
from eksprivate.config import Settings, build_settings
from eksprivate.engine import Engine, Outcome, PlanItem, RunFailed
from eksprivate.sandbox import SandboxServer
from eksprivate.state import Ledger
from eksprivate.steps import Context, Found, Step

REGION = "eu-central-1"
AZS = ["eu-central-1a", "eu-central-1b", "eu-central-1c"]
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
ACCOUNT = "123456789012"


@dataclass
class World:
    """One cluster name on the sandbox; `ctx()` makes contexts for it (shared or fresh ledgers)."""

    stand_in: SandboxServer
    folder: Path
    name: str
    aws: Aws  # one per test session: clients are slow to make and thread-safe to share
    config: dict[str, Any] = field(default_factory=dict)
    _ledgers: int = 0
    _clients: dict[str, Any] = field(default_factory=dict)

    def settings(self, **overrides: Any) -> Settings:
        return build_settings({**self.config, **overrides}, name=self.name)

    def ctx(self, *, fresh: bool = False, **overrides: Any) -> Context:
        """A Context with a real `Aws` on the sandbox. `fresh`: a new, empty state file (as after a lost
        state), else the world's one state file."""
        if fresh:
            self._ledgers += 1
        path = self.folder / f"state-{self._ledgers}" / f"{self.name}-{REGION}.json"
        ledger = Ledger.open(path, self.name, REGION, ACCOUNT)
        return Context(aws=self.aws, settings=self.settings(**overrides), ledger=ledger, account=ACCOUNT,
                       azs=list(AZS), poll=0.01)

    def client(self, service: str) -> Any:
        """A plain boto3 client, for looking at AWS without counting in any step's call log."""
        if service not in self._clients:
            self._clients[service] = boto3.client(service, endpoint_url=self.stand_in.url, region_name=REGION,
                                                  **CREDENTIALS)
        return self._clients[service]

    def tag_filter(self) -> list[dict[str, Any]]:
        return [{"Name": "tag:eksprivate:cluster", "Values": [self.name]}]


@dataclass
class Recorder:
    """The engine's reporter: every phase and progress note, kept for the test to read."""

    phases: list[tuple[str, str, str]] = field(default_factory=list)  # (key, phase, detail)
    notes: list[tuple[str, str]] = field(default_factory=list)

    def phase(self, key: str, title: str, phase: str, detail: str = "") -> None:
        self.phases.append((key, phase, detail))

    def note(self, key: str, text: str) -> None:
        self.notes.append((key, text))


def run(ctx: Context, steps: list[Step], verb: str = "up") -> list[Outcome]:
    """`up` or `down` of `steps` through the real `Engine`. A failed step raises its own error (not the
    engine's summary), so a test says which error it expects."""
    engine = Engine(ctx, steps, Recorder())
    try:
        return engine.up() if verb == "up" else engine.down()
    except RunFailed as failed:
        error = next(o.error for o in failed.outcomes if o.error is not None)
        # A non-project exception is the engine's "internal error": raise what the step raised.
        raise (error.__cause__ if error.message.startswith("internal error") and error.__cause__ else error) from None
    finally:
        ctx.aws.off_status(engine._saw_status)  # one Aws serves every test


def up_one(ctx: Context, step: Step) -> Outcome:
    """`up` of one step (its needs made already): the engine's outcome, `found` included."""
    (outcome,) = run(ctx, [step])
    return outcome


def plan_one(ctx: Context, step: Step) -> PlanItem:
    """`plan` of one step through the engine: the ledger is read-only meanwhile, as the CLI opens it."""
    engine, persist = Engine(ctx, [step], Recorder()), ctx.ledger.persist
    ctx.ledger.persist = False
    try:
        (item,) = engine.plan()
    finally:
        ctx.ledger.persist = persist
        ctx.aws.off_status(engine._saw_status)
    return item


def down_one(ctx: Context, step: Step) -> Outcome:
    """`down` of one step (whatever needs it gone already)."""
    (outcome,) = run(ctx, [step], "down")
    return outcome


def converge(ctx: Context, step: Step) -> Found:
    """What `up` does with one step: what it found or made."""
    found = up_one(ctx, step).found
    assert found is not None, f"{step.key}: up found and made nothing"
    return found


def build(ctx: Context, *steps: Step) -> dict[str, Found]:
    """Bring up `steps` (needs first) through the engine, as one graph."""
    return {o.key: o.found or {} for o in run(ctx, list(steps))}


def adopt(ctx: Context, *steps: Step) -> dict[str, Found]:
    """What `up` does for steps whose resources exist but the state lacks: find them and record their ids."""
    out = {}
    for step in steps:
        found = step.find(ctx)
        assert found is not None, f"{step.key} not found by tag/name"
        ctx.ledger.sync(step.key, step.ids(found))
        out[step.key] = found
    return out


def mutating_during(ctx: Context, action: Callable[[], Any]) -> tuple[Any, list[str]]:
    """Run `action`; return its result and the mutating calls it made through `ctx.aws`."""
    mark = len(ctx.aws.log.calls)
    result = action()
    return result, [f"{s}:{o}" for s, o in ctx.aws.log.calls[mark:] if is_mutating(o)]


def assert_rerun_is_noop(ctx: Context, step: Step) -> Found:
    """A second `up` of this step: found complete, nothing to change, no mutating call at all."""

    def rerun() -> Found:
        outcome = up_one(ctx, step)
        assert outcome.found is not None, f"{step.key}: find lost the resource"
        assert outcome.phase != "created", f"{step.key}: found incomplete: {outcome.found}"
        assert outcome.changes == [] and outcome.phase == "ready", f"{step.key}: a rerun changed {outcome.changes}"
        assert [c.line for c in step.planned_changes(ctx, outcome.found) if c.applies] == []  # plan agrees
        return outcome.found

    found: Found
    found, mutating = mutating_during(ctx, rerun)
    assert mutating == [], f"{step.key}: a rerun made mutating calls {mutating}"
    return found


def assert_delete_and_delete_again(ctx: Context, step: Step, found: Found) -> None:
    """`down` of this step: gone afterwards; a second delete of the same ids (already gone) is done too."""
    (outcome,) = run(ctx, [step], "down")
    assert outcome.phase == step.deleted_as, f"{step.key}: down said {outcome.phase}"
    assert step.find(ctx) is None, f"{step.key}: still found after delete"
    # The engine never deletes what `find` no longer sees: by hand, as a resumed `down` with stale ids would.
    step.remove(ctx, found)  # NotFound counts as done
    step.gone(ctx, found)
    assert step.find(ctx) is None


def ec2_tags(item: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in item.get("Tags", []) or []}


def requests_to(ctx: Context, service: str, operation: str) -> list[dict[str, Any]]:
    """Every request `ctx.aws` sends to `operation` from now on, as the parameters the code passed (for
    what the sandbox accepts but does not keep, e.g. moto ignores PrivateDnsEnabled on modify)."""
    seen: list[dict[str, Any]] = []

    def keep(params: dict[str, Any], **_: Any) -> None:
        seen.append(dict(params))

    ctx.aws.client(service).raw.meta.events.register(f"provide-client-params.{service}.{operation}", keep)
    return seen


def needed_by(ctx: Context, key: str) -> list[Step]:
    """The steps `key` needs, directly or not, from `build_graph` for these settings, needs first."""
    from eksprivate.steps import build_graph

    graph = {s.key: s for s in build_graph(ctx)}
    order: list[str] = []

    def visit(k: str) -> None:
        step = graph[k]
        for need in (*step.needs, *step.needs_created, *step.ready_needs):  # every kind of edge
            if need in graph and need not in order:
                visit(need)
        if k != key and k not in order:
            order.append(k)

    visit(key)
    return [graph[k] for k in order]


def graph_step(ctx: Context, key: str) -> Step:
    """The step `key` as `build_graph` makes it for these settings."""
    from eksprivate.steps import build_graph

    return next(s for s in build_graph(ctx) if s.key == key)


def assert_recorded(ctx: Context, key: str, **ids: Any) -> None:
    """The state file holds these ids for `key` (it may hold more)."""
    recorded = ctx.ledger.ids(key)
    assert {k: recorded.get(k) for k in ids} == ids, f"{key}: state has {recorded}"
