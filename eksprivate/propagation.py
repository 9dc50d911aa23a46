"""IAM propagation: the refusals that mean "AWS cannot see a fresh role (or policy attachment) yet".

IAM is eventually consistent: a role made by CreateRole, or a policy attached by AttachRolePolicy, is
not visible to other services for seconds (rarely a minute). The service that uses it refuses meanwhile,
each in its own words. This module is the ONE list of those words, per (service, operation), and the
one retry loop for them. The AWS boundary (`aws.translate`) uses `is_propagating` to raise
`StillPropagating` instead of `InvalidParameter`; steps wrap the call in `retry_while_propagating`.

A genuinely wrong role (missing, trusting another service, without the managed policy) gets the same
answer as a young one, so the retry is bounded (`Timeouts.iam_propagation`) and then fails with one line
naming the role and AWS's message. Sources for every message: docs/aws-fidelity.md, iam-propagation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from eksprivate.errors import EksPrivateError, StillPropagating

T = TypeVar("T")

# Error codes under which these messages come (EKS: InvalidParameterException; EC2: InvalidParameter).
PROPAGATION_CODES = frozenset({"InvalidParameterException", "InvalidParameter", "InvalidRequestException"})


@dataclass(frozen=True)
class Refusals:
    """How one call refuses an IAM role it cannot use yet."""

    user: str  # who uses the role, for the final error line
    # Each entry matches when the message contains every fragment of it.
    messages: tuple[tuple[str, ...], ...]
    hint: str


PROPAGATION: dict[tuple[str, str], Refusals] = {
    ("eks", "CreateCluster"): Refusals(
        user="EKS (CreateCluster)",
        messages=(
            # "Role with arn: <arn>, could not be assumed because it does not exist or the trusted entity
            # is not correct" / "Role could not be assumed because the trusted entity is not correct"
            ("could not be assumed",),
            ("Error in role params",),
            # "roleArn, <arn>, does not exist"
            ("roleArn", "does not exist"),
            # "The provided role doesn't have the Amazon EKS Managed Policies associated with it. Please
            # ensure the following policy is attached: arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"
            ("The provided role doesn't have the Amazon EKS Managed Policies associated with it",),
            # "IAM role's policy must include the `ec2:DescribeSubnets` action"
            ("IAM role's policy must include",),
        ),
        hint="check that the role exists, trusts eks.amazonaws.com and has AmazonEKSClusterPolicy attached; "
             "if IAM is only slow, rerun to resume",
    ),
    ("eks", "CreateNodegroup"): Refusals(
        user="EKS (CreateNodegroup)",
        messages=(
            # "Following required service principals [ec2.amazonaws.com] were not found in the trust
            # relationships of nodeRole <arn>"
            ("were not found in the trust relationships of nodeRole",),
        ),
        hint="check that the node role exists and trusts ec2.amazonaws.com; if IAM is only slow, rerun to resume",
    ),
    ("ec2", "CreateFlowLogs"): Refusals(
        user="VPC flow logs (CreateFlowLogs)",
        messages=(
            # "Unable to assume given IAM role: '<arn>'" (terraform-provider-aws #29323)
            ("Unable to assume given IAM role",),
        ),
        hint="check that the role exists and trusts vpc-flow-logs.amazonaws.com (its conditions too); "
             "if IAM is only slow, rerun to resume",
    ),
}


def is_propagating(service: str, operation: str, code: str, message: str, *, any_code: bool = False) -> bool:
    """Whether AWS's refusal of `service` `operation` is one a fresh IAM role or attachment gets.
    `any_code`: judge by the message alone (a refusal reported in a response body, whose codes AWS does not
    document as the error's)."""
    refusals = PROPAGATION.get((service, operation))
    if refusals is None or (code not in PROPAGATION_CODES and not any_code):
        return False
    return any(all(fragment in message for fragment in entry) for entry in refusals.messages)


class _Timeouts(Protocol):
    @property
    def iam_propagation(self) -> float: ...


class Pacing(Protocol):
    """What the retry needs from a step's Context."""

    @property
    def poll(self) -> float: ...

    @property
    def timeouts(self) -> _Timeouts: ...


def retry_pace(poll: float) -> float:
    """A third of the status poll, at most 5 s (15 s poll on AWS): propagation takes 2-30 s and every
    second of overshoot delays the whole `up`, so a fixed pace, not a backoff that overshoots by 15 s."""
    return max(min(poll / 3, 5.0), 0.05)


def retry_while_propagating(ctx: Pacing, call: Callable[[], T], *, role: str) -> T:
    """Run `call`; while it raises `StillPropagating`, run it again every `retry_pace` seconds, for at most
    `ctx.timeouts.iam_propagation` seconds. Then fail with one line naming `role` and AWS's message.

    An accepted first call costs nothing extra: no waiting when AWS accepts at once."""
    start = time.monotonic()
    end = start + ctx.timeouts.iam_propagation
    pace = retry_pace(ctx.poll)
    while True:
        try:
            return call()
        except StillPropagating as exc:
            if time.monotonic() + pace > end:
                refusals = PROPAGATION.get((exc.service, exc.operation))
                user = refusals.user if refusals else f"{exc.service} {exc.operation}"
                waited = time.monotonic() - start
                raise EksPrivateError(
                    f"IAM role {role} is still not usable by {user} after {waited:.0f} s: {exc.aws_message}",
                    refusals.hint if refusals else "rerun to resume") from exc
            time.sleep(pace)
