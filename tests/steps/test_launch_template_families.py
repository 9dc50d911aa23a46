"""The launch template sizes the disk of the node group's AMI family, and reads it back from that device:
Bottlerocket's data volume is its second mapping, not the first."""

from __future__ import annotations

from eksprivate.config import NodeGroupSpec
from eksprivate.steps.security import LaunchTemplate

from .world import World, assert_rerun_is_noop, converge, plan_one


def test_bottlerocket_template_sizes_the_data_volume_and_a_change_is_reported(world: World) -> None:
    """Naive `find` reads the first mapping (Bottlerocket's OS volume, no size): a changed disk_size would
    go unreported and `plan` would say nothing while the nodes keep the old data volume."""
    ctx = world.ctx()
    spec = NodeGroupSpec(name="br", ami_type="BOTTLEROCKET_ARM_64", disk_size=40)
    found = converge(ctx, LaunchTemplate(spec))
    (version,) = world.client("ec2").describe_launch_template_versions(
        LaunchTemplateId=found["launch_template_id"])["LaunchTemplateVersions"]
    mappings = {m["DeviceName"]: m["Ebs"] for m in version["LaunchTemplateData"]["BlockDeviceMappings"]}
    assert mappings["/dev/xvdb"]["VolumeSize"] == 40 and "VolumeSize" not in mappings["/dev/xvda"]
    assert all(ebs["Encrypted"] for ebs in mappings.values())
    assert_rerun_is_noop(ctx, LaunchTemplate(spec))  # the size read back is the one written

    bigger = LaunchTemplate(NodeGroupSpec(name="br", ami_type="BOTTLEROCKET_ARM_64", disk_size=80))
    (change,) = plan_one(ctx, bigger).details
    assert change.startswith("! disk_size: nodes of br get 40 GiB, the config says 80")


def test_a_family_change_that_moves_the_disk_is_reported(world: World) -> None:
    """An AL2023 template (disk on /dev/xvda) under a config now saying Bottlerocket (disk on /dev/xvdb),
    same size: the nodes do not have what the config says, and `plan` says so."""
    ctx = world.ctx()
    converge(ctx, LaunchTemplate(NodeGroupSpec(name="fam", disk_size=30)))
    moved = LaunchTemplate(NodeGroupSpec(name="fam", ami_type="BOTTLEROCKET_x86_64", disk_size=30))
    (change,) = plan_one(ctx, moved).details
    assert "get it on /dev/xvda, ami_type BOTTLEROCKET_x86_64 needs it on /dev/xvdb" in change
