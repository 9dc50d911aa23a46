"""Waits poll at the usual pace early and faster near the phase's expected end (`aws.paced`), so a critical
wait ends at most 3 s after AWS is done instead of up to 15 s (7.5 s on average)."""

from __future__ import annotations

import pytest

from eksprivate.aws import EXPECTED, REAL_POLL_SECONDS, expected_for, paced


def poll_times(phases: list[tuple[float, float]]) -> list[float]:
    """When a paced wait polls: each phase polls at once, then after every pause until its span is used."""
    times, at = [], 0.0
    for pause, span in phases:
        end = at + span
        times.append(at)
        while at + pause <= end + 1e-9:
            at += pause
            times.append(at)
        at = max(at, end)
    return times


def worst_lag(phases: list[tuple[float, float]], low: float, high: float) -> float:
    times = poll_times(phases)
    lags = []
    done = low
    while done <= high:
        lags.append(next(t for t in times if t >= done) - done)
        done += 0.5
    return max(lags)


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_a_phase_ending_when_expected_is_seen_within_3_s(kind: str) -> None:
    """Naive fixed 15 s polling sees the end up to 15 s late (the assertion fails for it)."""
    low, high = EXPECTED[kind]
    phases = paced(REAL_POLL_SECONDS, 3 * 3600, expected_for(kind, REAL_POLL_SECONDS))
    assert worst_lag(phases, low, high) <= 3.0
    assert worst_lag([(REAL_POLL_SECONDS, 3 * 3600)], low, high) > 3.0  # what naive polling gives


def test_pacing_stays_inside_the_timeout_and_slows_down_on_a_long_tail() -> None:
    phases = paced(15, 2400, expected_for("cluster_create", 15))
    assert sum(span for _, span in phases) == pytest.approx(2400)
    assert phases[0][0] == 15 and phases[1][0] == 3 and phases[-1][0] == 15
    fast_polls = phases[1][1] / phases[1][0]
    assert fast_polls < 120  # about 0.33 DescribeCluster a second for a few minutes: far inside the rate limit


def test_the_expected_durations_scale_with_the_poll() -> None:
    """A sandbox at time scale s polls every 15 s x s: its expected durations shrink by s too."""
    assert expected_for("cluster_create", 0.15) == pytest.approx((4.8, 7.2))
    assert expected_for("unknown", 15) is None and paced(15, 60, None) == [(15, 60)]


def test_a_wait_on_what_was_just_seen_looks_first_after_one_pause() -> None:
    """A step's `ready` has just read its resource (CREATING): a botocore waiter would read it again at once.
    With `seen_now` the first DescribeCluster comes one pause later, and the wait still ends on ACTIVE."""
    import time

    from botocore.stub import Stubber

    from eksprivate.aws import Aws

    aws = Aws("eu-central-1", credentials={"aws_access_key_id": "x", "aws_secret_access_key": "x"})
    eks = aws.eks.raw
    looked: list[float] = []
    eks.meta.events.register("provide-client-params.eks.DescribeCluster", lambda **_: looked.append(time.monotonic()))
    cluster = {"name": "c", "arn": "arn:aws:eks:eu-central-1:123456789012:cluster/c"}
    with Stubber(eks) as stub:
        stub.add_response("describe_cluster", {"cluster": {**cluster, "status": "CREATING"}}, {"name": "c"})
        stub.add_response("describe_cluster", {"cluster": {**cluster, "status": "ACTIVE"}}, {"name": "c"})
        start = time.monotonic()
        aws.wait("eks", "cluster_active", delay=0.2, timeout=5.0, what="EKS cluster c", seen_now=True, name="c")
        stub.assert_no_pending_responses()
    assert len(looked) == 2
    assert looked[0] - start >= 0.2
