"""Day 2 in the sandbox: managed add-ons (`eks_addons`) and version upgrades (`eks_upgrades`).

Plain moto has no add-on API, no UpdateClusterVersion / UpdateNodegroupVersion / ListInsights, and gives
every node group Kubernetes 1.19 whatever the cluster runs: every test here fails on it.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from eksprivate.sandbox import SandboxServer

from .helpers import LONG, NODE_TRUST, ClientFactory, make_network, make_role


@pytest.fixture
def eks(client: ClientFactory) -> Any:
    return client("eks")


@pytest.fixture
def cluster(client: ClientFactory, eks: Any, name: str) -> tuple[str, str, list[str]]:
    """An ACTIVE 1.32 cluster, its node role and subnets."""
    role = make_role(client("iam"), f"{name}-cluster")
    subnets = make_network(client("ec2"))[1]
    eks.create_cluster(name=name, version="1.32", roleArn=role, resourcesVpcConfig={"subnetIds": subnets})
    return name, make_role(client("iam"), f"{name}-node", NODE_TRUST), subnets


def _code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response["Error"]["Code"])


def test_addon_versions_name_one_default_per_kubernetes_version(eks: Any) -> None:
    addons = eks.describe_addon_versions(kubernetesVersion="1.32", addonName="coredns")["addons"]
    assert [a["addonName"] for a in addons] == ["coredns"]
    defaults = [v["addonVersion"] for v in addons[0]["addonVersions"]
                for c in v["compatibilities"] if c["clusterVersion"] == "1.32" and c["defaultVersion"]]
    assert len(defaults) == 1 and len(addons[0]["addonVersions"]) >= 2


def test_addon_lifecycle_and_coredns_degraded_without_nodes(
        sandbox: SandboxServer, eks: Any, cluster: tuple[str, str, list[str]]) -> None:
    """Naive model: ACTIVE at once, and coredns ACTIVE on a cluster with no node to run it."""
    name, node_role, subnets = cluster
    sandbox.configure(addon_create=LONG)
    created = eks.create_addon(clusterName=name, addonName="kube-proxy")["addon"]
    assert created["status"] == "CREATING" and created["addonVersion"].startswith("v1.32.")
    eks.create_addon(clusterName=name, addonName="coredns")
    sandbox.configure(addon_create=0)
    assert eks.describe_addon(clusterName=name, addonName="kube-proxy")["addon"]["status"] == "ACTIVE"
    coredns = eks.describe_addon(clusterName=name, addonName="coredns")["addon"]
    assert coredns["status"] == "DEGRADED"
    assert coredns["health"]["issues"][0]["code"] == "InsufficientNumberOfReplicas"
    eks.create_nodegroup(clusterName=name, nodegroupName="ng", nodeRole=node_role, subnets=subnets)
    assert eks.describe_addon(clusterName=name, addonName="coredns")["addon"]["status"] == "ACTIVE"
    assert sorted(eks.list_addons(clusterName=name)["addons"]) == ["coredns", "kube-proxy"]
    with pytest.raises(ClientError) as error:
        eks.create_addon(clusterName=name, addonName="coredns")
    assert _code(error) == "ResourceInUseException"


def test_nodes_join_only_once_the_cluster_has_a_cni(sandbox: SandboxServer, client: ClientFactory, eks: Any,
                                                    cluster: tuple[str, str, list[str]], name: str) -> None:
    """Naive model (moto's): a node group is ACTIVE whatever the cluster runs. On a cluster made without the
    self-managed add-ons there is no CNI until one is added: nodes stay NotReady, the group CREATING, and
    without vpc-cni and kube-proxy within the join window it fails with NodeCreationFailure."""
    _, node_role, subnets = cluster
    role = make_role(client("iam"), f"{name}-bare")

    def bare_cluster(cluster_name: str) -> None:
        eks.create_cluster(name=cluster_name, version="1.32", roleArn=role, bootstrapSelfManagedAddons=False,
                           resourcesVpcConfig={"subnetIds": subnets})
        eks.create_nodegroup(clusterName=cluster_name, nodegroupName="ng", nodeRole=node_role, subnets=subnets)

    def group(cluster_name: str) -> dict[str, Any]:
        found: dict[str, Any] = eks.describe_nodegroup(clusterName=cluster_name, nodegroupName="ng")["nodegroup"]
        return found

    sandbox.configure(nodegroup_join_timeout=LONG)
    bare_cluster(f"{name}-a")
    assert group(f"{name}-a")["status"] == "CREATING"  # its 0 s of creation are over: waiting for a CNI
    eks.create_addon(clusterName=f"{name}-a", addonName="coredns")
    assert eks.describe_addon(clusterName=f"{name}-a", addonName="coredns")["addon"]["status"] == "DEGRADED"
    eks.create_addon(clusterName=f"{name}-a", addonName="vpc-cni")
    assert group(f"{name}-a")["status"] == "CREATING"  # the CNI reaches the API through kube-proxy
    eks.create_addon(clusterName=f"{name}-a", addonName="kube-proxy")
    assert group(f"{name}-a")["status"] == "ACTIVE"
    assert eks.describe_addon(clusterName=f"{name}-a", addonName="coredns")["addon"]["status"] == "ACTIVE"

    sandbox.configure(nodegroup_join_timeout=0)  # the join window is over at once
    bare_cluster(f"{name}-b")
    failed = group(f"{name}-b")
    assert failed["status"] == "CREATE_FAILED"
    assert [i["code"] for i in failed["health"]["issues"]] == ["NodeCreationFailure"]
    for addon in ("vpc-cni", "kube-proxy"):  # too late: the group stays failed
        eks.create_addon(clusterName=f"{name}-b", addonName=addon)
    assert group(f"{name}-b")["status"] == "CREATE_FAILED"
    # EKS's default (the bootstrap): its self-managed CNI lets nodes join without any managed add-on.
    eks.create_nodegroup(clusterName=cluster[0], nodegroupName="ng", nodeRole=node_role, subnets=subnets)
    assert eks.describe_nodegroup(clusterName=cluster[0], nodegroupName="ng")["nodegroup"]["status"] == "ACTIVE"


def test_addon_refusals(eks: Any, cluster: tuple[str, str, list[str]]) -> None:
    name = cluster[0]
    with pytest.raises(ClientError) as error:
        eks.create_addon(clusterName=name, addonName="kube-proxy", addonVersion="v1.30.2-eksbuild.1")
    assert _code(error) == "InvalidParameterException"
    with pytest.raises(ClientError) as error:
        eks.create_addon(clusterName=name, addonName="coredns", configurationValues="[1, 2]")
    assert _code(error) == "InvalidParameterException"
    with pytest.raises(ClientError) as error:
        eks.describe_addon(clusterName=name, addonName="vpc-cni")
    assert _code(error) == "ResourceNotFoundException"


def test_addon_update_is_an_update_and_delete_takes_time(
        sandbox: SandboxServer, eks: Any, cluster: tuple[str, str, list[str]]) -> None:
    name = cluster[0]
    eks.create_addon(clusterName=name, addonName="vpc-cni", addonVersion="v1.23.1-eksbuild.1")
    sandbox.configure(addon_update=LONG)
    update = eks.update_addon(clusterName=name, addonName="vpc-cni", addonVersion="v1.23.3-eksbuild.1",
                              resolveConflicts="OVERWRITE")["update"]
    assert update["type"] == "AddonUpdate" and update["status"] == "InProgress"
    live = eks.describe_addon(clusterName=name, addonName="vpc-cni")["addon"]
    assert live["status"] == "UPDATING" and live["addonVersion"] == "v1.23.1-eksbuild.1"
    with pytest.raises(ClientError) as error:
        eks.update_addon(clusterName=name, addonName="vpc-cni", configurationValues="{}")
    assert _code(error) == "ResourceInUseException"
    sandbox.configure(addon_update=0)
    done = eks.describe_update(name=name, updateId=update["id"], addonName="vpc-cni")["update"]
    assert done["status"] == "Successful"
    assert eks.describe_addon(clusterName=name, addonName="vpc-cni")["addon"]["addonVersion"] == "v1.23.3-eksbuild.1"
    sandbox.configure(addon_delete=LONG)
    assert eks.delete_addon(clusterName=name, addonName="vpc-cni")["addon"]["status"] == "DELETING"
    assert eks.describe_addon(clusterName=name, addonName="vpc-cni")["addon"]["status"] == "DELETING"
    sandbox.configure(addon_delete=0)
    with pytest.raises(ClientError) as error:
        eks.describe_addon(clusterName=name, addonName="vpc-cni")
    assert _code(error) == "ResourceNotFoundException"


def test_cluster_version_update_one_minor_at_a_time_nodes_first(
        sandbox: SandboxServer, eks: Any, cluster: tuple[str, str, list[str]]) -> None:
    """Naive model: any version at once, node groups on 1.19, no check of the node groups' version."""
    name, node_role, subnets = cluster
    eks.create_nodegroup(clusterName=name, nodegroupName="ng", nodeRole=node_role, subnets=subnets)
    ng = eks.describe_nodegroup(clusterName=name, nodegroupName="ng")["nodegroup"]
    assert ng["version"] == "1.32" and ng["releaseVersion"].startswith("1.32.")
    for bad in ("1.34", "1.31", "1.32"):
        with pytest.raises(ClientError) as error:
            eks.update_cluster_version(name=name, version=bad)
        assert _code(error) == "InvalidParameterException"
        assert f"Unsupported Kubernetes minor version update from 1.32 to {bad}" in str(error.value)
    sandbox.configure(cluster_version_update=LONG)
    update = eks.update_cluster_version(name=name, version="1.33")["update"]
    assert update["type"] == "VersionUpdate"
    assert eks.describe_cluster(name=name)["cluster"]["status"] == "UPDATING"
    with pytest.raises(ClientError) as error:
        eks.update_cluster_version(name=name, version="1.33")
    assert _code(error) == "ResourceInUseException"
    sandbox.configure(cluster_version_update=0)
    assert eks.describe_update(name=name, updateId=update["id"])["update"]["status"] == "Successful"
    assert eks.describe_cluster(name=name)["cluster"]["version"] == "1.33"
    # The node group still runs 1.32: the next control-plane upgrade waits for it.
    with pytest.raises(ClientError) as error:
        eks.update_cluster_version(name=name, version="1.34")
    assert _code(error) == "InvalidRequestException"
    assert "Nodegroups ng must be updated to match cluster version 1.33" in str(error.value)
    insights = eks.list_insights(clusterName=name)["insights"]
    assert {i["name"]: i["insightStatus"]["status"] for i in insights}["Kubelet version skew"] == "WARNING"
    sandbox.configure(nodegroup_version_update=LONG)
    ng_update = eks.update_nodegroup_version(clusterName=name, nodegroupName="ng", version="1.33")["update"]
    assert eks.describe_nodegroup(clusterName=name, nodegroupName="ng")["nodegroup"]["status"] == "UPDATING"
    sandbox.configure(nodegroup_version_update=0)
    assert eks.describe_update(name=name, updateId=ng_update["id"], nodegroupName="ng")["update"][
        "status"] == "Successful"
    assert eks.describe_nodegroup(clusterName=name, nodegroupName="ng")["nodegroup"]["version"] == "1.33"
    eks.update_cluster_version(name=name, version="1.34")


def test_an_error_insight_blocks_the_upgrade_unless_forced(
        sandbox: SandboxServer, eks: Any, cluster: tuple[str, str, list[str]]) -> None:
    name = cluster[0]
    sandbox.configure(error_insights=name)
    errors = eks.list_insights(clusterName=name, filter={"statuses": ["ERROR"]})["insights"]
    assert [i["name"] for i in errors] == ["Deprecated APIs removed in Kubernetes v1.33"]
    assert errors[0]["category"] == "UPGRADE_READINESS" and errors[0]["kubernetesVersion"] == "1.33"
    with pytest.raises(ClientError) as error:
        eks.update_cluster_version(name=name, version="1.33")
    assert _code(error) == "InvalidRequestException"
    assert eks.update_cluster_version(name=name, version="1.33", force=True)["update"]["type"] == "VersionUpdate"
    sandbox.configure(error_insights=None)
