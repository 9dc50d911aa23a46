"""`plan --check-permissions`: which actions of the policy `eksprivate permissions` prints the caller lacks, asked of
IAM's policy simulator (iam:SimulatePrincipalPolicy) before anything is made.

The simulator evaluates the caller's own policies (identity policies, its permissions boundary, and the
organization's SCPs where they apply) for each action on the resources and with the condition values the real
call would carry: one request per set of resources and condition values, every action of that set in it. What it
cannot see (session policies of an assumed role, resource policies) is not judged, so "nothing missing" is a
strong hint, not a promise. When the caller may not simulate (the printed policy does not include
iam:SimulatePrincipalPolicy: grant it on the caller itself to use this), or is not an IAM user or role (the
account root, a federated user), the check says so and `plan` goes on.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from eksprivate.errors import AccessDenied, AwsApiError, NotFound
from eksprivate.grants import ALWAYS_ALLOWED

if TYPE_CHECKING:
    from eksprivate.permissions import Entry
    from eksprivate.steps.base import Context


@dataclass(frozen=True, order=True)
class Missing:
    """One action the caller may not call on one resource (`decision`: implicitDeny or explicitDeny)."""

    action: str
    resource: str
    decision: str
    verbs: tuple[str, ...] = ()

    @property
    def line(self) -> str:
        how = " (explicitly denied)" if self.decision == "explicitDeny" else ""
        return f"{self.action} on {self.resource}{how}, for {'/'.join(self.verbs)}"


@dataclass
class PermissionCheck:
    checked: bool
    missing: list[Missing] = field(default_factory=list)
    why_not: str = ""  # when not checked: why
    principal: str = ""
    # Actions whose resources name a policy variable (`${aws:userid}`): the simulator takes resource ARNs
    # literally, and a literal variable never matches the policy's, so they are left out rather than misjudged.
    unsimulated: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"checked": self.checked, "principal": self.principal, "why_not": self.why_not,
                "missing": [{"action": m.action, "resource": m.resource, "decision": m.decision,
                             "verbs": list(m.verbs)} for m in self.missing],
                "unsimulated": self.unsimulated}

    def lines(self) -> list[str]:
        if not self.checked:
            return [f"permissions not checked: {self.why_not}"]
        left_out = ([f"  not simulated (resources named with a policy variable): {', '.join(self.unsimulated)}"]
                    if self.unsimulated else [])
        if not self.missing:
            return [f"permissions: {self.principal} may make every call eksprivate needs (IAM's policy simulator)",
                    *left_out]
        return [f"permissions: {self.principal} lacks {len(self.missing)} (grant them; `eksprivate permissions` "
                "prints the whole policy):", *(f"  missing {m.line}" for m in self.missing), *left_out]


def _principal(ctx: Context) -> tuple[str | None, str]:
    """The IAM user or role whose policies the simulator evaluates, or None and why not."""
    arn = ctx.aws.caller_arn()
    kind = arn.split(":", 5)[-1]
    if kind == "root":
        return None, "the caller is the account's root user, whom IAM policies do not limit"
    if kind.startswith("assumed-role/"):
        name = kind.split("/")[1]
        try:  # the role's ARN has its path (SSO roles live under /aws-reserved/...), the session's does not
            return str(ctx.aws.iam.get_role(RoleName=name)["Role"]["Arn"]), ""
        except AccessDenied:
            return ctx.arns.role(name), ""
        except NotFound:
            return None, f"the caller's role {name} was not found"
    if kind.startswith("user/"):
        return arn, ""
    return None, f"the caller ({arn}) is neither an IAM user nor a role"


def _context_entries(context: tuple[tuple[str, str, str], ...]) -> list[dict[str, Any]]:
    return [{"ContextKeyName": key, "ContextKeyValues": [value],
             "ContextKeyType": "boolean" if operator.startswith("Bool") else "string"}
            for operator, key, value in context]


def check(ctx: Context, entries: list[Entry]) -> PermissionCheck:
    """Simulate every entry of the policy for the caller; see the module docstring."""
    principal, why_not = _principal(ctx)
    if principal is None:
        return PermissionCheck(False, why_not=why_not)
    # (resources, condition values) -> actions, and the verbs each action is for. A condition listing several
    # values (ec2:CreateAction for every tag-on-create) is one call each: each value is one real request.
    groups: dict[tuple[tuple[str, ...], tuple[tuple[str, str, str], ...]], set[str]] = defaultdict(set)
    verbs: dict[str, set[str]] = defaultdict(set)
    unsimulated: set[str] = set()
    for entry in entries:
        if entry.action in ALWAYS_ALLOWED:
            continue
        if any("${" in r for r in entry.scoped):
            unsimulated.add(entry.action)
            continue
        verbs[entry.action].update(entry.verbs)
        contexts: list[tuple[tuple[str, str, str], ...]] = [()]
        for condition in entry.conditions:
            contexts = [(*c, (condition.operator, condition.key, value)) for c in contexts
                        for value in condition.values]
        for context in contexts:
            groups[(entry.scoped, context)].add(entry.action)
    missing: set[Missing] = set()
    try:
        for (resources, context), actions in sorted(groups.items()):
            for result in ctx.aws.iam.paginate(
                    "simulate_principal_policy", "EvaluationResults", PolicySourceArn=principal,
                    ActionNames=sorted(actions), ResourceArns=list(resources),
                    ContextEntries=_context_entries(context)):
                action = str(result["EvalActionName"])
                per_resource = result.get("ResourceSpecificResults") or [
                    {"EvalResourceName": resources[0] if len(resources) == 1 else "*",
                     "EvalResourceDecision": result["EvalDecision"]}]
                for one in per_resource:
                    if one["EvalResourceDecision"] != "allowed":
                        missing.add(Missing(action, str(one["EvalResourceName"]), str(one["EvalResourceDecision"]),
                                            tuple(v for v in ("find", "create", "update", "remove")
                                                  if v in verbs[action])))
    except AccessDenied as exc:
        return PermissionCheck(False, why_not=f"the caller may not call {exc.action}", principal=principal)
    except AwsApiError as exc:
        return PermissionCheck(False, why_not=f"IAM's policy simulator answered {exc.code}: {exc.aws_message}",
                               principal=principal)
    return PermissionCheck(True, sorted(missing), principal=principal, unsimulated=sorted(unsimulated))
