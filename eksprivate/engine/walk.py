"""How the engine runs: one thread per step, each waiting for the steps it depends on, a failed one's
dependents skipped, Ctrl-C cancelling what has not started, and one `RunFailed` at the end naming the first
failure (the others finished, and everything is recorded).

A step depends on others in three ways (`Edges`, from `Step.needs`, `needs_created`, `ready_needs`): ready
before it starts, created before it starts, ready before its own `ready`. For the middle one each step has a
*created* event besides its *done* event, set by the work through `made()` once the step's resource exists."""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from eksprivate.engine.showing import Outcome, Reporter
from eksprivate.errors import EksPrivateError, Interrupted
from eksprivate.steps import Step


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


def reverse(steps: list[Step], needs: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """The graph reversed (for `down`): a step waits for every step that needs it."""
    return {s.key: tuple(o.key for o in steps if s.key in needs[o.key]) for s in steps}


def walk(steps: list[Step], edges: Edges, work: Callable[[Step, Made], Outcome], verb: str,
         reporter: Reporter, cancel: threading.Event, quiet: bool = False) -> list[Outcome]:
    """`work` on every step once what `edges` names for it is done (or created); the outcomes in `steps`' order."""
    done = {s.key: threading.Event() for s in steps}
    created = {s.key: threading.Event() for s in steps}
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
            # A step sets `created` without `made` only once it ended: then its outcome judges it.
            blocked = [d for d in edges.start[key] if not outcomes[d].ok] + [
                d for d in edges.created.get(key, ()) if d not in made_keys and not outcomes[d].ok]
            start = time.monotonic()
            if blocked:
                outcome = Outcome(step.key, step.title, "skipped", f"waits for {', '.join(blocked)}")
            elif cancel.is_set():
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
                reporter.phase(step.key, step.title, outcome.phase, outcome.detail)
        finally:
            created[key].set()
            done[key].set()

    threads = [threading.Thread(target=worker, args=(s,), name=s.key, daemon=True) for s in steps]
    for s in steps:
        reporter.phase(s.key, s.title, "pending") if not quiet else None
    try:
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.2)  # short joins keep Ctrl-C deliverable to the main thread
    except KeyboardInterrupt:
        cancel.set()
        raise Interrupted(f"{verb} interrupted; everything made so far is recorded in the state file",
                          f"rerun `eksprivate {verb}` to resume") from None
    result = [outcomes[s.key] for s in steps]
    if any(o.phase == "failed" for o in result):
        raise RunFailed(result, verb)
    return result
