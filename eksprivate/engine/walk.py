"""How the engine runs: one thread per step, each waiting for the steps it depends on, a failed one's
dependents skipped, Ctrl-C cancelling what has not started, and one `RunFailed` at the end naming the first
failure (the others finished, and everything is recorded)."""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable

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


def reverse(steps: list[Step], needs: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """The graph reversed (for `down`): a step waits for every step that needs it."""
    return {s.key: tuple(o.key for o in steps if s.key in needs[o.key]) for s in steps}


def walk(steps: list[Step], deps: dict[str, tuple[str, ...]], work: Callable[[Step], Outcome], verb: str,
         reporter: Reporter, cancel: threading.Event, quiet: bool = False) -> list[Outcome]:
    """`work` on every step once the steps in `deps[step.key]` are done; the outcomes in `steps`' order."""
    done = {s.key: threading.Event() for s in steps}
    outcomes: dict[str, Outcome] = {}

    def worker(step: Step) -> None:
        try:
            for dep in deps[step.key]:
                done[dep].wait()
            blocked = [d for d in deps[step.key] if not outcomes[d].ok]
            start = time.monotonic()
            if blocked:
                outcome = Outcome(step.key, step.title, "skipped", f"waits for {', '.join(blocked)}")
            elif cancel.is_set():
                outcome = Outcome(step.key, step.title, "skipped", "interrupted")
            else:
                try:
                    outcome = work(step)
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
            done[step.key].set()

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
