"""The sandbox refuses, as EKS does, what eksprivate's config checks refuse up front: instance types of the
wrong architecture for the AMI type (CreateNodegroup), Kubernetes versions EKS does not create (CreateCluster).
moto alone accepts both."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from botocore.exceptions import ClientError

from eksprivate.sandbox import eks_versions

from .helpers import ClientFactory


@pytest.fixture
def pinned() -> Iterator[None]:
    eks_versions.set_calendar(today=date(2026, 11, 30))
    yield
    eks_versions.reset()


@pytest.mark.parametrize(("types", "ami", "bad"), [
    (["t4g.small"], "AL2023_x86_64_STANDARD", "t4g.small"),
    (["m6i.large", "m6g.large"], "AL2023_ARM_64_STANDARD", "m6i.large"),
    (["g5g.xlarge"], "AL2_x86_64_GPU", "g5g.xlarge"),
])
def test_create_nodegroup_refuses_the_wrong_architecture(
        client: ClientFactory, name: str, types: list[str], ami: str, bad: str) -> None:
    eks = client("eks")
    with pytest.raises(ClientError) as err:
        eks.create_nodegroup(clusterName=name, nodegroupName="ng", subnets=["subnet-1"], instanceTypes=types,
                             amiType=ami, nodeRole="arn:aws:iam::123456789012:role/n")
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"
    assert err.value.response["Error"]["Message"] == f"[{bad}] is not a valid instance type for requested amiType {ami}"


def test_matching_architectures_pass_the_check(client: ClientFactory, name: str) -> None:
    """Past the check, moto's own rules answer (here: no such cluster)."""
    with pytest.raises(ClientError) as err:
        client("eks").create_nodegroup(clusterName=name, nodegroupName="ng", subnets=["subnet-1"],
                                       instanceTypes=["m6g.large", "t4g.small"], amiType="BOTTLEROCKET_ARM_64",
                                       nodeRole="arn:aws:iam::123456789012:role/n")
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"


@pytest.mark.parametrize("version", ["1.31", "1.9", "1.36"])
def test_create_cluster_refuses_a_version_eks_does_not_create(
        client: ClientFactory, name: str, pinned: None, version: str) -> None:
    """1.31 is past extended support on 2026-11-30, 1.9 never was an EKS version, 1.36 is not in the calendar."""
    with pytest.raises(ClientError) as err:
        client("eks").create_cluster(name=name, version=version, roleArn="arn:aws:iam::123456789012:role/c",
                                     resourcesVpcConfig={"subnetIds": []})
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"
    assert version in err.value.response["Error"]["Message"]


def test_describe_cluster_versions_pages_and_filters(client: ClientFactory, pinned: None) -> None:
    eks = client("eks")
    pages = list(eks.get_paginator("describe_cluster_versions").paginate(
        includeAll=True, PaginationConfig={"PageSize": 3}))
    assert [len(p["clusterVersions"]) for p in pages] == [3, 3, 2]
    assert [v["clusterVersion"] for v in eks.describe_cluster_versions(
        versionStatus="EXTENDED_SUPPORT")["clusterVersions"]] == ["1.32", "1.33"]
    (v131,) = eks.describe_cluster_versions(clusterVersions=["1.31"], includeAll=True)["clusterVersions"]
    assert (v131["versionStatus"], v131["status"]) == ("UNSUPPORTED", "unsupported")
    assert v131["endOfExtendedSupportDate"].date() == date(2026, 11, 26)
    assert eks.describe_cluster_versions(clusterVersions=["1.31"])["clusterVersions"] == []
