"""EKS in the sandbox: lifecycles, ordering rules, IAM propagation and accessConfig."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from eksprivate.sandbox import SandboxServer

from .helpers import LONG, NODE_TRUST, ClientFactory, make_network, make_role, wait_until


def _status(eks: Any, cluster: str) -> str:
    status: str = eks.describe_cluster(name=cluster)["cluster"]["status"]
    return status


def _nodegroup_status(eks: Any, cluster: str, nodegroup: str) -> str:
    status: str = eks.describe_nodegroup(clusterName=cluster, nodegroupName=nodegroup)["nodegroup"]["status"]
    return status


def _gone(call: Any, **kwargs: Any) -> bool:
    try:
        call(**kwargs)
    except ClientError as error:
        return bool(error.response["Error"]["Code"] == "ResourceNotFoundException")
    return False


@pytest.fixture
def eks(client: ClientFactory) -> Any:
    return client("eks")


@pytest.fixture
def cluster_role(client: ClientFactory, name: str) -> str:
    return make_role(client("iam"), f"{name}-cluster")


@pytest.fixture
def node_role(client: ClientFactory, name: str) -> str:
    return make_role(client("iam"), f"{name}-node", NODE_TRUST)


@pytest.fixture
def subnets(client: ClientFactory) -> list[str]:
    return make_network(client("ec2"))[1]


def _create_cluster(eks: Any, name: str, role: str, subnets: list[str], **extra: Any) -> dict[str, Any]:
    cluster: dict[str, Any] = eks.create_cluster(
        name=name, roleArn=role, resourcesVpcConfig={"subnetIds": subnets}, **extra
    )["cluster"]
    return cluster


def _create_nodegroup(eks: Any, cluster: str, nodegroup: str, role: str, subnets: list[str]) -> None:
    eks.create_nodegroup(clusterName=cluster, nodegroupName=nodegroup, nodeRole=role, subnets=subnets)


def test_cluster_is_creating_then_active(
    sandbox: SandboxServer, eks: Any, name: str, cluster_role: str, subnets: list[str]
) -> None:
    sandbox.configure(cluster_create=LONG)
    created = _create_cluster(eks, name, cluster_role, subnets)
    assert created["status"] == "CREATING"
    creating = eks.describe_cluster(name=name)["cluster"]
    assert creating["status"] == "CREATING"
    assert "endpoint" not in creating  # EKS reports the API endpoint only once ACTIVE

    sandbox.configure(cluster_create=0)
    active = eks.describe_cluster(name=name)["cluster"]
    assert active["status"] == "ACTIVE"
    assert active["endpoint"].startswith("https://")


def test_cluster_create_takes_its_time(
    sandbox: SandboxServer, eks: Any, name: str, cluster_role: str, subnets: list[str]
) -> None:
    sandbox.configure(time_scale=0.001, cluster_create=540)  # the real 9 minutes, scaled
    started = time.monotonic()
    _create_cluster(eks, name, cluster_role, subnets)
    wait_until(lambda: _status(eks, name) == "ACTIVE")
    assert time.monotonic() - started >= 0.54


def test_cluster_delete_is_deleting_then_gone(
    sandbox: SandboxServer, eks: Any, name: str, cluster_role: str, subnets: list[str]
) -> None:
    sandbox.configure(cluster_delete=LONG)
    _create_cluster(eks, name, cluster_role, subnets)
    assert eks.delete_cluster(name=name)["cluster"]["status"] == "DELETING"
    assert _status(eks, name) == "DELETING"
    assert name in eks.list_clusters()["clusters"]

    sandbox.configure(cluster_delete=0)
    assert _gone(eks.describe_cluster, name=name)
    assert name not in eks.list_clusters()["clusters"]
    with pytest.raises(ClientError) as error:
        eks.delete_cluster(name=name)
    assert error.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_nodegroup_needs_an_active_cluster(
    sandbox: SandboxServer, eks: Any, name: str, cluster_role: str, node_role: str, subnets: list[str]
) -> None:
    sandbox.configure(cluster_create=LONG)
    _create_cluster(eks, name, cluster_role, subnets)
    with pytest.raises(ClientError) as error:
        _create_nodegroup(eks, name, "workers", node_role, subnets)
    assert error.value.response["Error"]["Code"] == "InvalidRequestException"
    assert "is not in ACTIVE status" in error.value.response["Error"]["Message"]


def test_nodegroup_lifecycle_and_cluster_delete_order(
    sandbox: SandboxServer, eks: Any, name: str, cluster_role: str, node_role: str, subnets: list[str]
) -> None:
    _create_cluster(eks, name, cluster_role, subnets)
    sandbox.configure(nodegroup_create=LONG)
    _create_nodegroup(eks, name, "workers", node_role, subnets)
    assert _nodegroup_status(eks, name, "workers") == "CREATING"
    sandbox.configure(nodegroup_create=0)
    assert _nodegroup_status(eks, name, "workers") == "ACTIVE"

    with pytest.raises(ClientError) as error:
        eks.delete_cluster(name=name)
    assert error.value.response["Error"]["Code"] == "ResourceInUseException"
    assert error.value.response["Error"]["Message"] == "Cluster has nodegroups attached"

    sandbox.configure(nodegroup_delete=LONG)
    eks.delete_nodegroup(clusterName=name, nodegroupName="workers")
    assert _nodegroup_status(eks, name, "workers") == "DELETING"
    assert eks.list_nodegroups(clusterName=name)["nodegroups"] == ["workers"]
    # A node group still being deleted blocks the cluster delete too.
    with pytest.raises(ClientError) as error:
        eks.delete_cluster(name=name)
    assert error.value.response["Error"]["Code"] == "ResourceInUseException"

    sandbox.configure(nodegroup_delete=0)
    assert _gone(eks.describe_nodegroup, clusterName=name, nodegroupName="workers")
    assert eks.list_nodegroups(clusterName=name)["nodegroups"] == []
    eks.delete_cluster(name=name)
    assert _gone(eks.describe_cluster, name=name)
    # moto would answer HTTP 500 here; EKS says the cluster is not found.
    assert _gone(eks.list_nodegroups, clusterName=name)


def test_new_role_cannot_be_assumed_at_once(
    sandbox: SandboxServer, client: ClientFactory, eks: Any, name: str, subnets: list[str]
) -> None:
    sandbox.configure(iam_role_delay=LONG)
    role = make_role(client("iam"), f"{name}-young")
    with pytest.raises(ClientError) as error:
        _create_cluster(eks, name, role, subnets)
    assert error.value.response["Error"]["Code"] == "InvalidParameterException"
    assert error.value.response["Error"]["Message"] == (
        f"Role with arn: {role}, could not be assumed because it does not exist or the trusted entity is not correct"
    )

    # Retrying, as a client must, succeeds once the role has propagated.
    sandbox.configure(iam_role_delay=0.3)

    def created() -> bool:
        try:
            _create_cluster(eks, name, role, subnets)
        except ClientError as retry_error:
            assert retry_error.response["Error"]["Code"] == "InvalidParameterException"
            return False
        return True

    wait_until(created, interval=0.1)


def test_missing_or_untrusting_role_is_refused(
    client: ClientFactory, eks: Any, name: str, node_role: str, subnets: list[str]
) -> None:
    missing = node_role.replace(f"{name}-node", f"{name}-missing")
    for role in (missing, node_role):  # the node role trusts ec2.amazonaws.com, not EKS
        with pytest.raises(ClientError) as error:
            _create_cluster(eks, name, role, subnets)
        assert error.value.response["Error"]["Code"] == "InvalidParameterException"
        assert "could not be assumed" in error.value.response["Error"]["Message"]


def test_nodegroup_role_delay(
    sandbox: SandboxServer,
    client: ClientFactory,
    eks: Any,
    name: str,
    cluster_role: str,
    subnets: list[str],
) -> None:
    _create_cluster(eks, name, cluster_role, subnets)
    sandbox.configure(iam_role_delay=LONG)
    young = make_role(client("iam"), f"{name}-young-node", NODE_TRUST)
    with pytest.raises(ClientError) as error:
        _create_nodegroup(eks, name, "workers", young, subnets)
    assert error.value.response["Error"]["Code"] == "InvalidParameterException"
    assert young in error.value.response["Error"]["Message"]


def test_access_config_logging_and_encryption_are_kept(
    eks: Any, name: str, cluster_role: str, subnets: list[str]
) -> None:
    logging = {"clusterLogging": [{"types": ["api", "audit"], "enabled": True}]}
    encryption = [{"resources": ["secrets"], "provider": {"keyArn": "arn:aws:kms:eu-central-1:123456789012:key/k1"}}]
    _create_cluster(
        eks,
        name,
        cluster_role,
        subnets,
        accessConfig={"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": False},
        logging=logging,
        encryptionConfig=encryption,
    )
    cluster = eks.describe_cluster(name=name)["cluster"]
    assert cluster["accessConfig"] == {
        "authenticationMode": "API",
        "bootstrapClusterCreatorAdminPermissions": False,
    }
    assert cluster["logging"] == logging
    assert cluster["encryptionConfig"] == encryption


def test_default_access_config(eks: Any, name: str, cluster_role: str, subnets: list[str]) -> None:
    _create_cluster(eks, name, cluster_role, subnets)
    assert eks.describe_cluster(name=name)["cluster"]["accessConfig"] == {
        "authenticationMode": "CONFIG_MAP",
        "bootstrapClusterCreatorAdminPermissions": True,
    }


def test_client_request_token_makes_create_cluster_idempotent(
    eks: Any, name: str, cluster_role: str, subnets: list[str]
) -> None:
    first = _create_cluster(eks, name, cluster_role, subnets, clientRequestToken="token-1")
    again = _create_cluster(eks, name, cluster_role, subnets, clientRequestToken="token-1")
    assert again["arn"] == first["arn"]
    with pytest.raises(ClientError) as error:
        _create_cluster(eks, name, cluster_role, subnets, clientRequestToken="token-2")
    assert error.value.response["Error"]["Code"] == "ResourceInUseException"


def test_time_scale_applies_to_resources_in_flight(
    sandbox: SandboxServer, eks: Any, name: str, cluster_role: str, subnets: list[str]
) -> None:
    sandbox.configure(cluster_create=LONG)
    _create_cluster(eks, name, cluster_role, subnets)
    assert _status(eks, name) == "CREATING"
    sandbox.configure(time_scale=0.0)
    assert _status(eks, name) == "ACTIVE"
