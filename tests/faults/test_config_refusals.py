"""Config AWS would refuse only after the cluster exists (at CreateNodegroup or CreateAccessEntry, ~10
minutes and a VPC, endpoints and a cluster later) is refused by `up` before anything is created: one line,
exit code 2, no mutating call, the state folder untouched. Naive code would run until AWS said no.

The version checks run against the sandbox's calendar (eksprivate/sandbox/eks_versions.py), pinned here to
2026-11-30: 1.32 and 1.33 in extended support, 1.34 (the default) and 1.35 in standard, 1.31 unsupported.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from eksprivate.sandbox import SandboxServer, eks_versions

from .helpers import REGION, Cli, CliResult, SdkHooks, clients
from .test_bad_input import Folder, _config, _nothing_changed, _refused


@pytest.fixture
def folder(aws_env: object, cluster_name: str, stand_in: SandboxServer) -> Iterator[Folder]:
    eks_versions.set_calendar(today=date(2026, 11, 30))
    stand_in.clear_calls()
    yield Folder(aws_env, cluster_name)  # type: ignore[arg-type]
    eks_versions.reset()


def up(cli: Cli, name: str, config: str) -> CliResult:
    return cli("up", "--name", name, "--region", REGION, "--config", config)


@pytest.mark.parametrize(("toml", "says"), [
    ('ami_type = "AL2023_X86_64_STANDARD"\n', "did you mean AL2023_x86_64_STANDARD"),
    ('kubernetes_version = "1.33"\nami_type = "AL2_x86_64"\n', "no Amazon Linux 2 AMIs for Kubernetes 1.33"),
    ('admins = ["arn:aws:sts::123456789012:assumed-role/Ops/alice"]\n', "arn:aws:iam::123456789012:role/Ops"),
    ('[[nodegroups]]\nname = "batch"\ntaints = [{ value = "x", effect = "NO_SCHEDULE" }]\n',
     "nodegroups[0].taints: a taint has an empty key"),
    ('[[nodegroups]]\nname = "' + "g" * 40 + '"\n', "EC2 allows 128"),
    ('ami_type = "WINDOWS_CORE_2022_x86_64"\n', "Windows nodes need at least 50"),
], ids=["ami-enum", "al2-1.33", "sts-admin", "empty-taint", "template-name", "windows-disk"])
def test_config_refused_before_anything_is_created(
        cli: Cli, stand_in: SandboxServer, folder: Folder, cluster_name: str, toml: str, says: str) -> None:
    name = "c" * 90 if "g" * 40 in toml else cluster_name
    _refused(up(cli, name, _config(folder, toml)), 2, says)
    _nothing_changed(stand_in, folder)


@pytest.mark.parametrize(("toml", "says"), [
    ('instance_types = ["m6g.large"]\n', "m6g.large is arm64, but ami_type AL2023_x86_64_STANDARD"),
    ('instance_types = ["t3.small", "t4g.small"]\nami_type = "AL2023_ARM_64_STANDARD"\n',
     "t3.small is x86_64, but ami_type AL2023_ARM_64_STANDARD"),
    ('instance_types = ["t3.large"]\nami_type = "AL2023_x86_64_NVIDIA"\n', "NVIDIA GPU; t3.large has none"),
    ('instance_types = ["m6i.large"]\nami_type = "AL2023_x86_64_NEURON"\n', "AWS Neuron"),
], ids=["arm-instance-x86-ami", "mixed-architectures", "nvidia-ami-no-gpu", "neuron-ami-no-neuron"])
def test_instance_types_refused_for_the_ami_type(
        cli: Cli, stand_in: SandboxServer, folder: Folder, cluster_name: str, toml: str, says: str) -> None:
    """Read from DescribeInstanceTypes (ProcessorInfo, GpuInfo, NeuronInfo); EKS answers CreateNodegroup with
    "[m6g.large] is not a valid instance type for requested amiType AL2023_x86_64_STANDARD"."""
    _refused(up(cli, cluster_name, _config(folder, toml)), 2, "node group nodes: ", says)
    _nothing_changed(stand_in, folder)


@pytest.mark.parametrize(("toml", "says"), [
    ('kubernetes_version = "1.31"\n', 'kubernetes_version "1.31" reached end of extended support on 2026-11-26'),
    ('kubernetes_version = "1.47"\n', 'kubernetes_version "1.47" is not a Kubernetes version EKS offers'),
    ('ami_type = "AL2_ARM_64"\ninstance_types = ["t4g.small"]\n',
     "no AMIs for Kubernetes 1.34, the version eksprivate gives a new cluster"),
], ids=["past-extended-support", "unknown-version", "al2-on-the-default-version"])
def test_kubernetes_version_checked_against_the_region(
        cli: Cli, stand_in: SandboxServer, folder: Folder, cluster_name: str, toml: str, says: str) -> None:
    """DescribeClusterVersions says what EKS creates; naive code learns it from CreateCluster (or, for AL2 on
    the default version, from CreateNodegroup) with the VPC, endpoints, roles and key already made."""
    line = _refused(up(cli, cluster_name, _config(folder, toml)), 2, says)
    if "1.31" in toml or "1.47" in toml:
        assert "use one of 1.32, 1.33, 1.34, 1.35" in line
    _nothing_changed(stand_in, folder)


def test_the_sandbox_refuses_what_the_check_refuses(stand_in: SandboxServer) -> None:
    """The stand-in models EKS too: CreateCluster with an unsupported version is InvalidParameterException,
    and one without a version gets the calendar's default (moto alone: anything, default 1.19)."""
    eks_versions.set_calendar(today=date(2026, 11, 30))
    try:
        eks = clients(stand_in.url)["eks"]
        vpc: dict[str, list[str]] = {"subnetIds": []}
        with pytest.raises(Exception, match=r"InvalidParameterException.*unsupported Kubernetes version 1\.31"):
            eks.create_cluster(name="old-version-refused", version="1.31", roleArn="arn:aws:iam::123456789012:role/x",
                               resourcesVpcConfig=vpc)
        versions = eks.describe_cluster_versions()["clusterVersions"]
        assert [(v["clusterVersion"], v["versionStatus"]) for v in versions] == [
            ("1.32", "EXTENDED_SUPPORT"), ("1.33", "EXTENDED_SUPPORT"), ("1.34", "STANDARD_SUPPORT"),
            ("1.35", "STANDARD_SUPPORT")]
        everything = eks.describe_cluster_versions(includeAll=True)["clusterVersions"]
        assert {"1.28", "1.31"} <= {v["clusterVersion"] for v in everything if v["versionStatus"] == "UNSUPPORTED"}
        (default,) = eks.describe_cluster_versions(defaultOnly=True)["clusterVersions"]
        assert default["clusterVersion"] == "1.34" and default["defaultVersion"] is True
    finally:
        eks_versions.reset()


def test_extended_support_is_a_warning(cli: Cli, stand_in: SandboxServer, folder: Folder, cluster_name: str) -> None:
    """EKS creates clusters on extended-support versions (at six times the control-plane price): allowed, said."""
    result = up(cli, cluster_name, _config(folder, 'kubernetes_version = "1.33"\n'))
    assert result.exit_code == 0, result.stderr
    assert 'kubernetes_version "1.33" is in EKS extended support (since 2026-07-29, until 2027-07-29)' in result.stderr


def test_version_check_skipped_when_describe_cluster_versions_is_denied(
        cli: Cli, stand_in: SandboxServer, folder: Folder, cluster_name: str, hooks: SdkHooks) -> None:
    """A caller without eks:DescribeClusterVersions still gets its cluster: the check is skipped with a
    warning (naive code would fail `up` on a read it does not need)."""
    denied = hooks.fail("eks", "DescribeClusterVersions", "AccessDeniedException",
                        "User is not authorized to perform: eks:DescribeClusterVersions")
    result = up(cli, cluster_name, _config(folder, 'kubernetes_version = "1.34"\n'))
    assert result.exit_code == 0, result.stderr
    assert denied[0] == 1
    assert "kubernetes_version not checked: DescribeClusterVersions is not available (AccessDeniedException)" in (
        result.stderr)
