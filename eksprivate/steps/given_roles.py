"""Roles given instead of made: an IAM team's roles for the cluster, the nodes, flow logs and the EBS CSI driver.

Where only an IAM team may create roles, the config names them (`cluster_role_arn`, `node_role_arn`,
`flow_logs_role_arn`, `ebs_csi_role_arn`). `GivenRole` then takes the place of the step that would make the
role (same key: the cluster, node group, flow log and add-on steps read the same `role_arn` from the state),
records `given: true` beside the ids, and never changes or deletes the role: `down` leaves it, also with a
lost state (it is found by its ARN from the config, never by tag; the made roles' steps look for their own
names only). Which step stands in the graph is decided once, in `use_given_roles`: the state's record first
(a role it recorded as given stays given for `down`), else the config.

`check_given_roles` runs before anything is created (target.open_context, for `up` and `plan`): each given
role exists in this account, trusts the service that uses it, and carries the AWS managed policies EKS
needs. What each role needs, and where AWS says so, is in `NEEDS` (sources: docs/aws-fidelity.md, "Roles
given instead of made").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eksprivate.errors import NotFound, UsageError
from eksprivate.grants import Grant, reads
from eksprivate.steps.addons import EBS_CSI, EbsCsiRole
from eksprivate.steps.base import Context, Found, Step
from eksprivate.steps.iam import ClusterRole, FlowLogsRole, NodeRole, Role
from eksprivate.steps.policies import policy_document
from eksprivate.steps.used_network import Used


@dataclass(frozen=True)
class RoleNeeds:
    """What a given role must be for the service that uses it."""

    made: type[Role]  # the step that makes the role when none is given: key, config key, service, trust actions
    # AWS managed policies the role must carry; each entry is satisfied by any one of its names. The others the
    # made role would get for this config (AmazonSSMManagedInstanceCore with the ssm endpoint) are warned about.
    policies: tuple[tuple[str, ...], ...]

    @property
    def key(self) -> str:
        return self.made.key

    @property
    def setting(self) -> str:
        return self.made.given_by

    def service_linked(self, ctx: Context) -> list[tuple[str, str]]:
        """(service, role name) of the service-linked roles AWS would make through the operator on first use in the
        account (iam:CreateServiceLinkedRole). Where the IAM team gives this role, those are its to make as well:
        they must exist already, and the operator's policy grants no IAM write."""
        if self.made is ClusterRole:
            return [("eks.amazonaws.com", "AWSServiceRoleForAmazonEKS")]
        if self.made is NodeRole:
            linked = [("eks-nodegroup.amazonaws.com", "AWSServiceRoleForAmazonEKSNodegroup")]
            if ctx.settings.pull_through_credentials:  # ECR uses it to read the upstream credentials
                linked.append(("pullthroughcache.ecr.amazonaws.com", "AWSServiceRoleForECRPullThroughCache"))
            return linked
        return []

    def used(self, ctx: Context) -> bool:
        """Whether this configuration uses the role (a given flow logs role with flow logs off is not)."""
        if self.made is FlowLogsRole:
            return ctx.settings.flow_logs
        if self.made is EbsCsiRole:
            return any(a.name == EBS_CSI for a in ctx.settings.addons)
        return True


NEEDS: tuple[RoleNeeds, ...] = (
    # EKS User Guide, cluster-iam-role: trusts eks.amazonaws.com; AmazonEKSClusterPolicy.
    RoleNeeds(ClusterRole, (("AmazonEKSClusterPolicy",),)),
    # EKS User Guide, create-node-role: AmazonEKSWorkerNodePolicy; image pulls from ECR through
    # AmazonEC2ContainerRegistryPullOnly (or the older ReadOnly, which includes it); AmazonEKS_CNI_Policy on the
    # node role unless the VPC CNI has a role of its own, which eksprivate does not give it.
    RoleNeeds(NodeRole,
              (("AmazonEKSWorkerNodePolicy",),
               ("AmazonEC2ContainerRegistryPullOnly", "AmazonEC2ContainerRegistryReadOnly"),
               ("AmazonEKS_CNI_Policy",))),
    # VPC User Guide, flow-logs-iam-role: trusts vpc-flow-logs.amazonaws.com; its delivery permissions are a
    # policy of the account's own (AWS names no managed one): not checked here, CreateFlowLogs says so.
    RoleNeeds(FlowLogsRole, ()),
    # EKS User Guide, pod-id-role and ebs-csi: trusts pods.eks.amazonaws.com with sts:AssumeRole and
    # sts:TagSession; AmazonEBSCSIDriverPolicy (under service-role/).
    RoleNeeds(EbsCsiRole, (("service-role/AmazonEBSCSIDriverPolicy",),)),
)
NEEDS_BY_KEY = {n.key: n for n in NEEDS}


def role_name_of(arn: str) -> str:
    """The role's name: the ARN's last segment (a path may come before it); GetRole takes the name alone."""
    return arn.rsplit("/", 1)[-1]


def read_role(ctx: Context, arn: str) -> dict[str, Any] | None:
    """GetRole for a given role, once per run (the check before the run and the step's `find` share it); None
    when no role has that ARN (none of that name, or one of that name at another path)."""
    role = _read_role_named(ctx, role_name_of(arn))
    return role if role is not None and role.get("Arn") == arn else None


def _read_role_named(ctx: Context, name: str) -> dict[str, Any] | None:
    def read() -> dict[str, Any] | None:
        try:
            role: dict[str, Any] = ctx.aws.iam.get_role(RoleName=name)["Role"]
        except NotFound:
            return None
        return role

    found: dict[str, Any] | None = ctx.once(f"role-named/{name}", read)
    return found


def trusts(document: dict[str, Any] | None, principals: set[str], actions: tuple[str, ...]) -> bool:
    """Whether a trust policy allows one of `principals` (a service) every one of `actions`. Conditions are
    the IAM team's to set (confused-deputy keys, Pod Identity session tags) and are not judged here."""
    statements = (document or {}).get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal")
        services = principal.get("Service", []) if isinstance(principal, dict) else []
        services = {services} if isinstance(services, str) else set(services)
        allowed = statement.get("Action", [])
        allowed = {allowed} if isinstance(allowed, str) else set(allowed)
        if services & principals and all({action, "sts:*", "*"} & allowed for action in actions):
            return True
    return False


def service_principals(ctx: Context, service: str) -> set[str]:
    """The service's principal in this partition; in China also the ".amazonaws.com" spelling, which IAM there
    accepts for some services (partitions.PRINCIPAL_EXCEPTIONS has the ones that differ)."""
    return {ctx.partition.principal(service), f"{service}.amazonaws.com"}


def given_arn(ctx: Context, key: str) -> str | None:
    """The given role for step `key` (`Role.given`: the state's record first, else the config), or None."""
    needs = NEEDS_BY_KEY.get(key)
    return needs.made().given(ctx) if needs is not None else None


def check_given_roles(ctx: Context) -> list[str]:
    """Before anything is created: each given role the config uses exists in this account, trusts its service
    and carries the managed policies EKS needs; a role the state records for this cluster is not swapped for
    another (a cluster's, node group's or flow log's role cannot change). UsageError naming the key, else
    warnings (a managed policy only one feature needs)."""
    warnings: list[str] = []
    for needs in NEEDS:
        arn: str | None = getattr(ctx.settings, needs.setting)
        _check_unchanged(ctx, needs, arn)
        if arn is None or not needs.used(ctx):
            continue
        setting, made = needs.setting, needs.made
        partition, account = arn.split(":")[1], arn.split(":")[4]
        if partition != ctx.partition.name:
            raise UsageError(f"{setting}: {arn} is in partition {partition}; this account is in {ctx.partition.name}")
        if account != ctx.account:
            raise UsageError(f"{setting}: role {arn} is in account {account}, not in this account ({ctx.account})",
                             "EKS and EC2 take roles of the cluster's own account only")
        role = read_role(ctx, arn)
        if role is None:
            raise UsageError(f"{setting}: role {arn} does not exist",
                             "check the ARN (path included) with your IAM team; eksprivate never makes a given role")
        principals = service_principals(ctx, made.service)
        if not trusts(policy_document(role.get("AssumeRolePolicyDocument")), principals, made.trust_actions):
            raise UsageError(f"{setting}: role {arn} does not trust {ctx.partition.principal(made.service)} "
                             f"({', '.join(made.trust_actions)})",
                             "its trust policy must allow that service principal to assume it; eksprivate never "
                             "changes a given role")
        wanted = [[ctx.partition.managed_policy(n) for n in names] for names in needs.policies]
        would_get = [policy for policy in made().policies(ctx) if not any(policy in names for names in wanted)]
        attached = {str(p["PolicyArn"]) for p in ctx.aws.iam.paginate(
            "list_attached_role_policies", "AttachedPolicies", RoleName=role_name_of(arn))} if (
            wanted or would_get) else set()
        missing = [" or ".join(names) for names, arns in zip(needs.policies, wanted, strict=True)
                   if not attached & set(arns)]
        if missing:
            raise UsageError(f"{setting}: role {arn} lacks the AWS managed polic{'y' if len(missing) == 1 else 'ies'} "
                             f"{', '.join(missing)}, which EKS needs",
                             "have it attached by your IAM team; eksprivate never changes a given role")
        for service, name in needs.service_linked(ctx):
            if _read_role_named(ctx, name) is None:
                raise UsageError(f"{setting} is given, and the service-linked role {name} does not exist yet: with "
                                 "roles given, eksprivate has AWS make no role through you",
                                 f"have your IAM team run `aws iam create-service-linked-role --aws-service-name "
                                 f"{service}` once in this account")
        # E.g. AmazonSSMManagedInstanceCore with the ssm endpoint: `eksprivate tunnel` needs it, EKS does not.
        warnings += [f"{setting}: role {arn} lacks {policy.rsplit('/', 1)[-1]}, which eksprivate attaches to the "
                     "role it makes for this config" for policy in would_get if policy not in attached]
    return warnings


def _check_unchanged(ctx: Context, needs: RoleNeeds, arn: str | None) -> None:
    """A role the state records for this cluster stays: given → another ARN, given → made and made → given
    would each hand the cluster (or its node groups, flow log, add-on) a role AWS does not let change."""
    recorded = ctx.ledger.ids(needs.key)
    was = recorded.get("role_arn")
    if not was or was == arn or (arn is None and not recorded.get("given")):
        return
    setting = needs.setting
    if recorded.get("given"):
        say = f"set {setting} = \"{was}\" again" if arn is None else f"set {setting} back to \"{was}\""
        raise UsageError(f"{setting}: this cluster uses the given role {was} (state {ctx.ledger.path}), not "
                         f"{arn or 'a role eksprivate makes'}", f"{say}, or `eksprivate down` first")
    raise UsageError(f"{setting}: this cluster uses the role eksprivate made, {was} (state {ctx.ledger.path})",
                     f"remove {setting} from the config, or `eksprivate down` first")


class GivenRole(Used):
    """A role an IAM team made, in the place of the step that would make it: read, recorded, never changed."""

    kept_because = "given (made by your IAM team): down leaves it as it is"
    status_word = "given"
    vanished_hint = "ask your IAM team, then rerun"

    def __init__(self, made: Step, setting: str, arn: str) -> None:
        self.key = made.key
        self.title = f"{made.title} (given)"
        self.needs = made.needs
        self.orphan = made.orphan
        self.setting = setting
        self.arn = arn

    def preview(self, ctx: Context) -> list[str]:
        return [f"use {self.arn} ({self.setting}): never modified or deleted"]

    def find(self, ctx: Context) -> Found | None:
        role = read_role(ctx, self.arn)
        if role is None:
            return None
        return {"role_name": role_name_of(self.arn), "role_arn": self.arn, "given": True}

    def grants(self, ctx: Context) -> list[Grant]:
        # Reads only: the role and its managed policies, the service-linked roles that go with it
        # (check_given_roles, find). Handing it to a service (iam:PassRole on exactly this ARN) is declared by
        # the step that hands it over, through `Role.arn`.
        out = [reads("iam:GetRole", "iam:ListAttachedRolePolicies", on=self.arn,
                     why=f"the given {self.setting} (never changed)")]
        linked = NEEDS_BY_KEY[self.key].service_linked(ctx)
        if linked:
            out.append(reads("iam:GetRole", on=[ctx.arns.role(f"aws-service-role/{service}/{name}")
                                                for service, name in linked],
                             why="the service-linked roles that go with it exist"))
        return out

    def describe(self, found: Found) -> str:
        return f"{found['role_arn']}, given"

    def ids(self, found: Found) -> dict[str, Any]:
        return {"role_name": found["role_name"], "role_arn": found["role_arn"], "given": True}


def use_given_roles(ctx: Context, steps: list[Step]) -> list[Step]:
    """Each role step whose role is given (`given_arn`) replaced by a `GivenRole` with the same key and needs."""
    out: list[Step] = []
    for step in steps:
        arn = given_arn(ctx, step.key)
        out.append(GivenRole(step, NEEDS_BY_KEY[step.key].setting, arn) if arn else step)
    return out
