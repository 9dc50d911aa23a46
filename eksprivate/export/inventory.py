"""What eksprivate made for one cluster, read live from AWS: the input of both exporters.

`plan`'s machinery does the finding: the engine walks the same graph `plan` walks (every step's `find`, by state
ids or by tag), which also yields every difference from the config (`diff`), and leaves the ids it found in the
in-memory ledger. Each resource is then described with the read calls below, so what is exported is what
exists now, changed by hand or not. Nothing here writes: the ledger was opened read-only.

A `Resource` keeps AWS's own answer (`live`, API shapes); the renderers (cloudformation.py, terraform.py)
turn that into each tool's properties, and resolve ids that name another exported resource into references.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from eksprivate.engine import Engine, PlanItem
from eksprivate.errors import EksPrivateError, NotFound, UsageError
from eksprivate.grants import Grant, reads
from eksprivate.steps import Context, Step, build_graph
from eksprivate.steps.addons import Addon, EbsCsiRole
from eksprivate.steps.base import CLUSTER_TAG
from eksprivate.steps.cluster import Cluster, ClusterAdmins
from eksprivate.steps.ecr import EcrRepository
from eksprivate.steps.endpoints import Endpoints
from eksprivate.steps.iam import Role
from eksprivate.steps.network import EndpointSecurityGroup, Subnets, Vpc
from eksprivate.steps.nodegroups import NodeGroup
from eksprivate.steps.pull_through import PullThroughCache
from eksprivate.steps.security import FlowLogs, KmsKey, LaunchTemplate, LogGroup, kms_alias


def grants(ctx: Context) -> list[Grant]:
    """What `eksprivate export` reads beside `plan`'s walk (whose reads the steps declare): one describe per
    resource, on this cluster's resources (`eksprivate permissions` includes them)."""
    graph = build_graph(ctx, orphans=True)
    arns, why = ctx.arns, "export: describe what eksprivate made, as it is now"
    roles = [step.arn(ctx) for step in graph if isinstance(step, Role)]
    logs = [arn for step in graph if isinstance(step, LogGroup) for arn in arns.log_group(step.group_name)]
    repositories = [arns.ecr_repository(step.name) for step in graph if isinstance(step, EcrRepository)]
    out = [reads("ec2:DescribeVpcs", "ec2:DescribeSubnets", "ec2:DescribeRouteTables", "ec2:DescribeSecurityGroups",
                 "ec2:DescribeSecurityGroupRules", "ec2:DescribeVpcEndpoints", "ec2:DescribeFlowLogs",
                 "ec2:DescribeLaunchTemplates", "ec2:DescribeLaunchTemplateVersions", why=why),
           reads("ec2:DescribeVpcAttribute", on=arns.ec2("vpc/*"), why=why),
           reads("kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListResourceTags",
                 on=arns.kms_key(), why=why),
           reads("kms:ListAliases", why=why),  # KMS takes no resource ARN for it
           reads("logs:DescribeLogGroups", why=why),
           reads("eks:DescribeCluster", on=arns.eks_cluster(), why=why),
           reads("eks:DescribeNodegroup", on=arns.eks_nodegroup(), why=why),
           reads("eks:DescribeAddon", on=arns.eks_addon(), why=why),
           reads("eks:DescribePodIdentityAssociation", on=arns.arn("eks", f"podidentityassociation/{ctx.name}/*"),
                 why=why),
           reads("eks:DescribeAccessEntry", "eks:ListAssociatedAccessPolicies", on=arns.eks_access_entry(),
                 why=why)]
    if roles:
        out.append(reads("iam:GetRole", "iam:ListAttachedRolePolicies", "iam:ListRolePolicies", "iam:GetRolePolicy",
                         on=roles, why=why))
    if logs:
        out.append(reads("logs:ListTagsForResource", on=logs, why=why))
    if repositories:
        out.append(reads("ecr:DescribeRepositories", "ecr:ListTagsForResource", on=repositories, why=why))
    if any(isinstance(step, PullThroughCache) for step in graph):
        out.append(reads("ecr:DescribePullThroughCacheRules", why=why))  # the registry's rules: no ARN
    return out


@dataclass
class Resource:
    """One AWS resource eksprivate made for the cluster, as AWS describes it now."""

    kind: str  # vpc, subnet, route_table, ... (the keys of the renderers' tables)
    label: str  # unique, snake_case: becomes the logical id (CloudFormation) and the resource name (Terraform)
    id: str  # its identifier in AWS (what imports take)
    live: dict[str, Any]  # AWS's answer, in the API's shape, plus what other reads added
    step: str  # the step that owns it, for the differences report


@dataclass
class Inventory:
    cluster: str
    region: str
    account: str
    resources: list[Resource] = field(default_factory=list)
    # What differs from what the config would make: `plan`'s lines, per step title.
    differences: list[str] = field(default_factory=list)
    # Resources the cluster uses but eksprivate did not make (a network team's VPC): not exported.
    used: list[str] = field(default_factory=list)

    def add(self, kind: str, label: str, ident: str, live: dict[str, Any], step: str) -> Resource:
        taken = {r.label for r in self.resources if r.kind == kind}  # names are per type in both tools
        base, n = label, 2
        while label in taken:
            label, n = f"{base}_{n}", n + 1
        resource = Resource(kind, label, ident, live, step)
        self.resources.append(resource)
        return resource

    def of_kind(self, kind: str) -> Iterator[Resource]:
        return (r for r in self.resources if r.kind == kind)

    def index(self) -> dict[str, tuple[Resource, str]]:
        """Every live id, name and ARN an exported resource answers to -> (that resource, which attribute:
        "id", "name" or "arn"): how the renderers turn a literal into a reference."""
        out: dict[str, tuple[Resource, str]] = {}
        for r in self.resources:
            if r.kind in ("vpc", "subnet", "route_table", "security_group", "default_security_group", "vpc_endpoint",
                          "launch_template", "kms_key"):
                out[r.id] = (r, "id")
            if r.kind in ("iam_role", "log_group", "eks_cluster"):
                out[r.id] = (r, "name")
            arn = r.live.get("Arn") or r.live.get("logGroupArn")
            if r.kind in ("iam_role", "kms_key", "log_group") and arn:
                out[str(arn)] = (r, "arn")
        return out


class References:
    """Turns a literal id, name or ARN into a reference to the exported resource that answers to it; each
    renderer says how a reference is written (`reference`). Anything else stays as it is."""

    def __init__(self, inv: Inventory) -> None:
        self.index = inv.index()

    def reference(self, resource: Resource, attribute: str) -> Any:
        raise NotImplementedError

    def __call__(self, literal: Any) -> Any:
        hit = self.index.get(literal) if isinstance(literal, str) else None
        return literal if hit is None else self.reference(*hit)

    def all(self, literals: list[Any]) -> list[Any]:
        return [self(v) for v in literals]

    def sorted(self, literals: list[Any]) -> list[Any]:
        """A set AWS answers in no particular order, in the order of what is written (private_a, private_b)."""
        return sorted(self.all(literals), key=str)


def snake(text: str) -> str:
    """A label from any name: lower-case letters, digits and underscores, starting with a letter."""
    out = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return out if out and out[0].isalpha() else f"r_{out}"


class _Quiet:
    def phase(self, key: str, title: str, phase: str, detail: str = "") -> None:
        return None

    def note(self, key: str, text: str) -> None:
        return None


def read_inventory(ctx: Context) -> Inventory:
    """Find everything (plan's walk, which also lists what differs from the config), then describe it."""
    engine = Engine(ctx, build_graph(ctx, orphans=True), _Quiet())
    items = engine.plan()
    steps = engine.steps  # with the orphans the discoveries found (node groups, launch templates)
    unread = [i for i in items if i.action == "unknown"]
    if unread:  # plan lists a step it could not read as unknown; an export missing it would be wrong
        raise EksPrivateError(f"export stopped: {unread[0].title} could not be read: {'; '.join(unread[0].details)}"
                              + (f" (and {len(unread) - 1} more)" if len(unread) > 1 else ""),
                              "fix the cause (often a missing read permission) and rerun; nothing was written")
    if not ctx.ledger.ids("cluster").get("cluster_name"):
        raise UsageError(f"no EKS cluster {ctx.name} made by eksprivate in {ctx.region} (account {ctx.account}): "
                         "nothing to export", "check --name, --region and --state")
    inventory = Inventory(ctx.name, ctx.region, ctx.account, differences=_differences(items))
    found = {item.key: item for item in items}
    for step in steps:
        item = found.get(step.key)
        if item is None or (item.action in ("absent", "create") and not ctx.ledger.ids(step.key)):
            continue
        if ctx.ledger.ids(step.key).get("uses"):
            inventory.used.append(f"{step.title}: {item.resources}")
            continue
        reader = _reader(step)
        if reader is not None:
            reader(ctx, step, inventory)
    return inventory


def _differences(items: list[PlanItem]) -> list[str]:
    """`plan`'s view: every step whose live resource is not what the config would make, with its lines."""
    out = []
    for item in items:
        if item.action == "absent" or (item.action == "none" and not item.details):
            continue
        if item.action == "create" and not item.resources:
            out.append(f"{item.title}: missing (`eksprivate up` would create it)")
            continue
        lines = "; ".join(d.removeprefix("! ") for d in item.details) or item.action
        out.append(f"{item.title} (`plan` says: {lines})")
    return out


Reader = Callable[[Context, Any, Inventory], None]


def _reader(step: Step) -> Reader | None:
    readers: list[tuple[type[Step], Reader]] = [
        (Vpc, _vpc), (Subnets, _subnets), (EndpointSecurityGroup, _security_group), (Endpoints, _endpoints),
        (Role, _role), (KmsKey, _kms_key), (LogGroup, _log_group), (FlowLogs, _flow_logs),
        (LaunchTemplate, _launch_template), (Cluster, _cluster), (ClusterAdmins, _admins), (NodeGroup, _nodegroup),
        (Addon, _addon), (EcrRepository, _repository), (PullThroughCache, _pull_through),
    ]
    for kind, reader in readers:
        if isinstance(step, kind) and type(step).__module__ != "eksprivate.steps.used_network":
            return reader
    return None


# -- the network ---------------------------------------------------------------------------------------
def _vpc(ctx: Context, step: Vpc, inv: Inventory) -> None:
    vpc_id = ctx.ledger.ids(step.key)["vpc_id"]
    vpc = ctx.aws.ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]
    for attribute in ("enableDnsSupport", "enableDnsHostnames"):
        answer = ctx.aws.ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute=attribute)
        vpc[attribute[0].upper() + attribute[1:]] = answer[attribute[0].upper() + attribute[1:]]["Value"]
    inv.add("vpc", "vpc", vpc_id, vpc, step.key)
    default = ctx.aws.ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                                           {"Name": "group-name", "Values": ["default"]}])
    for group in default.get("SecurityGroups", []):  # EC2 made it with the VPC; `up` empties it
        inv.add("default_security_group", "default", group["GroupId"], group, step.key)


def _zone_label(ctx: Context, az: str) -> str:
    return snake(az.removeprefix(ctx.region) or az)


def _subnets(ctx: Context, step: Subnets, inv: Inventory) -> None:
    parts: dict[str, dict[str, str]] = ctx.ledger.ids(step.key).get("parts", {})
    subnet_ids = [p["subnet_id"] for p in parts.values() if "subnet_id" in p]
    table_ids = [p["route_table_id"] for p in parts.values() if "route_table_id" in p]
    subnets = {s["SubnetId"]: s for s in ctx.aws.ec2.describe_subnets(SubnetIds=subnet_ids)["Subnets"]} \
        if subnet_ids else {}
    tables = {t["RouteTableId"]: t for t in ctx.aws.ec2.describe_route_tables(RouteTableIds=table_ids)["RouteTables"]} \
        if table_ids else {}
    for az, part in sorted(parts.items()):
        zone = _zone_label(ctx, az)
        subnet = subnets.get(part.get("subnet_id", ""))
        if subnet:
            inv.add("subnet", f"private_{zone}", subnet["SubnetId"], subnet, step.key)
        table = tables.get(part.get("route_table_id", ""))
        if table:
            inv.add("route_table", f"private_{zone}", table["RouteTableId"], table, step.key)
            for assoc in table.get("Associations", []):
                if assoc.get("SubnetId") and not assoc.get("Main"):
                    inv.add("route_table_association", f"private_{zone}", assoc["RouteTableAssociationId"],
                            assoc, step.key)


def _security_group(ctx: Context, step: EndpointSecurityGroup, inv: Inventory) -> None:
    group_id = ctx.ledger.ids(step.key)["group_id"]
    group = ctx.aws.ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    inv.add("security_group", "endpoints", group_id, group, step.key)
    rules = ctx.aws.ec2.paginate("describe_security_group_rules", "SecurityGroupRules",
                                 Filters=[{"Name": "group-id", "Values": [group_id]}])
    for rule in sorted(rules, key=lambda r: (bool(r.get("IsEgress")), str(r.get("SecurityGroupRuleId")))):
        direction = "egress" if rule.get("IsEgress") else "ingress"
        port = rule.get("FromPort")
        label = f"endpoints_{direction}" + (f"_{port}" if port not in (None, -1) else "")
        inv.add(f"security_group_{direction}", label, rule["SecurityGroupRuleId"], rule, step.key)


def _endpoints(ctx: Context, step: Endpoints, inv: Inventory) -> None:
    ids: dict[str, str] = ctx.ledger.ids(step.key).get("endpoint_ids", {})
    if not ids:
        return
    live = {e["VpcEndpointId"]: e for e in ctx.aws.ec2.describe_vpc_endpoints(
        VpcEndpointIds=sorted(ids.values()))["VpcEndpoints"]}
    for service, endpoint_id in sorted(ids.items()):
        endpoint = live.get(endpoint_id)
        if endpoint is not None and endpoint.get("State", "").lower() not in ("deleted", "deleting"):
            inv.add("vpc_endpoint", snake(service), endpoint_id, endpoint, step.key)


# -- IAM, KMS, logs --------------------------------------------------------------------------------------
def _policy(document: Any) -> Any:
    """IAM answers a policy as an object (botocore decodes it) or, from some clients, URL-encoded JSON."""
    return json.loads(unquote(document)) if isinstance(document, str) else document


def _role(ctx: Context, step: Role, inv: Inventory) -> None:
    name = ctx.ledger.ids(step.key).get("role_name")
    if not name:
        return
    role = ctx.aws.iam.get_role(RoleName=name)["Role"]
    role["AssumeRolePolicyDocument"] = _policy(role.get("AssumeRolePolicyDocument"))
    role["AttachedPolicies"] = sorted(p["PolicyArn"] for p in ctx.aws.iam.paginate(
        "list_attached_role_policies", "AttachedPolicies", RoleName=name))
    role["InlinePolicies"] = [
        {"PolicyName": policy, "PolicyDocument": _policy(
            ctx.aws.iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"])}
        for policy in sorted(ctx.aws.iam.paginate("list_role_policies", "PolicyNames", RoleName=name))]
    label = "ebs_csi_role" if isinstance(step, EbsCsiRole) else snake(step.key)
    inv.add("iam_role", label, name, role, step.key)


def _kms_key(ctx: Context, step: KmsKey, inv: Inventory) -> None:
    key_id = ctx.ledger.ids(step.key).get("key_id")
    if not key_id:
        return
    key = ctx.aws.kms.describe_key(KeyId=key_id)["KeyMetadata"]
    key["Policy"] = json.loads(ctx.aws.kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    key["KeyRotationEnabled"] = ctx.aws.kms.get_key_rotation_status(KeyId=key_id).get("KeyRotationEnabled", False)
    key["Tags"] = list(ctx.aws.kms.paginate("list_resource_tags", "Tags", KeyId=key_id))
    inv.add("kms_key", "secrets", key_id, key, step.key)
    for alias in ctx.aws.kms.paginate("list_aliases", "Aliases", KeyId=key_id):
        if alias.get("AliasName") == kms_alias(ctx):
            inv.add("kms_alias", "secrets", alias["AliasName"], alias, step.key)


def _log_group(ctx: Context, step: LogGroup, inv: Inventory) -> None:
    name = ctx.ledger.ids(step.key).get("log_group_name") or step.group_name
    group = next((g for g in ctx.aws.logs.paginate("describe_log_groups", "logGroups", logGroupNamePrefix=name)
                  if g.get("logGroupName") == name), None)
    if group is None:
        return
    arn = str(group.get("arn", "")).removesuffix(":*")
    try:
        group["tags"] = ctx.aws.logs.list_tags_for_resource(resourceArn=arn).get("tags", {}) if arn else {}
    except NotFound:
        group["tags"] = {}
    inv.add("log_group", "flow_logs" if step.key == "flow-log-group" else snake(step.key.removesuffix("-log-group")),
            name, group, step.key)


def _flow_logs(ctx: Context, step: FlowLogs, inv: Inventory) -> None:
    flow_id = ctx.ledger.ids(step.key).get("flow_log_id")
    if not flow_id:
        return
    logs = ctx.aws.ec2.describe_flow_logs(FlowLogIds=[flow_id]).get("FlowLogs", [])
    if logs:
        inv.add("flow_log", "vpc", flow_id, logs[0], step.key)


def _launch_template(ctx: Context, step: LaunchTemplate, inv: Inventory) -> None:
    template_id = ctx.ledger.ids(step.key).get("launch_template_id")
    if not template_id:
        return
    template = ctx.aws.ec2.describe_launch_templates(LaunchTemplateIds=[template_id])["LaunchTemplates"][0]
    versions = ctx.aws.ec2.describe_launch_template_versions(
        LaunchTemplateId=template_id, Versions=[str(template.get("DefaultVersionNumber", 1))])
    version = (versions.get("LaunchTemplateVersions") or [{}])[0]
    template["LaunchTemplateData"] = version.get("LaunchTemplateData", {})
    template["VersionDescription"] = version.get("VersionDescription")
    inv.add("launch_template", snake(step.spec.name), template_id, template, step.key)


# -- EKS --------------------------------------------------------------------------------------------------
def _cluster(ctx: Context, step: Cluster, inv: Inventory) -> None:
    cluster = ctx.aws.eks.describe_cluster(name=ctx.name)["cluster"]
    # Create-only settings EKS does not describe: what eksprivate sent (steps/cluster.py, the same rule).
    managed = {a.name for a in ctx.settings.addons}
    cluster.setdefault("bootstrapSelfManagedAddons", not {"vpc-cni", "kube-proxy", "coredns"} <= managed)
    inv.add("eks_cluster", "cluster", cluster["name"], cluster, step.key)


def _admins(ctx: Context, step: ClusterAdmins, inv: Inventory) -> None:
    for arn in ctx.ledger.ids(step.key).get("admin_arns", []):
        try:
            entry = ctx.aws.eks.describe_access_entry(clusterName=ctx.name, principalArn=arn)["accessEntry"]
        except NotFound:
            continue
        if (entry.get("tags") or {}).get(CLUSTER_TAG) != ctx.name:
            continue  # only entries eksprivate made (never the creator's)
        entry["accessPolicies"] = list(ctx.aws.eks.paginate(
            "list_associated_access_policies", "associatedAccessPolicies", clusterName=ctx.name, principalArn=arn))
        inv.add("eks_access_entry", snake(arn.rsplit("/", 1)[-1]), arn, entry, step.key)


def _nodegroup(ctx: Context, step: NodeGroup, inv: Inventory) -> None:
    name = ctx.ledger.ids(step.key).get("nodegroup_name")
    if not name:
        return
    group = ctx.aws.eks.describe_nodegroup(clusterName=ctx.name, nodegroupName=name)["nodegroup"]
    inv.add("eks_nodegroup", snake(name), name, group, step.key)


def _addon(ctx: Context, step: Addon, inv: Inventory) -> None:
    name = ctx.ledger.ids(step.key).get("addon_name")
    if not name:
        return
    addon = ctx.aws.eks.describe_addon(clusterName=ctx.name, addonName=name)["addon"]
    associations = []
    for arn in addon.get("podIdentityAssociations") or []:
        try:
            associations.append(ctx.aws.eks.describe_pod_identity_association(
                clusterName=ctx.name, associationId=str(arn).rsplit("/", 1)[-1])["association"])
        except NotFound:
            continue
    addon["podIdentityAssociationDetails"] = associations
    inv.add("eks_addon", snake(name), name, addon, step.key)


# -- ECR ------------------------------------------------------------------------------------------------------
def _repository(ctx: Context, step: EcrRepository, inv: Inventory) -> None:
    name = ctx.ledger.ids(step.key).get("repository_name")
    if not name:
        return
    try:
        repo = ctx.aws.ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    except NotFound:
        return
    tags = ctx.aws.ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"]).get("tags", [])
    if {"Key": CLUSTER_TAG, "Value": ctx.name} not in tags:
        inv.used.append(f"ECR repository {name} (not made by eksprivate: used as it is)")
        return
    repo["tags"] = tags
    inv.add("ecr_repository", snake(name), name, repo, step.key)


def _pull_through(ctx: Context, step: PullThroughCache, inv: Inventory) -> None:
    prefixes = ctx.ledger.ids(step.key).get("rule_prefixes", [])
    if not prefixes:
        return
    rules = ctx.aws.ecr.describe_pull_through_cache_rules(ecrRepositoryPrefixes=list(prefixes))
    for rule in rules.get("pullThroughCacheRules", []):
        prefix = rule["ecrRepositoryPrefix"]
        inv.add("ecr_pull_through_rule", snake(prefix), prefix, rule, step.key)
