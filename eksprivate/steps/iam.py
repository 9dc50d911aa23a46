"""IAM roles: the cluster's, the nodes', and the VPC flow logs'. Each trusts exactly one service.

`Role` is also the base of steps/addons.py's EBS CSI driver role; this module imports no other step (policy
documents come from the leaf steps/policies.py).
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from eksprivate.errors import AlreadyExists, EksPrivateError, NotFound
from eksprivate.grants import Condition, Grant, grant, reads
from eksprivate.steps.base import CLUSTER_TAG, Change, Context, Found, Step
from eksprivate.steps.policies import WrittenPolicy, managed_policy, policy_document, trust_policy


class Role(Step):
    """A role with managed policies (and optionally one inline policy)."""

    service: str  # the trusted service ("eks"); its principal depends on the partition: `principal`
    suffix: str
    description: str
    inline_what = "the inline policy"  # what `inline_policy` is, for plan and up
    # What the service may do with the role: EKS Pod Identity also needs sts:TagSession.
    trust_actions: tuple[str, ...] = ("sts:AssumeRole",)
    given_by = ""  # the config key naming a role an IAM team made instead ("cluster_role_arn"), if one may

    def principal(self, ctx: Context) -> str:
        return ctx.partition.principal(self.service)

    def policies(self, ctx: Context) -> list[str]:
        return []

    def inline_policy(self, ctx: Context) -> dict[str, Any] | None:
        """The one identity policy eksprivate writes on this role (PutRolePolicy "eksprivate"), if any.
        Every identity policy eksprivate writes comes from here: `written_policies` lints them all."""
        return None

    def trust_conditions(self, ctx: Context) -> dict[str, Any] | None:
        """Conditions on the service's AssumeRole (confused-deputy guard), where AWS documents them."""
        return None

    def role_name(self, ctx: Context) -> str:
        return ctx.iam_name(self.suffix)

    def given(self, ctx: Context) -> str | None:
        """The ARN of a role an IAM team made in this one's place (`given_by` in the config; steps/given_roles.py):
        the one the state recorded as given first (one it recorded as made stays made, so `down` deletes it),
        else the config's. None: eksprivate makes the role."""
        recorded = ctx.ledger.ids(self.key)
        if recorded.get("role_arn"):
            return str(recorded["role_arn"]) if recorded.get("given") else None
        value = getattr(ctx.settings, self.given_by, None) if self.given_by else None
        return str(value) if value else None

    def arn(self, ctx: Context) -> str:
        """The role's ARN, known before it exists (IAM ARNs are partition, account and name); a given role's ARN
        when one is given, so what is handed to a service (iam:PassRole) names the role really used."""
        return self.given(ctx) or ctx.arns.role(self.role_name(ctx))

    def grants(self, ctx: Context) -> list[Grant]:
        arn = self.arn(ctx)
        # With a permissions boundary (config), every IAM write that could widen the role is allowed only while
        # the role carries that boundary: AWS's pattern for delegating role creation (IAM User Guide,
        # "Delegating responsibility to others by using permissions boundaries").
        bounded = boundary_condition(ctx)
        # Only the managed policies this step attaches (iam:PolicyARN), never any other.
        attach = [Condition("ArnEquals", "iam:PolicyARN", tuple(self.policies(ctx)))] if self.policies(ctx) else []
        out = [reads("iam:GetRole", "iam:ListAttachedRolePolicies", on=arn, why=f"find the {self.title}"),
               grant("create", "iam:CreateRole", on=arn, when=bounded, why=f"the {self.title}"),
               # CreateRole with Tags: IAM authorises iam:TagRole as well (tag on create).
               grant("create", "iam:TagRole", on=arn, why="tags given to CreateRole"),
               grant("remove", "iam:ListRolePolicies", "iam:ListInstanceProfilesForRole", on=arn,
                     why="what is attached to the role before it is deleted"),
               grant("remove", "iam:DeleteRole", on=arn, why=f"the {self.title}"),
               # Instance profiles EKS made for the node group (eks-<uuid>) and left holding the role.
               grant("remove", "iam:RemoveRoleFromInstanceProfile",
                     on=[arn, ctx.arns.arn("iam", "instance-profile/eks-*", regional=False)],
                     why="an instance profile EKS left holding the role")]
        if attach:
            out += [grant(("create", "update"), "iam:AttachRolePolicy", on=arn, when=[*attach, *bounded],
                          why="its AWS managed policies, only those"),
                    grant("remove", "iam:DetachRolePolicy", on=arn, when=bounded,
                          why="its managed policies, before the role is deleted")]
        if self.inline_policy(ctx) is not None:
            out += [reads("iam:GetRolePolicy", on=arn, why=f"compare {self.inline_what}"),
                    grant(("create", "update"), "iam:PutRolePolicy", on=arn, when=bounded,
                          why=f"{self.inline_what}")]
        out.append(grant("remove", "iam:DeleteRolePolicy", on=arn, when=bounded,
                         why="its inline policies, before the role is deleted"))
        if ctx.settings.permissions_boundary:
            out.append(grant(("create", "update"), "iam:PutRolePermissionsBoundary", on=arn, when=bounded,
                             why="the permissions boundary, on a role made before it was configured"))
        return out

    def preview(self, ctx: Context) -> list[str]:
        policies = [arn.rsplit("/", 1)[-1] for arn in self.policies(ctx)]
        return [f"{self.role_name(ctx)}, trusts {self.service}", *policies]

    def find(self, ctx: Context) -> Found | None:
        name = self.role_name(ctx)
        try:
            role = ctx.aws.iam.get_role(RoleName=name)["Role"]
        except NotFound:
            return None
        tags = {t["Key"]: t["Value"] for t in role.get("Tags", [])}
        if tags.get(CLUSTER_TAG) != ctx.name:
            raise EksPrivateError(f"IAM role {name} exists but was not made by eksprivate for {ctx.name}",
                                  "delete or rename it, or choose another --name")
        attached = [p["PolicyArn"] for p in ctx.aws.iam.list_attached_role_policies(RoleName=name)
                    .get("AttachedPolicies", [])]
        return {"role_name": name, "role_arn": role["Arn"], "policies": attached, "status": "exists",
                "trust": role.get("AssumeRolePolicyDocument"),
                "boundary": (role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")}

    def create(self, ctx: Context) -> Found:
        name = self.role_name(ctx)
        ctx.intent(self.key)  # CreateRole takes no token; the unique name makes a retry safe
        boundary = ctx.settings.permissions_boundary
        try:
            role = ctx.aws.iam.create_role(
                RoleName=name, AssumeRolePolicyDocument=trust_policy(self.principal(ctx), self.trust_conditions(ctx),
                                                                     self.trust_actions),
                Description=self.description,
                # Set at creation: a role never exists without it, even for a moment.
                **({"PermissionsBoundary": boundary} if boundary else {}),
                Tags=ctx.tag_list(name))["Role"]
        except AlreadyExists:
            adopted = self.find(ctx)  # a crashed run made it: adopt
            if adopted is None:
                raise
            ctx.ledger.record(self.key, role_name=name, role_arn=adopted["role_arn"])  # later steps read it
            self.update(ctx, adopted)
            return adopted
        ctx.ledger.record(self.key, role_name=name, role_arn=role["Arn"])
        found: Found = {"role_name": name, "role_arn": role["Arn"], "policies": [], "status": "exists",
                        "boundary": boundary}
        self.update(ctx, found)
        return found

    def diff(self, ctx: Context, found: Found) -> list[Change]:
        boundary = ctx.settings.permissions_boundary
        # First: with a boundary configured, the operator may change the role's policies only once it carries it.
        out = [Change(f"set the permissions boundary {boundary.rsplit('/', 1)[-1]}",
                      partial(self._set_boundary, ctx, found, boundary))
               ] if boundary and found.get("boundary") != boundary else []
        out += [Change(f"attach {arn.rsplit('/', 1)[-1]}", partial(self._attach, ctx, found, arn))
                for arn in self.policies(ctx) if arn not in found["policies"]]
        inline = self.inline_policy(ctx)
        # PutRolePolicy is an idempotent upsert; only called on create (no "inline" yet) or when `find` saw it
        # missing or outdated.
        if inline is not None and found.get("inline") != "ok":
            state = found.get("inline")
            out.append(Change(f"{'update' if state == 'outdated' else 'put'} {self.inline_what}",
                              partial(self._put_inline, ctx, found, inline)))
        return out

    @staticmethod
    def _set_boundary(ctx: Context, found: Found, boundary: str) -> str:
        ctx.aws.iam.put_role_permissions_boundary(RoleName=found["role_name"], PermissionsBoundary=boundary)
        found["boundary"] = boundary
        return f"set the permissions boundary {boundary.rsplit('/', 1)[-1]}"

    @staticmethod
    def _attach(ctx: Context, found: Found, arn: str) -> str:
        ctx.aws.iam.attach_role_policy(RoleName=found["role_name"], PolicyArn=arn)
        found["policies"].append(arn)
        return f"attached {arn.rsplit('/', 1)[-1]}"

    def _put_inline(self, ctx: Context, found: Found, inline: dict[str, Any]) -> str | None:
        state = found.get("inline")
        ctx.aws.iam.put_role_policy(RoleName=found["role_name"], PolicyName="eksprivate",
                                    PolicyDocument=json.dumps(inline))
        found["inline"] = "ok"
        # Only a repair is worth saying: on create the policy is part of making the role.
        return {"missing": f"put {self.inline_what}", "outdated": f"updated {self.inline_what}"}.get(str(state))

    def remove(self, ctx: Context, found: Found) -> None:
        name = found["role_name"]
        iam = ctx.aws.iam
        try:
            for arn in [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]]:
                iam.detach_role_policy(RoleName=name, PolicyArn=arn)
            for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
                iam.delete_role_policy(RoleName=name, PolicyName=policy)
            for profile in iam.list_instance_profiles_for_role(RoleName=name)["InstanceProfiles"]:
                iam.remove_role_from_instance_profile(InstanceProfileName=profile["InstanceProfileName"],
                                                      RoleName=name)
            iam.delete_role(RoleName=name)
        except NotFound:
            pass

    def describe(self, found: Found) -> str:
        return str(found["role_name"])

    def written(self, ctx: Context) -> list[WrittenPolicy]:
        """The policy documents this role's step writes: its trust policy and its inline policy, if any."""
        trust = trust_policy(self.principal(ctx), self.trust_conditions(ctx), self.trust_actions)
        out = [WrittenPolicy(self.key, "trust", json.loads(trust))]
        inline = self.inline_policy(ctx)
        if inline is not None:
            out.append(WrittenPolicy(self.key, "identity", inline))
        return out


class ClusterRole(Role):
    key = "cluster-role"
    title = "Cluster IAM role"
    service = "eks"
    suffix = "cluster"
    given_by = "cluster_role_arn"
    description = "EKS control plane role (eksprivate)"

    def policies(self, ctx: Context) -> list[str]:
        return [managed_policy(ctx.partition, "AmazonEKSClusterPolicy")]


class NodeRole(Role):
    key = "node-role"
    title = "Node IAM role"
    service = "ec2"
    suffix = "node"
    given_by = "node_role_arn"
    description = "EKS managed node group role (eksprivate)"

    def policies(self, ctx: Context) -> list[str]:
        names = ["AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"]
        if "ssm" in ctx.settings.endpoints:  # Session Manager (eksprivate tunnel) reaches nodes through SSM
            names.append("AmazonSSMManagedInstanceCore")
        return [managed_policy(ctx.partition, n) for n in names]


class FlowLogsRole(Role):
    key = "flow-logs-role"
    title = "Flow logs IAM role"
    service = "vpc-flow-logs"
    suffix = "flow-logs"
    given_by = "flow_logs_role_arn"
    description = "Delivers VPC flow logs to CloudWatch Logs (eksprivate)"
    inline_what = "the log delivery policy"

    def inline_policy(self, ctx: Context) -> dict[str, Any] | None:
        # AWS's documented delivery role grants logs:CreateLogGroup, CreateLogStream, PutLogEvents,
        # DescribeLogGroups and DescribeLogStreams on "*" (VPC user guide, flow-logs-iam-role). The log group
        # exists before the flow log (eksprivate makes it), so no CreateLogGroup; the writes stay scoped to
        # that group. DescribeLogGroups takes no resource ARN (IAM: resource "*" only): scoped to the group it
        # would never be granted, so it gets "*", as AWS documents. It is read-only (names and settings).
        group = flow_log_group_arn(ctx)
        return {"Version": "2012-10-17", "Statement": [
            {"Sid": "DeliverToTheFlowLogGroup", "Effect": "Allow",
             "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
             "Resource": [group, f"{group}:*"]},
            {"Sid": "FindTheFlowLogGroup", "Effect": "Allow", "Action": "logs:DescribeLogGroups", "Resource": "*"},
        ]}

    def trust_conditions(self, ctx: Context) -> dict[str, Any] | None:
        # Confused-deputy guard AWS recommends for this role: only flow logs of this account (and region) may
        # have the service assume it. The flow log id is unknown before the role exists: AWS says to use "*".
        return {"StringEquals": {"aws:SourceAccount": ctx.account},
                "ArnLike": {"aws:SourceArn": ctx.partition.arn("ec2", ctx.region, ctx.account,
                                                                       "vpc-flow-log/*")}}

    def trust_document(self, ctx: Context) -> dict[str, Any]:
        return dict(json.loads(trust_policy(self.principal(ctx), self.trust_conditions(ctx))))

    def find(self, ctx: Context) -> Found | None:
        found = super().find(ctx)
        if found is not None:
            try:
                live = ctx.aws.iam.get_role_policy(RoleName=found["role_name"], PolicyName="eksprivate")
            except NotFound:
                found["inline"] = "missing"
            else:
                same = policy_document(live.get("PolicyDocument")) == self.inline_policy(ctx)
                found["inline"] = "ok" if same else "outdated"
            # A role made before the trust conditions existed gets them on the next `up`.
            found["trust_ok"] = policy_document(found.pop("trust", None)) == self.trust_document(ctx)
        return found

    def diff(self, ctx: Context, found: Found) -> list[Change]:
        out = super().diff(ctx, found)
        if found.get("trust_ok") is False:
            out.append(Change("limit the trust policy to this account's flow logs (aws:SourceAccount, "
                              "aws:SourceArn)", partial(self._limit_trust, ctx, found)))
        return out

    def grants(self, ctx: Context) -> list[Grant]:
        return [*super().grants(ctx),
                grant("update", "iam:UpdateAssumeRolePolicy", on=self.arn(ctx),
                      why="limit the trust policy of a role an older version made")]

    def _limit_trust(self, ctx: Context, found: Found) -> str:
        ctx.aws.iam.update_assume_role_policy(RoleName=found["role_name"],
                                              PolicyDocument=json.dumps(self.trust_document(ctx)))
        found["trust_ok"] = True
        return "limited the trust policy to this account's flow logs"


def boundary_condition(ctx: Context) -> list[Condition]:
    """`iam:PermissionsBoundary` equal to the configured boundary (none without one). ArnEquals: the key's value
    is a policy ARN (AWS's own AWSCODAPermissionsBoundary policy compares it with ArnLike)."""
    boundary = ctx.settings.permissions_boundary
    return [Condition("ArnEquals", "iam:PermissionsBoundary", (boundary,))] if boundary else []


def role_classes(base: type[Role] = Role) -> list[type[Role]]:
    """Every concrete Role subclass defined so far (steps/addons.py's too: the `steps` package imports every step
    module before anyone can ask)."""
    found: list[type[Role]] = []
    for sub in base.__subclasses__():
        if hasattr(sub, "key"):  # not an abstract intermediate class
            found.append(sub)
        found += role_classes(sub)
    return found


def flow_log_group_name(ctx: Context) -> str:
    return f"/eksprivate/{ctx.name}/vpc-flow-logs"


def flow_log_group_arn(ctx: Context) -> str:
    return ctx.partition.arn("logs", ctx.region, ctx.account, f"log-group:{flow_log_group_name(ctx)}")
