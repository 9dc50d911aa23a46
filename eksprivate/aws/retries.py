"""Retries and pacing: botocore's retry policy for every client, the retry of errors AWS makes transient but
botocore never retries (`retry_transient`), and the pace of status polls (`poll_interval`, `paced`)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any

from botocore.config import Config

from eksprivate.errors import AwsApiError, UsageError

# Standard mode retries throttling and 5xx on every call, waiter polls included (aws-facts).
RETRY_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 10},
    max_pool_connections=32,
    connect_timeout=10,
    read_timeout=60,
)

POLL_ENV = "EKSPRIVATE_POLL_INTERVAL"


def poll_interval(default: float) -> float:
    """Seconds between status polls: `EKSPRIVATE_POLL_INTERVAL` overrides the real-AWS default."""
    raw = os.environ.get(POLL_ENV)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{POLL_ENV}={raw!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"{POLL_ENV}={raw!r} must be zero or a positive number of seconds")
    return value


# The pace a status wait runs at on real AWS (target.REAL_POLL_SECONDS); a smaller poll (the sandbox, tests)
# scales the expected durations below by the same factor.
REAL_POLL_SECONDS = 15.0
NEAR_END_FACTOR = 5  # near a phase's expected end poll 5x as often: 3 s on real AWS, lag <= 3 s (not 15 s)

# Real-world durations (seconds: typical low, high) of the waits on the critical path, from aws-facts and the
# sandbox's Timing: `up` polls at its usual pace until `low`, then fast until a little past `high`.
EXPECTED: dict[str, tuple[float, float]] = {
    "cluster_create": (480.0, 720.0),  # 8.5-9 min typical, 11-16 min tail (aws-facts)
    "nodegroup_create": (90.0, 330.0),  # 1.5-3.5 min typical, 5.5 min tail
    "cluster_delete": (150.0, 300.0),  # 2.5-4 min
    "nodegroup_delete": (240.0, 480.0),  # 4-8 min
    "cluster_version_update": (480.0, 660.0),  # 8-10 min (issue 12)
    "nodegroup_version_update": (300.0, 900.0),  # 5-15 min: depends on the node count and max unavailable
    "addon": (20.0, 90.0),  # about a minute (no published figure)
}


def paced(delay: float, timeout: float, expected: tuple[float, float] | None) -> list[tuple[float, float]]:
    """(pause, span) phases for a wait of at most `timeout`: `delay` until the phase's expected end draws near,
    `delay / NEAR_END_FACTOR` from its expected low to a little past its high, `delay` again after (a long
    tail is not polled fast for ever). `expected` is in the same (scaled) seconds as `delay`. At 3 s a poll,
    one Describe call per resource is far inside EKS's and EC2's request rate limits."""
    if not expected or delay <= 0:
        return [(delay, timeout)]
    low, high = expected
    fast = delay / NEAR_END_FACTOR
    slow_span = max(0.0, low - delay)  # the last slow pause ends before `low`
    fast_span = max(0.0, high - slow_span + 2 * delay)
    phases = [(delay, slow_span)] if slow_span >= delay else []
    phases.append((fast, min(fast_span, max(timeout - slow_span, fast))))
    rest = timeout - slow_span - fast_span
    if rest > 0:
        phases.append((delay, rest))
    return phases


def expected_for(kind: str, delay: float) -> tuple[float, float] | None:
    """EXPECTED[kind] scaled to the poll in use (a sandbox at time scale s polls at 15 s x s)."""
    if kind not in EXPECTED or delay <= 0:
        return None
    scale = delay / REAL_POLL_SECONDS
    low, high = EXPECTED[kind]
    return low * scale, high * scale


def pause_at(phases: list[tuple[float, float]], elapsed: float) -> float:
    """The pause of the phase `elapsed` seconds into a paced wait."""
    for pause, span in phases:
        if elapsed < span:
            return pause
        elapsed -= span
    return phases[-1][0]


def retry_transient(
    call: Callable[[], Any],
    errors: type[AwsApiError] | tuple[type[AwsApiError], ...],
    *,
    timeout: float,
    delay: float,
    message_contains: tuple[str, ...] = (),
    backoff: float = 1.5,
) -> Any:
    """Retry `call` while it fails with one of the typed `errors` (and a matching message), up to `timeout` s.

    For the errors botocore never retries but real AWS makes transient: DependencyViolation during
    teardown, InvalidParameterException while a new IAM role propagates. Pauses start at `delay` and
    grow by `backoff` (1.0: a fixed pace) up to 4 x `delay` (at most 15 s).
    """
    end = time.monotonic() + timeout
    pause = max(delay, 0.01)
    while True:
        try:
            return call()
        except errors as exc:
            transient = not message_contains or any(m in exc.aws_message for m in message_contains)
            if not transient or time.monotonic() + pause > end:
                raise
            time.sleep(pause)
            pause = min(pause * backoff, max(delay, 0.01) * 4, 15.0)
