"""What the engine shows: each step's `Outcome` (up, down) and `PlanItem` (plan, status), and the reporter they
go to (the live table or plain lines, ui.py). Reads the step's verbs; changes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from eksprivate.errors import EksPrivateError
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
    action: str  # create | update | delete | keep | none | absent | unknown (plan could not read it)
    resources: str = ""
    details: list[str] = field(default_factory=list)
    status: str = ""


def plan_item(ctx: Context, step: Step, found: Found | None, destroy: bool) -> PlanItem:
    """What `plan` (or `plan --destroy`) shows for a step, from what its `find` saw."""
    if destroy:
        if found is None:
            return PlanItem(step.key, step.title, "absent")
        return PlanItem(step.key, step.title, step.destroy_action(found), step.describe(found),
                        step.destroy_details(ctx, found), status=step.status(found))
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


def status_item(step: Step, found: Found | None) -> PlanItem:
    """What `status` shows for a step: its ids and live status word, or absent."""
    if found is None:
        return PlanItem(step.key, step.title, "absent", status="absent")
    return PlanItem(step.key, step.title, "exists", step.describe(found), status=step.status(found))


def unread_item(step: Step, exc: EksPrivateError) -> PlanItem:
    """`plan`'s item for a step it could not read."""
    return PlanItem(step.key, step.title, "unknown", details=[f"could not read: {exc.message}"])


def status_key(kind: str, name: str) -> str:
    """The step a live AWS status a waiter saw belongs to (the real phases, shown against it)."""
    return {"cluster": "cluster", "endpoint": "endpoints"}.get(kind, f"nodegroup/{name}")


def summarize(outcomes: list[Outcome]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.phase] = counts.get(o.phase, 0) + 1
    return counts
