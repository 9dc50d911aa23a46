"""Settings: defaults, file, flags on top, and a clear error naming the key for every bad value. Pure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from eksprivate.config import (
    REQUIRED_ENDPOINTS,
    NodeGroupSpec,
    Settings,
    Taint,
    build_settings,
    load_file,
    subnet_cidrs,
)
from eksprivate.errors import UsageError


def refused(values: dict[str, Any], **flags: Any) -> str:
    with pytest.raises(UsageError) as info:
        build_settings(values, **flags)
    assert info.value.exit_code == 2
    text = str(info.value)
    assert "\n" not in text
    return text


# -- defaults and precedence ----------------------------------------------------------------------------


def test_defaults_match_the_issue() -> None:
    s = build_settings()
    assert s.name == "eksprivate" and s.region is None and s.kubernetes_version is None
    assert s.vpc_cidr == "10.20.0.0/16" and s.availability_zones == 3 and s.az_count == 3
    assert s.endpoints == () and s.public_access_cidrs == () and s.tags == ()
    assert REQUIRED_ENDPOINTS == ("ec2", "ecr.api", "ecr.dkr", "sts", "logs")
    # eks-auth: the default add-ons include the Pod Identity agent, which needs it.
    assert s.interface_endpoints == (*REQUIRED_ENDPOINTS, "eks-auth")
    [group] = s.nodegroups
    assert (group.name, group.instance_types, group.min_size, group.desired_size, group.max_size) == (
        "nodes", ("t3.small",), 1, 1, 2)
    assert group.per_az and group.disk_size == 20 and group.capacity_type == "ON_DEMAND"
    assert s.secrets_encryption and s.control_plane_logging and s.flow_logs and s.imds_hop_limit == 1
    assert s.warnings == ()


def test_file_values_are_read() -> None:
    s = build_settings({"name": "prod", "region": "us-east-1", "kubernetes_version": "1.33",
                        "vpc_cidr": "10.50.0.0/20", "availability_zones": 2, "endpoints": ["ssm", "kms"],
                        "tags": {"team": "platform"}, "instance_types": ["m6i.large"], "min_size": 2,
                        "desired_size": 3, "max_size": 5, "disk_size": 50})
    assert (s.name, s.region, s.kubernetes_version, s.vpc_cidr, s.az_count) == (
        "prod", "us-east-1", "1.33", "10.50.0.0/20", 2)
    assert s.interface_endpoints == (*REQUIRED_ENDPOINTS, "eks-auth", "ssm", "kms")
    assert s.tags == (("team", "platform"),)
    [group] = s.nodegroups
    assert (group.instance_types, group.min_size, group.desired_size, group.max_size, group.disk_size) == (
        ("m6i.large",), 2, 3, 5, 50)


def test_flags_override_the_file() -> None:
    s = build_settings({"name": "from-file", "region": "eu-west-1"}, name="from-flag", region="eu-central-1")
    assert (s.name, s.region) == ("from-flag", "eu-central-1")
    s = build_settings({"name": "from-file"}, name=None, region=None)  # flags not given
    assert s.name == "from-file" and s.region is None


def test_top_level_node_settings_are_defaults_for_every_group() -> None:
    s = build_settings({"instance_types": ["m6i.large"], "max_size": 4, "nodegroups": [
        {"name": "system", "labels": {"tier": "system"}, "taints": [{"key": "dedicated", "value": "system"}]},
        {"name": "batch", "instance_types": ["c6i.xlarge"], "capacity_type": "spot", "per_az": False},
    ]})
    system, batch = s.nodegroups
    assert system == NodeGroupSpec(name="system", instance_types=("m6i.large",), max_size=4,
                                   labels=(("tier", "system"),),
                                   taints=(Taint(key="dedicated", value="system", effect="NO_SCHEDULE"),))
    assert (batch.instance_types, batch.capacity_type, batch.max_size, batch.per_az) == (
        ("c6i.xlarge",), "SPOT", 4, False)


def test_extra_endpoints_keep_order_without_repeats_and_s3_stays_a_gateway() -> None:
    s = build_settings({"endpoints": ["ssm", "sts", "s3", "ssm", "ssmmessages"]})
    assert s.interface_endpoints == (*REQUIRED_ENDPOINTS, "eks-auth", "ssm", "ssmmessages")


def test_explicit_availability_zones() -> None:
    s = build_settings({"availability_zones": ["eu-central-1a", "eu-central-1c"]})
    assert s.availability_zones == ("eu-central-1a", "eu-central-1c") and s.az_count == 2


# -- every validation error names the key ------------------------------------------------------------------


def test_unknown_keys_are_named() -> None:
    assert "'node_count'" in refused({"node_count": 3})
    assert "'nodegroups[1].size'" in refused({"nodegroups": [{"name": "a"}, {"name": "b", "size": 3}]})


@pytest.mark.parametrize(("values", "key", "want"), [
    ({"name": 5}, "name", "a string"),
    ({"vpc_cidr": 10}, "vpc_cidr", "a string"),
    ({"kubernetes_version": 1.33}, "kubernetes_version", "a string"),
    ({"endpoints": "ssm"}, "endpoints", "a list of strings"),
    ({"endpoints": ["ssm", 1]}, "endpoints", "a list of strings"),
    ({"public_access_cidrs": "1.2.3.0/24"}, "public_access_cidrs", "a list of strings"),
    ({"tags": ["a"]}, "tags", "a table of strings"),
    ({"tags": {"team": 1}}, "tags", "a table of strings"),
    ({"min_size": "1"}, "min_size", "an integer"),
    ({"max_size": True}, "max_size", "an integer"),
    ({"disk_size": 20.5}, "disk_size", "an integer"),
    ({"flow_logs": "yes"}, "flow_logs", "true or false"),
    ({"secrets_encryption": 1}, "secrets_encryption", "true or false"),
    ({"instance_types": "t3.small"}, "instance_types", "a list of strings"),
    ({"nodegroups": [{"name": "a", "min_size": "1"}]}, "nodegroups[0].min_size", "an integer"),
    ({"nodegroups": [{"name": "a", "labels": {"x": 1}}]}, "nodegroups[0].labels", "a table of strings"),
])
def test_wrong_types_name_the_key(values: dict[str, Any], key: str, want: str) -> None:
    assert f"config key '{key}' must be {want}" in refused(values)


@pytest.mark.parametrize("values", [
    {"availability_zones": "3"}, {"availability_zones": True}, {"nodegroups": {"name": "a"}},
    {"nodegroups": ["a"]}, {"nodegroups": [{"name": "a", "taints": {"key": "x"}}]},
])
def test_wrong_shapes_name_the_key(values: dict[str, Any]) -> None:
    key = next(iter(values))
    assert key in refused(values)


@pytest.mark.parametrize(("cidr", "key"), [
    ("10.20.0.0/33", "vpc_cidr"), ("10.20.0.1/16", "vpc_cidr"), ("banana", "vpc_cidr"), ("fd00::/48", "vpc_cidr"),
])
def test_bad_vpc_cidr(cidr: str, key: str) -> None:
    text = refused({"vpc_cidr": cidr})
    assert text.startswith(f"{key}: {cidr!r} is not a valid IPv4 CIDR")


def test_vpc_cidr_outside_aws_limits() -> None:
    assert "vpc_cidr 10.0.0.0/8 must be between /16 and /28" in refused({"vpc_cidr": "10.0.0.0/8"})


def test_vpc_too_small_for_its_subnets() -> None:
    text = refused({"vpc_cidr": "10.20.0.0/27", "availability_zones": 3})
    assert "vpc_cidr 10.20.0.0/27 is too small for 3 subnets" in text and "/28" in text
    assert build_settings({"vpc_cidr": "10.20.0.0/26", "availability_zones": 4}).subnet_cidrs() == [
        "10.20.0.0/28", "10.20.0.16/28", "10.20.0.32/28", "10.20.0.48/28"]


@pytest.mark.parametrize("count", [1, 7])
def test_availability_zone_count_is_checked(count: int) -> None:
    assert f"availability_zones = {count}" in refused({"availability_zones": count})


def test_availability_zone_names_must_be_distinct() -> None:
    assert "availability_zones" in refused({"availability_zones": ["eu-central-1a", "eu-central-1a"]})


@pytest.mark.parametrize("name", ["", "-lead", "has space", "x" * 101, "dot.ted"])
def test_bad_cluster_name(name: str) -> None:
    assert f"cluster name {name!r} is not valid" in refused({}, name=name)


def test_bad_kubernetes_version() -> None:
    assert "kubernetes_version '1.33.1'" in refused({"kubernetes_version": "1.33.1"})


def test_bad_endpoint_short_name() -> None:
    assert refused({"endpoints": ["SSM"]}).startswith("endpoints: 'SSM' is not a service short name")
    assert refused({"endpoints": ["ssm endpoint"]}).startswith("endpoints: 'ssm endpoint'")


@pytest.mark.parametrize("cidr", ["0.0.0.0/0", "::/0"])
def test_api_open_to_the_internet_is_refused_unless_allowed(cidr: str) -> None:
    text = refused({"public_access_cidrs": ["203.0.113.0/24", cidr]})
    assert f"public_access_cidrs contains {cidr}" in text and "allow_public_api_from_anywhere" in text
    s = build_settings({"public_access_cidrs": [cidr], "allow_public_api_from_anywhere": True})
    assert s.public_access_cidrs == (cidr,)
    assert any("whole internet" in w for w in s.warnings)


def test_public_access_cidrs_are_checked_and_warned_about() -> None:
    assert refused({"public_access_cidrs": ["203.0.113.1/24"]}).startswith("public_access_cidrs:")
    s = build_settings({"public_access_cidrs": ["203.0.113.0/24"]})
    assert s.public_access_cidrs == ("203.0.113.0/24",)
    assert any("203.0.113.0/24" in w for w in s.warnings)


@pytest.mark.parametrize("key", ["aws:owner", "AWS:x", "eksprivate:cluster"])
def test_reserved_tag_keys(key: str) -> None:
    assert f"tags: key {key!r} is reserved" in refused({"tags": {key: "x"}})


@pytest.mark.parametrize(("group", "fragment"), [
    ({"name": ""}, "nodegroups[0].name ''"),
    ({"name": "x" * 59}, "nodegroups[0].name"),
    ({"name": "a", "min_size": 3, "desired_size": 2}, "nodegroups[0].node group sizes"),
    ({"name": "a", "min_size": 0, "desired_size": 0, "max_size": 0}, "nodegroups[0].node group sizes"),
    ({"name": "a", "disk_size": 4}, "nodegroups[0].disk_size = 4"),
    ({"name": "a", "capacity_type": "RESERVED"}, "nodegroups[0].capacity_type 'RESERVED'"),
    ({"name": "a", "taints": [{"key": "x", "effect": "NEVER"}]}, "nodegroups[0].taints: effect 'NEVER'"),
])
def test_nodegroup_entries_are_checked(group: dict[str, Any], fragment: str) -> None:
    assert fragment in refused({"nodegroups": [group]})


def test_nodegroup_names_are_unique_and_some_exist() -> None:
    assert "same name" in refused({"nodegroups": [{"name": "a"}, {"name": "a"}]})
    assert "nodegroups is empty" in refused({"nodegroups": []})


@pytest.mark.parametrize(("values", "fragment"), [
    ({"log_retention_days": 10}, "log_retention_days = 10"),
    ({"imds_hop_limit": 3}, "imds_hop_limit = 3"),
    ({"kms_key_arn": "alias/mine"}, "kms_key_arn 'alias/mine'"),
    ({"admins": ["alice"]}, "admins: 'alice'"),
    ({"ecr_repositories": ["Bad_Name"]}, "ecr_repositories: 'Bad_Name'"),
])
def test_other_keys_are_checked(values: dict[str, Any], fragment: str) -> None:
    assert fragment in refused(values)


def test_weaker_choices_are_warned_about() -> None:
    s = build_settings({"secrets_encryption": False, "control_plane_logging": False, "flow_logs": False,
                        "imds_hop_limit": 2})
    assert len(s.warnings) == 4


# -- subnet CIDRs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("vpc", "count", "want"), [
    ("10.20.0.0/16", 2, ["10.20.0.0/17", "10.20.128.0/17"]),
    ("10.20.0.0/16", 3, ["10.20.0.0/18", "10.20.64.0/18", "10.20.128.0/18"]),
    ("10.20.0.0/16", 4, ["10.20.0.0/18", "10.20.64.0/18", "10.20.128.0/18", "10.20.192.0/18"]),
    ("10.20.0.0/16", 5, ["10.20.0.0/19", "10.20.32.0/19", "10.20.64.0/19", "10.20.96.0/19", "10.20.128.0/19"]),
    ("192.168.0.0/24", 3, ["192.168.0.0/26", "192.168.0.64/26", "192.168.0.128/26"]),
])
def test_subnet_cidrs_are_carved_in_order(vpc: str, count: int, want: list[str]) -> None:
    assert subnet_cidrs(vpc, count) == want
    assert Settings(vpc_cidr=vpc, availability_zones=count).subnet_cidrs() == want


def test_subnet_cidrs_refuse_subnets_smaller_than_aws_allows() -> None:
    with pytest.raises(UsageError, match="too small for 3 subnets"):
        subnet_cidrs("10.20.0.0/27", 3)
    assert subnet_cidrs("10.20.0.0/27", 2) == ["10.20.0.0/28", "10.20.0.16/28"]


# -- the file ----------------------------------------------------------------------------------------------


def test_load_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('name = "prod"\nendpoints = ["ssm"]\n[tags]\nteam = "platform"\n[[nodegroups]]\nname = "a"\n')
    assert load_file(path) == {"name": "prod", "endpoints": ["ssm"], "tags": {"team": "platform"},
                               "nodegroups": [{"name": "a"}]}


def test_load_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        load_file(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(UsageError, match=r"bad\.toml is not valid TOML"):
        load_file(bad)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UsageError, match="cannot read config file"):
        load_file(binary)


# -- the data perimeter on the endpoints ---------------------------------------------------------------------


def test_endpoint_policies_default_to_the_perimeter_and_open_is_warned() -> None:
    s = build_settings()
    assert s.endpoint_policies == "perimeter" and s.trusted_accounts == () and s.trusted_org_id is None
    opened = build_settings({"endpoint_policies": "open"})
    assert any("endpoint_policies is \"open\"" in w for w in opened.warnings)
    assert "endpoint_policies = 'closed'" in refused({"endpoint_policies": "closed"})
    assert "12-digit" in refused({"trusted_accounts": ["12345"]})
    assert "Organizations id" in refused({"trusted_org_id": "org-1"})
    wider = build_settings({"trusted_accounts": ["210987654321"], "trusted_org_id": "o-a1b2c3d4e5"})
    assert wider.trusted_accounts == ("210987654321",) and wider.trusted_org_id == "o-a1b2c3d4e5"


def test_a_policy_file_is_read_checked_and_linted_before_anything_runs(tmp_path: Path) -> None:
    good = tmp_path / "logs.json"
    good.write_text('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", '
                    '"Action": "logs:PutLogEvents", "Resource": "*"}]}')
    s = build_settings({"endpoint_policy_files": {"logs": str(good)}})
    assert dict(s.endpoint_policy_files)["logs"] == good.read_text()
    assert "cannot read it" in refused({"endpoint_policy_files": {"logs": str(tmp_path / "missing.json")}})
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert "not valid JSON" in refused({"endpoint_policy_files": {"logs": str(broken)}})
    misspelt = tmp_path / "misspelt.json"
    misspelt.write_text('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", '
                        '"Action": "logs:PutLogEvent", "Resource": "*"}]}')
    assert "parliament" in refused({"endpoint_policy_files": {"logs": str(misspelt)}})  # no such action
    assert "makes no kinesis endpoint" in refused({"endpoint_policy_files": {"kinesis": str(good)}})
    assert "service short name" in refused({"endpoint_policy_files": {"Not A Service": str(good)}})
