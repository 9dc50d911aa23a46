"""The secure-by-default extras: secrets KMS key, log groups, VPC flow logs, node launch template."""

from __future__ import annotations

import pytest

from eksprivate.config import NodeGroupSpec
from eksprivate.steps import Step
from eksprivate.steps.iam import FlowLogsRole, flow_log_group_name
from eksprivate.steps.network import Vpc
from eksprivate.steps.security import FlowLogs, KmsKey, LaunchTemplate, LogGroup, kms_alias

from .world import (
    World,
    adopt,
    assert_delete_and_delete_again,
    assert_recorded,
    assert_rerun_is_noop,
    build,
    converge,
    ec2_tags,
    mutating_during,
)

# -- KMS key ------------------------------------------------------------------------------------------


def test_kms_key_lifecycle(world: World) -> None:
    ctx = world.ctx()
    kms = world.client("kms")

    found = converge(ctx, KmsKey())
    key_id = found["key_id"]
    assert_recorded(ctx, "kms-key", key_id=key_id, key_arn=found["key_arn"])
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases(KeyId=key_id)["Aliases"]}
    assert aliases == {kms_alias(ctx): key_id}
    tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key_id)["Tags"]}
    assert tags["eksprivate:cluster"] == world.name

    assert_rerun_is_noop(ctx, KmsKey())

    lost = world.ctx(fresh=True)  # found again through its alias
    assert adopt(lost, KmsKey())["kms-key"]["key_id"] == key_id
    assert_rerun_is_noop(lost, KmsKey())

    assert_delete_and_delete_again(ctx, KmsKey(), found)
    # A KMS key cannot be deleted at once: it is scheduled, and its alias is gone.
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    assert kms.list_aliases(KeyId=key_id)["Aliases"] == []


def test_kms_key_made_just_before_a_crash_is_found_by_tag(world: World) -> None:
    """Killed between CreateKey and recording its id (and before the alias): the intent in the state
    says a key may exist, so `find` scans by tag instead of making a second key."""
    made = KmsKey().create(world.ctx())
    world.client("kms").delete_alias(AliasName=kms_alias(world.ctx()))

    crashed = world.ctx(fresh=True)
    assert KmsKey().find(crashed) is None  # no intent: nothing suggests a key exists
    crashed.intent("kms-key")
    found = KmsKey().find(crashed)
    assert found is not None and found["key_id"] == made["key_id"]


# -- log groups ---------------------------------------------------------------------------------------


def log_group(world: World) -> LogGroup:
    return LogGroup("cluster-log-group", "Control-plane log group", f"/aws/eks/{world.name}/cluster")


def test_log_group_lifecycle(world: World) -> None:
    ctx = world.ctx(log_retention_days=30)
    logs = world.client("logs")
    name = f"/aws/eks/{world.name}/cluster"

    found = converge(ctx, log_group(world))
    assert_recorded(ctx, "cluster-log-group", log_group_name=name)
    groups = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    assert [(g["logGroupName"], g["retentionInDays"]) for g in groups] == [(name, 30)]
    assert logs.list_tags_log_group(logGroupName=name)["tags"]["eksprivate:cluster"] == world.name

    assert_rerun_is_noop(ctx, log_group(world))
    lost = world.ctx(fresh=True, log_retention_days=30)
    adopt(lost, log_group(world))
    assert_rerun_is_noop(lost, log_group(world))

    logs.put_retention_policy(logGroupName=name, retentionInDays=1)
    assert mutating_during(ctx, lambda: converge(ctx, log_group(world)))[1] == ["logs:PutRetentionPolicy"]
    assert logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"][0]["retentionInDays"] == 30

    assert_delete_and_delete_again(ctx, log_group(world), found)
    assert logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"] == []


def test_log_group_another_tool_made_first_is_adopted(world: World) -> None:
    """EKS recreates /aws/eks/<name>/cluster by itself if logging was on: a create meeting it adopts it."""
    name = f"/aws/eks/{world.name}/cluster"
    world.client("logs").create_log_group(logGroupName=name)
    ctx = world.ctx()
    found = log_group(world).create(ctx)
    assert found["retention"] == 90
    assert world.client("logs").describe_log_groups(logGroupNamePrefix=name)["logGroups"][0]["retentionInDays"] == 90
    log_group(world).remove(ctx, found)


# -- flow logs ----------------------------------------------------------------------------------------


def flow_log_steps(world: World) -> list[Step]:
    return [Vpc(), FlowLogsRole(), LogGroup("flow-log-group", "Flow log group", flow_log_group_name(world.ctx()))]


def test_flow_logs_lifecycle(world: World) -> None:
    ctx = world.ctx()
    built = build(ctx, *flow_log_steps(world))
    ec2 = world.client("ec2")

    found = converge(ctx, FlowLogs())
    assert ctx.ledger.ids("flow-logs")["flow_log_id"] == found["flow_log_id"]
    logs = ec2.describe_flow_logs(Filters=world.tag_filter())["FlowLogs"]
    assert len(logs) == 1
    fl = logs[0]
    assert fl["FlowLogId"] == found["flow_log_id"]
    assert fl["ResourceId"] == built["vpc"]["vpc_id"]
    assert fl["TrafficType"] == "ALL" and fl["LogDestinationType"] == "cloud-watch-logs"
    assert fl["LogGroupName"] == f"/eksprivate/{world.name}/vpc-flow-logs"
    assert fl["DeliverLogsPermissionArn"] == built["flow-logs-role"]["role_arn"]
    assert ec2_tags(fl)["eksprivate:cluster"] == world.name

    assert_rerun_is_noop(ctx, FlowLogs())
    lost = world.ctx(fresh=True)
    assert adopt(lost, FlowLogs())["flow-logs"]["flow_log_id"] == found["flow_log_id"]
    assert_rerun_is_noop(lost, FlowLogs())

    assert_delete_and_delete_again(ctx, FlowLogs(), found)
    assert ec2.describe_flow_logs(Filters=world.tag_filter())["FlowLogs"] == []


# -- launch template ----------------------------------------------------------------------------------


@pytest.mark.parametrize("hop_limit", [1, 2])
def test_launch_template_lifecycle(world: World, hop_limit: int) -> None:
    spec = NodeGroupSpec(name="nodes", disk_size=40)
    ctx = world.ctx(imds_hop_limit=hop_limit)
    ec2 = world.client("ec2")

    found = converge(ctx, LaunchTemplate(spec))
    lt_id = found["launch_template_id"]
    assert_recorded(ctx, "launch-template/nodes", launch_template_id=lt_id,
                    launch_template_name=f"{world.name}-nodes-nodes")
    version = ec2.describe_launch_template_versions(LaunchTemplateId=lt_id)["LaunchTemplateVersions"]
    assert len(version) == 1
    data = version[0]["LaunchTemplateData"]
    # IMDSv2 only; with hop limit 1 pods cannot reach the node's credentials.
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == hop_limit
    assert data["BlockDeviceMappings"] == [{"DeviceName": "/dev/xvda", "Ebs": {
        "VolumeSize": 40, "VolumeType": "gp3", "Encrypted": True, "DeleteOnTermination": True}}]
    assert "ImageId" not in data and "UserData" not in data  # EKS picks the AMI and bootstraps the node
    lt = ec2.describe_launch_templates(LaunchTemplateIds=[lt_id])["LaunchTemplates"][0]
    assert ec2_tags(lt)["eksprivate:cluster"] == world.name

    assert_rerun_is_noop(ctx, LaunchTemplate(spec))
    lost = world.ctx(fresh=True, imds_hop_limit=hop_limit)
    assert adopt(lost, LaunchTemplate(spec))["launch-template/nodes"]["launch_template_id"] == lt_id
    assert_rerun_is_noop(lost, LaunchTemplate(spec))

    assert_delete_and_delete_again(ctx, LaunchTemplate(spec), found)
    assert ec2.describe_launch_templates(Filters=world.tag_filter())["LaunchTemplates"] == []
