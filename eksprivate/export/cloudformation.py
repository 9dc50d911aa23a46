"""The inventory as a CloudFormation template, the `ResourcesToImport` of an IMPORT change set, and a README.

Every resource carries `DeletionPolicy: Retain` and `UpdateReplacePolicy: Retain` (an import requires a
DeletionPolicy; Retain also means a mistake in the stack never deletes the cluster). Properties come from
AWS's answers, in CloudFormation's names; an id that names another exported resource becomes `!Ref` or
`!GetAtt`. Identifier names are each type's `primaryIdentifier` in AWS's resource schema (the schemas
cfn-lint ships; tests/test_export.py checks this table against them).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import yaml

from eksprivate.export.inventory import Inventory, References, Resource

# kind -> (CloudFormation type, logical-id suffix, the identifier properties of an import)
TYPES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "vpc": ("AWS::EC2::VPC", "", ("VpcId",)),
    "subnet": ("AWS::EC2::Subnet", "Subnet", ("SubnetId",)),
    "route_table": ("AWS::EC2::RouteTable", "RouteTable", ("RouteTableId",)),
    "route_table_association": ("AWS::EC2::SubnetRouteTableAssociation", "RouteTableAssociation", ("Id",)),
    "security_group": ("AWS::EC2::SecurityGroup", "SecurityGroup", ("Id",)),
    "security_group_ingress": ("AWS::EC2::SecurityGroupIngress", "", ("Id",)),
    "security_group_egress": ("AWS::EC2::SecurityGroupEgress", "", ("Id",)),
    "vpc_endpoint": ("AWS::EC2::VPCEndpoint", "Endpoint", ("Id",)),
    "iam_role": ("AWS::IAM::Role", "", ("RoleName",)),
    "kms_key": ("AWS::KMS::Key", "Key", ("KeyId",)),
    "kms_alias": ("AWS::KMS::Alias", "KeyAlias", ("AliasName",)),
    "log_group": ("AWS::Logs::LogGroup", "LogGroup", ("LogGroupName",)),
    "flow_log": ("AWS::EC2::FlowLog", "FlowLog", ("Id",)),
    "launch_template": ("AWS::EC2::LaunchTemplate", "LaunchTemplate", ("LaunchTemplateId",)),
    "eks_cluster": ("AWS::EKS::Cluster", "", ("Name",)),
    "eks_nodegroup": ("AWS::EKS::Nodegroup", "Nodegroup", ("Id",)),
    "eks_addon": ("AWS::EKS::Addon", "Addon", ("ClusterName", "AddonName")),
    "eks_access_entry": ("AWS::EKS::AccessEntry", "AccessEntry", ("PrincipalArn", "ClusterName")),
    "ecr_repository": ("AWS::ECR::Repository", "Repository", ("RepositoryName",)),
    "ecr_pull_through_rule": ("AWS::ECR::PullThroughCacheRule", "PullThroughCacheRule", ("EcrRepositoryPrefix",)),
}
# Every type above is in CloudFormation's "Resource type support" list for import; a type added here that is
# not goes in this set, and the README of the export says what to do about it.
NOT_IMPORTABLE: frozenset[str] = frozenset()
# What CloudFormation has no resource type for, and why leaving it out is right.
LEFT_OUT = {
    "default_security_group": "the VPC's default security group: CloudFormation has no resource for it (EC2 makes "
                              "it with the VPC and deletes it with the VPC); `eksprivate up` left it without rules",
}


class Ref(str):
    """`!Ref <logical id>` in the YAML."""


class GetAtt(str):
    """`!GetAtt <logical id>.<attribute>` in the YAML."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(Ref, lambda d, v: d.represent_scalar("!Ref", str(v)))
_Dumper.add_representer(GetAtt, lambda d, v: d.represent_scalar("!GetAtt", str(v)))


def logical_id(resource: Resource) -> str:
    camel = "".join(part[:1].upper() + part[1:] for part in resource.label.split("_"))
    return camel + TYPES[resource.kind][1]


class _Refs(References):
    def reference(self, resource: Resource, attribute: str) -> Any:
        # Ref of every exported type answers its id or name (the attribute indexed); ARNs are GetAtt Arn.
        name = logical_id(resource)
        return GetAtt(f"{name}.Arn") if attribute == "arn" else Ref(name)


def _tags(tags: Any, key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    """AWS's tags (a list of Key/Value, or a map) as CloudFormation's list; `aws:` tags are AWS's own."""
    pairs = tags.items() if isinstance(tags, dict) else ((t[key], t[value]) for t in tags or [])
    return [{"Key": k, "Value": v} for k, v in sorted(pairs) if not k.startswith("aws:")]


def _json(document: Any) -> Any:
    return json.loads(document) if isinstance(document, str) else document


def _drop_none(props: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if v not in (None, [], {})}


# -- one builder per kind: AWS's answer -> CloudFormation properties ---------------------------------------
def _vpc(r: Resource, ref: _Refs) -> dict[str, Any]:
    v = r.live
    return {"CidrBlock": v["CidrBlock"], "EnableDnsSupport": v["EnableDnsSupport"],
            "EnableDnsHostnames": v["EnableDnsHostnames"], "InstanceTenancy": v.get("InstanceTenancy"),
            "Tags": _tags(v.get("Tags"))}


def _subnet(r: Resource, ref: _Refs) -> dict[str, Any]:
    v = r.live
    # The zone ID, not its name: names map to different zones in each account (IDs do not).
    zone = {"AvailabilityZoneId": v["AvailabilityZoneId"]} if v.get("AvailabilityZoneId") else \
        {"AvailabilityZone": v["AvailabilityZone"]}
    return {"VpcId": ref(v["VpcId"]), "CidrBlock": v["CidrBlock"], **zone,
            "MapPublicIpOnLaunch": v.get("MapPublicIpOnLaunch", False), "Tags": _tags(v.get("Tags"))}


def _route_table(r: Resource, ref: _Refs) -> dict[str, Any]:
    # Its routes: the local one is implicit, the S3 gateway's belong to that endpoint (RouteTableIds).
    return {"VpcId": ref(r.live["VpcId"]), "Tags": _tags(r.live.get("Tags"))}


def _association(r: Resource, ref: _Refs) -> dict[str, Any]:
    return {"SubnetId": ref(r.live["SubnetId"]), "RouteTableId": ref(r.live["RouteTableId"])}


def _security_group(r: Resource, ref: _Refs) -> dict[str, Any]:
    v = r.live
    # Its rules are resources of their own (below), each importable by its rule id.
    return {"GroupName": v["GroupName"], "GroupDescription": v["Description"], "VpcId": ref(v["VpcId"]),
            "Tags": _tags(v.get("Tags"))}


def _rule(r: Resource, ref: _Refs) -> dict[str, Any]:
    v = r.live
    peer = (v.get("ReferencedGroupInfo") or {}).get("GroupId")
    return {"GroupId": ref(v["GroupId"]), "IpProtocol": v["IpProtocol"],
            "FromPort": v.get("FromPort") if v.get("FromPort") != -1 else None,
            "ToPort": v.get("ToPort") if v.get("ToPort") != -1 else None,
            "CidrIp": v.get("CidrIpv4"), "CidrIpv6": v.get("CidrIpv6"), "Description": v.get("Description"),
            "SourcePrefixListId" if not v.get("IsEgress") else "DestinationPrefixListId": v.get("PrefixListId"),
            "SourceSecurityGroupId" if not v.get("IsEgress") else "DestinationSecurityGroupId":
                ref(peer) if peer else None}


def _endpoint(r: Resource, ref: _Refs) -> dict[str, Any]:
    v = r.live
    interface = v["VpcEndpointType"] == "Interface"
    return {"ServiceName": v["ServiceName"], "VpcEndpointType": v["VpcEndpointType"], "VpcId": ref(v["VpcId"]),
            "SubnetIds": ref.sorted(v.get("SubnetIds") or []) if interface else None,
            "SecurityGroupIds": ref.sorted([g["GroupId"] for g in v.get("Groups") or []]) if interface else None,
            "PrivateDnsEnabled": v.get("PrivateDnsEnabled", False) if interface else None,
            "RouteTableIds": ref.sorted(v.get("RouteTableIds") or []) or None,
            "PolicyDocument": _json(v.get("PolicyDocument")), "Tags": _tags(v.get("Tags"))}


def _role(r: Resource, ref: _Refs) -> dict[str, Any]:
    v = r.live
    return {"RoleName": v["RoleName"], "Path": v.get("Path", "/"), "Description": v.get("Description"),
            "AssumeRolePolicyDocument": v["AssumeRolePolicyDocument"],
            "MaxSessionDuration": v.get("MaxSessionDuration"),
            "ManagedPolicyArns": v.get("AttachedPolicies"),
            "Policies": v.get("InlinePolicies"), "Tags": _tags(v.get("Tags"))}


def _key(r: Resource, ref: _Refs) -> dict[str, Any]:
    v = r.live
    return {"Description": v.get("Description"), "KeyUsage": v.get("KeyUsage"), "KeySpec": v.get("KeySpec"),
            "Enabled": v.get("Enabled"), "EnableKeyRotation": v.get("KeyRotationEnabled"),
            "KeyPolicy": v["Policy"], "Tags": _tags(v.get("Tags"), "TagKey", "TagValue")}


def _alias(r: Resource, ref: _Refs) -> dict[str, Any]:
    return {"AliasName": r.live["AliasName"], "TargetKeyId": ref(r.live["TargetKeyId"])}


def _log_group(r: Resource, ref: _Refs) -> dict[str, Any]:
    v = r.live
    return {"LogGroupName": v["logGroupName"], "RetentionInDays": v.get("retentionInDays"),
            "KmsKeyId": ref(v.get("kmsKeyId")), "Tags": _tags(v.get("tags"))}


def _flow_log(r: Resource, ref: _Refs) -> dict[str, Any]:
    v = r.live
    return {"ResourceId": ref(v["ResourceId"]), "ResourceType": "VPC", "TrafficType": v.get("TrafficType"),
            "LogDestinationType": v.get("LogDestinationType"), "LogGroupName": ref(v.get("LogGroupName")),
            "LogDestination": v.get("LogDestination") if not v.get("LogGroupName") else None,
            "DeliverLogsPermissionArn": ref(v.get("DeliverLogsPermissionArn")),
            "MaxAggregationInterval": v.get("MaxAggregationInterval"), "LogFormat": v.get("LogFormat"),
            "Tags": _tags(v.get("Tags"))}


def _template(r: Resource, ref: _Refs) -> dict[str, Any]:
    v = r.live
    data = dict(v.get("LaunchTemplateData") or {})
    # The template's own tags are `TagSpecifications` of the template, not of what it launches.
    own = [s for s in data.get("TagSpecifications") or [] if s.get("ResourceType") == "launch-template"]
    launched = [{"ResourceType": s["ResourceType"], "Tags": _tags(s.get("Tags"))}
                for s in data.get("TagSpecifications") or [] if s.get("ResourceType") != "launch-template"]
    data["TagSpecifications"] = launched or None
    tags = _tags(v.get("Tags")) or (_tags(own[0].get("Tags")) if own else [])
    return {"LaunchTemplateName": v["LaunchTemplateName"], "VersionDescription": v.get("VersionDescription"),
            "LaunchTemplateData": _drop_none(data),
            "TagSpecifications": [{"ResourceType": "launch-template", "Tags": tags}] if tags else None}


def _cluster(r: Resource, ref: _Refs) -> dict[str, Any]:
    v = r.live
    vpc = v.get("resourcesVpcConfig") or {}
    public = bool(vpc.get("endpointPublicAccess"))
    logging = sorted(t for e in (v.get("logging") or {}).get("clusterLogging", []) if e.get("enabled")
                     for t in e.get("types", []))
    access = v.get("accessConfig") or {}
    network = v.get("kubernetesNetworkConfig") or {}
    return {
        "Name": v["name"], "Version": v.get("version"), "RoleArn": ref(v["roleArn"]),
        "ResourcesVpcConfig": _drop_none({
            "SubnetIds": ref.all(vpc.get("subnetIds") or []),
            "SecurityGroupIds": ref.all(vpc.get("securityGroupIds") or []) or None,
            "EndpointPrivateAccess": bool(vpc.get("endpointPrivateAccess")), "EndpointPublicAccess": public,
            "PublicAccessCidrs": sorted(vpc.get("publicAccessCidrs") or []) if public else None}),
        "EncryptionConfig": [{"Resources": e.get("resources", []), "Provider": {"KeyArn": ref(e["provider"]["keyArn"])}}
                             for e in v.get("encryptionConfig") or []] or None,
        "Logging": {"ClusterLogging": {"EnabledTypes": [{"Type": t} for t in logging]}} if logging else None,
        "AccessConfig": _drop_none({"AuthenticationMode": access.get("authenticationMode", "API"),
                                    "BootstrapClusterCreatorAdminPermissions":
                                        access.get("bootstrapClusterCreatorAdminPermissions", True)}),
        "BootstrapSelfManagedAddons": v.get("bootstrapSelfManagedAddons"),
        "UpgradePolicy": {"SupportType": v["upgradePolicy"]["supportType"]} if v.get("upgradePolicy") else None,
        "KubernetesNetworkConfig": _drop_none({"ServiceIpv4Cidr": network.get("serviceIpv4Cidr"),
                                               "IpFamily": network.get("ipFamily")}) or None,
        "Tags": _tags(v.get("tags")),
    }


def _nodegroup(r: Resource, ref: _Refs) -> dict[str, Any]:
    v = r.live
    template = v.get("launchTemplate") or {}
    scaling = v.get("scalingConfig") or {}
    return {
        "ClusterName": ref(v["clusterName"]), "NodegroupName": v["nodegroupName"], "NodeRole": ref(v["nodeRole"]),
        "Subnets": ref.all(v.get("subnets") or []),
        "ScalingConfig": {"MinSize": scaling.get("minSize"), "MaxSize": scaling.get("maxSize"),
                          "DesiredSize": scaling.get("desiredSize")},
        "InstanceTypes": v.get("instanceTypes"), "CapacityType": v.get("capacityType"), "AmiType": v.get("amiType"),
        "LaunchTemplate": {"Id": ref(template["id"]), "Version": str(template.get("version"))} if template else None,
        # With a launch template EKS refuses a disk size or remote access of the group's own.
        "DiskSize": v.get("diskSize") if not template else None,
        "Labels": v.get("labels") or None,
        "Taints": [{"Key": t["key"], "Value": t.get("value"), "Effect": t["effect"]} for t in v.get("taints") or []]
        or None,
        "Version": v.get("version"), "ReleaseVersion": v.get("releaseVersion"),
        "UpdateConfig": {k[0].upper() + k[1:]: n for k, n in (v.get("updateConfig") or {}).items()} or None,
        "Tags": {k: t for k, t in (v.get("tags") or {}).items() if not k.startswith("aws:")},
    }


def _addon(r: Resource, ref: _Refs) -> dict[str, Any]:
    v = r.live
    return {"ClusterName": ref(v["clusterName"]), "AddonName": v["addonName"], "AddonVersion": v.get("addonVersion"),
            "ConfigurationValues": v.get("configurationValues"),
            "ServiceAccountRoleArn": ref(v.get("serviceAccountRoleArn")),
            "PodIdentityAssociations": [{"ServiceAccount": a["serviceAccount"], "RoleArn": ref(a["roleArn"])}
                                        for a in v.get("podIdentityAssociationDetails") or []] or None,
            "Tags": _tags(v.get("tags"))}


def _access_entry(r: Resource, ref: _Refs) -> dict[str, Any]:
    v = r.live
    return {"ClusterName": ref(v["clusterName"]), "PrincipalArn": v["principalArn"], "Type": v.get("type"),
            "KubernetesGroups": v.get("kubernetesGroups") or None,
            "AccessPolicies": [{"PolicyArn": p["policyArn"], "AccessScope": _drop_none(
                {"Type": p["accessScope"]["type"], "Namespaces": p["accessScope"].get("namespaces")})}
                for p in v.get("accessPolicies") or []] or None,
            "Tags": _tags(v.get("tags"))}


def _repository(r: Resource, ref: _Refs) -> dict[str, Any]:
    v = r.live
    encryption = v.get("encryptionConfiguration") or {}
    return {"RepositoryName": v["repositoryName"], "ImageTagMutability": v.get("imageTagMutability"),
            "ImageScanningConfiguration": {"ScanOnPush": bool((v.get("imageScanningConfiguration") or {})
                                                              .get("scanOnPush"))},
            "EncryptionConfiguration": _drop_none({"EncryptionType": encryption.get("encryptionType"),
                                                   "KmsKey": ref(encryption.get("kmsKey"))}) or None,
            "Tags": _tags(v.get("tags"))}


def _pull_through(r: Resource, ref: _Refs) -> dict[str, Any]:
    v = r.live
    return {"EcrRepositoryPrefix": v["ecrRepositoryPrefix"], "UpstreamRegistryUrl": v.get("upstreamRegistryUrl"),
            "UpstreamRegistry": v.get("upstreamRegistry"), "CredentialArn": v.get("credentialArn")}


BUILDERS: dict[str, Callable[[Resource, _Refs], dict[str, Any]]] = {
    "vpc": _vpc, "subnet": _subnet, "route_table": _route_table, "route_table_association": _association,
    "security_group": _security_group, "security_group_ingress": _rule, "security_group_egress": _rule,
    "vpc_endpoint": _endpoint, "iam_role": _role, "kms_key": _key, "kms_alias": _alias, "log_group": _log_group,
    "flow_log": _flow_log, "launch_template": _template, "eks_cluster": _cluster, "eks_nodegroup": _nodegroup,
    "eks_addon": _addon, "eks_access_entry": _access_entry, "ecr_repository": _repository,
    "ecr_pull_through_rule": _pull_through,
}


def identifier(resource: Resource) -> dict[str, str]:
    """The live identifier of an import, in the type's identifier property names."""
    v = resource.live
    if resource.kind == "eks_nodegroup":
        return {"Id": f"{v['clusterName']}/{v['nodegroupName']}"}  # what Ref answers: cluster/nodegroup
    if resource.kind == "eks_addon":
        return {"ClusterName": v["clusterName"], "AddonName": v["addonName"]}
    if resource.kind == "eks_access_entry":
        return {"PrincipalArn": v["principalArn"], "ClusterName": v["clusterName"]}
    return {TYPES[resource.kind][2][0]: resource.id}


def template(inv: Inventory) -> dict[str, Any]:
    ref = _Refs(inv)
    resources: dict[str, Any] = {}
    for r in inv.resources:
        if r.kind in LEFT_OUT:
            continue
        props = _drop_none(BUILDERS[r.kind](r, ref))
        resources[logical_id(r)] = {"Type": TYPES[r.kind][0], "DeletionPolicy": "Retain",
                                    "UpdateReplacePolicy": "Retain", "Properties": props}
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"EKS cluster {inv.cluster} ({inv.region}, account {inv.account}) and everything eksprivate "
                       "made for it, as it was in AWS at export time; written by `eksprivate export` for import",
        "Resources": resources,
    }


def imports(inv: Inventory) -> list[dict[str, Any]]:
    return [{"ResourceType": TYPES[r.kind][0], "LogicalResourceId": logical_id(r), "ResourceIdentifier": identifier(r)}
            for r in inv.resources if r.kind not in LEFT_OUT and TYPES[r.kind][0] not in NOT_IMPORTABLE]


def render(inv: Inventory, readme: str) -> dict[str, str]:
    """The files of the export: template.yaml, import.json, README.md."""
    body = yaml.dump(template(inv), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120,
                     allow_unicode=True)
    return {"template.yaml": body, "import.json": json.dumps(imports(inv), indent=2) + "\n", "README.md": readme}
