"""ECR pull-through cache rules, so nodes with no internet can pull from registry.k8s.io, quay.io, ... .

One step, key `pull-through-cache`, for every rule of `pull_through_cache` plus the node role's inline
policy `pull-through-cache` that a first pull needs (the ECR user guide, "IAM permissions required to sync
an upstream registry": `ecr:BatchImportUpstreamImage`, and `ecr:CreateRepository` when the cache
repository does not exist yet), scoped to `repository/<prefix>/*` of each rule.

Rules cannot be tagged, so which rules are eksprivate's is recorded in the state (`rule_prefixes`) and in
that inline policy's resources (how `down` finds them without the state). A rule of the same prefix that
eksprivate did not make is used as it is and never changed or deleted. `down` deletes our rules, then
the cache repositories ECR made under their prefixes (created after the rule; force: they hold only
cached copies that can be pulled again), then the policy. Nodes reach ECR through the ecr.api/ecr.dkr
interface endpoints and the S3 gateway that every cluster has.
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from functools import partial
from typing import Any

from eksprivate.errors import AccessDenied, AlreadyExists, EksPrivateError, NotFound, UsageError
from eksprivate.grants import Grant, grant, reads
from eksprivate.images import PullThroughRule, credential_problem
from eksprivate.steps.base import Change, Context, Found, Step
from eksprivate.steps.policies import WrittenPolicy, policy_document

KEY = "pull-through-cache"
POLICY_NAME = "pull-through-cache"
FIRST_PULL_ACTIONS = ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"]
OWN_SID = "PullThroughCacheFirstPull"  # rules eksprivate made for this cluster
OTHER_SID = "PullThroughCacheFirstPullOtherRules"  # same-prefix rules it found and uses


def _node_role_name(ctx: Context) -> str:
    return str(ctx.ledger.ids("node-role").get("role_name") or ctx.iam_name("node"))


def _writes_policy(ctx: Context) -> bool:
    """Whether the first-pull policy is eksprivate's to write: not on a node role an IAM team gave
    (`node_role_arn`), which eksprivate never changes; the config warns that it needs those permissions."""
    from eksprivate.steps.given_roles import given_arn

    return given_arn(ctx, "node-role") is None


def repository_arn(ctx: Context, prefix: str) -> str:
    return ctx.partition.arn("ecr", ctx.region, ctx.account, f"repository/{prefix}/*")


def pull_through_policy(ctx: Context, owned: list[str] | None = None,
                        others: list[str] | None = None) -> dict[str, Any] | None:
    """The node role's inline policy for first pulls through the cache (None: no rules). Rules eksprivate made
    and rules of the same prefix it found (used, never deleted) are separate statements: the first one is how
    `down` knows which rules are ours when the state file is lost (rules take no tags)."""
    mine = sorted(owned if owned is not None else [r.prefix for r in ctx.settings.pull_through_cache])
    statements = [{"Sid": sid, "Effect": "Allow", "Action": list(FIRST_PULL_ACTIONS),
                   "Resource": [repository_arn(ctx, p) for p in prefixes]}
                  for sid, prefixes in ((OWN_SID, mine), (OTHER_SID, sorted(others or []))) if prefixes]
    return {"Version": "2012-10-17", "Statement": statements} if statements else None


def check_credentials(ctx: Context) -> None:
    """Before anything is created: each credential ARN is in the cluster's account and region, and (when the
    caller may look) the secret exists. A wrong one is a usage error naming the upstream."""
    for rule in ctx.settings.pull_through_cache:
        if rule.credential_arn is None:
            continue
        problem = credential_problem(rule.credential_arn, ctx.region, ctx.account)
        if problem:
            raise UsageError(f"pull_through_credentials.{rule.upstream}: {problem}")
        try:
            ctx.aws.client("secretsmanager").describe_secret(SecretId=rule.credential_arn)
        except NotFound:
            raise UsageError(f"pull_through_credentials.{rule.upstream}: secret {rule.credential_arn} does not exist",
                             "create it (username and accessToken) or fix the ARN") from None
        except AccessDenied:
            pass  # the caller may not read secrets; ECR checks the secret itself when the rule is made


class PullThroughCache(Step):
    key = KEY
    title = "ECR pull-through cache"
    needs = ("node-role",)

    def grants(self, ctx: Context) -> list[Grant]:
        from eksprivate.steps.cluster import service_linked_role
        from eksprivate.steps.iam import NodeRole, boundary_condition

        role = NodeRole().arn(ctx)
        writes = _writes_policy(ctx)  # a given node role: no policy of ours on it, no IAM call about it at all
        prefixes = sorted({r.prefix for r in ctx.settings.pull_through_cache}
                          | set(ctx.ledger.ids(KEY).get("rule_prefixes") or []))
        out = [reads("iam:GetRolePolicy", on=role, why="the node role's first-pull policy (names the rules that are "
                                                       "eksprivate's)")] if writes else []
        out += [reads("ecr:DescribePullThroughCacheRules", why="the rules (ECR takes no resource ARN for them)")]
        if not prefixes:  # `down` with a lost state: reads only, until a rule of ours is found
            return out
        secrets = sorted(set(ctx.settings.pull_through_credentials.values()))
        out += [reads("ecr:DescribeRepositories", on=ctx.arns.ecr_repository("*"),
                      why="the cache repositories ECR made under the rules' prefixes"),
                grant(("create", "update"), "ecr:CreatePullThroughCacheRule", "ecr:UpdatePullThroughCacheRule",
                      "ecr:ValidatePullThroughCacheRule", why="the rules (ECR takes no resource ARN for them)"),
                grant("remove", "ecr:DeletePullThroughCacheRule", why="the rules"),
                grant("remove", "ecr:DeleteRepository", on=[ctx.arns.ecr_repository(f"{p}/*") for p in prefixes],
                      why="the cache repositories under the rules' prefixes")]
        if writes:
            out += [grant(("create", "update"), "iam:PutRolePolicy", on=role, when=boundary_condition(ctx),
                          why="the node role's first-pull policy"),
                    grant("remove", "iam:DeleteRolePolicy", on=role, when=boundary_condition(ctx),
                          why="the node role's first-pull policy")]
        if secrets:
            out.append(reads("secretsmanager:DescribeSecret", on=secrets, why="the upstream credentials exist"))
            if writes:  # a given node role: the IAM team's service-linked role, checked to exist (given_roles.py)
                out.append(service_linked_role(ctx, "pullthroughcache.ecr.amazonaws.com",
                                               "AWSServiceRoleForECRPullThroughCache"))
        return out

    # -- reading -----------------------------------------------------------------------------------------
    def _policy_prefixes(self, ctx: Context) -> tuple[list[str] | None, dict[str, Any] | None]:
        """The prefixes our inline policy names (None: no policy), and the policy itself."""
        if not _writes_policy(ctx):
            return None, None
        try:
            live = ctx.aws.iam.get_role_policy(RoleName=_node_role_name(ctx), PolicyName=POLICY_NAME)
        except NotFound:
            return None, None
        document = policy_document(live.get("PolicyDocument")) or {}
        head = ctx.partition.arn("ecr", ctx.region, ctx.account, "repository/")
        prefixes = []
        for statement in document.get("Statement", []):
            if statement.get("Sid") != OWN_SID:
                continue
            resources = statement.get("Resource", [])
            for arn in [resources] if isinstance(resources, str) else resources:
                if str(arn).startswith(head) and str(arn).endswith("/*"):
                    prefixes.append(str(arn)[len(head):-2])
        return prefixes, document

    def find(self, ctx: Context) -> Found | None:
        recorded = list(ctx.ledger.ids(KEY).get("rule_prefixes") or [])
        policy_prefixes, document = self._policy_prefixes(ctx)
        owned = set(recorded) | set(policy_prefixes or [])
        wanted = {r.prefix: r for r in ctx.settings.pull_through_cache}
        if not owned and not wanted:
            return None
        rules = {str(r["ecrRepositoryPrefix"]).rstrip("/"): r for r in
                 ctx.aws.ecr.paginate("describe_pull_through_cache_rules", "pullThroughCacheRules")}
        ours = {p: rules[p] for p in sorted(owned) if p in rules}
        external = sorted(p for p in wanted if p in rules and p not in owned)
        if not ours and not external and document is None:
            return None  # nothing of ours exists (a configured prefix is free or another owner's: see external)
        cache = self._cache_repositories(ctx, ours)
        policy_state = ("given" if not _writes_policy(ctx)
                        else "ok" if document == self._policy(ctx, sorted(ours), external)
                        else "missing" if document is None else "outdated")
        return {
            "rule_prefixes": sorted(ours), "external": external,
            "rules": {p: {"url": r.get("upstreamRegistryUrl", ""), "credential_arn": r.get("credentialArn"),
                          "registry": r.get("upstreamRegistry", "")} for p, r in {**ours, **{
                              p: rules[p] for p in external}}.items()},
            "cache_repositories": cache, "policy": policy_state,
            "incomplete": any(p not in rules for p in wanted),
            "status": "exists",
        }

    def _cache_repositories(self, ctx: Context, ours: dict[str, dict[str, Any]]) -> list[str]:
        """Repositories ECR made under our rules' prefixes: named `<prefix>/...` and made after the rule."""
        if not ours:
            return []
        names = []
        for repo in ctx.aws.ecr.paginate("describe_repositories", "repositories"):
            name = str(repo["repositoryName"])
            for prefix, rule in ours.items():
                created, since = repo.get("createdAt"), rule.get("createdAt")
                older = isinstance(created, datetime) and isinstance(since, datetime) and created < since
                if name.startswith(f"{prefix}/") and not older:
                    names.append(name)
        return sorted(names)

    # -- up ------------------------------------------------------------------------------------------------
    def _policy(self, ctx: Context, ours: list[str], external: list[str]) -> dict[str, Any] | None:
        """The policy once `up` is done: our rules (those made now included) and the others' it uses."""
        mine = sorted({*ours, *(p for p in self._wanted(ctx) if p not in external)})
        return pull_through_policy(ctx, mine, [p for p in external if p in self._wanted(ctx)])

    def _wanted(self, ctx: Context) -> dict[str, PullThroughRule]:
        return {r.prefix: r for r in ctx.settings.pull_through_cache}

    def diff(self, ctx: Context, found: Found) -> list[Change]:
        """In the order `up` applies them: the policy first (a rule that exists before it could be cached by
        no node, and it is how a crashed run's rules are found again), then the rules, then what is pruned."""
        out = []
        if found.get("policy") not in ("ok", "given"):
            out.append(Change("put the node role's first-pull policy (ecr:BatchImportUpstreamImage, "
                              "ecr:CreateRepository)", partial(self._put_policy, ctx, found)))
        rules = found.get("rules", {})
        for prefix, rule in self._wanted(ctx).items():
            live = rules.get(prefix)
            if live is None:
                out.append(Change(f"create rule {prefix}/ → {rule.spec.url}", partial(self._create_rule, ctx, found,
                                                                                      rule)))
            elif live["url"] != rule.spec.url:
                whose = "eksprivate's" if prefix in found["rule_prefixes"] else "another owner's"
                out.append(Change(f"rule {prefix}/ ({whose}) caches {live['url']}, not {rule.spec.url}",
                                  blocked="a rule's upstream cannot change; delete the rule (or drop it from the "
                                          "config), then rerun"))
            elif prefix in found["external"]:
                out.append(Change(f"rule {prefix}/ exists but eksprivate did not make it",
                                  blocked="used as it is, never changed or deleted"))
            elif live.get("credential_arn") != rule.credential_arn and rule.credential_arn:
                out.append(Change(f"update the credential of rule {prefix}/",
                                  partial(self._update_credential, ctx, found, prefix, rule.credential_arn)))
        pruned = [p for p in found.get("rule_prefixes", []) if p not in self._wanted(ctx)]
        for prefix in pruned:
            out.append(Change(f"delete rule {prefix}/ and its cache repositories (not in the config)",
                              partial(self._prune_rule, ctx, found, prefix, last=prefix == pruned[-1]))
                       if ctx.prune else
                       Change(f"rule {prefix}/ is not in pull_through_cache", blocked="kept (`up --prune` deletes it)"))
        return out

    def create(self, ctx: Context) -> Found:
        found = self.find(ctx) or {"rule_prefixes": [], "external": [], "rules": {}, "cache_repositories": [],
                                   "policy": "missing" if _writes_policy(ctx) else "given", "status": "exists"}
        self.update(ctx, found)
        found["incomplete"] = False
        return found

    def _put_policy(self, ctx: Context, found: Found) -> str:
        document = self._policy(ctx, list(found.get("rule_prefixes", [])), found.get("external", []))
        ctx.aws.iam.put_role_policy(RoleName=_node_role_name(ctx), PolicyName=POLICY_NAME,
                                    PolicyDocument=json.dumps(document))
        found["policy"] = "ok"
        return "put the node role's first-pull policy"

    def _create_rule(self, ctx: Context, found: Found, rule: PullThroughRule) -> str:
        prefix, ours = rule.prefix, found.setdefault("rule_prefixes", [])
        ctx.ledger.record(KEY, rule_prefixes=sorted({*ours, prefix}))  # before the call: ours if it lands
        args: dict[str, Any] = {"ecrRepositoryPrefix": prefix, "upstreamRegistryUrl": rule.spec.url,
                                "upstreamRegistry": rule.spec.registry}
        if rule.credential_arn:
            args["credentialArn"] = rule.credential_arn
        try:
            ctx.aws.ecr.create_pull_through_cache_rule(**args)
        except AlreadyExists:  # PullThroughCacheRuleAlreadyExistsException
            # Made by someone else since `find` (ours would have been found): theirs, used, never deleted.
            ctx.ledger.record(KEY, rule_prefixes=sorted(ours))
            found.setdefault("external", []).append(prefix)
            # The policy put first named it as ours: say it is another owner's, so `down` never deletes it.
            if _writes_policy(ctx):
                ctx.aws.iam.put_role_policy(RoleName=_node_role_name(ctx), PolicyName=POLICY_NAME,
                                            PolicyDocument=json.dumps(self._policy(ctx, ours, found["external"])))
            return f"rule {prefix}/ appeared meanwhile: used as it is"
        ours.append(prefix)
        found["rule_prefixes"] = sorted(ours)
        found.setdefault("rules", {})[prefix] = {"url": rule.spec.url, "credential_arn": rule.credential_arn,
                                                 "registry": rule.spec.registry}
        if rule.credential_arn:
            self._validate(ctx, prefix)
        return f"created rule {prefix}/ → {rule.spec.url}"

    def _update_credential(self, ctx: Context, found: Found, prefix: str, credential_arn: str) -> str:
        ctx.aws.ecr.update_pull_through_cache_rule(ecrRepositoryPrefix=prefix, credentialArn=credential_arn)
        found["rules"][prefix]["credential_arn"] = credential_arn
        self._validate(ctx, prefix)
        return f"updated the credential of rule {prefix}/"

    def _prune_rule(self, ctx: Context, found: Found, prefix: str, *, last: bool) -> str:
        self._delete_rule(ctx, prefix, found)
        found["rule_prefixes"] = [p for p in found["rule_prefixes"] if p != prefix]
        ctx.ledger.record(KEY, rule_prefixes=sorted(found["rule_prefixes"]))
        if last and _writes_policy(ctx):  # the policy once, after the last rule went: what remains, or nothing
            external = found.get("external", [])
            remaining = pull_through_policy(ctx, [p for p in self._wanted(ctx) if p not in external], external)
            if remaining is None:
                self._delete_policy(ctx)
            else:
                ctx.aws.iam.put_role_policy(RoleName=_node_role_name(ctx), PolicyName=POLICY_NAME,
                                            PolicyDocument=json.dumps(remaining))
        return f"deleted rule {prefix}/"

    def _validate(self, ctx: Context, prefix: str) -> None:
        """ValidatePullThroughCacheRule signs in upstream with the secret (AWS offers it for the upstreams that
        need credentials): a rule that cannot authenticate would fail every first pull, so say it now."""
        answer = ctx.aws.ecr.validate_pull_through_cache_rule(ecrRepositoryPrefix=prefix)
        if not answer.get("isValid", False):
            raise EksPrivateError(f"pull-through rule {prefix}/ cannot sign in to {answer.get('upstreamRegistryUrl')}: "
                                  f"{answer.get('failure') or 'no reason given'}",
                                  "fix the secret's username/accessToken, then rerun `eksprivate up`")

    # -- down ----------------------------------------------------------------------------------------------
    def _delete_rule(self, ctx: Context, prefix: str, found: Found) -> None:
        with contextlib.suppress(NotFound):
            ctx.aws.ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix=prefix)
        for name in [n for n in found.get("cache_repositories", []) if n.startswith(f"{prefix}/")]:
            with contextlib.suppress(NotFound):
                ctx.aws.ecr.delete_repository(repositoryName=name, force=True)

    def remove(self, ctx: Context, found: Found) -> None:
        # Rules first, so no first pull makes a new cache repository while the old ones go.
        for prefix in found.get("rule_prefixes", []):
            self._delete_rule(ctx, prefix, found)
        self._delete_policy(ctx)

    def _delete_policy(self, ctx: Context) -> None:
        if not _writes_policy(ctx):
            return
        with contextlib.suppress(NotFound):
            ctx.aws.iam.delete_role_policy(RoleName=_node_role_name(ctx), PolicyName=POLICY_NAME)

    def written(self, ctx: Context) -> list[WrittenPolicy]:
        """The policy this step writes (on the node role): the first-pull policy for the configured rules."""
        first_pull = pull_through_policy(ctx)
        return [] if first_pull is None else [WrittenPolicy("node-role", "identity", first_pull)]

    def describe(self, found: Found) -> str:
        rules = ", ".join(f"{p}/ → {r['url']}" for p, r in sorted(found.get("rules", {}).items())) or "no rules"
        cache = found.get("cache_repositories", [])
        more = f"; cache repositories: {', '.join(cache)}" if cache else ""
        return f"{rules}{more}"

    def ids(self, found: Found) -> dict[str, Any]:
        return {"rule_prefixes": sorted(found.get("rule_prefixes", []))}

