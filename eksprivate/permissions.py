"""The IAM identity policy an operator needs to run eksprivate on one cluster with one configuration.

Nothing here names an action: the policy is the union of what the steps of the graph declare
(`Step.grants`) and what the commands that are not steps declare beside their code (target, state in S3,
kubeconfig, tunnel, verify, the cost estimate). Which steps count is what the config and the state give:

* every step of `up`'s graph (with the orphans the state records): all its verbs;
* every step of `down`'s graph: all its verbs when the config has it, the state records it, or it is one
  of the teardown-only steps; only its `find` otherwise (down looks for a KMS key or a flow log the config
  turned off, and deletes one only when it exists, which the state then records).

Grants are merged per action: the union of their resources (`*` swallows the rest), one statement per set of
resources and conditions.
"""

from __future__ import annotations

import importlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from eksprivate.grants import VERBS, Condition, Grant, Verb

if TYPE_CHECKING:
    from eksprivate.steps.base import Context

# IAM's limit on a managed policy's size: characters, whitespace not counted (IAM User Guide, IAM quotas).
MANAGED_POLICY_LIMIT = 6144


@dataclass(frozen=True)
class Source:
    """Who declared a grant: a step key, or a command (`command:verify`)."""

    name: str
    grants: tuple[Grant, ...]


@dataclass
class Entry:
    """One action under one set of conditions: every resource, verb and reason declared for it."""

    action: str
    conditions: tuple[Condition, ...]
    resources: set[str] = field(default_factory=set)
    verbs: set[Verb] = field(default_factory=set)
    why: list[str] = field(default_factory=list)
    sources: set[str] = field(default_factory=set)

    @property
    def scoped(self) -> tuple[str, ...]:
        return ("*",) if "*" in self.resources else tuple(sorted(self.resources))


def collect(step_grants: list[tuple[str, list[Grant], bool]], command_grants: list[tuple[str, list[Grant]]]
            ) -> list[Source]:
    """`step_grants`: (step key, its grants, all verbs?) — a step that counts only for its `find` keeps only
    the grants whose verbs include `find`, limited to it."""
    sources: list[Source] = []
    for key, grants, every_verb in step_grants:
        kept = grants if every_verb else [_only_find(g) for g in grants if "find" in g.verbs]
        sources.append(Source(key, tuple(kept)))
    sources += [Source(f"command:{name}", tuple(grants)) for name, grants in command_grants]
    return sources


def _only_find(g: Grant) -> Grant:
    return Grant(g.actions, g.resources, ("find",), g.conditions, g.why)


def entries(sources: list[Source]) -> list[Entry]:
    merged: dict[tuple[str, tuple[Condition, ...]], Entry] = {}
    for source in sources:
        for g in source.grants:
            conditions = tuple(sorted(g.conditions, key=lambda c: (c.operator, c.key, c.values)))
            for action in g.actions:
                entry = merged.setdefault((action, conditions), Entry(action, conditions))
                entry.resources.update(g.resources)
                entry.verbs.update(g.verbs)
                if g.why and g.why not in entry.why:
                    entry.why.append(g.why)
                entry.sources.add(source.name)
    # An action allowed on "*" with no condition needs no narrower statement of the same action.
    unconditioned = {a for (a, c), e in merged.items() if not c and e.scoped == ("*",)}
    kept = [e for (a, c), e in merged.items() if not (c and a in unconditioned)]
    return sorted(_join_values(kept), key=lambda e: (e.action, e.conditions))


def _join_values(found: list[Entry]) -> list[Entry]:
    """Entries of one action on the same resources whose only condition is the same key (ec2:CreateAction for
    each step's tag-on-create) are one entry whose condition lists every value: IAM ORs a key's values."""
    out: list[Entry] = []
    joined: dict[tuple[str, tuple[str, ...], str, str], Entry] = {}
    for e in found:
        if len(e.conditions) != 1:
            out.append(e)
            continue
        c = e.conditions[0]
        key = (e.action, e.scoped, c.operator, c.key)
        if key not in joined:
            joined[key] = e
            out.append(e)
            continue
        into = joined[key]
        values = tuple(dict.fromkeys((*into.conditions[0].values, *c.values)))
        into.conditions = (Condition(c.operator, c.key, values),)
        into.verbs |= e.verbs
        into.why += [w for w in e.why if w not in into.why]
        into.sources |= e.sources
    return out


def document(found: list[Entry]) -> dict[str, Any]:
    """The policy document: actions sharing resources and conditions in one statement, per service."""
    groups: dict[tuple[str, tuple[str, ...], tuple[Condition, ...]], list[str]] = defaultdict(list)
    for e in found:
        groups[(e.action.split(":", 1)[0], e.scoped, e.conditions)].append(e.action)
    statements = []
    counters: dict[str, int] = defaultdict(int)
    for (service, resources, conditions), actions in sorted(groups.items(), key=lambda kv: (kv[0][0], _order(kv))):
        counters[service] += 1
        statement: dict[str, Any] = {"Sid": f"{_sid(service)}{counters[service]}", "Effect": "Allow",
                                     "Action": sorted(actions),
                                     "Resource": resources[0] if len(resources) == 1 else list(resources)}
        if conditions:
            block: dict[str, dict[str, Any]] = defaultdict(dict)
            for c in conditions:
                block[c.operator][c.key] = c.values[0] if len(c.values) == 1 else list(c.values)
            statement["Condition"] = dict(block)
        statements.append(statement)
    return {"Version": "2012-10-17", "Statement": statements}


def _order(item: tuple[tuple[str, tuple[str, ...], tuple[Condition, ...]], list[str]]) -> tuple[int, str]:
    (_, resources, conditions), actions = item
    return (0 if resources == ("*",) and not conditions else 1, min(actions))


def _sid(service: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", service))


def size(policy: dict[str, Any]) -> int:
    """The size IAM counts against its quota: the JSON without whitespace."""
    return len(re.sub(r"\s+", "", json.dumps(policy)))


SERVICE_NAMES = {
    "ec2": "EC2 (VPC, subnets, endpoints, groups, launch templates, flow logs)",
    "eks": "EKS (the cluster, node groups, add-ons, access entries)",
    "iam": "IAM (the roles eksprivate makes and hands to AWS services)",
    "kms": "KMS (the secrets key)",
    "logs": "CloudWatch Logs (control-plane and flow log groups)",
    "ecr": "ECR (repositories, pull-through cache)",
    "elasticloadbalancing": "Elastic Load Balancing (what Kubernetes made, at down)",
    "elasticfilesystem": "EFS (what Kubernetes' claims made, at down)",
    "route53": "Route 53 (private DNS of endpoints; zones someone associated with the VPC)",
    "s3": "S3 (the state and its lock)",
    "ssm": "Systems Manager (node AMI releases; the tunnel)",
    "pricing": "Price List (the cost estimate; optional)",
    "secretsmanager": "Secrets Manager (pull-through credentials exist)",
}


def explain(found: list[Entry], header: list[str]) -> str:
    """The policy per service for a person reviewing it: each action, when it is called, on what, and why."""
    lines = [*header, ""]
    by_service: dict[str, list[Entry]] = defaultdict(list)
    for e in found:
        by_service[e.action.split(":", 1)[0]].append(e)
    for service in sorted(by_service):
        lines.append(SERVICE_NAMES.get(service, service))
        for e in by_service[service]:
            verbs = "/".join(v for v in VERBS if v in e.verbs)
            lines.append(f"  {e.action}  [{verbs}]")
            lines.append(f"      on {', '.join(e.scoped)}")
            for c in e.conditions:
                lines.append(f"      only if {c.key} {c.operator} {', '.join(c.values)}")
            for why in e.why:
                lines.append(f"      - {why}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def sources_for(ctx: Context, s3_state: str | None) -> list[Source]:
    """Everything this config and state need: the steps of `up`'s and `down`'s graphs (see the module's
    docstring), what building the graph reads, and the commands that are not steps."""
    import eksprivate.cost as cost
    import eksprivate.export.inventory as export_reads
    import eksprivate.kube as kube
    import eksprivate.state_s3 as state_s3
    import eksprivate.target as target
    import eksprivate.tunnel as tunnel
    from eksprivate.steps import build_graph
    from eksprivate.steps.foreign_check import TEARDOWN_ONLY
    # By name: the package `eksprivate.verify` exports a function `discover` that hides the module.
    verify_reads = importlib.import_module("eksprivate.verify.discover")

    up = build_graph(ctx, orphans=True)
    down = build_graph(ctx, everything=True)
    configured = {s.key for s in up}
    steps = [(s.key, s.grants(ctx), True) for s in up]
    steps += [(s.key, s.grants(ctx), s.key in configured or bool(ctx.ledger.ids(s.key)) or s.key in TEARDOWN_ONLY)
              for s in down]
    arns = ctx.arns
    commands = [("checks", target.grants(ctx.settings)),
                ("kubeconfig", kube.grants(arns)), ("tunnel", tunnel.grants(arns)),
                ("verify", verify_reads.grants(arns)), ("export", export_reads.grants(ctx)),
                ("cost", cost.grants())]
    if s3_state is not None:
        where = state_s3.parse_url(s3_state, ctx.name, ctx.region)
        commands.append(("state", state_s3.grants(where, arns, ctx.partition.dns_suffix)))
    return collect(steps, commands)


def policy_for(ctx: Context, s3_state: str | None) -> dict[str, Any]:
    return document(entries(sources_for(ctx, s3_state)))


def split(policy: dict[str, Any], limit: int = MANAGED_POLICY_LIMIT) -> list[dict[str, Any]]:
    """The policy as documents of at most `limit` characters each (IAM's managed-policy size), statements
    kept whole and in order: attach them all to the operator's role."""
    documents: list[dict[str, Any]] = []
    for statement in policy["Statement"]:
        if documents and size({**documents[-1], "Statement": [*documents[-1]["Statement"], statement]}) <= limit:
            documents[-1]["Statement"].append(statement)
        else:
            documents.append({"Version": policy["Version"], "Statement": [statement]})
    return documents
