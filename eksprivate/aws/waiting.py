"""Waiting on AWS: boto3's waiters (and ours, waiters/<service>.json) paced faster near a phase's expected end,
and EKS updates through DescribeUpdate, which botocore has no waiter for."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

import botocore.exceptions as bx
from botocore.waiter import WaiterModel, create_waiter_with_client

from eksprivate.aws.errors import (
    Client,
    access_denied,
    error_class,
    failure_detail,
    operation_name,
    translate,
    update_errors,
)
from eksprivate.aws.retries import expected_for, paced, pause_at
from eksprivate.errors import AccessDenied, AwsApiError, EksPrivateError, ResourceFailed, WaitTimeout


def _custom_waiters(service: str) -> WaiterModel:
    text = resources.files("eksprivate").joinpath(f"waiters/{service}.json").read_text()
    return WaiterModel(json.loads(text))


class _PhaseOver(Exception):
    """One pace of a paced wait ran out of attempts: the next pace takes over."""


def wait_for(client: Client, waiter_name: str, *, delay: float, timeout: float, what: str,
             expected: str | None = None, seen_now: bool = False, **kwargs: Any) -> None:
    """Wait with a boto3 waiter (or one of ours) until it succeeds, fails, or `timeout` passes. `expected`
    names the wait's EXPECTED duration: polled faster near its end (`paced`). `seen_now`: the caller has just
    read the resource in the state this wait waits out (a step's `ready` after its create or find), so the
    first look comes one pause later rather than at once (a botocore waiter's first attempt is immediate): the
    polls fall on the same grid, one call fewer per wait."""
    service = client.service
    try:
        if waiter_name in client.raw.waiter_names:
            waiter = client.raw.get_waiter(waiter_name)
        else:
            waiter = create_waiter_with_client(waiter_name, _custom_waiters(service), client.raw)
    except (ValueError, bx.WaiterConfigError) as exc:
        raise EksPrivateError(f"no waiter {waiter_name} for {service}: {exc}") from exc
    phases = paced(delay, timeout, expected_for(expected, delay) if expected else None)
    if seen_now and phases[0][0] > 0:
        first_pause, first_span = phases[0]
        time.sleep(first_pause)
        phases[0] = (first_pause, max(first_span - first_pause, 0.0))
    for number, (pause, span) in enumerate(phases, 1):
        try:
            _wait_phase(waiter, pause, span, **kwargs)
            return
        except _PhaseOver:
            if number == len(phases):
                raise WaitTimeout(f"{what} did not finish within {timeout / 60:.0f} min",
                                  "it may still finish: check the console, then rerun to resume") from None
        except bx.WaiterError as exc:
            _waiter_failed(exc, service, waiter_name, what, waiter.config.operation, client.prefix)
        except (bx.ClientError, bx.BotoCoreError) as exc:
            raise translate(exc, service, waiter_name, client.prefix) from exc


def _wait_phase(waiter: Any, pause: float, span: float, **kwargs: Any) -> None:
    """One pace of a wait: a fixed pause, at least one attempt, enough of them to cover `span`."""
    attempts = max(1, math.ceil(span / pause)) if pause > 0 else 1_000_000
    try:
        waiter.wait(WaiterConfig={"Delay": pause, "MaxAttempts": attempts}, **kwargs)
    except bx.WaiterError as exc:
        reason = str(exc.kwargs.get("reason", "")) if hasattr(exc, "kwargs") else str(exc)
        if "Max attempts exceeded" in reason:
            raise _PhaseOver from exc
        raise


def _waiter_failed(exc: Exception, service: str, waiter_name: str, what: str, operation: str = "",
                   prefix: str = "") -> None:
    """A waiter that ended on a failure state or an error: raise the project's error for it."""
    reason = str(getattr(exc, "kwargs", {}).get("reason", "")) if hasattr(exc, "kwargs") else str(exc)
    last = getattr(exc, "last_response", None) or {}
    if "Error" in last and last["Error"].get("Code"):
        err = last["Error"]
        code, message = str(err.get("Code")), str(err.get("Message", ""))
        if error_class(code) is AccessDenied:  # the wait's polls refused: say what to grant
            raise access_denied(service, operation_name(waiter_name), code, message, prefix=prefix,
                                action_of=operation) from exc
        raise AwsApiError(service, operation_name(waiter_name), code, message) from exc
    raise ResourceFailed(f"{what} failed: {failure_detail(last) or reason}") from exc


def wait_for_update(eks: Client, cluster: str, update_id: str, *, nodegroup: str | None = None,
                    addon: str | None = None, delay: float, timeout: float, what: str,
                    expected: str | None = None,
                    progress: Callable[[str, float], None] | None = None) -> dict[str, Any]:
    """Poll EKS DescribeUpdate (botocore has no waiter for it) until the update leaves InProgress.

    Successful: returns the update. Failed or Cancelled: ResourceFailed naming the update id, its type
    and AWS's error details (the change was not made, though the cluster reads ACTIVE again). Still
    InProgress after `timeout`: WaitTimeout (a rerun waits on the same update). `progress(status, seconds
    waited)` is told after every poll that did not end the wait."""
    args: dict[str, Any] = {"name": cluster, "updateId": update_id}
    if nodegroup is not None:
        args["nodegroupName"] = nodegroup
    if addon is not None:  # an UpdateAddon's update
        args["addonName"] = addon
    start = time.monotonic()
    end = start + timeout
    phases = paced(delay, timeout, expected_for(expected, delay) if expected else None)
    while True:
        update: dict[str, Any] = eks.describe_update(**args)["update"]
        status = str(update.get("status", ""))
        if status == "Successful":
            return update
        if status in ("Failed", "Cancelled"):
            raise ResourceFailed(f"{what}: update {update_id} ({update.get('type', 'unknown type')}) "
                                 f"{status}: {update_errors(update)}",
                                 "the change was not made; fix what AWS names, then rerun to try again")
        if progress is not None:
            progress(status, time.monotonic() - start)
        pause = pause_at(phases, time.monotonic() - start)
        if time.monotonic() + pause > end:  # InProgress (or a status this code does not know yet)
            raise WaitTimeout(f"{what}: update {update_id} did not finish within {timeout / 60:.0f} min",
                              "it may still finish: rerun to wait on the same update")
        time.sleep(pause)
