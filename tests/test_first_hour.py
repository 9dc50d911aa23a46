"""What a new user trips on in the first hour (issue 21, "small things"): a version flag, a misspelt region,
the price of the instance type they pick."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import pytest

from eksprivate.sandbox import SandboxServer
from tests.conftest import CliResult


def test_version_flag(cli: Callable[..., CliResult]) -> None:
    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"eksprivate {version('eksprivate')}"


@pytest.mark.parametrize(("region", "says"), [
    ("eu-centrl-1", "did you mean eu-central-1?"),
    ("cn-nrth-1", "did you mean cn-north-1?"),  # the aws-cn partition's own regions
])
def test_a_misspelt_region_gets_the_closest_of_its_partition(
        cli: Callable[..., CliResult], aws_env: Path, stand_in: SandboxServer, region: str, says: str) -> None:
    """DescribeRegions of the partition asked, the closest name suggested; never another partition's
    regions (moto answers every partition's, as a real aws-partition account never would)."""
    result = cli("plan", "--region", region, "--name", "typo")
    assert result.exit_code == 2 and result.exception is None, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: unknown region '{region}'") and line.endswith(says), line


def test_an_unknown_region_lists_only_its_partitions_regions(
        cli: Callable[..., CliResult], aws_env: Path, stand_in: SandboxServer) -> None:
    result = cli("plan", "--region", "xx-nowhere-1", "--name", "typo")
    assert result.exit_code == 2, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "eu-central-1" in line and "cn-north-1" not in line and "us-gov-west-1" not in line, line


def test_common_instance_types_have_a_price_and_an_unknown_one_says_where_to_look(
        cli: Callable[..., CliResult], aws_env: Path, stand_in: SandboxServer) -> None:
    """t3.medium in eu-central-1 had no price (the sandbox's Price List knew two types)."""
    config = aws_env / "cluster.toml"
    config.write_text('name = "priced"\nper_az = false\n'
                      '[[nodegroups]]\nname = "web"\ninstance_types = ["t3.medium"]\n'
                      '[[nodegroups]]\nname = "arm"\ninstance_types = ["m7g.large"]\n'
                      'ami_type = "AL2023_ARM_64_STANDARD"\n')
    result = cli("plan", "--config", str(config), "--output", "json")
    assert result.exit_code == 0, result.stderr
    lines = {line["item"]: line for line in json.loads(result.stdout)["cost"]["lines"]}
    web = next(line for item, line in lines.items() if item.startswith("node group web") and "t3.medium" in item)
    assert web["unit_price"] == pytest.approx(0.048) and web["source"] != "table", web  # from the Price List
    arm = next(line for item, line in lines.items() if item.startswith("node group arm") and "m7g.large" in item)
    assert arm["unit_price"] is None
    assert arm["note"].endswith("see https://aws.amazon.com/ec2/pricing/on-demand/"), arm
