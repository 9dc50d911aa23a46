"""IAM roles: the cluster's, the nodes', and the VPC flow logs'. Each trusts exactly one service."""

from __future__ import annotations

import json
from typing import Any

from eksprivate.errors import AwsApiError, EksPrivateError
from eksprivate.steps.base import CLUSTER_TAG, Context, Found, Step, not_found


def partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def managed_policy(region: str, name: str) -> str:
    return f"arn:{partition(region)}:iam::aws:policy/{name}"


def trust_policy(service: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]})


class Role(Step):
    """A role with managed policies (and optionally one inline policy)."""

    service: str
    suffix: str
    description: str

    def policies(self, ctx: Context) -> list[str]:
        return []

    def inline_policy(self, ctx: Context) -> dict[str, Any] | None:
        return None

    def role_name(self, ctx: Context) -> str:
        return ctx.iam_name(self.suffix)

    def find(self, ctx: Context) -> Found | None:
        name = self.role_name(ctx)
        try:
            role = ctx.aws.iam.get_role(RoleName=name)["Role"]
        except AwsApiError as exc:
            if not_found(exc.code):
                return None
            raise
        tags = {t["Key"]: t["Value"] for t in role.get("Tags", [])}
        if tags.get(CLUSTER_TAG) != ctx.name:
            raise EksPrivateError(f"IAM role {name} exists but was not made by eksprivate for {ctx.name}",
                                  "delete or rename it, or choose another --name")
        attached = [p["PolicyArn"] for p in ctx.aws.iam.list_attached_role_policies(RoleName=name)
                    .get("AttachedPolicies", [])]
        return {"role_name": name, "role_arn": role["Arn"], "policies": attached, "status": "exists"}

    def create(self, ctx: Context) -> Found:
        name = self.role_name(ctx)
        ctx.intent(self.key)  # CreateRole takes no token; the unique name makes a retry safe
        try:
            role = ctx.aws.iam.create_role(
                RoleName=name, AssumeRolePolicyDocument=trust_policy(self.service), Description=self.description,
                Tags=ctx.tag_list(name))["Role"]
        except AwsApiError as exc:
            if exc.code != "EntityAlreadyExists":
                raise
            adopted = self.find(ctx)  # a crashed run made it: adopt
            if adopted is None:
                raise
            ctx.ledger.record(self.key, role_name=name, role_arn=adopted["role_arn"])  # later steps read it
            self.update(ctx, adopted)
            return adopted
        ctx.ledger.record(self.key, role_name=name, role_arn=role["Arn"])
        found: Found = {"role_name": name, "role_arn": role["Arn"], "policies": [], "status": "exists"}
        self.update(ctx, found)
        return found

    def changes(self, ctx: Context, found: Found) -> list[str]:
        return [f"attach {p.rsplit('/', 1)[-1]}" for p in self.policies(ctx) if p not in found["policies"]]

    def update(self, ctx: Context, found: Found) -> list[str]:
        done = []
        for arn in self.policies(ctx):
            if arn not in found["policies"]:
                ctx.aws.iam.attach_role_policy(RoleName=found["role_name"], PolicyArn=arn)
                found["policies"].append(arn)
                done.append(f"attached {arn.rsplit('/', 1)[-1]}")
        inline = self.inline_policy(ctx)
        if inline is not None and found.get("inline") != "ok":
            # PutRolePolicy is an idempotent upsert; only called on create or when `find` saw it missing.
            ctx.aws.iam.put_role_policy(RoleName=found["role_name"], PolicyName="eksprivate",
                                        PolicyDocument=json.dumps(inline))
            found["inline"] = "ok"
        return done

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
        except AwsApiError as exc:
            if not not_found(exc.code):
                raise

    def describe(self, found: Found) -> str:
        return str(found["role_name"])


class ClusterRole(Role):
    key = "cluster-role"
    title = "Cluster IAM role"
    service = "eks.amazonaws.com"
    suffix = "cluster"
    description = "EKS control plane role (eksprivate)"

    def policies(self, ctx: Context) -> list[str]:
        return [managed_policy(ctx.region, "AmazonEKSClusterPolicy")]


class NodeRole(Role):
    key = "node-role"
    title = "Node IAM role"
    service = "ec2.amazonaws.com"
    suffix = "node"
    description = "EKS managed node group role (eksprivate)"

    def policies(self, ctx: Context) -> list[str]:
        names = ["AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"]
        if "ssm" in ctx.settings.endpoints:  # Session Manager (eksprivate tunnel) reaches nodes through SSM
            names.append("AmazonSSMManagedInstanceCore")
        return [managed_policy(ctx.region, n) for n in names]


class FlowLogsRole(Role):
    key = "flow-logs-role"
    title = "Flow logs IAM role"
    service = "vpc-flow-logs.amazonaws.com"
    suffix = "flow-logs"
    description = "Delivers VPC flow logs to CloudWatch Logs (eksprivate)"

    def inline_policy(self, ctx: Context) -> dict[str, Any] | None:
        group = flow_log_group_arn(ctx)
        return {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogGroups",
                       "logs:DescribeLogStreams"],
            "Resource": [group, f"{group}:*"]}]}

    def find(self, ctx: Context) -> Found | None:
        found = super().find(ctx)
        if found is not None:
            names = ctx.aws.iam.list_role_policies(RoleName=found["role_name"])["PolicyNames"]
            found["inline"] = "ok" if "eksprivate" in names else "missing"
        return found

    def changes(self, ctx: Context, found: Found) -> list[str]:
        return super().changes(ctx, found) + (["put the log delivery policy"] if found.get("inline") != "ok" else [])


def flow_log_group_name(ctx: Context) -> str:
    return f"/eksprivate/{ctx.name}/vpc-flow-logs"


def flow_log_group_arn(ctx: Context) -> str:
    return f"arn:{partition(ctx.region)}:logs:{ctx.region}:{ctx.account}:log-group:{flow_log_group_name(ctx)}"
