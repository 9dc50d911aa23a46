"""EKS's asynchronous updates (UpdateClusterConfig, UpdateNodegroupConfig), judged by the update itself.

An update call returns at once with an update id; the cluster (or node group) reads UPDATING meanwhile
and ACTIVE again when it ends, *whether it succeeded or failed*: only DescribeUpdate says which. So:

* the idempotency token is recorded before the call (ledger key `<step>/update...`), the update id the
  moment it returns; a run killed while waiting resumes waiting on that same update and never starts a
  second one on top of it;
* a second update is refused by EKS while one runs (ResourceInUseException, "Cannot LoggingUpdate
  because cluster x currently has update <id> in progress"): that ends by itself, so wait and retry;
* Failed or Cancelled is the step's failure (`ResourceFailed` naming the update id, type and AWS's errors).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from eksprivate.aws import EXPECTED, REAL_POLL_SECONDS
from eksprivate.errors import InUse, NotFound, ResourceFailed
from eksprivate.steps.base import Context

Update = dict[str, Any]
PROGRESS_EVERY = 60.0  # seconds of AWS time between two progress lines of a running update
PROGRESS_FLOOR = 5.0  # wall seconds: a fast sandbox says so at most this often


def apply_update(ctx: Context, step: str, key: str, call: Callable[[str], Any], *, what: str, timeout: float,
                 nodegroup: str | None = None, addon: str | None = None, expected: str | None = None) -> Update:
    """Start an update with `call(token)` (recorded under ledger `key`, shown against `step`) and wait
    until DescribeUpdate says Successful."""
    token = ctx.intent(key)  # the same token after a crash before the id came back: EKS answers that update
    end = time.monotonic() + timeout
    while True:
        try:
            update: Update = call(token)["update"]
            break
        except InUse:
            # Another update (an earlier one of ours, someone else's, or EKS's own patching) is running.
            if time.monotonic() + ctx.poll > end:
                raise
            ctx.check_cancel()
            ctx.say(step, "waiting for the update in progress to finish (EKS runs one at a time)")
            time.sleep(ctx.poll)
    ctx.ledger.record(key, update_id=update["id"], update_type=update.get("type", ""))
    return wait_recorded(ctx, step, key, what=what, timeout=timeout, nodegroup=nodegroup, addon=addon,
                         expected=expected) or update


def wait_recorded(ctx: Context, step: str, key: str, *, what: str, timeout: float,
                  nodegroup: str | None = None, addon: str | None = None,
                  expected: str | None = None) -> Update | None:
    """Wait on the update recorded under `key`; forget it once it ended (successful or not). None when AWS
    no longer knows the id (the cluster it belonged to is gone)."""
    ids = ctx.ledger.ids(key)
    update_id = ids["update_id"]
    ctx.say(step, f"waiting for update {update_id} ({ids.get('update_type', '')})")
    try:
        # `expected`: the update's typical duration (aws.EXPECTED), polled faster near its end
        update = ctx.aws.wait_update(ctx.name, update_id, nodegroup=nodegroup, addon=addon, delay=ctx.poll,
                                     timeout=timeout, what=what, expected=expected,
                                     progress=Ticker(ctx, step, what, expected))
    except NotFound:
        ctx.ledger.forget(key)
        return None
    except ResourceFailed:
        ctx.ledger.forget(key)  # judged: the next run may try the change again
        raise
    ctx.ledger.forget(key)
    return update


class Ticker:
    """Progress lines while an update runs (a control plane upgrade is 8-10 silent minutes otherwise): one
    line each PROGRESS_EVERY seconds of AWS time (the poll's scale: a sandbox's scaled minutes), never more
    often than PROGRESS_FLOOR wall seconds. Each line is new news (its elapsed time), so the plain view prints
    every one."""

    def __init__(self, ctx: Context, step: str, what: str, expected: str | None) -> None:
        self.ctx, self.step, self.what = ctx, step, what
        scale = ctx.poll / REAL_POLL_SECONDS if ctx.poll > 0 else 1.0
        self.every = max(PROGRESS_EVERY * scale, PROGRESS_FLOOR)
        typical = EXPECTED.get(expected or "")
        self.typical = f"; EKS typically takes {typical[0] / 60:.0f}-{typical[1] / 60:.0f} min" if typical else ""
        self.said = 0

    def __call__(self, status: str, waited: float) -> None:
        ticks = int(waited // self.every)
        if ticks > self.said:
            self.said = ticks
            minutes, seconds = divmod(int(waited), 60)
            self.ctx.say(self.step, f"{self.what}: {status} for {minutes}:{seconds:02d}{self.typical}")


def resume_updates(ctx: Context, step: str, prefix: str, *, what: str, timeout: float, nodegroup: str | None = None,
                   addon: str | None = None, expected: str | None = None,
                   still_wanted: Callable[[str], bool] = lambda key: True) -> list[str]:
    """Updates an earlier (killed) run started: wait on each recorded id instead of starting another.

    A token recorded without an id (killed between the call and its answer) is kept for the next call of
    the same change, which EKS then answers with the update the token started; dropped when that change is
    no longer wanted."""
    done = []
    for key, entry in sorted(ctx.ledger.snapshot()["steps"].items()):
        if key != prefix and not key.startswith(prefix + "/"):
            continue
        ids = entry.get("ids") or {}
        if ids.get("update_id"):
            update = wait_recorded(ctx, step, key, what=what, timeout=timeout, nodegroup=nodegroup, addon=addon,
                                   expected=expected)
            if update is not None:
                done.append(f"finished update {update['id']} ({update.get('type', '')}) started by an earlier run")
        elif not still_wanted(key):
            ctx.ledger.forget(key)
    return done


def recorded_updates(ctx: Context, prefix: str) -> list[str]:
    """For `plan`: the updates an earlier run started and `up` will wait on first."""
    out = []
    for key, entry in sorted(ctx.ledger.snapshot()["steps"].items()):
        ids = entry.get("ids") or {}
        if (key == prefix or key.startswith(prefix + "/")) and ids.get("update_id"):
            out.append(f"wait for update {ids['update_id']} ({ids.get('update_type', '')}) started by an earlier run")
    return out
