"""A given role's trust policy, judged per partition: the service principal AWS expects there (EC2's is
ec2.amazonaws.com.cn in China), every action the service needs (Pod Identity: sts:AssumeRole and sts:TagSession),
an Allow, and the shapes IAM returns (one statement or a list, strings or lists)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from eksprivate import partitions
from eksprivate.steps.given_roles import service_principals, trusts


def _trust(service: Any, action: Any, effect: str = "Allow", many: bool = True) -> dict[str, Any]:
    statement = {"Effect": effect, "Principal": {"Service": service}, "Action": action}
    return {"Version": "2012-10-17", "Statement": [statement] if many else statement}


@pytest.mark.parametrize(("partition", "document", "actions", "ok"), [
    ("aws-cn", _trust("ec2.amazonaws.com.cn", "sts:AssumeRole"), ("sts:AssumeRole",), True),
    ("aws-cn", _trust(["ec2.amazonaws.com"], ["sts:AssumeRole"]), ("sts:AssumeRole",), True),
    ("aws", _trust("ec2.amazonaws.com.cn", "sts:AssumeRole"), ("sts:AssumeRole",), False),
    ("aws", _trust("ec2.amazonaws.com", "sts:*", many=False), ("sts:AssumeRole",), True),
    ("aws", _trust("ec2.amazonaws.com", "sts:AssumeRole", effect="Deny"), ("sts:AssumeRole",), False),
    ("aws", _trust("ec2.amazonaws.com", "sts:AssumeRole"), ("sts:AssumeRole", "sts:TagSession"), False),
    ("aws", _trust("ec2.amazonaws.com", ["sts:AssumeRole", "sts:TagSession"]), ("sts:AssumeRole", "sts:TagSession"),
     True),
])
def test_trust_is_judged_in_the_callers_partition(partition: str, document: dict[str, Any],
                                                  actions: tuple[str, ...], ok: bool) -> None:
    ctx: Any = SimpleNamespace(partition=partitions.Partition(partition))
    assert trusts(document, service_principals(ctx, "ec2"), actions) is ok
