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
from typing import Any

from eksprivate.errors import AccessDenied, AwsApiError, EksPrivateError, NotFound, UsageError
from eksprivate.images import PullThroughRule, credential_problem
from eksprivate.steps.base import Context, Found, Step

KEY = "pull-through-cache"
POLICY_NAME = "pull-through-cache"
FIRST_PULL_ACTIONS = ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"]
OWN_SID = "PullThroughCacheFirstPull"  # rules eksprivate made for this cluster
OTHER_SID = "PullThroughCacheFirstPullOtherRules"  # same-prefix rules it found and uses


def _node_role_name(ctx: Context) -> str:
    return str(ctx.ledger.ids("node-role").get("role_name") or ctx.iam_name("node"))


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

    # -- reading -----------------------------------------------------------------------------------------
    def _policy_prefixes(self, ctx: Context) -> tuple[list[str] | None, dict[str, Any] | None]:
        """The prefixes our inline policy names (None: no policy), and the policy itself."""
        try:
            live = ctx.aws.iam.get_role_policy(RoleName=_node_role_name(ctx), PolicyName=POLICY_NAME)
        except NotFound:
            return None, None
        from eksprivate.steps.iam import policy_document

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
        policy_state = ("ok" if document == self._policy(ctx, sorted(ours), external)
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

    def changes(self, ctx: Context, found: Found) -> list[str]:
        out = []
        rules = found.get("rules", {})
        for prefix, rule in self._wanted(ctx).items():
            live = rules.get(prefix)
            if live is None:
                out.append(f"create rule {prefix}/ → {rule.spec.url}")
            elif live["url"] != rule.spec.url:
                whose = "eksprivate's" if prefix in found["rule_prefixes"] else "another owner's"
                out.append(f"! rule {prefix}/ ({whose}) caches {live['url']}, not {rule.spec.url}: a rule's upstream "
                           "cannot change; delete the rule (or drop it from the config), then rerun")
            elif prefix in found["external"]:
                out.append(f"! rule {prefix}/ exists but eksprivate did not make it: used as it is, never changed "
                           "or deleted")
            elif live.get("credential_arn") != rule.credential_arn and rule.credential_arn:
                out.append(f"update the credential of rule {prefix}/")
        for prefix in found.get("rule_prefixes", []):
            if prefix not in self._wanted(ctx):
                out.append(f"delete rule {prefix}/ and its cache repositories (not in the config)" if ctx.prune else
                           f"! rule {prefix}/ is not in pull_through_cache: kept (`up --prune` deletes it)")
        if found.get("policy") != "ok":
            out.append("put the node role's first-pull policy (ecr:BatchImportUpstreamImage, ecr:CreateRepository)")
        return out

    def create(self, ctx: Context) -> Found:
        found = self.find(ctx) or {"rule_prefixes": [], "external": [], "rules": {}, "cache_repositories": [],
                                   "policy": "missing", "status": "exists"}
        self.update(ctx, found)
        found["incomplete"] = False
        return found

    def update(self, ctx: Context, found: Found) -> list[str]:
        done: list[str] = []
        wanted = self._wanted(ctx)
        ours: list[str] = list(found.get("rule_prefixes", []))
        rules = found.setdefault("rules", {})
        if found.get("policy") != "ok":
            # First: a rule that exists before the policy could be cached by no node, and the policy is how a
            # crashed run's rules are found again.
            document = self._policy(ctx, ours, found.get("external", []))
            ctx.aws.iam.put_role_policy(RoleName=_node_role_name(ctx), PolicyName=POLICY_NAME,
                                        PolicyDocument=json.dumps(document))
            found["policy"] = "ok"
            done.append("put the node role's first-pull policy")
        for prefix, rule in wanted.items():
            if prefix in rules:
                live = rules[prefix]
                if (prefix in ours and rule.credential_arn and live.get("credential_arn") != rule.credential_arn
                        and live["url"] == rule.spec.url):
                    ctx.aws.ecr.update_pull_through_cache_rule(ecrRepositoryPrefix=prefix,
                                                               credentialArn=rule.credential_arn)
                    live["credential_arn"] = rule.credential_arn
                    self._validate(ctx, prefix)
                    done.append(f"updated the credential of rule {prefix}/")
                continue
            ctx.ledger.record(KEY, rule_prefixes=sorted({*ours, prefix}))  # before the call: ours if it lands
            args: dict[str, Any] = {"ecrRepositoryPrefix": prefix, "upstreamRegistryUrl": rule.spec.url,
                                    "upstreamRegistry": rule.spec.registry}
            if rule.credential_arn:
                args["credentialArn"] = rule.credential_arn
            try:
                ctx.aws.ecr.create_pull_through_cache_rule(**args)
            except AwsApiError as exc:
                if exc.code != "PullThroughCacheRuleAlreadyExistsException":
                    raise
                # Made by someone else since `find` (ours would have been found): theirs, used, never deleted.
                ctx.ledger.record(KEY, rule_prefixes=sorted(ours))
                found.setdefault("external", []).append(prefix)
                # The policy put above named it as ours: say it is another owner's, so `down` never deletes it.
                ctx.aws.iam.put_role_policy(RoleName=_node_role_name(ctx), PolicyName=POLICY_NAME,
                                            PolicyDocument=json.dumps(self._policy(ctx, ours, found["external"])))
                done.append(f"rule {prefix}/ appeared meanwhile: used as it is")
                continue
            ours.append(prefix)
            rules[prefix] = {"url": rule.spec.url, "credential_arn": rule.credential_arn,
                             "registry": rule.spec.registry}
            if rule.credential_arn:
                self._validate(ctx, prefix)
            done.append(f"created rule {prefix}/ → {rule.spec.url}")
        if ctx.prune and any(p not in wanted for p in ours):
            for prefix in [p for p in ours if p not in wanted]:
                self._delete_rule(ctx, prefix, found)
                ours.remove(prefix)
                done.append(f"deleted rule {prefix}/")
            remaining = pull_through_policy(ctx, [p for p in wanted if p not in found.get("external", [])],
                                            found.get("external", []))
            if remaining is None:
                self._delete_policy(ctx)
            else:
                ctx.aws.iam.put_role_policy(RoleName=_node_role_name(ctx), PolicyName=POLICY_NAME,
                                            PolicyDocument=json.dumps(remaining))
        found["rule_prefixes"] = sorted(ours)
        ctx.ledger.sync(KEY, self.ids(found))
        return done

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
        with contextlib.suppress(NotFound):
            ctx.aws.iam.delete_role_policy(RoleName=_node_role_name(ctx), PolicyName=POLICY_NAME)

    def describe(self, found: Found) -> str:
        rules = ", ".join(f"{p}/ → {r['url']}" for p, r in sorted(found.get("rules", {}).items())) or "no rules"
        cache = found.get("cache_repositories", [])
        more = f"; cache repositories: {', '.join(cache)}" if cache else ""
        return f"{rules}{more}"

    def ids(self, found: Found) -> dict[str, Any]:
        return {"rule_prefixes": sorted(found.get("rule_prefixes", []))}

