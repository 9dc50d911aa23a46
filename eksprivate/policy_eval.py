"""A small IAM-style evaluator for resource policies such as VPC endpoint policies.

Pure (no AWS calls). `verify` and the `vpc_id` endpoint check judge a live endpoint's policy with it, by asking
what it allows for the requests a node, a pod and an intruder make (`eksprivate.perimeter.openings`), and the
tests evaluate the policies eksprivate writes on the same requests.

What it models, as the IAM User Guide states it ("Policy evaluation logic", "IAM JSON policy elements:
Condition operators", "Condition with multiple context keys or values"):
- a request is allowed when some Allow statement matches it and no Deny statement does (explicit deny wins;
  nothing matching is an implicit deny);
- Principal / NotPrincipal: "*" and {"AWS": "*"} match everyone, anonymous callers included; an account id,
  `arn:<partition>:iam::<account>:root` or a principal's ARN match that account's principals or that one;
  {"Service": ...} matches that service principal only;
- Action / NotAction: case-insensitive, with the `*` and `?` wildcards; Resource / NotResource: case-sensitive,
  with the same wildcards;
- the String*, Arn*, Bool and Null condition operators, their `IfExists` forms and the `ForAnyValue:` /
  `ForAllValues:` qualifiers; every operator of a statement and every key of an operator must hold (AND), any
  value of a key may match (OR);
- a key missing from the request: a positive operator is false, a negated one (StringNotEquals, ArnNotLike...)
  true, `...IfExists` true, ForAllValues true, ForAnyValue false, Null true when it asks for "true".

Anything else (other operators, policy variables) raises `Unjudged`: a caller that cannot judge says so
rather than guessing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

Decision = Literal["Allow", "Deny", "ImplicitDeny"]


class Unjudged(ValueError):
    """The policy uses something this evaluator does not model."""


@dataclass(frozen=True)
class Request:
    """One call through an endpoint, as the endpoint policy sees it.

    `principal_account` None is an anonymous (unsigned) call, such as STS AssumeRoleWithWebIdentity.
    `context` holds the global condition keys the request carries (aws:PrincipalAccount, aws:ResourceAccount,
    ...); keys the caller does not set are missing, as on AWS.
    """

    action: str
    resource: str
    principal_account: str | None = None
    principal_arn: str | None = None
    service_principal: str | None = None
    context: Mapping[str, str | tuple[str, ...]] = field(default_factory=dict)


@lru_cache(maxsize=512)
def _pattern(glob: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile(f"^{body}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def glob_match(glob: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM's wildcard match: `*` any run of characters, `?` one character."""
    if "${" in glob:
        raise Unjudged(f"policy variable in {glob!r}")
    return bool(_pattern(glob, ignore_case).match(value))


def _listed(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    if isinstance(value, bool):  # Bool conditions are often written as JSON booleans
        return [str(value).lower()]
    raise Unjudged(f"unexpected policy value {value!r}")


def _principal_matches(spec: Any, request: Request) -> bool:
    if spec == "*":
        return True
    if not isinstance(spec, dict):
        raise Unjudged(f"Principal {spec!r}")
    for kind, values in spec.items():
        for value in _listed(values):
            if kind == "AWS":
                if value == "*":
                    return True
                if request.principal_account is None:
                    continue
                if value in (request.principal_account, _root(value, request.principal_account)):
                    return True
                if request.principal_arn is not None and value == request.principal_arn:
                    return True
            elif kind == "Service":
                if value == "*" or value == request.service_principal:
                    return True
            else:
                raise Unjudged(f"Principal type {kind!r}")
    return False


def _root(value: str, account: str) -> str | None:
    """`value` when it is the root ARN of `account` in any partition (arn:<p>:iam::<account>:root)."""
    parts = value.split(":")
    if len(parts) == 6 and parts[0] == "arn" and parts[2] == "iam" and parts[4] == account and parts[5] == "root":
        return value
    return None


_STRING_OPERATORS = {
    "StringEquals": (False, False, False), "StringNotEquals": (True, False, False),
    "StringEqualsIgnoreCase": (False, False, True), "StringNotEqualsIgnoreCase": (True, False, True),
    "StringLike": (False, True, False), "StringNotLike": (True, True, False),
    "ArnEquals": (False, True, False), "ArnNotEquals": (True, True, False),
    "ArnLike": (False, True, False), "ArnNotLike": (True, True, False),
}  # operator -> (negated, wildcards, ignore case). IAM: ArnEquals and ArnLike behave the same.


def _value_matches(operator: str, policy_value: str, request_value: str) -> bool:
    _, wildcards, ignore_case = _STRING_OPERATORS[operator]
    if operator.startswith("Arn"):
        return _arn_like(policy_value, request_value)
    if wildcards:
        return glob_match(policy_value, request_value, ignore_case=ignore_case)
    return policy_value.lower() == request_value.lower() if ignore_case else policy_value == request_value


def _arn_like(policy_value: str, request_value: str) -> bool:
    """IAM matches ARNs part by part (the six colon-separated parts), each with wildcards."""
    want, got = policy_value.split(":", 5), request_value.split(":", 5)
    if len(want) != 6 or len(got) != 6:
        return False
    return all(glob_match(w, g) for w, g in zip(want, got, strict=True))


def _condition_holds(raw_operator: str, key: str, policy_values: list[str], request: Request) -> bool:
    qualifier, _, operator = raw_operator.rpartition(":")
    if_exists = operator.endswith("IfExists")
    operator = operator.removesuffix("IfExists")
    # Condition keys are case-insensitive (IAM User Guide, "IAM JSON policy elements: Condition").
    raw = next((v for k, v in request.context.items() if k.lower() == key.lower()), None)
    present = raw is not None
    values = [] if raw is None else [raw] if isinstance(raw, str) else list(raw)
    if operator == "Null":
        if if_exists or qualifier:
            raise Unjudged(f"condition operator {raw_operator}")
        return any((v.lower() == "true") == (not present) for v in policy_values)
    if operator == "Bool":
        if not present:
            return if_exists
        return any(v.lower() == p.lower() for v in values for p in policy_values)
    if operator not in _STRING_OPERATORS:
        raise Unjudged(f"condition operator {raw_operator}")
    negated = _STRING_OPERATORS[operator][0]
    if qualifier not in ("", "ForAnyValue", "ForAllValues"):
        raise Unjudged(f"condition qualifier {qualifier}")
    if not present:
        if qualifier == "ForAllValues":
            return True
        if qualifier == "ForAnyValue":
            return False
        return if_exists or negated

    def one(value: str) -> bool:
        hit = any(_value_matches(operator, p, value) for p in policy_values)
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        return all(one(v) for v in values)
    return any(one(v) for v in values)


def _conditions_hold(conditions: Any, request: Request) -> bool:
    if conditions is None:
        return True
    if not isinstance(conditions, dict):
        raise Unjudged(f"Condition {conditions!r}")
    for operator, keys in conditions.items():
        if not isinstance(keys, dict):
            raise Unjudged(f"Condition {operator}: {keys!r}")
        for key, values in keys.items():
            if not _condition_holds(operator, key, _listed(values), request):
                return False
    return True


def statement_matches(statement: Mapping[str, Any], request: Request) -> bool:
    """Whether one statement applies to `request` (whatever its Effect)."""
    if "NotPrincipal" in statement:
        if _principal_matches(statement["NotPrincipal"], request):
            return False
    elif not _principal_matches(statement.get("Principal"), request):
        return False
    if "NotAction" in statement:
        if any(glob_match(a, request.action, ignore_case=True) for a in _listed(statement["NotAction"])):
            return False
    elif not any(glob_match(a, request.action, ignore_case=True) for a in _listed(statement.get("Action"))):
        return False
    if "NotResource" in statement:
        if any(glob_match(r, request.resource) for r in _listed(statement["NotResource"])):
            return False
    elif not any(glob_match(r, request.resource) for r in _listed(statement.get("Resource"))):
        return False
    return _conditions_hold(statement.get("Condition"), request)


def statements(policy: Mapping[str, Any] | str) -> list[dict[str, Any]]:
    """The statements of a policy (a document or its JSON text), as a list."""
    document = json.loads(policy) if isinstance(policy, str) else policy
    found = document.get("Statement", [])
    listed = [found] if isinstance(found, dict) else list(found)
    if not all(isinstance(s, dict) for s in listed):
        raise Unjudged("a Statement that is not an object")
    return listed


def decide(policy: Mapping[str, Any] | str, request: Request) -> Decision:
    """Allow, Deny (an explicit deny matched) or ImplicitDeny (no allow matched)."""
    allowed = False
    for statement in statements(policy):
        if statement_matches(statement, request):
            if statement.get("Effect") == "Deny":
                return "Deny"
            allowed = allowed or statement.get("Effect") == "Allow"
    return "Allow" if allowed else "ImplicitDeny"


def allows(policy: Mapping[str, Any] | str, request: Request) -> bool:
    return decide(policy, request) == "Allow"

