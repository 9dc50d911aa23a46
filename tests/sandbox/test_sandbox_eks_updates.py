"""EKS updates in the sandbox (`eks_updates`): asynchronous, one at a time, judged by DescribeUpdate;
upgradePolicy kept; node groups DEGRADED on demand.

plain moto applies UpdateClusterConfig at once, answers it with the cluster (no update id), has no
DescribeUpdate and drops upgradePolicy: every test here fails on it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from eksprivate.sandbox import SandboxServer

from .helpers import LONG, NODE_TRUST, ClientFactory, make_network, make_role

LOGS_ON = {"clusterLogging": [{"types": ["api", "audit"], "enabled": True}]}


@pytest.fixture
def eks(client: ClientFactory) -> Any:
    return client("eks")


@pytest.fixture
def cluster(client: ClientFactory, eks: Any, name: str) -> str:
    """An ACTIVE cluster created with the API's defaults (no upgradePolicy sent)."""
    role = make_role(client("iam"), f"{name}-cluster")
    eks.create_cluster(name=name, roleArn=role, resourcesVpcConfig={"subnetIds": make_network(client("ec2"))[1]})
    return name


def _code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response["Error"]["Code"])


def _describe(eks: Any, cluster: str, update_id: str, **extra: Any) -> dict[str, Any]:
    update: dict[str, Any] = eks.describe_update(name=cluster, updateId=update_id, **extra)["update"]
    return update


def test_update_runs_in_the_background_and_is_judged_by_describe_update(
        sandbox: SandboxServer, eks: Any, cluster: str) -> None:
    """Naive sandbox (moto): the change is visible at once and there is no update to describe."""
    sandbox.configure(cluster_update=LONG)
    update = eks.update_cluster_config(name=cluster, logging=LOGS_ON)["update"]
    assert update["status"] == "InProgress" and update["type"] == "LoggingUpdate"
    assert update["params"][0]["type"] == "ClusterLogging"
    live = eks.describe_cluster(name=cluster)["cluster"]
    assert live["status"] == "UPDATING"
    assert not any(e["enabled"] for e in live["logging"]["clusterLogging"])  # not applied yet
    assert _describe(eks, cluster, update["id"])["status"] == "InProgress"

    sandbox.configure(cluster_update=0)
    assert _describe(eks, cluster, update["id"])["status"] == "Successful"
    live = eks.describe_cluster(name=cluster)["cluster"]
    assert live["status"] == "ACTIVE"
    enabled = [t for e in live["logging"]["clusterLogging"] if e["enabled"] for t in e["types"]]
    assert sorted(enabled) == ["api", "audit"]


def test_a_second_update_is_refused_while_one_runs(sandbox: SandboxServer, eks: Any, cluster: str) -> None:
    sandbox.configure(cluster_update=LONG)
    first = eks.update_cluster_config(name=cluster, logging=LOGS_ON)["update"]
    with pytest.raises(ClientError) as error:
        eks.update_cluster_config(name=cluster, upgradePolicy={"supportType": "STANDARD"})
    assert _code(error) == "ResourceInUseException"
    assert f"Cannot UpgradePolicyUpdate because cluster {cluster} currently has update {first['id']} in progress" \
        in str(error.value)
    sandbox.configure(cluster_update=0)
    second = eks.update_cluster_config(name=cluster, upgradePolicy={"supportType": "STANDARD"})["update"]
    assert second["type"] == "UpgradePolicyUpdate" and second["id"] != first["id"]


def test_one_kind_of_change_per_call_and_no_empty_change(sandbox: SandboxServer, eks: Any, cluster: str) -> None:
    with pytest.raises(ClientError) as error:
        eks.update_cluster_config(name=cluster, logging=LOGS_ON, upgradePolicy={"supportType": "STANDARD"})
    assert _code(error) == "InvalidParameterException" and "Only one type of update" in str(error.value)
    with pytest.raises(ClientError) as error:
        eks.update_cluster_config(name=cluster, upgradePolicy={"supportType": "EXTENDED"})  # already EXTENDED
    assert _code(error) == "InvalidParameterException" and "No changes needed" in str(error.value)


def test_the_same_token_answers_the_same_update(sandbox: SandboxServer, eks: Any, cluster: str) -> None:
    sandbox.configure(cluster_update=LONG)
    first = eks.update_cluster_config(name=cluster, logging=LOGS_ON, clientRequestToken="tok-1")["update"]
    again = eks.update_cluster_config(name=cluster, logging=LOGS_ON, clientRequestToken="tok-1")["update"]
    assert again["id"] == first["id"]


def test_a_failed_update_leaves_the_cluster_active_and_unchanged(
        sandbox: SandboxServer, eks: Any, cluster: str) -> None:
    """What makes waiting on ACTIVE wrong: the botocore cluster_active waiter succeeds after a failed
    update; only DescribeUpdate says Failed, with EKS's error details."""
    sandbox.configure(fail_next_update=cluster)
    update = eks.update_cluster_config(name=cluster, logging=LOGS_ON)["update"]
    eks.get_waiter("cluster_active").wait(name=cluster, WaiterConfig={"Delay": 0.01})  # "updated", says naive code
    failed = _describe(eks, cluster, update["id"])
    assert failed["status"] == "Failed"
    assert failed["errors"][0]["errorCode"] == "OperationNotPermitted"
    assert failed["errors"][0]["resourceIds"] == [cluster]
    live = eks.describe_cluster(name=cluster)["cluster"]
    assert not any(e["enabled"] for e in live["logging"]["clusterLogging"])
    assert sandbox.settings()["fail_next_update"] is None  # once
    assert _describe(eks, cluster, eks.update_cluster_config(name=cluster, logging=LOGS_ON)["update"]["id"])[
        "status"] == "Successful"


def test_upgrade_policy_is_kept_and_extended_by_default(
        sandbox: SandboxServer, client: ClientFactory, eks: Any, name: str, cluster: str) -> None:
    assert eks.describe_cluster(name=cluster)["cluster"]["upgradePolicy"] == {"supportType": "EXTENDED"}
    role = make_role(client("iam"), f"{name}-other")
    other = f"{name}-std"
    eks.create_cluster(name=other, roleArn=role, resourcesVpcConfig={"subnetIds": make_network(client("ec2"))[1]},
                       upgradePolicy={"supportType": "STANDARD"})
    assert eks.describe_cluster(name=other)["cluster"]["upgradePolicy"] == {"supportType": "STANDARD"}
    with pytest.raises(ClientError) as error:
        eks.create_cluster(name=f"{name}-bad", roleArn=role, resourcesVpcConfig={"subnetIds": []},
                           upgradePolicy={"supportType": "CHEAP"})
    assert _code(error) == "InvalidParameterException"

    update = eks.update_cluster_config(name=cluster, upgradePolicy={"supportType": "STANDARD"})["update"]
    assert json.loads(update["params"][0]["value"]) == {"supportType": "STANDARD"}
    assert _describe(eks, cluster, update["id"])["status"] == "Successful"
    assert eks.describe_cluster(name=cluster)["cluster"]["upgradePolicy"] == {"supportType": "STANDARD"}


def test_nodegroup_update_and_degraded_nodegroup(
        sandbox: SandboxServer, client: ClientFactory, eks: Any, cluster: str, name: str) -> None:
    role = make_role(client("iam"), f"{name}-node", NODE_TRUST)
    subnets = eks.describe_cluster(name=cluster)["cluster"]["resourcesVpcConfig"]["subnetIds"]
    eks.create_nodegroup(clusterName=cluster, nodegroupName="ng", nodeRole=role, subnets=subnets,
                         scalingConfig={"minSize": 1, "desiredSize": 1, "maxSize": 2})
    sandbox.configure(nodegroup_update=LONG)
    update = eks.update_nodegroup_config(clusterName=cluster, nodegroupName="ng",
                                         scalingConfig={"minSize": 1, "maxSize": 4})["update"]
    assert update["type"] == "ConfigUpdate" and {p["type"] for p in update["params"]} == {"MinSize", "MaxSize"}
    ng = eks.describe_nodegroup(clusterName=cluster, nodegroupName="ng")["nodegroup"]
    assert ng["status"] == "UPDATING" and ng["scalingConfig"]["maxSize"] == 2
    with pytest.raises(ClientError) as error:
        eks.update_nodegroup_config(clusterName=cluster, nodegroupName="ng", labels={"addOrUpdateLabels": {"a": "b"}})
    assert _code(error) == "ResourceInUseException"
    sandbox.configure(nodegroup_update=0)
    assert _describe(eks, cluster, update["id"], nodegroupName="ng")["status"] == "Successful"
    assert eks.describe_nodegroup(clusterName=cluster, nodegroupName="ng")["nodegroup"]["scalingConfig"][
        "maxSize"] == 4
    with pytest.raises(ClientError) as error:
        eks.update_nodegroup_config(clusterName=cluster, nodegroupName="ng", scalingConfig={"minSize": 2})
    assert "Minimum capacity 2 can't be greater than desired size 1" in str(error.value)

    sandbox.configure(degraded_nodegroups=cluster)
    try:
        ng = eks.describe_nodegroup(clusterName=cluster, nodegroupName="ng")["nodegroup"]
        assert ng["status"] == "DEGRADED"
        assert ng["health"]["issues"][0]["code"] == "AsgInstanceLaunchFailures"
    finally:
        sandbox.configure(degraded_nodegroups=None)
    ng = eks.describe_nodegroup(clusterName=cluster, nodegroupName="ng")["nodegroup"]
    assert ng["status"] == "ACTIVE" and ng["health"]["issues"] == []


def test_update_settings_are_validated(sandbox: SandboxServer) -> None:
    with pytest.raises(ValueError, match="fail_next_update"):
        sandbox.configure(fail_next_update=3)
    assert sandbox.settings()["fail_next_update"] is None
