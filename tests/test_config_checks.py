"""Config checked against what AWS accepts (pure parts), and the disk each AMI family's launch template
sizes. The CLI side (one line, exit 2, nothing created) is in tests/faults/test_config_refusals.py."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace
from typing import Any

import botocore.session
import pytest

from eksprivate.config import (
    AMI_TYPES,
    NodeGroupSpec,
    Settings,
    ami_accelerator,
    ami_architecture,
    ami_family,
    assumed_role_arn,
    build_settings,
)
from eksprivate.errors import UsageError
from eksprivate.sandbox.core import versions
from eksprivate.steps.security import DISK_DEVICES, block_device_mappings
from eksprivate.target import _instance_fits, check_node_names


def refused(values: dict[str, Any]) -> str:
    with pytest.raises(UsageError) as err:
        build_settings(values)
    assert "\n" not in str(err.value)
    return str(err.value)


# -- AMI types ----------------------------------------------------------------------------------------

def test_ami_types_are_the_eks_models_enum() -> None:
    """The copied list is the installed botocore's AMITypes: a new botocore adding a type fails here,
    instead of eksprivate refusing a type EKS accepts (or accepting one it dropped)."""
    model = botocore.session.get_session().get_service_model("eks")
    assert list(AMI_TYPES) == model.shape_for("AMITypes").enum


@pytest.mark.parametrize("ami", AMI_TYPES)
def test_every_ami_type_has_a_family_an_architecture_and_a_disk(ami: str) -> None:
    family = ami_family(ami)
    assert (family == "CUSTOM") == (ami == "CUSTOM")
    assert ami_architecture(ami) == ("arm64" if "ARM_64" in ami else "x86_64")
    if family != "CUSTOM":  # a family the launch template does not know would size /dev/xvda by default
        assert family in DISK_DEVICES
        sized = [m["DeviceName"] for m in block_device_mappings(NodeGroupSpec(ami_type=ami, disk_size=60))
                 if m["Ebs"].get("VolumeSize") == 60]
        assert sized == [DISK_DEVICES[family]]


@pytest.mark.parametrize(("ami", "accelerator"), [
    ("AL2023_x86_64_STANDARD", None), ("AL2023_x86_64_NVIDIA", "nvidia"), ("AL2023_ARM_64_NVIDIA", "nvidia"),
    ("AL2_x86_64_GPU", "nvidia"), ("BOTTLEROCKET_x86_64_NVIDIA_FIPS", "nvidia"), ("AL2023_x86_64_NEURON", "neuron"),
    ("BOTTLEROCKET_ARM_64_FIPS", None), ("WINDOWS_CORE_2022_x86_64", None)])
def test_ami_accelerator(ami: str, accelerator: str | None) -> None:
    assert ami_accelerator(ami) == accelerator


@pytest.mark.parametrize(("values", "says"), [
    ({"ami_type": "AL2023_X86_64_STANDARD"}, "did you mean AL2023_x86_64_STANDARD"),
    ({"ami_type": "UBUNTU"}, "'UBUNTU' is not an EKS AMI type"),
    ({"ami_type": "CUSTOM"}, "CUSTOM needs an AMI id"),
    ({"kubernetes_version": "1.33", "ami_type": "AL2_x86_64"}, "use AL2023_x86_64_STANDARD"),
    ({"kubernetes_version": "1.34", "nodegroups": [{"name": "gpu", "ami_type": "AL2_x86_64_GPU"}]},
     "nodegroups[0].ami_type AL2_x86_64_GPU"),
    ({"kubernetes_version": "1.40", "ami_type": "AL2_ARM_64", "nodegroups": [{"name": "a"}]},
     "ami_type AL2_ARM_64: EKS publishes no Amazon Linux 2 AMIs"),
    ({"ami_type": "WINDOWS_CORE_2022_x86_64"}, "disk_size = 20: Windows nodes need at least 50"),
])
def test_ami_type_eks_would_refuse(values: dict[str, Any], says: str) -> None:
    """Naive code passes the value to CreateNodegroup, which refuses it after the cluster is built."""
    assert says in refused(values)


def test_al2_up_to_1_32_is_accepted_with_a_warning() -> None:
    settings = build_settings({"kubernetes_version": "1.32", "ami_type": "AL2_x86_64"})
    assert any("end of support on 2025-11-26" in w and "AL2023_x86_64_STANDARD" in w for w in settings.warnings)
    assert build_settings({"kubernetes_version": "1.33"}).warnings == ()  # AL2023 by default: nothing to say


def test_the_key_named_is_the_one_written() -> None:
    """A top-level default inherited by an entry is named as the user wrote it: `ami_type`, not nodegroups[0]."""
    assert refused({"ami_type": "UBUNTU", "nodegroups": [{"name": "a"}]}).startswith("ami_type")
    assert refused({"nodegroups": [{"name": "a"}, {"name": "b", "ami_type": "UBUNTU"}]}).startswith(
        "nodegroups[1].ami_type")


# -- admins ------------------------------------------------------------------------------------------

def test_sts_session_admin_is_refused_with_the_role_arn() -> None:
    """EKS answers CreateAccessEntry for an assumed-role ARN with InvalidParameterException, after the
    cluster exists; the role behind the session is what works."""
    line = refused({"admins": ["arn:aws:sts::123456789012:assumed-role/PlatformAdmin/alice@example.com"]})
    assert "STS session" in line and "arn:aws:iam::123456789012:role/PlatformAdmin" in line and "path" in line
    assert "use an IAM role or user ARN" in refused({"admins": ["arn:aws:sts::123456789012:federated-user/bob"]})
    assert "not groups" in refused({"admins": ["arn:aws:iam::123456789012:group/admins"]})


def test_assumed_role_arn_keeps_the_partition() -> None:
    assert assumed_role_arn("arn:aws-cn:sts::123456789012:assumed-role/R/s") == "arn:aws-cn:iam::123456789012:role/R"
    assert assumed_role_arn("arn:aws:iam::123456789012:role/R") is None


def test_iam_role_and_user_admins_are_accepted() -> None:
    admins = ["arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_0123",
              "arn:aws:iam::123456789012:user/alice"]
    assert build_settings({"admins": admins}).admins == tuple(admins)


# -- taints and names ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("taint", "says"), [
    ({"value": "batch"}, "taints: a taint has an empty key"),
    ({"key": "", "value": "batch"}, "taints: a taint has an empty key"),
    ({"key": "k" * 64}, "at most 63"),
    ({"key": "dedicated", "value": "v" * 64}, "at most 63"),
])
def test_taint_eks_would_refuse(taint: dict[str, str], says: str) -> None:
    """Naive code sends an empty or too long taint key to CreateNodegroup (taintKey is 1-63 in the EKS model)."""
    assert says in refused({"taints": [taint]})
    assert refused({"nodegroups": [{"name": "a", "taints": [taint]}]}).startswith("nodegroups[0].taints")


@pytest.mark.parametrize("labels", [{"team": ""}, {"k" * 64: "x"}, {"team": "v" * 64}])
def test_label_eks_would_refuse(labels: dict[str, str]) -> None:
    """labelKey and labelValue are 1-63 in the EKS model: botocore refuses the CreateNodegroup call, naive code
    learns it after the cluster exists. (An empty value is fine for Kubernetes, not for EKS.)"""
    assert "EKS takes label keys and values of 1 to 63 characters" in refused({"labels": labels})
    assert refused({"nodegroups": [{"name": "a", "labels": labels}]}).startswith("nodegroups[0].labels")


def test_launch_template_name_over_128_is_refused() -> None:
    """`<cluster>-<spec>-nodes` of 100 + 1 + 30 + 6 characters: EC2 refuses a LaunchTemplateName over 128.
    Refused rather than hashed: find and orphan discovery read the spec name back out of it."""
    line = refused({"name": "c" * 100, "nodegroups": [{"name": "g" * 30}]})
    assert "137 characters, EC2 allows 128" in line and "nodegroups[0].name" in line
    build_settings({"name": "c" * 100, "nodegroups": [{"name": "g" * 21}]})  # 128 exactly: fine


def test_node_group_names_with_their_az_suffix_fit_63() -> None:
    """The name EKS gets is `<spec>-<az suffix>`: a 58-character spec in a zone with a long suffix would be
    refused by CreateNodegroup."""
    spec = NodeGroupSpec(name="n" * 58)
    ctx: Any = SimpleNamespace(settings=Settings(nodegroups=(spec,)), region="eu-central-1",
                               azs=["eu-central-1a", "eu-central-1-ham-1a"])
    with pytest.raises(UsageError, match="nnnn--ham-1a is 66 characters, EKS allows 63"):
        check_node_names(ctx)
    ctx.azs = ["eu-central-1a", "eu-central-1b"]
    assert check_node_names(ctx) == []


@pytest.mark.parametrize("suffix", ["cluster", "nodes", "flow-logs"])
def test_iam_role_names_are_shortened_to_64_deterministically(suffix: str) -> None:
    from eksprivate.steps.base import Context

    ctx: Any = SimpleNamespace(name="c" * 100, region="ap-southeast-4")
    first, again = Context.iam_name(ctx, suffix), Context.iam_name(ctx, suffix)
    assert len(first) == 64 and first == again and first.endswith(f"-{suffix}")
    other: Any = SimpleNamespace(name="c" * 99 + "d", region="ap-southeast-4")
    assert Context.iam_name(other, suffix) != first  # the hash keeps two long names apart


# -- the disk each AMI family sizes ------------------------------------------------------------------

ENCRYPTED_GP3 = {"VolumeType": "gp3", "Encrypted": True, "DeleteOnTermination": True}


@pytest.mark.parametrize(("ami", "expected"), [
    ("AL2023_x86_64_STANDARD", [{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 70, **ENCRYPTED_GP3}}]),
    ("AL2_ARM_64", [{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 70, **ENCRYPTED_GP3}}]),
    ("BOTTLEROCKET_x86_64", [{"DeviceName": "/dev/xvda", "Ebs": ENCRYPTED_GP3},
                             {"DeviceName": "/dev/xvdb", "Ebs": {"VolumeSize": 70, **ENCRYPTED_GP3}}]),
    ("BOTTLEROCKET_ARM_64_NVIDIA", [{"DeviceName": "/dev/xvda", "Ebs": ENCRYPTED_GP3},
                                    {"DeviceName": "/dev/xvdb", "Ebs": {"VolumeSize": 70, **ENCRYPTED_GP3}}]),
    ("WINDOWS_FULL_2022_x86_64", [{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 70, **ENCRYPTED_GP3}}]),
])
def test_disk_size_sets_the_device_of_the_ami_family(ami: str, expected: list[dict[str, Any]]) -> None:
    """Naive code maps /dev/xvda always: on Bottlerocket that resizes the OS volume and leaves the data volume
    (images, containers) at the AMI's size; on Windows it adds a second, unused disk beside /dev/sda1."""
    assert block_device_mappings(NodeGroupSpec(ami_type=ami, disk_size=70)) == expected


# -- instance types against the AMI type ----------------------------------------------------------------

def instance(arch: str, gpu: str | None = None, neuron: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"ProcessorInfo": {"SupportedArchitectures": [arch]}}
    if gpu:
        out["GpuInfo"] = {"Gpus": [{"Manufacturer": gpu, "Count": 1}]}
    if neuron:
        out["NeuronInfo"] = {"NeuronDevices": [{"Count": 1}]}
    return out


@pytest.mark.parametrize(("ami", "name", "info", "says"), [
    ("AL2023_x86_64_STANDARD", "m6g.large", instance("arm64"), "use ami_type AL2023_ARM_64_STANDARD"),
    ("AL2023_ARM_64_STANDARD", "m6i.large", instance("x86_64"), "use ami_type AL2023_x86_64_STANDARD"),
    ("WINDOWS_CORE_2022_x86_64", "m6g.large", instance("arm64"), "no WINDOWS AMI type of this kind"),
    ("AL2023_x86_64_NVIDIA", "t3.small", instance("x86_64"), "for instances with an NVIDIA GPU"),
    ("AL2023_x86_64_NVIDIA", "g4ad.xlarge", instance("x86_64", gpu="AMD"), "g4ad.xlarge has none"),
    ("AL2023_x86_64_NEURON", "m6i.large", instance("x86_64"), "AWS Neuron"),
])
def test_instance_type_eks_would_refuse_for_the_ami_type(ami: str, name: str, info: dict[str, Any], says: str) -> None:
    with pytest.raises(UsageError, match=says):
        _instance_fits(NodeGroupSpec(ami_type=ami), name, info)


def test_an_accelerator_without_its_driver_is_a_warning() -> None:
    (warning,) = _instance_fits(NodeGroupSpec(), "g5.xlarge", instance("x86_64", gpu="NVIDIA"))
    assert "NVIDIA GPU" in warning and "no driver" in warning
    assert _instance_fits(NodeGroupSpec(ami_type="AL2023_x86_64_NVIDIA"), "g5.xlarge",
                          instance("x86_64", gpu="NVIDIA")) == []
    assert _instance_fits(NodeGroupSpec(ami_type="AL2023_x86_64_NEURON"), "inf2.xlarge",
                          instance("x86_64", neuron=True)) == []


# -- the sandbox's version calendar ----------------------------------------------------------------------

@pytest.fixture
def calendar() -> Any:
    """The calendar's module (the sandbox's core: eks_versions and eks_upgrades both read it)."""
    yield versions
    versions.reset()


def test_version_status_follows_the_calendar(calendar: Any) -> None:
    v133 = next(v for v in calendar.CALENDAR if v.version == "1.33")
    assert v133.status(date(2025, 5, 28)) is None  # not released yet
    assert v133.status(date(2026, 7, 28)) == "STANDARD_SUPPORT"
    assert v133.status(date(2026, 7, 29)) == "EXTENDED_SUPPORT"
    assert v133.status(date(2027, 7, 29)) == "UNSUPPORTED"
    calendar.set_calendar(today=date(2026, 11, 30))
    assert [v.version for v, _ in calendar.offered()] == ["1.32", "1.33", "1.34", "1.35"]
    assert calendar.default_version() == "1.34" and not calendar.creatable("1.31") and calendar.creatable("1.32")


def test_the_default_is_in_standard_support_as_the_clock_moves(calendar: Any) -> None:
    """EKS never defaults to a version in extended support: the table flags 1.34, which left standard support
    on 2026-12-02, so from that day the default is the newest version in standard support."""
    calendar.set_calendar(today=date(2026, 12, 1))
    assert calendar.default_version() == "1.34"
    calendar.set_calendar(today=date(2026, 12, 2))
    assert calendar.default_version() == "1.35"
    assert dict((v.version, s) for v, s in calendar.offered())["1.34"] == "EXTENDED_SUPPORT"


def test_past_the_table_minors_are_projected_so_the_sandbox_stays_right(calendar: Any) -> None:
    """Years after the table was written the sandbox still offers versions in standard support, with the
    same 14 + 12 month rule, and the add-on and AMI tables know them (naive: every CreateCluster refused,
    or a calendar frozen at an old date)."""
    from eksprivate.sandbox import eks_addons, eks_upgrades

    calendar.set_calendar(today=date(2031, 1, 1))
    offered = calendar.offered()
    standard = [v.version for v, s in offered if s == "STANDARD_SUPPORT"]
    assert standard and calendar.default_version() == standard[-1]
    assert "1.35" not in [v.version for v, _ in offered]  # its extended support ended 2028-03-27
    newest = offered[-1][0]
    assert newest.released <= date(2031, 1, 1) and newest.status(date(2031, 1, 1)) == "STANDARD_SUPPORT"
    assert newest.version in eks_addons.minors()
    assert eks_upgrades.latest_release(newest.version).startswith(f"{newest.version}.0-")
