"""Secure-by-default extras: the secrets KMS key, control-plane log group, VPC flow logs, and the
node launch templates (IMDSv2, encrypted root volume)."""

from __future__ import annotations

import json
import uuid
from contextlib import suppress
from functools import partial
from typing import Any

from eksprivate.aws import typed_error
from eksprivate.config import NodeGroupSpec, ami_family
from eksprivate.errors import AlreadyExists, AwsApiError, InvalidState, NotFound
from eksprivate.grants import Grant, ec2_tag_on_create, ec2_write, grant, pass_role, reads
from eksprivate.propagation import retry_while_propagating
from eksprivate.steps.base import CLUSTER_TAG, Change, Context, Found, Step, raise_unsuccessful
from eksprivate.steps.iam import FlowLogsRole, flow_log_group_name

KMS_PENDING_DAYS = 7


def kms_alias(ctx: Context) -> str:
    return f"alias/eksprivate/{ctx.name}"


class KmsKey(Step):
    """Envelope encryption for Kubernetes secrets (CKV_AWS_58): a customer key with rotation on."""

    key = "kms-key"
    title = "Secrets KMS key"
    # AWS deletes a key only after a waiting period (7-30 days); until then it is PendingDeletion.
    deleted_as = f"scheduled for deletion ({KMS_PENDING_DAYS} days)"

    def preview(self, ctx: Context) -> list[str]:
        return ["customer managed key for secrets encryption, rotation on", f"alias {kms_alias(ctx)}"]

    def grants(self, ctx: Context) -> list[Grant]:
        # The key's id is unknown until it exists: this region and account's keys; the alias by name.
        keys, alias = ctx.arns.kms_key(), ctx.arns.kms_alias(kms_alias(ctx))
        return [reads("kms:DescribeKey", "kms:GetKeyRotationStatus", on=keys, why="find the key (by its alias)"),
                reads("kms:ListKeys", why="find a key a killed run made, by its tag"),
                reads("kms:ListResourceTags", on=keys, why="find a key a killed run made, by its tag"),
                grant("create", "kms:CreateKey", why="the secrets key (KMS takes no resource ARN for it)"),
                grant("create", "kms:TagResource", on=keys, why="tags given to CreateKey"),
                grant(("create", "update"), "kms:EnableKeyRotation", on=keys, why="rotation on"),
                grant(("create", "update"), "kms:CreateAlias", "kms:UpdateAlias", on=[alias, keys],
                      why=f"the alias {kms_alias(ctx)} (KMS checks the alias and the key)"),
                grant("remove", "kms:ScheduleKeyDeletion", on=keys, why="the key (deleted after 7 days)"),
                grant("remove", "kms:DeleteAlias", on=[alias, keys], why="the alias")]

    def find(self, ctx: Context) -> Found | None:
        key_id = ctx.ledger.ids(self.key).get("key_id")
        # The alias first: one call when it names the recorded key (the usual case), and how a lost state
        # finds the key. A run killed between CreateKey and CreateAlias leaves a key without it: repaired.
        aliased = self._describe(ctx, kms_alias(ctx))
        meta = aliased if key_id is None or (aliased and aliased["KeyId"] == key_id) else self._describe(ctx, key_id)
        if meta is None and ctx.pending_intent(self.key):
            meta = self._scan_by_tag(ctx)  # killed between CreateKey and recording its id
        if meta is None or meta.get("KeyState") in ("PendingDeletion", "PendingReplicaDeletion"):
            return None
        rotation = ctx.aws.kms.get_key_rotation_status(KeyId=meta["KeyId"]).get("KeyRotationEnabled", False)
        return {"key_id": meta["KeyId"], "key_arn": meta["Arn"], "status": meta.get("KeyState", ""),
                "rotation": rotation, "alias": bool(aliased and aliased["KeyId"] == meta["KeyId"])}

    def _describe(self, ctx: Context, key: str) -> dict[str, Any] | None:
        try:
            meta: dict[str, Any] = ctx.aws.kms.describe_key(KeyId=key)["KeyMetadata"]
        except NotFound:
            return None
        return meta

    def _scan_by_tag(self, ctx: Context) -> dict[str, Any] | None:
        for entry in ctx.aws.kms.paginate("list_keys", "Keys"):
            try:
                tags = ctx.aws.kms.list_resource_tags(KeyId=entry["KeyId"]).get("Tags", [])
            except AwsApiError:
                continue  # keys we may not read are not ours
            if {"TagKey": CLUSTER_TAG, "TagValue": ctx.name} in tags:
                meta = self._describe(ctx, entry["KeyId"])
                if meta and meta.get("KeyState") == "Enabled":
                    return meta
        return None

    def create(self, ctx: Context) -> Found:
        ctx.intent(self.key)
        policy = {"Version": "2012-10-17", "Statement": [{
            "Sid": "AccountAdministers", "Effect": "Allow",
            "Principal": {"AWS": ctx.partition.arn("iam", "", ctx.account, "root")},
            "Action": "kms:*", "Resource": "*"}]}
        meta = ctx.aws.kms.create_key(
            Description=f"EKS secrets encryption for {ctx.name} (eksprivate)", KeyUsage="ENCRYPT_DECRYPT",
            Policy=json.dumps(policy),
            Tags=[{"TagKey": k, "TagValue": v} for k, v in ctx.tags(ctx.resource_name("secrets")).items()],
        )["KeyMetadata"]
        ctx.ledger.record(self.key, key_id=meta["KeyId"], key_arn=meta["Arn"])
        found = {"key_id": meta["KeyId"], "key_arn": meta["Arn"], "status": meta.get("KeyState", ""),
                 "rotation": False, "alias": False}
        self.update(ctx, found)
        return found

    def diff(self, ctx: Context, found: Found) -> list[Change]:
        out = [] if found["rotation"] else [Change("turn on key rotation", partial(self._rotate, ctx, found))]
        if not found.get("alias", True):
            out.append(Change(f"point {kms_alias(ctx)} at the key", partial(self._point_alias, ctx, found)))
        return out

    @staticmethod
    def _rotate(ctx: Context, found: Found) -> str:
        ctx.aws.kms.enable_key_rotation(KeyId=found["key_id"])
        found["rotation"] = True
        return "turned on key rotation"

    @staticmethod
    def _point_alias(ctx: Context, found: Found) -> str:
        try:
            ctx.aws.kms.create_alias(AliasName=kms_alias(ctx), TargetKeyId=found["key_id"])
        except AlreadyExists:  # an alias left on an older key (its key was lost with the state)
            ctx.aws.kms.update_alias(AliasName=kms_alias(ctx), TargetKeyId=found["key_id"])
        found["alias"] = True
        return f"pointed {kms_alias(ctx)} at the key"

    def remove(self, ctx: Context, found: Found) -> None:
        # A KMS key cannot be deleted at once: schedule it (by id: moto crashes on an ARN here). Before the
        # alias goes: a run killed in between leaves an alias that dies with the key, never a live key
        # that a lost state could no longer find.
        # KMSInvalidStateException: already pending deletion.
        with suppress(NotFound, InvalidState):
            ctx.aws.kms.schedule_key_deletion(KeyId=found["key_id"], PendingWindowInDays=KMS_PENDING_DAYS)
        with suppress(NotFound):
            ctx.aws.kms.delete_alias(AliasName=kms_alias(ctx))

    def describe(self, found: Found) -> str:
        return str(found["key_id"])


class LogGroup(Step):
    """A log group with retention; made before the thing that writes to it so retention is never 'forever'."""

    needs_retention = True

    def __init__(self, key: str, title: str, group_name: str, needs: tuple[str, ...] = ()) -> None:
        self.key = key
        self.title = title
        self.group_name = group_name
        self.needs = needs

    def preview(self, ctx: Context) -> list[str]:
        return [self.group_name, f"retention {ctx.settings.log_retention_days} days"]

    def grants(self, ctx: Context) -> list[Grant]:
        group = ctx.arns.log_group(self.group_name)
        return [reads("logs:DescribeLogGroups", why="find the log group (CloudWatch Logs takes no ARN for it)"),
                grant("create", "logs:CreateLogGroup", "logs:TagResource", on=group,
                      why=f"{self.group_name}, with its tags"),
                grant(("create", "update"), "logs:PutRetentionPolicy", on=group, why="its retention"),
                grant("remove", "logs:DeleteLogGroup", on=group, why=self.group_name)]

    def find(self, ctx: Context) -> Found | None:
        groups = ctx.aws.logs.describe_log_groups(logGroupNamePrefix=self.group_name).get("logGroups", [])
        group = next((g for g in groups if g["logGroupName"] == self.group_name), None)
        if group is None:
            return None
        return {"log_group_name": self.group_name, "retention": group.get("retentionInDays"), "status": "exists"}

    def create(self, ctx: Context) -> Found:
        ctx.intent(self.key)
        with suppress(AlreadyExists):  # a crashed run made it
            ctx.aws.logs.create_log_group(logGroupName=self.group_name, tags=ctx.tags(self.group_name))
        ctx.ledger.record(self.key, log_group_name=self.group_name)
        found: Found = {"log_group_name": self.group_name, "retention": None, "status": "exists"}
        self.update(ctx, found)
        return found

    def diff(self, ctx: Context, found: Found) -> list[Change]:
        want = ctx.settings.log_retention_days
        return [] if found["retention"] == want else [Change(f"set retention to {want} days",
                                                             partial(self._retain, ctx, found, want))]

    def _retain(self, ctx: Context, found: Found, days: int) -> str:
        ctx.aws.logs.put_retention_policy(logGroupName=self.group_name, retentionInDays=days)
        found["retention"] = days
        return f"retention {days} days"

    def remove(self, ctx: Context, found: Found) -> None:
        with suppress(NotFound):
            ctx.aws.logs.delete_log_group(logGroupName=self.group_name)

    def describe(self, found: Found) -> str:
        return self.group_name


class FlowLogs(Step):
    """VPC flow logs to CloudWatch Logs (CKV2_AWS_11)."""

    key = "flow-logs"
    title = "VPC flow logs"
    needs = ("vpc", "flow-logs-role", "flow-log-group")

    def preview(self, ctx: Context) -> list[str]:
        return [f"all traffic of the VPC to {flow_log_group_name(ctx)}"]

    def grants(self, ctx: Context) -> list[Grant]:
        return [reads("ec2:DescribeFlowLogs", why="find the flow log by its tag"),
                ec2_write(ctx.arns, "create", "ec2:CreateFlowLogs", why="the VPC's flow log"),
                ec2_tag_on_create(ctx.arns, "ec2:CreateFlowLogs"),
                # The VPC User Guide (flow-logs-iam) grants iam:PassRole on the delivery role alone, naming no
                # service for iam:PassedToService: limited to that one role.
                pass_role(FlowLogsRole().arn(ctx), None, verbs="create",
                          why="CreateFlowLogs hands the delivery role to VPC flow logs"),
                ec2_write(ctx.arns, "remove", "ec2:DeleteFlowLogs", why="the flow log")]

    def find(self, ctx: Context) -> Found | None:
        logs = ctx.aws.ec2.describe_flow_logs(Filters=ctx.cluster_filter()).get("FlowLogs", [])
        if not logs:
            return None
        return {"flow_log_id": logs[0]["FlowLogId"], "vpc_id": logs[0].get("ResourceId"),
                "status": logs[0].get("FlowLogStatus", "ACTIVE"), "duplicates": [f["FlowLogId"] for f in logs[1:]]}

    def create(self, ctx: Context) -> Found:
        vpc_id = ctx.ledger.ids("vpc")["vpc_id"]
        role = ctx.ledger.ids("flow-logs-role")

        def attempt() -> dict[str, Any]:
            token = ctx.intent(self.key)
            result: dict[str, Any] = ctx.aws.ec2.create_flow_logs(
                ResourceIds=[vpc_id], ResourceType="VPC", TrafficType="ALL", LogDestinationType="cloud-watch-logs",
                LogGroupName=flow_log_group_name(ctx), DeliverLogsPermissionArn=role["role_arn"], ClientToken=token,
                TagSpecifications=ctx.tag_spec("vpc-flow-log", ctx.resource_name("flow-logs")))
            # A refusal may come as an error or as an `Unsuccessful` item of a 200 answer (the model allows
            # both): the same typed error either way, so a young role is retried in both forms.
            failed = result.get("Unsuccessful") or ([] if result.get("FlowLogIds") else [{}])
            if failed:
                err = failed[0].get("Error", {})
                # Nothing was made: the next attempt gets a fresh token, never the one AWS answered "failed" to.
                ctx.ledger.begin(self.key, str(uuid.uuid4()))
                raise typed_error("ec2", "CreateFlowLogs", str(err.get("Code", "")),
                                  str(err.get("Message", "no flow log id in the answer")), in_body=True)
            return result

        # Refused ("Unable to assume given IAM role") while the fresh flow-logs role propagates.
        result = retry_while_propagating(ctx, attempt, role=role["role_name"])
        flow_id = result["FlowLogIds"][0]
        ctx.ledger.record(self.key, flow_log_id=flow_id, vpc_id=vpc_id)  # all `ids`: reruns write nothing
        return {"flow_log_id": flow_id, "vpc_id": vpc_id, "status": "ACTIVE", "duplicates": []}

    def remove(self, ctx: Context, found: Found) -> None:
        try:
            result = ctx.aws.ec2.delete_flow_logs(FlowLogIds=[found["flow_log_id"], *found.get("duplicates", [])])
        except NotFound:
            return
        raise_unsuccessful(result, "DeleteFlowLogs")

    def describe(self, found: Found) -> str:
        return str(found["flow_log_id"])


# The EBS device `disk_size` sizes, per AMI family: the root device of AL2/AL2023 (/dev/xvda) and Windows
# (/dev/sda1); on Bottlerocket the data volume /dev/xvdb, which holds container images and state (its root
# /dev/xvda holds only the OS). Sources in docs/aws-fidelity.md (config-checks).
DISK_DEVICES = {"AL2": "/dev/xvda", "AL2023": "/dev/xvda", "BOTTLEROCKET": "/dev/xvdb", "WINDOWS": "/dev/sda1"}
BOTTLEROCKET_ROOT = "/dev/xvda"


def disk_device(spec: NodeGroupSpec) -> str:
    return DISK_DEVICES.get(ami_family(spec.ami_type), "/dev/xvda")


def block_device_mappings(spec: NodeGroupSpec) -> list[dict[str, Any]]:
    """`disk_size` on the family's device; every node volume encrypted gp3, deleted with the node."""
    ebs = {"VolumeType": "gp3", "Encrypted": True, "DeleteOnTermination": True}
    sized = {"DeviceName": disk_device(spec), "Ebs": {"VolumeSize": spec.disk_size, **ebs}}
    if ami_family(spec.ami_type) == "BOTTLEROCKET":
        # The OS volume keeps the AMI's size (no VolumeSize) but is encrypted like the data volume.
        return [{"DeviceName": BOTTLEROCKET_ROOT, "Ebs": dict(ebs)}, sized]
    return [sized]


def launch_template_key(spec: NodeGroupSpec) -> str:
    return f"launch-template/{spec.name}"


def other_launch_template_specs(ctx: Context, known: set[str]) -> list[NodeGroupSpec]:
    """Launch templates eksprivate made for node group specs not in `known` (named <cluster>-<spec>-nodes)."""
    lts = ctx.aws.ec2.describe_launch_templates(Filters=ctx.cluster_filter()).get("LaunchTemplates", [])
    specs = []
    for lt in lts:
        spec_name = lt["LaunchTemplateName"].removeprefix(f"{ctx.name}-").removesuffix("-nodes")
        if spec_name not in known:
            specs.append(NodeGroupSpec(name=spec_name))
    return specs


class LaunchTemplate(Step):
    """Node settings managed node groups cannot take directly: IMDSv2 only, hop limit, encrypted gp3 root."""

    title = "Node launch template"

    def __init__(self, spec: NodeGroupSpec, orphan: bool = False) -> None:
        self.spec = spec
        self.orphan = orphan  # made by eksprivate for a node group spec the config no longer has
        self.key = launch_template_key(spec)
        self.title = f"Launch template {spec.name}"

    def preview(self, ctx: Context) -> list[str]:
        return [f"IMDSv2 required, hop limit {ctx.settings.imds_hop_limit}",
                f"{self.spec.disk_size} GiB gp3 volume, encrypted"]

    def template_name(self, ctx: Context) -> str:
        return ctx.resource_name(f"{self.spec.name}-nodes")

    def grants(self, ctx: Context) -> list[Grant]:
        return [reads("ec2:DescribeLaunchTemplates", "ec2:DescribeLaunchTemplateVersions",
                      why="find the nodes' launch template by name"),
                ec2_write(ctx.arns, "create", "ec2:CreateLaunchTemplate", why="the nodes' launch template"),
                ec2_tag_on_create(ctx.arns, "ec2:CreateLaunchTemplate"),
                ec2_write(ctx.arns, "remove", "ec2:DeleteLaunchTemplate", why="the launch template")]

    def data(self, ctx: Context) -> dict[str, Any]:
        node_tags = [{"Key": k, "Value": v} for k, v in ctx.tags(ctx.resource_name(self.spec.name)).items()]
        return {
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled",
                                "HttpPutResponseHopLimit": ctx.settings.imds_hop_limit},
            "BlockDeviceMappings": block_device_mappings(self.spec),
            "TagSpecifications": [{"ResourceType": "instance", "Tags": node_tags},
                                  {"ResourceType": "volume", "Tags": node_tags}],
        }

    def find(self, ctx: Context) -> Found | None:
        try:
            lts = ctx.aws.ec2.describe_launch_templates(LaunchTemplateNames=[self.template_name(ctx)])
        except NotFound:  # InvalidLaunchTemplateName.NotFoundException
            return None
        lt = lts["LaunchTemplates"][0]
        found: Found = {"launch_template_id": lt["LaunchTemplateId"], "launch_template_name": lt["LaunchTemplateName"],
                        "version": lt.get("LatestVersionNumber", 1), "status": "exists"}
        if not self.orphan:  # what the nodes get (node groups use version 1), to compare with the config
            versions = ctx.aws.ec2.describe_launch_template_versions(
                LaunchTemplateId=lt["LaunchTemplateId"], Versions=["1"]).get("LaunchTemplateVersions", [])
            data = versions[0].get("LaunchTemplateData", {}) if versions else {}
            # The size on the device `disk_size` sets for the config's AMI family (Bottlerocket's data volume
            # is not its first mapping); a template made for another family: the device it does size.
            sizes = {m.get("DeviceName"): m.get("Ebs", {}).get("VolumeSize")
                     for m in data.get("BlockDeviceMappings") or []}
            sized = [d for d, size in sizes.items() if size is not None]
            device = disk_device(self.spec) if disk_device(self.spec) in sized or not sized else sized[0]
            found.update(disk_size=sizes.get(device), disk_device=device,
                         hop_limit=data.get("MetadataOptions", {}).get("HttpPutResponseHopLimit"))
        return found

    def diff(self, ctx: Context, found: Found) -> list[Change]:
        if self.orphan:  # deleted by `up --prune` (the engine removes an orphan as `down` does)
            return [Change(f"delete launch template {found['launch_template_name']} (not in the config)")
                    if ctx.prune else
                    Change(f"launch template {found['launch_template_name']}: [[nodegroups]] {self.spec.name} is "
                           "not in the config", blocked="kept (`up --prune` deletes it)")]
        out = []
        fix = ("eksprivate does not replace running nodes: add a node group under a new name, then remove this "
               "one from the config and run `up --prune`")
        if found.get("disk_size") not in (None, self.spec.disk_size):
            out.append(Change(f"disk_size: nodes of {self.spec.name} get {found['disk_size']} GiB, the config says "
                              f"{self.spec.disk_size}", blocked=fix))
        elif found.get("disk_device") not in (None, disk_device(self.spec)):
            out.append(Change(f"disk_size: nodes of {self.spec.name} get it on {found['disk_device']}, ami_type "
                              f"{self.spec.ami_type} needs it on {disk_device(self.spec)}", blocked=fix))
        if found.get("hop_limit") not in (None, ctx.settings.imds_hop_limit):
            out.append(Change(f"imds_hop_limit: nodes of {self.spec.name} get {found['hop_limit']}, the config "
                              f"says {ctx.settings.imds_hop_limit}", blocked=fix))
        return out

    def create(self, ctx: Context) -> Found:
        token = ctx.intent(self.key)
        name = self.template_name(ctx)
        lt = ctx.aws.ec2.create_launch_template(
            LaunchTemplateName=name, ClientToken=token, LaunchTemplateData=self.data(ctx),
            VersionDescription="eksprivate node settings",
            TagSpecifications=ctx.tag_spec("launch-template", name))["LaunchTemplate"]
        ctx.ledger.record(self.key, launch_template_id=lt["LaunchTemplateId"], launch_template_name=name)
        return {"launch_template_id": lt["LaunchTemplateId"], "launch_template_name": name,
                "version": lt.get("LatestVersionNumber", 1), "status": "exists"}

    def remove(self, ctx: Context, found: Found) -> None:
        with suppress(NotFound):  # InvalidLaunchTemplateId.NotFound
            ctx.aws.ec2.delete_launch_template(LaunchTemplateId=found["launch_template_id"])

    def describe(self, found: Found) -> str:
        return f"{found['launch_template_id']} v{found['version']}"
