"""The EKS cluster (private API from the first call, API authentication) and its admin access entries."""

from __future__ import annotations

from typing import Any

import pytest

from eksprivate.errors import EksPrivateError
from eksprivate.sandbox import SandboxServer
from eksprivate.steps.cluster import LOG_TYPES, Cluster, ClusterAdmins
from eksprivate.steps.iam import ClusterRole

from .world import (
    AZS,
    World,
    adopt,
    assert_delete_and_delete_again,
    assert_recorded,
    assert_rerun_is_noop,
    build,
    converge,
    down_one,
    graph_step,
    mutating_during,
    needed_by,
    plan_one,
    requests_to,
    up_one,
)


def test_cluster_lifecycle(world: World) -> None:
    ctx = world.ctx()
    built = build(ctx, *needed_by(ctx, "cluster"))
    assert sorted(built) == ["cluster-log-group", "cluster-role", "kms-key", "node-role", "subnets", "vpc"]
    subnet_ids = [built["subnets"]["parts"][az]["subnet_id"] for az in AZS]
    sent = requests_to(ctx, "eks", "CreateCluster")

    found, mutating = mutating_during(ctx, lambda: converge(ctx, graph_step(ctx, "cluster")))
    # Private from the first call: one create, never an update that switches public access off later.
    assert mutating == ["eks:CreateCluster"]
    assert found["status"] == "ACTIVE"
    assert_recorded(ctx, "cluster", cluster_name=world.name, cluster_arn=found["cluster_arn"])
    [request] = sent
    assert request["resourcesVpcConfig"] == {"endpointPrivateAccess": True, "endpointPublicAccess": False,
                                             "subnetIds": subnet_ids}
    assert request["accessConfig"] == {"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": True}
    assert request["clientRequestToken"] == ctx.ledger.token("cluster")

    cluster = world.client("eks").describe_cluster(name=world.name)["cluster"]
    vpc = cluster["resourcesVpcConfig"]
    assert vpc["endpointPrivateAccess"] is True and vpc["endpointPublicAccess"] is False
    assert sorted(vpc["subnetIds"]) == sorted(subnet_ids)
    assert cluster["accessConfig"]["authenticationMode"] == "API"
    assert cluster["roleArn"] == built["cluster-role"]["role_arn"]
    assert cluster["encryptionConfig"] == [{"resources": ["secrets"],
                                            "provider": {"keyArn": built["kms-key"]["key_arn"]}}]
    assert sorted(t for e in cluster["logging"]["clusterLogging"] if e["enabled"] for t in e["types"]) == sorted(
        LOG_TYPES)
    assert cluster["tags"]["eksprivate:cluster"] == world.name
    # The creator is admin through an access entry: nothing needs the private API from outside the VPC.
    assert world.client("eks").list_access_entries(clusterName=world.name)["accessEntries"]

    assert_rerun_is_noop(ctx, graph_step(ctx, "cluster"))
    lost = world.ctx(fresh=True)
    assert adopt(lost, graph_step(lost, "cluster"))["cluster"]["cluster_arn"] == found["cluster_arn"]
    assert_rerun_is_noop(lost, graph_step(lost, "cluster"))

    assert_delete_and_delete_again(ctx, graph_step(ctx, "cluster"), found)
    with pytest.raises(world.client("eks").exceptions.ResourceNotFoundException):
        world.client("eks").describe_cluster(name=world.name)


def test_cluster_public_api_only_for_the_configured_cidrs(world: World) -> None:
    ctx = world.ctx(public_access_cidrs=["203.0.113.0/24"], secrets_encryption=False, control_plane_logging=False)
    build(ctx, *needed_by(ctx, "cluster"))
    sent = requests_to(ctx, "eks", "CreateCluster")
    converge(ctx, graph_step(ctx, "cluster"))
    assert sent[0]["resourcesVpcConfig"]["endpointPublicAccess"] is True
    assert sent[0]["resourcesVpcConfig"]["publicAccessCidrs"] == ["203.0.113.0/24"]
    assert "encryptionConfig" not in sent[0]
    vpc = world.client("eks").describe_cluster(name=world.name)["cluster"]["resourcesVpcConfig"]
    assert vpc["endpointPrivateAccess"] is True and vpc["publicAccessCidrs"] == ["203.0.113.0/24"]
    assert_rerun_is_noop(ctx, graph_step(ctx, "cluster"))

    private = world.ctx(secrets_encryption=False, control_plane_logging=False)  # the CIDRs left the config
    assert plan_one(private, Cluster(())).details == ["set API access: private on, public off"]
    updates = requests_to(private, "eks", "UpdateClusterConfig")
    assert up_one(private, Cluster(())).changes == ["updated resourcesVpcConfig"]
    assert [u.pop("clientRequestToken") for u in updates] != [None]  # recorded before the call (resumable)
    assert updates == [{"name": world.name, "resourcesVpcConfig": {"endpointPrivateAccess": True,
                                                                   "endpointPublicAccess": False}}]
    assert down_one(private, Cluster(())).phase == "deleted"


def test_cluster_create_waits_out_iam_propagation(world: World, stand_in: SandboxServer) -> None:
    """CreateCluster right after CreateRole fails until the role propagates (InvalidParameterException):
    the step retries it rather than failing the run."""
    ctx = world.ctx(secrets_encryption=False, control_plane_logging=False)
    build(ctx, *[s for s in needed_by(ctx, "cluster") if s.key != "cluster-role"])
    # x 0.0005 = 2 s before EKS may assume a new role: wide enough that a loaded machine still reaches
    # CreateCluster inside it (0.2 s was missed under load, and the refusal this test is about never came).
    stand_in.configure(iam_role_delay=4000.0)
    converge(ctx, ClusterRole())
    found, mutating = mutating_during(ctx, lambda: converge(ctx, graph_step(ctx, "cluster")))
    assert found["status"] == "ACTIVE"
    assert mutating.count("eks:CreateCluster") >= 2, mutating  # refused at least once, then accepted
    assert set(mutating) == {"eks:CreateCluster"}
    assert down_one(ctx, Cluster(())).phase == "deleted"


def test_cluster_of_the_same_name_not_made_by_eksprivate_is_refused(world: World) -> None:
    ctx = world.ctx(secrets_encryption=False, control_plane_logging=False)
    built = build(ctx, *needed_by(ctx, "cluster"))
    eks = world.client("eks")
    eks.create_cluster(name=world.name, roleArn=built["cluster-role"]["role_arn"],
                       resourcesVpcConfig={"subnetIds": [p["subnet_id"] for p in built["subnets"]["parts"].values()]})
    try:
        with pytest.raises(EksPrivateError, match="was not made by eksprivate"):
            Cluster(()).find(ctx)
    finally:
        eks.delete_cluster(name=world.name)


def test_cluster_admins_lifecycle(world: World) -> None:
    iam = world.client("iam")
    admin = iam.create_role(RoleName=f"{world.name}-ops", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    ctx = world.ctx(admins=[admin], secrets_encryption=False, control_plane_logging=False)
    build(ctx, *needed_by(ctx, "cluster"), graph_step(ctx, "cluster"))
    eks = world.client("eks")

    found = converge(ctx, ClusterAdmins())
    assert found["admins"] == [admin]
    assert admin in eks.list_access_entries(clusterName=world.name)["accessEntries"]
    policies: list[dict[str, Any]] = eks.list_associated_access_policies(
        clusterName=world.name, principalArn=admin)["associatedAccessPolicies"]
    assert [(p["policyArn"].rsplit("/", 1)[-1], p["accessScope"]["type"]) for p in policies] == [
        ("AmazonEKSClusterAdminPolicy", "cluster")]

    assert_rerun_is_noop(ctx, ClusterAdmins())
    lost = world.ctx(fresh=True, admins=[admin], secrets_encryption=False, control_plane_logging=False)
    adopt(lost, ClusterAdmins())
    assert_rerun_is_noop(lost, ClusterAdmins())

    assert_delete_and_delete_again(ctx, ClusterAdmins(), found)
    assert admin not in eks.list_access_entries(clusterName=world.name)["accessEntries"]
    assert down_one(ctx, Cluster(())).phase == "deleted"
    ClusterAdmins().remove(ctx, found)  # the cluster (and its entries) gone: still done
