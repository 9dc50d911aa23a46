"""The engine behind `up`, `down`, `plan` and `status`: what each verb does with one step, over one graph.

Each step runs in its own thread as soon as the steps it needs are done (the work is waiting on AWS,
so threads are enough). A step may also need another one only *created* (its create call returned, its
readiness still awaited elsewhere), and may wait for others only before its own `ready` (`Step.needs_created`,
`Step.ready_needs`). `down` walks the same graph reversed: a step is removed once every step that
needs it is gone. Every change is in the state file before the engine moves on, so a kill at any
instant leaves a ledger that the next `up` or `down` resumes from.

One module per concern: `walk` runs (threads, order, skips, Ctrl-C, `RunFailed`), `showing` says what
happened (`Outcome`, `PlanItem`, the reporter), `saving` records ids in the ledger; `Engine` here decides, per
verb, which step verbs to call in which order. The engine knows nothing of AWS.
"""

from __future__ import annotations

from collections.abc import Callable

from eksprivate.engine.saving import forget, record
from eksprivate.engine.showing import (
    Outcome,
    PlanItem,
    Reporter,
    plan_item,
    status_item,
    status_key,
    summarize,
    unread_item,
)
from eksprivate.engine.walk import Edges, Made, RunFailed, reverse, walk
from eksprivate.errors import EksPrivateError
from eksprivate.steps import Context, Discovery, Found, Step
from eksprivate.steps.discovery import expand_discoveries

__all__ = ["Engine", "Outcome", "PlanItem", "Reporter", "RunFailed", "summarize"]


class Engine:
    def __init__(self, ctx: Context, steps: list[Step], reporter: Reporter) -> None:
        self.ctx = ctx
        self.steps = steps
        self.reporter = reporter
        self._set_needs()
        self._discovered = False
        self._unread: dict[str, PlanItem] = {}  # plan: discoveries whose read failed
        ctx.say = reporter.note
        ctx.aws.on_status(self._saw_status)

    def _set_needs(self) -> None:
        keys = {s.key for s in self.steps}

        def kept(needs: tuple[str, ...]) -> tuple[str, ...]:
            # Needs on steps the configuration left out (e.g. no KMS step with a user key) are satisfied.
            return tuple(n for n in needs if n in keys)

        self.needs = {s.key: kept(s.needs) for s in self.steps}
        self.needs_created = {s.key: kept(s.needs_created) for s in self.steps}
        self.ready_needs = {s.key: kept(s.ready_needs) for s in self.steps}

    def _all_needs(self) -> dict[str, tuple[str, ...]]:
        """Every edge as a plain need: what a step depends on in any way (down's reverse order, plan, status)."""
        return {s.key: tuple(dict.fromkeys((*self.needs[s.key], *self.needs_created[s.key],
                                            *self.ready_needs[s.key]))) for s in self.steps}

    def _discover(self, *, tolerant: bool = False) -> None:
        """Read the graph's discoveries (steps/discovery.py: what eksprivate made that the config and the state do
        not name) and walk the steps they found in their place, before anything else. A failed read stops the
        verb before any step runs; for `plan` (`tolerant`) it is an "unknown" item instead, having found nothing."""
        if self._discovered:
            return
        self._discovered = True
        found: dict[str, Found | None] = {}
        for step in self.steps:
            if isinstance(step, Discovery):
                try:
                    found[step.key] = step.find(self.ctx)
                except EksPrivateError as exc:
                    if not tolerant:
                        raise
                    self._unread[step.key] = unread_item(step, exc)
        self.steps = expand_discoveries(self.ctx, self.steps, found)
        self._set_needs()

    def _walk(self, edges: Edges, work: Callable[[Step, Made], Outcome], verb: str,
              quiet: bool = False) -> list[Outcome]:
        return walk(self.steps, edges, work, verb, self.reporter, self.ctx.cancel, quiet)

    # -- the verbs -------------------------------------------------------------------------------
    def up(self) -> list[Outcome]:
        self._discover()
        return self._walk(Edges(self.needs, self.needs_created, self.ready_needs), self._up_one, "up")

    def down(self) -> list[Outcome]:
        self._discover()
        return self._walk(Edges(reverse(self.steps, self._all_needs())), lambda step, _: self._down_one(step),
                          "down")

    def plan(self, destroy: bool = False) -> list[PlanItem]:
        """One item per step, in graph order. A step whose reads fail (no permission, an unreachable endpoint) is
        an "unknown" item saying why, and the plan goes on: every step `up` would take is still listed."""
        self._discover(tolerant=True)
        items: dict[str, PlanItem] = dict(self._unread)

        def one(step: Step, _: Made) -> Outcome:
            if step.key not in items:
                try:
                    found = step.find(self.ctx)
                    if found is not None and not destroy:
                        record(self.ctx, step, found)  # in memory only: plan never writes
                    items[step.key] = plan_item(self.ctx, step, found, destroy)
                except EksPrivateError as exc:
                    items[step.key] = unread_item(step, exc)
            return Outcome(step.key, step.title, "ready")

        outcomes = self._walk(Edges(self._all_needs()), one, "plan", quiet=True)
        return [items.get(o.key) or PlanItem(o.key, o.title, "unknown", details=[o.detail]) for o in outcomes]

    def status(self) -> list[PlanItem]:
        self._discover()
        items: dict[str, PlanItem] = {}

        def one(step: Step, _: Made) -> Outcome:
            found = step.find(self.ctx)
            if found is not None:
                record(self.ctx, step, found)
            items[step.key] = status_item(step, found)
            return Outcome(step.key, step.title, "ready")

        outcomes = self._walk(Edges(self._all_needs()), one, "status", quiet=True)
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
            record(ctx, step, found)
            phase, changes, warnings = "created", ["created"], []
        else:
            record(ctx, step, found)
            # One list, read before anything is applied: what `up` makes, and what cannot change in place,
            # which is never applied but said.
            planned = step.planned_changes(ctx, found)
            warnings = [c.warning for c in planned if not c.applies]
            applying = [c.text for c in planned if c.applies]
            if applying:  # said before the (maybe long) apply, one line per change, its progress lines after
                say(step.key, step.title, "updating", applying[0])
                for text in applying[1:]:
                    ctx.say(step.key, text)
            changes = step.apply_changes(ctx, found, planned)
            phase = "updated" if changes else "ready"
        ctx.check_cancel()
        failed_needs = made()  # it exists: steps that need it created start now
        if failed_needs:
            return Outcome(step.key, step.title, "skipped", f"{step.describe(found)}: made, not waited for "
                           f"(waits for {', '.join(failed_needs)})", changes, warnings=warnings, found=found)
        ctx.check_cancel()
        say(step.key, step.title, "waiting", step.describe(found))
        step.ready(ctx, found)
        warnings += step.health(found)  # usable, with problems worth saying (a DEGRADED node group)
        # "updated" says what was done (the ids were said when the step was checked); "ready" its ids.
        detail = "; ".join(changes) if phase == "updated" else step.describe(found)
        return Outcome(step.key, step.title, phase, detail, changes, warnings=warnings, found=found)

    def _down_one(self, step: Step, found: Found | None = None) -> Outcome:
        ctx, say = self.ctx, self.reporter.phase
        if found is None:
            say(step.key, step.title, "checking")
            found = step.find(ctx)
        if found is None:
            forget(ctx, step)
            return Outcome(step.key, step.title, "absent")
        # A step that deletes nothing (the check for foreign resources) is "checking", not "deleting".
        say(step.key, step.title, "deleting" if step.destroy_action(found) == "delete" else "checking",
            step.describe(found))
        step.remove(ctx, found)
        step.gone(ctx, found)
        forget(ctx, step)
        return Outcome(step.key, step.title, step.deleted_as, step.describe(found), found=found)

    def _saw_status(self, kind: str, name: str, status: str) -> None:
        """Live AWS statuses seen by waiters, shown against their step (the real phases)."""
        if kind == "cluster" and name != self.ctx.name:
            return
        self.reporter.note(status_key(kind, name), f"{name} {status}" if kind == "endpoint" else status)
