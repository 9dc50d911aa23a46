"""IAM's policy simulator (SimulatePrincipalPolicy), which moto does not have.

The sandbox answers it from the operator policy a test enforces (`operator_policy`), as IAM answers it from the
principal's policies: for each action in `ActionNames`, a result whose `ResourceSpecificResults` give the
decision ("allowed", "implicitDeny", "explicitDeny") on each of `ResourceArns` (default `*`) with the
`ContextEntries` as the request context; the top-level `EvalDecision` is "allowed" only when every resource is.
Without an enforced policy every action is allowed, as every call is. Only what `plan --check-permissions`
sends is read (no resource policies, no pagination: one page, `IsTruncated` false). Source: botocore `iam` model,
`SimulatePrincipalPolicy` and `EvaluationResult`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from eksprivate.sandbox.operator_policy import Check, Environ, Response, decision, request_body


def _members(form: dict[str, list[str]], prefix: str) -> list[str]:
    """A query-protocol list, `<prefix>.member.1`, `<prefix>.member.2`, ... in order."""
    out, n = [], 1
    while f"{prefix}.member.{n}" in form:
        out.append(form[f"{prefix}.member.{n}"][0])
        n += 1
    return out


def _context(form: dict[str, list[str]]) -> dict[str, str]:
    """ContextEntries: each key with its first value (what the checks of one call carry)."""
    context, n = {}, 1
    while f"ContextEntries.member.{n}.ContextKeyName" in form:
        values = _members(form, f"ContextEntries.member.{n}.ContextKeyValues")
        if values:
            context[form[f"ContextEntries.member.{n}.ContextKeyName"][0]] = values[0]
        n += 1
    return context


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def answer(environ: Environ, policy: Mapping[str, Any] | None) -> Response:
    form = parse_qs(request_body(environ).decode("utf-8", "replace"))
    resources = _members(form, "ResourceArns") or ["*"]
    context = _context(form)
    results = []
    for action in _members(form, "ActionNames"):
        decisions = [(r, "allowed" if policy is None else decision(policy, Check(action, r, context)))
                     for r in resources]
        specific = "".join(f"<member><EvalResourceName>{_xml(r)}</EvalResourceName><EvalResourceDecision>{d}"
                           f"</EvalResourceDecision></member>" for r, d in decisions)
        overall = next((d for _, d in decisions if d == "explicitDeny"), None) or next(
            (d for _, d in decisions if d != "allowed"), "allowed")
        results.append(f"<member><EvalActionName>{_xml(action)}</EvalActionName><EvalResourceName>*"
                       f"</EvalResourceName><EvalDecision>{overall}</EvalDecision><ResourceSpecificResults>"
                       f"{specific}</ResourceSpecificResults></member>")
    body = ('<SimulatePrincipalPolicyResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
            f"<SimulatePrincipalPolicyResult><IsTruncated>false</IsTruncated><EvaluationResults>{''.join(results)}"
            f"</EvaluationResults></SimulatePrincipalPolicyResult><ResponseMetadata><RequestId>{uuid.uuid4()}"
            "</RequestId></ResponseMetadata></SimulatePrincipalPolicyResponse>")
    return 200, [("Content-Type", "text/xml")], body.encode()
