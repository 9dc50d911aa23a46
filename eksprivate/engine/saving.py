"""What the engine saves: the ids each step found or made, in the ledger (state.py), the moment it knows them,
so a kill at any instant leaves a state the next run resumes from. Only ids (`Step.ids`), never live attributes:
an unchanged resource never rewrites the state. `plan` and `status` open the ledger read-only (`persist=False`),
so there this only fills it in memory for the steps that read their needs' ids."""

from __future__ import annotations

from eksprivate.steps import Context, Found, Step


def record(ctx: Context, step: Step, found: Found) -> None:
    """The ids `step` found or made (a write only when something is new)."""
    ctx.ledger.sync(step.key, step.ids(found))


def forget(ctx: Context, step: Step) -> None:
    """`step`'s resources are gone (deleted, or never there)."""
    ctx.ledger.forget(step.key)
