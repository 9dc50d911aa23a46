"""The inventory as Terraform configuration for the AWS provider: a resource block and an `import` block each.

Import ids follow each resource type's documented format (terraform-provider-aws, website/docs/r/<type>:
"Import"): `cluster:nodegroup` for node groups and add-ons, `cluster:principal` for access entries,
`cluster#principal#policy` for their policy associations, `subnet-id/rtb-id` for route table associations,
`role/policy-arn` for policy attachments, `role:policy` for inline policies; the plain id or name otherwise.
An id that names another exported resource is written as a reference to it (`aws_vpc.vpc.id`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eksprivate.export.inventory import Inventory, References, Resource

# kind -> Terraform type
TYPES: dict[str, str] = {
    "vpc": "aws_vpc", "subnet": "aws_subnet", "route_table": "aws_route_table",
    "route_table_association": "aws_route_table_association", "security_group": "aws_security_group",
    "default_security_group": "aws_default_security_group",
    "security_group_ingress": "aws_vpc_security_group_ingress_rule",
    "security_group_egress": "aws_vpc_security_group_egress_rule", "vpc_endpoint": "aws_vpc_endpoint",
    "iam_role": "aws_iam_role", "kms_key": "aws_kms_key", "kms_alias": "aws_kms_alias",
    "log_group": "aws_cloudwatch_log_group", "flow_log": "aws_flow_log", "launch_template": "aws_launch_template",
    "eks_cluster": "aws_eks_cluster", "eks_nodegroup": "aws_eks_node_group", "eks_addon": "aws_eks_addon",
    "eks_access_entry": "aws_eks_access_entry", "ecr_repository": "aws_ecr_repository",
    "ecr_pull_through_rule": "aws_ecr_pull_through_cache_rule",
}
# The attribute a reference reads, per kind and what the literal was ("id", "name", "arn").
ATTRIBUTES = {("kms_key", "id"): "key_id"}
# Which file each kind goes to.
FILES = {"vpc": "network", "subnet": "network", "route_table": "network", "route_table_association": "network",
         "security_group": "network", "default_security_group": "network", "security_group_ingress": "network",
         "security_group_egress": "network",
         "vpc_endpoint": "network", "flow_log": "network", "iam_role": "iam", "kms_key": "security",
         "kms_alias": "security", "log_group": "security", "launch_template": "eks", "eks_cluster": "eks",
         "eks_nodegroup": "eks", "eks_addon": "eks", "eks_access_entry": "eks", "ecr_repository": "ecr",
         "ecr_pull_through_rule": "ecr"}


class Expr(str):
    """An HCL expression written as it is (a reference, a function call), not as a quoted string."""


@dataclass
class Block:
    """A nested block (`vpc_config { ... }`), as opposed to an attribute holding an object."""

    body: dict[str, Any]


@dataclass
class Written:
    """One resource block (plus its import) in a file."""

    file: str
    type: str
    name: str
    body: dict[str, Any]
    import_id: str
    comment: str = ""


def _string(text: str) -> str:
    escaped = json.dumps(text, ensure_ascii=False)  # quotes, backslashes, control characters
    return escaped.replace("${", "$${").replace("%{", "%%{")  # HCL template sequences stay literal


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def _key(key: str) -> str:
    return key if _IDENT.match(key) else _string(key)


def value(v: Any, indent: int = 0) -> str:
    """An HCL expression for a Python value."""
    pad = "  " * (indent + 1)
    if isinstance(v, Expr):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return _string(v)
    if v is None:
        return "null"
    if isinstance(v, list):
        if not v:
            return "[]"
        if all(not isinstance(i, (dict, list)) for i in v) and sum(len(str(i)) for i in v) < 80:
            return "[" + ", ".join(value(i, indent) for i in v) + "]"
        return "[\n" + "".join(f"{pad}{value(i, indent + 1)},\n" for i in v) + "  " * indent + "]"
    if isinstance(v, dict):
        if not v:
            return "{}"
        width = max(len(_key(str(k))) for k in v)  # `=` aligned, as `terraform fmt` writes it
        return "{\n" + "".join(f"{pad}{_key(str(k)).ljust(width)} = {value(i, indent + 1)}\n"
                               for k, i in v.items()) + "  " * indent + "}"
    raise TypeError(f"no HCL for {type(v).__name__}")


def body(items: dict[str, Any], indent: int = 1) -> str:
    pad = "  " * indent
    lines = []
    present = {k: i for k, i in items.items() if i is not None}
    width = max((len(k) for k, i in present.items() if not _is_blocks(i)), default=0)
    for key, item in present.items():
        if _is_blocks(item):
            for block in item if isinstance(item, list) else [item]:
                lines.append(f"{pad}{key} {{\n{body(block.body, indent + 1)}{pad}}}\n")
        else:
            lines.append(f"{pad}{key.ljust(width)} = {value(item, indent)}\n")
    return "".join(lines)


def _is_blocks(item: Any) -> bool:
    return isinstance(item, Block) or (isinstance(item, list) and bool(item) and all(isinstance(b, Block)
                                                                                     for b in item))


def _json(document: Any) -> Expr:
    """A policy as `jsonencode({...})`: reviewable HCL, and the same document Terraform sends."""
    parsed = json.loads(document) if isinstance(document, str) else document
    return Expr(f"jsonencode({value(parsed, 1)})")


class _Refs(References):
    def reference(self, resource: Resource, attribute: str) -> Any:
        return Expr(f"{TYPES[resource.kind]}.{resource.label}.{ATTRIBUTES.get((resource.kind, attribute), attribute)}")


def _tags(tags: Any, key: str = "Key", val: str = "Value") -> dict[str, str] | None:
    pairs = tags.items() if isinstance(tags, dict) else ((t[key], t[val]) for t in tags or [])
    out = {k: v for k, v in sorted(pairs) if not k.startswith("aws:")}
    return out or None


# -- one builder per kind: AWS's answer -> [(type, name, body, import id), ...] ----------------------------
Built = list[tuple[str, str, dict[str, Any], str]]


def _vpc(r: Resource, ref: _Refs) -> Built:
    v = r.live
    return [("aws_vpc", r.label, {"cidr_block": v["CidrBlock"], "enable_dns_support": v["EnableDnsSupport"],
                                  "enable_dns_hostnames": v["EnableDnsHostnames"],
                                  "instance_tenancy": v.get("InstanceTenancy"), "tags": _tags(v.get("Tags"))}, r.id)]


def _subnet(r: Resource, ref: _Refs) -> Built:
    v = r.live
    zone = {"availability_zone_id": v["AvailabilityZoneId"]} if v.get("AvailabilityZoneId") else \
        {"availability_zone": v["AvailabilityZone"]}
    return [("aws_subnet", r.label, {"vpc_id": ref(v["VpcId"]), "cidr_block": v["CidrBlock"], **zone,
                                     "map_public_ip_on_launch": v.get("MapPublicIpOnLaunch", False),
                                     "tags": _tags(v.get("Tags"))}, r.id)]


def _route_table(r: Resource, ref: _Refs) -> Built:
    # No `route` argument: the local route is implicit and the S3 gateway's routes belong to that endpoint
    # (its route_table_ids); Terraform then leaves the table's routes as they are.
    return [("aws_route_table", r.label, {"vpc_id": ref(r.live["VpcId"]), "tags": _tags(r.live.get("Tags"))}, r.id)]


def _association(r: Resource, ref: _Refs) -> Built:
    v = r.live
    return [("aws_route_table_association", r.label,
             {"subnet_id": ref(v["SubnetId"]), "route_table_id": ref(v["RouteTableId"])},
             f"{v['SubnetId']}/{v['RouteTableId']}")]


def _security_group(r: Resource, ref: _Refs) -> Built:
    v = r.live
    return [("aws_security_group", r.label, {"name": v["GroupName"], "description": v["Description"],
                                             "vpc_id": ref(v["VpcId"]), "tags": _tags(v.get("Tags"))}, r.id)]


def _default_group(r: Resource, ref: _Refs) -> Built:
    """The VPC's default group, adopted as it is (`up` leaves it without rules; Terraform then keeps it so)."""
    v = r.live

    def rules(permissions: list[dict[str, Any]] | None) -> list[Block] | None:
        return [Block({"protocol": p["IpProtocol"], "from_port": p.get("FromPort", 0), "to_port": p.get("ToPort", 0),
                       "cidr_blocks": [x["CidrIp"] for x in p.get("IpRanges") or []] or None,
                       "ipv6_cidr_blocks": [x["CidrIpv6"] for x in p.get("Ipv6Ranges") or []] or None,
                       "prefix_list_ids": [x["PrefixListId"] for x in p.get("PrefixListIds") or []] or None,
                       "self": any(x.get("GroupId") == v["GroupId"] for x in p.get("UserIdGroupPairs") or [])
                       or None,
                       "security_groups": [ref(x["GroupId"]) for x in p.get("UserIdGroupPairs") or []
                                           if x.get("GroupId") != v["GroupId"]] or None})
                for p in permissions or []] or None

    return [("aws_default_security_group", r.label, {
        "vpc_id": ref(v["VpcId"]), "ingress": rules(v.get("IpPermissions")),
        "egress": rules(v.get("IpPermissionsEgress")), "tags": _tags(v.get("Tags"))}, r.id)]


def _rule(r: Resource, ref: _Refs) -> Built:
    v = r.live
    peer = (v.get("ReferencedGroupInfo") or {}).get("GroupId")
    ports = v.get("IpProtocol") not in ("-1", "all")
    return [(TYPES[r.kind], r.label, {
        "security_group_id": ref(v["GroupId"]), "description": v.get("Description"),
        "ip_protocol": v["IpProtocol"], "from_port": v.get("FromPort") if ports else None,
        "to_port": v.get("ToPort") if ports else None, "cidr_ipv4": v.get("CidrIpv4"),
        "cidr_ipv6": v.get("CidrIpv6"), "prefix_list_id": v.get("PrefixListId"),
        "referenced_security_group_id": ref(peer) if peer else None, "tags": _tags(v.get("Tags"))}, r.id)]


def _endpoint(r: Resource, ref: _Refs) -> Built:
    v = r.live
    interface = v["VpcEndpointType"] == "Interface"
    return [("aws_vpc_endpoint", r.label, {
        "vpc_id": ref(v["VpcId"]), "service_name": v["ServiceName"], "vpc_endpoint_type": v["VpcEndpointType"],
        "subnet_ids": ref.sorted(v.get("SubnetIds") or []) if interface else None,
        "security_group_ids": ref.sorted([g["GroupId"] for g in v.get("Groups") or []]) if interface else None,
        "private_dns_enabled": v.get("PrivateDnsEnabled", False) if interface else None,
        "route_table_ids": ref.sorted(v.get("RouteTableIds") or []) or None,
        "policy": _json(v["PolicyDocument"]) if v.get("PolicyDocument") else None,
        "tags": _tags(v.get("Tags"))}, r.id)]


def _role(r: Resource, ref: _Refs) -> Built:
    v = r.live
    out: Built = [("aws_iam_role", r.label, {
        "name": v["RoleName"], "path": v.get("Path", "/"), "description": v.get("Description"),
        "assume_role_policy": _json(v["AssumeRolePolicyDocument"]),
        "max_session_duration": v.get("MaxSessionDuration"), "tags": _tags(v.get("Tags"))}, v["RoleName"])]
    role = Expr(f"aws_iam_role.{r.label}.name")
    for arn in v.get("AttachedPolicies") or []:
        out.append(("aws_iam_role_policy_attachment", f"{r.label}_{_snake(arn.rsplit('/', 1)[-1])}",
                    {"role": role, "policy_arn": arn}, f"{v['RoleName']}/{arn}"))
    for policy in v.get("InlinePolicies") or []:
        out.append(("aws_iam_role_policy", f"{r.label}_{_snake(policy['PolicyName'])}",
                    {"name": policy["PolicyName"], "role": role, "policy": _json(policy["PolicyDocument"])},
                    f"{v['RoleName']}:{policy['PolicyName']}"))
    return out


def _kms_key(r: Resource, ref: _Refs) -> Built:
    v = r.live
    return [("aws_kms_key", r.label, {
        "description": v.get("Description"), "key_usage": v.get("KeyUsage"),
        "customer_master_key_spec": v.get("KeySpec"), "is_enabled": v.get("Enabled"),
        "enable_key_rotation": v.get("KeyRotationEnabled"), "policy": _json(v["Policy"]),
        "tags": _tags(v.get("Tags"), "TagKey", "TagValue")}, r.id)]


def _alias(r: Resource, ref: _Refs) -> Built:
    return [("aws_kms_alias", r.label, {"name": r.live["AliasName"], "target_key_id": ref(r.live["TargetKeyId"])},
             r.id)]


def _log_group(r: Resource, ref: _Refs) -> Built:
    v = r.live
    return [("aws_cloudwatch_log_group", r.label, {
        "name": v["logGroupName"], "retention_in_days": v.get("retentionInDays"),
        "kms_key_id": ref(v.get("kmsKeyId")), "tags": _tags(v.get("tags"))}, r.id)]


def _flow_log(r: Resource, ref: _Refs) -> Built:
    v = r.live
    group = next((g for g in ref.index.values() if g[0].kind == "log_group" and g[0].id == v.get("LogGroupName")),
                 None)
    destination = Expr(f"aws_cloudwatch_log_group.{group[0].label}.arn") if group else v.get("LogDestination")
    return [("aws_flow_log", r.label, {
        "vpc_id": ref(v["ResourceId"]), "traffic_type": v.get("TrafficType"),
        "log_destination_type": v.get("LogDestinationType"), "log_destination": destination,
        "iam_role_arn": ref(v.get("DeliverLogsPermissionArn")),
        "max_aggregation_interval": v.get("MaxAggregationInterval"), "log_format": v.get("LogFormat"),
        "tags": _tags(v.get("Tags"))}, r.id)]


def _template(r: Resource, ref: _Refs) -> Built:
    v = r.live
    data = v.get("LaunchTemplateData") or {}
    metadata = data.get("MetadataOptions") or {}
    own = [s for s in data.get("TagSpecifications") or [] if s.get("ResourceType") == "launch-template"]
    return [("aws_launch_template", r.label, {
        "name": v["LaunchTemplateName"], "description": v.get("VersionDescription"),
        "metadata_options": Block({"http_endpoint": metadata.get("HttpEndpoint"),
                                   "http_tokens": metadata.get("HttpTokens"),
                                   "http_put_response_hop_limit": metadata.get("HttpPutResponseHopLimit"),
                                   "instance_metadata_tags": metadata.get("InstanceMetadataTags")})
        if metadata else None,
        "block_device_mappings": [Block({"device_name": m["DeviceName"], "ebs": Block({
            "volume_size": m["Ebs"].get("VolumeSize"), "volume_type": m["Ebs"].get("VolumeType"),
            "encrypted": str(m["Ebs"]["Encrypted"]).lower() if "Encrypted" in m["Ebs"] else None,
            "delete_on_termination": str(m["Ebs"]["DeleteOnTermination"]).lower()
            if "DeleteOnTermination" in m["Ebs"] else None,
            "kms_key_id": ref(m["Ebs"].get("KmsKeyId")), "iops": m["Ebs"].get("Iops"),
            "throughput": m["Ebs"].get("Throughput")}) if m.get("Ebs") else None})
            for m in data.get("BlockDeviceMappings") or []] or None,
        "tag_specifications": [Block({"resource_type": s["ResourceType"], "tags": _tags(s.get("Tags"))})
                               for s in data.get("TagSpecifications") or []
                               if s.get("ResourceType") != "launch-template"] or None,
        "tags": _tags(v.get("Tags")) or (_tags(own[0].get("Tags")) if own else None)}, r.id)]


def _cluster(r: Resource, ref: _Refs) -> Built:
    v = r.live
    vpc = v.get("resourcesVpcConfig") or {}
    public = bool(vpc.get("endpointPublicAccess"))
    access = v.get("accessConfig") or {}
    network = v.get("kubernetesNetworkConfig") or {}
    logging = sorted(t for e in (v.get("logging") or {}).get("clusterLogging", []) if e.get("enabled")
                     for t in e.get("types", []))
    return [("aws_eks_cluster", r.label, {
        "name": v["name"], "version": v.get("version"), "role_arn": ref(v["roleArn"]),
        "vpc_config": Block({"subnet_ids": ref.all(vpc.get("subnetIds") or []),
                             "security_group_ids": ref.all(vpc.get("securityGroupIds") or []) or None,
                             "endpoint_private_access": bool(vpc.get("endpointPrivateAccess")),
                             "endpoint_public_access": public,
                             "public_access_cidrs": sorted(vpc.get("publicAccessCidrs") or []) if public else None}),
        "enabled_cluster_log_types": logging or None,
        "encryption_config": [Block({"resources": e.get("resources", []),
                                     "provider": Block({"key_arn": ref(e["provider"]["keyArn"])})})
                              for e in v.get("encryptionConfig") or []] or None,
        "access_config": Block({"authentication_mode": access.get("authenticationMode", "API"),
                                "bootstrap_cluster_creator_admin_permissions":
                                    access.get("bootstrapClusterCreatorAdminPermissions", True)}),
        "bootstrap_self_managed_addons": v.get("bootstrapSelfManagedAddons"),
        "upgrade_policy": Block({"support_type": v["upgradePolicy"]["supportType"]}) if v.get("upgradePolicy")
        else None,
        "kubernetes_network_config": Block({"service_ipv4_cidr": network.get("serviceIpv4Cidr"),
                                            "ip_family": network.get("ipFamily")}) if network else None,
        "tags": _tags(v.get("tags"))}, r.id)]


def _nodegroup(r: Resource, ref: _Refs) -> Built:
    v = r.live
    template = v.get("launchTemplate") or {}
    scaling = v.get("scalingConfig") or {}
    return [("aws_eks_node_group", r.label, {
        "cluster_name": ref(v["clusterName"]), "node_group_name": v["nodegroupName"],
        "node_role_arn": ref(v["nodeRole"]), "subnet_ids": ref.all(v.get("subnets") or []),
        "scaling_config": Block({"min_size": scaling.get("minSize"), "max_size": scaling.get("maxSize"),
                                 "desired_size": scaling.get("desiredSize")}),
        "instance_types": v.get("instanceTypes"), "capacity_type": v.get("capacityType"),
        "ami_type": v.get("amiType"),
        "launch_template": Block({"id": ref(template["id"]), "version": str(template.get("version"))})
        if template else None,
        "disk_size": v.get("diskSize") if not template else None,  # EKS refuses it beside a launch template
        "labels": v.get("labels") or None,
        "taint": [Block({"key": t["key"], "value": t.get("value"), "effect": t["effect"]})
                  for t in v.get("taints") or []] or None,
        "version": v.get("version"), "release_version": v.get("releaseVersion"),
        "update_config": Block({"max_unavailable": (v.get("updateConfig") or {}).get("maxUnavailable"),
                                "max_unavailable_percentage":
                                    (v.get("updateConfig") or {}).get("maxUnavailablePercentage")})
        if v.get("updateConfig") else None,
        "tags": _tags(v.get("tags")),
        # The live node count belongs to whoever scales the group (an autoscaler, a person): as eksprivate did.
        "lifecycle": Block({"ignore_changes": Expr("[scaling_config[0].desired_size]")}),
    }, f"{v['clusterName']}:{v['nodegroupName']}")]


def _addon(r: Resource, ref: _Refs) -> Built:
    v = r.live
    return [("aws_eks_addon", r.label, {
        "cluster_name": ref(v["clusterName"]), "addon_name": v["addonName"], "addon_version": v.get("addonVersion"),
        "configuration_values": v.get("configurationValues"),
        "service_account_role_arn": ref(v.get("serviceAccountRoleArn")),
        "pod_identity_association": [Block({"service_account": a["serviceAccount"], "role_arn": ref(a["roleArn"])})
                                     for a in v.get("podIdentityAssociationDetails") or []] or None,
        "tags": _tags(v.get("tags"))}, f"{v['clusterName']}:{v['addonName']}")]


def _access_entry(r: Resource, ref: _Refs) -> Built:
    v = r.live
    cluster = ref(v["clusterName"])
    out: Built = [("aws_eks_access_entry", r.label, {
        "cluster_name": cluster, "principal_arn": v["principalArn"], "type": v.get("type"),
        "kubernetes_groups": v.get("kubernetesGroups") or None, "tags": _tags(v.get("tags"))},
        f"{v['clusterName']}:{v['principalArn']}")]
    for policy in v.get("accessPolicies") or []:
        scope = policy["accessScope"]
        out.append(("aws_eks_access_policy_association", f"{r.label}_{_snake(policy['policyArn'].rsplit('/', 1)[-1])}",
                    {"cluster_name": cluster, "principal_arn": Expr(f"aws_eks_access_entry.{r.label}.principal_arn"),
                     "policy_arn": policy["policyArn"],
                     "access_scope": Block({"type": scope["type"], "namespaces": scope.get("namespaces") or None})},
                    f"{v['clusterName']}#{v['principalArn']}#{policy['policyArn']}"))
    return out


def _repository(r: Resource, ref: _Refs) -> Built:
    v = r.live
    encryption = v.get("encryptionConfiguration") or {}
    return [("aws_ecr_repository", r.label, {
        "name": v["repositoryName"], "image_tag_mutability": v.get("imageTagMutability"),
        "image_scanning_configuration": Block({"scan_on_push": bool((v.get("imageScanningConfiguration") or {})
                                                                    .get("scanOnPush"))}),
        "encryption_configuration": Block({"encryption_type": encryption.get("encryptionType"),
                                           "kms_key": ref(encryption.get("kmsKey"))}) if encryption else None,
        "tags": _tags(v.get("tags"))}, r.id)]


def _pull_through(r: Resource, ref: _Refs) -> Built:
    v = r.live
    return [("aws_ecr_pull_through_cache_rule", r.label, {
        "ecr_repository_prefix": v["ecrRepositoryPrefix"], "upstream_registry_url": v.get("upstreamRegistryUrl"),
        "credential_arn": v.get("credentialArn")}, r.id)]


BUILDERS: dict[str, Callable[[Resource, _Refs], Built]] = {
    "vpc": _vpc, "subnet": _subnet, "route_table": _route_table, "route_table_association": _association,
    "security_group": _security_group, "default_security_group": _default_group, "security_group_ingress": _rule,
    "security_group_egress": _rule, "vpc_endpoint": _endpoint, "iam_role": _role, "kms_key": _kms_key,
    "kms_alias": _alias, "log_group": _log_group,
    "flow_log": _flow_log, "launch_template": _template, "eks_cluster": _cluster, "eks_nodegroup": _nodegroup,
    "eks_addon": _addon, "eks_access_entry": _access_entry, "ecr_repository": _repository,
    "ecr_pull_through_rule": _pull_through,
}


def _snake(text: str) -> str:
    out = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")
    out = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", out).lower()
    return out if out and out[0].isalpha() else f"r_{out}"


def blocks(inv: Inventory) -> list[Written]:
    ref = _Refs(inv)
    return [Written(FILES[r.kind], kind, name, items, import_id)
            for r in inv.resources for kind, name, items, import_id in BUILDERS[r.kind](r, ref)]


def render(inv: Inventory, readme: str) -> dict[str, str]:
    """versions.tf (the provider and region), one .tf per family, imports.tf, README.md."""
    header = (f"# EKS cluster {inv.cluster} ({inv.region}, account {inv.account}) as it was in AWS at export time.\n"
              "# Written by `eksprivate export --format terraform`: review, then `terraform plan` imports it\n"
              "# (imports.tf). Every id that names another resource here is a reference.\n\n")
    files: dict[str, list[str]] = {}
    imports = []
    for w in blocks(inv):
        files.setdefault(f"{w.file}.tf", []).append(f'resource "{w.type}" "{w.name}" {{\n{body(w.body)}}}\n')
        imports.append(f"import {{\n  to = {w.type}.{w.name}\n  id = {_string(w.import_id)}\n}}\n")
    out = {name: header + "\n".join(parts) for name, parts in files.items()}
    out["imports.tf"] = header + "\n".join(imports)
    out["versions.tf"] = header + (
        "terraform {\n  # import blocks: Terraform 1.5 or later\n  required_version = \">= 1.5\"\n"
        "  required_providers {\n    aws = {\n      source  = \"hashicorp/aws\"\n      version = \">= 5.70\"\n"
        "    }\n  }\n}\n\n"
        f"provider \"aws\" {{\n  region              = {_string(inv.region)}\n"
        f"  allowed_account_ids = [{_string(inv.account)}]\n}}\n")
    out["README.md"] = readme
    return out
