"""IAM policy documents as plain values: the leaf every step that writes or reads IAM policies imports.

It imports no step, so a step that owns a role or a policy (steps/iam.py's roles, the EBS CSI driver's role in
steps/addons.py, the pull-through cache's node-role policy in steps/pull_through.py) never has to import
another step to build or compare one. `steps.written_policies` collects what they write.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote

if TYPE_CHECKING:
    from eksprivate.partitions import Partition


def managed_policy(partition: Partition, name: str) -> str:
    """An AWS managed policy's ARN in the caller's partition (ctx.partition, from its ARN)."""
    return partition.managed_policy(name)


def trust_policy(service: str, conditions: dict[str, Any] | None = None,
                 actions: tuple[str, ...] = ("sts:AssumeRole",)) -> str:
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": {"Service": service},
                                 "Action": actions[0] if len(actions) == 1 else list(actions)}
    if conditions:
        statement["Condition"] = conditions
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def policy_document(value: Any) -> dict[str, Any] | None:
    """A policy document as IAM returns it: a dict (botocore decodes it) or URL-encoded JSON text."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value:
        try:
            return dict(json.loads(unquote(value)))
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class WrittenPolicy:
    """A policy document eksprivate writes to IAM."""

    role_key: str
    kind: Literal["identity", "trust"]  # PutRolePolicy / CreateRole's AssumeRolePolicyDocument
    document: dict[str, Any]
