"""The graph runner behind `up`, `down`, `plan` and `status`.

Each step runs in its own thread as soon as the steps it needs are done (the work is waiting on AWS,
so threads are enough). A step may also need another one only *created* (its create call returned, its
readiness still awaited elsewhere), and may wait for others only before its own `ready` (`Step.needs_created`,
`Step.ready_needs`). `down` walks the same graph reversed: a step is removed once every step that
needs it is gone. Every change is in the state file before the engine moves on, so a kill at any
instant leaves a ledger that the next `up` or `down` resumes from.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from eksprivate.errors import EksPrivateError, Interrupted
from eksprivate.steps import Context, Found, Step


class Reporter(Protocol):
    def phase(self, key: str, title: str, phase: str, detail: str = "") -> None: ...

    def note(self, key: str, text: str) -> None: ...


@dataclass
class Outcome:
    key: str
    title: str
    phase: str  # ready | created | updated | deleted | absent | kept | failed | skipped | a step's `deleted_as`
    detail: str = ""
    changes: list[str] = field(default_factory=list)
    error: EksPrivateError | None = None
    seconds: float = 0.0
    # blocked changes (plan's "!" lines: differences `up` cannot apply) and `Step.health` (a usable
    # resource's problems)
    warnings: list[str] = field(default_factory=list)
    # What the step found or made (up), for callers that go on from it (the step tests); not shown.
    found: Found | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.phase not in ("failed", "skipped")


@dataclass
class PlanItem:
    key: str
    title: str
    action: str  # create | update | delete | keep | none | absent
    resources: str = ""
    details: list[str] = field(default_factory=list)
    status: str = ""


class RunFailed(EksPrivateError):
    """Some steps failed; the others finished and everything is recorded."""

    def __init__(self, outcomes: list[Outcome], verb: str) -> None:
        failed = [o for o in outcomes if o.phase == "failed"]
        first = failed[0]
        more = f" (and {len(failed) - 1} more step(s))" if len(failed) > 1 else ""
        super().__init__(f"{verb} failed at {first.title}: {first.error.message if first.error else first.detail}"
                         f"{more}", (first.error.hint if first.error and first.error.hint else
                                     f"fix the cause and rerun `eksprivate {verb}`: it resumes where it stopped"))
        self.outcomes = outcomes


# Called by `up`'s work once the step's resource exists: releases the steps that need it created, then waits
# for what its readiness needs; returns those that failed (its `ready` is then not attempted).
Made = Callable[[], list[str]]


@dataclass(frozen=True)
class Edges:
    """What each step waits for, by key: `start` ready before it starts, `created` created (or found) before it
    starts, `ready` ready before its own `ready`. `down`, `plan` and `status` use `start` only."""

    start: dict[str, tuple[str, ...]]
    created: dict[str, tuple[str, ...]] = field(default_factory=dict)
    ready: dict[str, tuple[str, ...]] = field(default_factory=dict)


class Engine:
    def __init__(self, ctx: Context, steps: list[Step], reporter: Reporter) -> None:
        self.ctx = ctx
        self.steps = steps
        self.reporter = reporter
        keys = {s.key for s in steps}

        def kept(needs: tuple[str, ...]) -> tuple[str, ...]:
            # Needs on steps the configuration left out (e.g. no KMS step with a user key) are satisfied.
            return tuple(n for n in needs if n in keys)

        self.needs = {s.key: kept(s.needs) for s in steps}
        self.needs_created = {s.key: kept(s.needs_created) for s in steps}
        self.ready_needs = {s.key: kept(s.ready_needs) for s in steps}
        ctx.say = reporter.note
        ctx.aws.on_status(self._saw_status)

    # -- the verbs -------------------------------------------------------------------------------
    def up(self) -> list[Outcome]:
        return self._run(Edges(self.needs, self.needs_created, self.ready_needs), self._up_one, "up")

    def down(self) -> list[Outcome]:
        return self._run(Edges(self._reverse_needs()), lambda step, _: self._down_one(step), "down")

    def plan(self, destroy: bool = False) -> list[PlanItem]:
        items: dict[str, PlanItem] = {}

        def one(step: Step, _: Made) -> Outcome:
            found = step.find(self.ctx)
            items[step.key] = self._plan_item(step, found, destroy)
            return Outcome(step.key, step.title, "ready")

        outcomes = self._run(Edges(self._all_needs()), one, "plan", quiet=True)
        return [items.get(o.key) or PlanItem(o.key, o.title, "unknown", details=[o.detail]) for o in outcomes]

    def status(self) -> list[PlanItem]:
        items: dict[str, PlanItem] = {}

        def one(step: Step, _: Made) -> Outcome:
            found = step.find(self.ctx)
            if found is None:
                items[step.key] = PlanItem(step.key, step.title, "absent", status="absent")
            else:
                self.ctx.ledger.sync(step.key, step.ids(found))
                items[step.key] = PlanItem(step.key, step.title, "exists", step.describe(found),
                                           status=step.status(found))
            return Outcome(step.key, step.title, "ready")

        outcomes = self._run(Edges(self._all_needs()), one, "status", quiet=True)
        return [items.get(o.key) or PlanItem(o.key, o.title, "unknown", details=[o.detail]) for o in outcomes]

    # -- one step --------------------------------------------------------------------------------
    def _up_one(self, step: Step, made: Made) -> Outcome:
        ctx, say = self.ctx, self.reporter.phase
        say(step.key, step.title, "checking")
        found = step.find(ctx)
        if step.orphan:
            if found is None:
                return Outcome(step.key, step.title, "absent")
            if not ctx.prune:
                return Outcome(step.key, step.title, "kept", "not in the config (`up --prune` deletes it)")
            return self._down_one(step, found)
        if found is None or found.get("incomplete"):
            say(step.key, step.title, "creating")
            found = step.create(ctx)
            # A create that resumed a crashed one may only have adopted parts it found by tag: make sure
            # the ledger names everything before dependents read it (no write when already recorded).
            ctx.ledger.sync(step.key, step.ids(found))
            phase, changes, warnings = "created", ["created"], []
        else:
            ctx.ledger.sync(step.key, step.ids(found))
            # One list, read before anything is applied: what `up` makes, and what cannot change in place,
            # which is never applied but said.
            planned = step.planned_changes(ctx, found)
            warnings = [c.warning for c in planned if not c.applies]
            changes = step.apply_changes(ctx, found, planned)
            phase = "updated" if changes else "ready"
            if changes:
                say(step.key, step.title, "updating", "; ".join(changes))
        ctx.check_cancel()
        failed_needs = made()  # it exists: steps that need it created start now
        if failed_needs:
            return Outcome(step.key, step.title, "skipped", f"{step.describe(found)}: made, not waited for "
                           f"(waits for {', '.join(failed_needs)})", changes, warnings=warnings, found=found)
        ctx.check_cancel()
        say(step.key, step.title, "waiting", step.describe(found))
        step.ready(ctx, found)
        warnings += step.health(found)  # usable, with problems worth saying (a DEGRADED node group)
        return Outcome(step.key, step.title, phase, step.describe(found), changes, warnings=warnings, found=found)

    def _down_one(self, step: Step, found: Found | None = None) -> Outcome:
        ctx, say = self.ctx, self.reporter.phase
        if found is None:
            say(step.key, step.title, "checking")
            found = step.find(ctx)
        if found is None:
            ctx.ledger.forget(step.key)
            return Outcome(step.key, step.title, "absent")
        # A step that deletes nothing (the check for foreign resources) is "checking", not "deleting".
        say(step.key, step.title, "deleting" if step.destroy_action(found) == "delete" else "checking",
            step.describe(found))
        step.remove(ctx, found)
        step.gone(ctx, found)
        ctx.ledger.forget(step.key)
        return Outcome(step.key, step.title, step.deleted_as, step.describe(found), found=found)

    def _plan_item(self, step: Step, found: Found | None, destroy: bool) -> PlanItem:
        ctx = self.ctx
        if destroy:
            if found is None:
                return PlanItem(step.key, step.title, "absent")
            return PlanItem(step.key, step.title, step.destroy_action(found), step.describe(found),
                            step.destroy_details(ctx, found), status=step.status(found))
        if found is not None:
            ctx.ledger.sync(step.key, step.ids(found))  # in memory only: plan never writes
        if step.orphan:
            if found is None:
                return PlanItem(step.key, step.title, "absent")
            return PlanItem(step.key, step.title, "delete" if ctx.prune else "keep", step.describe(found),
                            [c.line for c in step.planned_changes(ctx, found)], step.status(found))
        if found is None:
            return PlanItem(step.key, step.title, "create", details=step.preview(ctx))
        if found.get("incomplete"):
            return PlanItem(step.key, step.title, "create", step.describe(found), ["complete what is missing"])
        changes = step.planned_changes(ctx, found)
        return PlanItem(step.key, step.title, "update" if any(c.applies for c in changes) else "none",
                        step.describe(found), [c.line for c in changes], step.status(found))

    # -- the runner ------------------------------------------------------------------------------
    def _all_needs(self) -> dict[str, tuple[str, ...]]:
        """Every edge as a plain need: what a step depends on in any way (down's reverse order, plan, status)."""
        return {s.key: tuple(dict.fromkeys((*self.needs[s.key], *self.needs_created[s.key],
                                            *self.ready_needs[s.key]))) for s in self.steps}

    def _reverse_needs(self) -> dict[str, tuple[str, ...]]:
        every = self._all_needs()
        return {s.key: tuple(o.key for o in self.steps if s.key in every[o.key]) for s in self.steps}

    def _run(self, edges: Edges, work: Callable[[Step, Made], Outcome], verb: str,
             quiet: bool = False) -> list[Outcome]:
        done = {s.key: threading.Event() for s in self.steps}
        created = {s.key: threading.Event() for s in self.steps}
        made_keys: set[str] = set()  # steps whose resource exists this run (their `made` was called)
        outcomes: dict[str, Outcome] = {}

        def worker(step: Step) -> None:
            key = step.key

            def made() -> list[str]:
                made_keys.add(key)
                created[key].set()
                for dep in edges.ready.get(key, ()):
                    done[dep].wait()
                return [d for d in edges.ready.get(key, ()) if not outcomes[d].ok]

            try:
                for dep in edges.start[key]:
                    done[dep].wait()
                for dep in edges.created.get(key, ()):
                    created[dep].wait()
                # A step set `created` without `made` only once it ended: then its outcome judges it.
                blocked = [d for d in edges.start[key] if not outcomes[d].ok] + [
                    d for d in edges.created.get(key, ()) if d not in made_keys and not outcomes[d].ok]
                start = time.monotonic()
                if blocked:
                    outcome = Outcome(step.key, step.title, "skipped", f"waits for {', '.join(blocked)}")
                elif self.ctx.cancel.is_set():
                    outcome = Outcome(step.key, step.title, "skipped", "interrupted")
                else:
                    try:
                        outcome = work(step, made)
                    except EksPrivateError as exc:
                        outcome = Outcome(step.key, step.title, "failed", str(exc), error=exc)
                    except Exception as exc:  # a bug: keep the other steps going, report it plainly
                        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                        err = EksPrivateError(f"internal error in {step.title}: {detail}",
                                              "rerun with --debug and report it")
                        err.__cause__ = exc
                        outcome = Outcome(step.key, step.title, "failed", detail, error=err)
                outcome.seconds = time.monotonic() - start
                outcomes[step.key] = outcome
                if not quiet or outcome.phase == "failed":
                    self.reporter.phase(step.key, step.title, outcome.phase, outcome.detail)
            finally:
                created[key].set()
                done[key].set()

        threads = [threading.Thread(target=worker, args=(s,), name=s.key, daemon=True) for s in self.steps]
        for s in self.steps:
            self.reporter.phase(s.key, s.title, "pending") if not quiet else None
        try:
            for t in threads:
                t.start()
            for t in threads:
                while t.is_alive():
                    t.join(0.2)  # short joins keep Ctrl-C deliverable to the main thread
        except KeyboardInterrupt:
            self.ctx.cancel.set()
            raise Interrupted(f"{verb} interrupted; everything made so far is recorded in the state file",
                              f"rerun `eksprivate {verb}` to resume") from None
        result = [outcomes[s.key] for s in self.steps]
        if any(o.phase == "failed" for o in result):
            raise RunFailed(result, verb)
        return result

    def _saw_status(self, kind: str, name: str, status: str) -> None:
        """Live AWS statuses seen by waiters, shown against their step (the real phases)."""
        key = {"cluster": "cluster", "endpoint": "endpoints"}.get(kind, f"nodegroup/{name}")
        if kind == "cluster" and name != self.ctx.name:
            return
        self.reporter.note(key, f"{name} {status}" if kind == "endpoint" else status)


def summarize(outcomes: list[Outcome]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.phase] = counts.get(o.phase, 0) + 1
    return counts
