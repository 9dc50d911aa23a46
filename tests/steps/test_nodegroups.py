"""Managed node groups: one per AZ in that AZ's private subnet, with the launch template; a rerun never
resets a desired size changed outside the tool."""

from __future__ import annotations

from typing import Any

from eksprivate.steps import Context
from eksprivate.steps.nodegroups import NodeGroup, planned_nodegroups

from .world import (
    AZS,
    World,
    adopt,
    assert_delete_and_delete_again,
    assert_rerun_is_noop,
    build,
    converge,
    graph_step,
    needed_by,
    requests_to,
)

LEAN = {"secrets_encryption": False, "control_plane_logging": False, "flow_logs": False}


def nodegroup_prerequisites(world: World, **overrides: Any) -> tuple[Context, dict[str, Any]]:
    ctx = world.ctx(**LEAN, **overrides)
    first = planned_nodegroups(ctx)[0]
    return ctx, build(ctx, *needed_by(ctx, first.key))


def test_nodegroups_lifecycle(world: World) -> None:
    ctx, built = nodegroup_prerequisites(world)
    assert {"cluster", "endpoints", "node-role", "launch-template/nodes"} <= set(built)
    groups = planned_nodegroups(ctx)
    assert [g.name for g in groups] == ["nodes-a", "nodes-b", "nodes-c"]
    eks = world.client("eks")

    found = {g.name: converge(ctx, g) for g in groups}
    assert all(f["status"] == "ACTIVE" for f in found.values())
    lt_id = built["launch-template/nodes"]["launch_template_id"]
    for az, group in zip(AZS, groups, strict=True):
        ng = eks.describe_nodegroup(clusterName=world.name, nodegroupName=group.name)["nodegroup"]
        assert ng["subnets"] == [built["subnets"]["parts"][az]["subnet_id"]]  # one AZ, one private subnet
        assert ng["launchTemplate"]["id"] == lt_id and str(ng["launchTemplate"]["version"]) == "1"
        assert ng["scalingConfig"] == {"minSize": 1, "desiredSize": 1, "maxSize": 2}
        assert ng["instanceTypes"] == ["t3.small"] and ng["capacityType"] == "ON_DEMAND"
        assert ng["nodeRole"] == built["node-role"]["role_arn"]
        assert ng["tags"]["eksprivate:cluster"] == world.name
        assert ctx.ledger.ids(group.key)["nodegroup_name"] == group.name
        assert_rerun_is_noop(ctx, group)

    lost = world.ctx(fresh=True, **LEAN)
    for group in planned_nodegroups(lost):
        assert adopt(lost, group)[group.key]["nodegroup_name"] == group.name
        assert_rerun_is_noop(lost, group)

    for group in groups:
        assert_delete_and_delete_again(ctx, group, found[group.name])
    assert eks.list_nodegroups(clusterName=world.name)["nodegroups"] == []


def test_rerun_keeps_a_desired_size_changed_outside(world: World) -> None:
    ctx, _ = nodegroup_prerequisites(world)
    group = planned_nodegroups(ctx)[0]
    converge(ctx, group)
    eks = world.client("eks")
    eks.update_nodegroup_config(clusterName=world.name, nodegroupName=group.name,
                                scalingConfig={"minSize": 1, "desiredSize": 2, "maxSize": 2})  # the autoscaler

    assert_rerun_is_noop(ctx, group)
    assert eks.describe_nodegroup(clusterName=world.name, nodegroupName=group.name)[
        "nodegroup"]["scalingConfig"]["desiredSize"] == 2

    # New bounds in the config change min/max and still leave a desired size inside them alone...
    wider = world.ctx(**LEAN, max_size=5)
    group = planned_nodegroups(wider)[0]
    sent = requests_to(wider, "eks", "UpdateNodegroupConfig")
    found = group.find(wider)
    assert found is not None
    changes = group.changes(wider, found)
    assert [c for c in changes if not c.startswith("!")] == ["update scalingConfig: {'minSize': 1, 'maxSize': 5}"]
    converge(wider, group)
    assert [r["scalingConfig"] for r in sent] == [{"minSize": 1, "maxSize": 5}]
    scaling = eks.describe_nodegroup(clusterName=world.name, nodegroupName=group.name)["nodegroup"]["scalingConfig"]
    assert scaling == {"minSize": 1, "desiredSize": 2, "maxSize": 5}
    assert_rerun_is_noop(wider, group)

    # ...and move it only as far as bounds that exclude it demand.
    higher = world.ctx(**LEAN, min_size=3, desired_size=3, max_size=5)
    group = planned_nodegroups(higher)[0]
    converge(higher, group)
    scaling = eks.describe_nodegroup(clusterName=world.name, nodegroupName=group.name)["nodegroup"]["scalingConfig"]
    assert scaling == {"minSize": 3, "desiredSize": 3, "maxSize": 5}


def test_nodegroup_labels_and_taints_converge(world: World) -> None:
    ctx, _ = nodegroup_prerequisites(world)
    group = planned_nodegroups(ctx)[0]
    converge(ctx, group)

    labelled = world.ctx(**LEAN, labels={"tier": "system"},
                         taints=[{"key": "dedicated", "value": "system", "effect": "NO_SCHEDULE"}])
    group = planned_nodegroups(labelled)[0]
    sent = requests_to(labelled, "eks", "UpdateNodegroupConfig")
    converge(labelled, group)
    assert [(r.get("labels"), r.get("taints")) for r in sent] == [(
        {"addOrUpdateLabels": {"tier": "system"}},
        {"addOrUpdateTaints": [{"key": "dedicated", "value": "system", "effect": "NO_SCHEDULE"}]})]
    assert_rerun_is_noop(labelled, group)


def test_orphan_nodegroup_is_kept_unless_pruned(world: World) -> None:
    ctx, _ = nodegroup_prerequisites(world)
    converge(ctx, planned_nodegroups(ctx)[0])
    orphan = NodeGroup("nodes-a", None, None)
    found = orphan.find(ctx)
    assert found is not None
    assert orphan.changes(ctx, found)[0].startswith("! node group nodes-a is not in the config")
    pruning = world.ctx(**LEAN)
    pruning.prune = True
    assert orphan.changes(pruning, found) == ["delete node group nodes-a (not in the config)"]
    assert graph_step(ctx, "cluster").key == "cluster"
