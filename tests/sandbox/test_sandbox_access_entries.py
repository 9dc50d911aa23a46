"""EKS access entries through boto3 against the sandbox server (moto lacks them)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from .helpers import NODE_TRUST, ClientFactory, make_network, make_role, wait_until

ADMIN = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
VIEW = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy"
# moto's identity for the dummy "testing" credentials, as EKS records the cluster creator.
CREATOR = "arn:aws:iam::123456789012:user/moto"


@pytest.fixture
def eks(client: ClientFactory) -> Any:
    return client("eks")


@pytest.fixture
def subnets(client: ClientFactory) -> list[str]:
    return make_network(client("ec2"))[1]


def _cluster(
    client: ClientFactory, eks: Any, name: str, subnets: list[str], mode: str = "API", bootstrap: bool = True
) -> str:
    role = make_role(client("iam"), f"{name}-cluster")
    eks.create_cluster(
        name=name,
        roleArn=role,
        resourcesVpcConfig={"subnetIds": subnets},
        accessConfig={"authenticationMode": mode, "bootstrapClusterCreatorAdminPermissions": bootstrap},
    )
    return name


def _code(error: pytest.ExceptionInfo[ClientError]) -> str:
    code: str = error.value.response["Error"]["Code"]
    return code


def test_creator_gets_an_admin_entry(client: ClientFactory, eks: Any, name: str, subnets: list[str]) -> None:
    cluster = _cluster(client, eks, name, subnets)
    assert eks.list_access_entries(clusterName=cluster)["accessEntries"] == [CREATOR]
    policies = eks.list_associated_access_policies(clusterName=cluster, principalArn=CREATOR)
    assert [p["policyArn"] for p in policies["associatedAccessPolicies"]] == [ADMIN]
    assert policies["associatedAccessPolicies"][0]["accessScope"] == {"type": "cluster"}


def test_no_bootstrap_no_entry(client: ClientFactory, eks: Any, name: str, subnets: list[str]) -> None:
    cluster = _cluster(client, eks, name, subnets, mode="API_AND_CONFIG_MAP", bootstrap=False)
    assert eks.list_access_entries(clusterName=cluster)["accessEntries"] == []


def test_config_map_clusters_take_no_entries(client: ClientFactory, eks: Any, name: str, subnets: list[str]) -> None:
    cluster = _cluster(client, eks, name, subnets, mode="CONFIG_MAP")
    with pytest.raises(ClientError) as error:
        eks.list_access_entries(clusterName=cluster)
    assert _code(error) == "InvalidRequestException"
    assert "authentication mode" in error.value.response["Error"]["Message"]


def test_access_entry_round_trip(client: ClientFactory, eks: Any, name: str, subnets: list[str]) -> None:
    cluster = _cluster(client, eks, name, subnets, bootstrap=False)
    # A role with a path: its ARN has several '/' and travels in the URL path.
    principal = client("iam").create_role(RoleName=f"{name}-admin", Path="/team/ops/", AssumeRolePolicyDocument="{}")[
        "Role"
    ]["Arn"]

    entry = eks.create_access_entry(
        clusterName=cluster, principalArn=principal, kubernetesGroups=["ops"], tags={"team": "ops"}
    )["accessEntry"]
    assert entry["principalArn"] == principal
    assert entry["type"] == "STANDARD"
    assert entry["username"] == f"arn:aws:sts::123456789012:assumed-role/{name}-admin/{{{{SessionName}}}}"
    assert entry["accessEntryArn"].startswith(f"arn:aws:eks:eu-central-1:123456789012:access-entry/{cluster}/")

    described = eks.describe_access_entry(clusterName=cluster, principalArn=principal)["accessEntry"]
    assert described["kubernetesGroups"] == ["ops"]
    assert described["tags"] == {"team": "ops"}
    updated = eks.update_access_entry(clusterName=cluster, principalArn=principal, kubernetesGroups=["a"])
    assert updated["accessEntry"]["kubernetesGroups"] == ["a"]

    associated = eks.associate_access_policy(
        clusterName=cluster,
        principalArn=principal,
        policyArn=VIEW,
        accessScope={"type": "namespace", "namespaces": ["default"]},
    )
    assert associated["associatedAccessPolicy"]["policyArn"] == VIEW
    eks.associate_access_policy(
        clusterName=cluster, principalArn=principal, policyArn=ADMIN, accessScope={"type": "cluster"}
    )
    listed = eks.list_associated_access_policies(clusterName=cluster, principalArn=principal)
    assert [p["policyArn"] for p in listed["associatedAccessPolicies"]] == [ADMIN, VIEW]
    assert eks.list_access_entries(clusterName=cluster, associatedPolicyArn=VIEW)["accessEntries"] == [principal]

    eks.disassociate_access_policy(clusterName=cluster, principalArn=principal, policyArn=VIEW)
    listed = eks.list_associated_access_policies(clusterName=cluster, principalArn=principal)
    assert [p["policyArn"] for p in listed["associatedAccessPolicies"]] == [ADMIN]

    eks.delete_access_entry(clusterName=cluster, principalArn=principal)
    with pytest.raises(ClientError) as error:
        eks.describe_access_entry(clusterName=cluster, principalArn=principal)
    assert _code(error) == "ResourceNotFoundException"


def test_access_entry_errors(client: ClientFactory, eks: Any, name: str, subnets: list[str]) -> None:
    cluster = _cluster(client, eks, name, subnets)
    with pytest.raises(ClientError) as error:
        eks.create_access_entry(clusterName=cluster, principalArn=CREATOR)
    assert _code(error) == "ResourceInUseException"
    with pytest.raises(ClientError) as error:
        eks.create_access_entry(clusterName=cluster, principalArn="not-an-arn")
    assert _code(error) == "InvalidParameterException"
    with pytest.raises(ClientError) as error:
        eks.associate_access_policy(
            clusterName=cluster,
            principalArn=CREATOR,
            policyArn=VIEW,
            accessScope={"type": "namespace"},  # namespaces missing
        )
    assert _code(error) == "InvalidParameterException"
    with pytest.raises(ClientError) as error:
        eks.associate_access_policy(
            clusterName=cluster,
            principalArn=CREATOR,
            policyArn="arn:aws:eks::aws:cluster-access-policy/NoSuchPolicy",
            accessScope={"type": "cluster"},
        )
    assert _code(error) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as error:
        eks.list_access_entries(clusterName=f"{name}-missing")
    assert _code(error) == "ResourceNotFoundException"


def test_access_entries_paginate(client: ClientFactory, eks: Any, name: str, subnets: list[str]) -> None:
    cluster = _cluster(client, eks, name, subnets)
    principals = [f"arn:aws:iam::123456789012:role/{name}-{i}" for i in range(5)]
    for principal in principals:
        eks.create_access_entry(clusterName=cluster, principalArn=principal)
    pages = eks.get_paginator("list_access_entries").paginate(clusterName=cluster, PaginationConfig={"PageSize": 2})
    listed = [arn for page in pages for arn in page["accessEntries"]]
    assert listed == sorted([CREATOR, *principals])


def test_managed_nodegroup_role_gets_an_entry(client: ClientFactory, eks: Any, name: str, subnets: list[str]) -> None:
    cluster = _cluster(client, eks, name, subnets)
    node_role = make_role(client("iam"), f"{name}-node", NODE_TRUST)
    wait_until(lambda: eks.describe_cluster(name=cluster)["cluster"]["status"] == "ACTIVE")
    eks.create_nodegroup(clusterName=cluster, nodegroupName="workers", nodeRole=node_role, subnets=subnets)
    entry = eks.describe_access_entry(clusterName=cluster, principalArn=node_role)["accessEntry"]
    assert entry["type"] == "EC2_LINUX"
    assert entry["kubernetesGroups"] == ["system:nodes"]
    with pytest.raises(ClientError) as error:  # EKS made it: creating it again is refused
        eks.create_access_entry(clusterName=cluster, principalArn=node_role, type="EC2_LINUX")
    assert _code(error) == "ResourceInUseException"


def test_bad_authentication_mode_creates_nothing(
    client: ClientFactory, eks: Any, name: str, subnets: list[str]
) -> None:
    with pytest.raises(ClientError) as error:
        _cluster(client, eks, name, subnets, mode="LDAP")
    assert _code(error) == "InvalidParameterException"
    assert name not in eks.list_clusters()["clusters"]
