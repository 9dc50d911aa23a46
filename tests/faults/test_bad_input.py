"""Bad input: one clear line on stderr, the right exit code (2 usage/config, 1 AWS refused), no
traceback, no mutating call reaching AWS, and every state file there was left byte-for-byte as it was.

Each test starts with the state folder of a user who already has a cluster (a state file and its backup)
and checks that folder is untouched afterwards: no file changed, none added.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eksprivate.sandbox import SandboxServer

from .helpers import REGION, Cli, CliResult, SdkHooks, clients, mutating_calls

ACCOUNT = "123456789012"  # the sandbox's (moto's) account


def _state_doc(name: str, region: str = REGION, account: str = ACCOUNT) -> dict[str, object]:
    return {"schema": 1, "name": name, "region": region, "account": account, "created_at": "2025-01-01T00:00:00+00:00",
            "updated_at": "2025-01-01T00:05:00+00:00", "inputs": {"availability_zones": [f"{REGION}a", f"{REGION}b"]},
            "steps": {"vpc": {"token": "4b8a3f0e-0000-4000-8000-000000000000",
                              "started_at": "2025-01-01T00:00:01+00:00",
                              "ids": {"vpc_id": "vpc-0123456789abcdef0", "cidr": "10.20.0.0/16"}}}}


class Folder:
    """The user's state folder, snapshotted."""

    def __init__(self, cwd: Path, name: str) -> None:
        self.dir = cwd / "state"
        self.dir.mkdir(exist_ok=True)
        self.state = self.dir / f"{name}-{REGION}.json"
        self.state.write_text(json.dumps(_state_doc(name), indent=2) + "\n")
        self.backup = self.state.with_name(self.state.name + ".bak")
        self.backup.write_text(json.dumps(_state_doc(name), indent=1) + "\n")
        self.before = self.snapshot()

    def snapshot(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(self.dir.iterdir())}

    def untouched(self) -> bool:
        return self.snapshot() == self.before


@pytest.fixture
def folder(aws_env: Path, cluster_name: str, stand_in: SandboxServer) -> Folder:
    stand_in.clear_calls()
    return Folder(aws_env, cluster_name)


def _refused(result: CliResult, code: int, *says: str, progress: bool = False) -> str:
    """One `error:` line saying `says`, exit `code`, no traceback; returns the line. With `progress` (a run
    AWS stopped after it began) the run's progress lines come first; the error line is still the last."""
    assert result.exception is None, result.exception
    assert result.exit_code == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 or progress, result.stderr
    assert [n for n, text in enumerate(lines) if text.startswith("error")] == [len(lines) - 1], result.stderr
    line = lines[-1]
    assert line.startswith("error: "), line
    for text in says:
        assert text in line, line
    assert "Traceback" not in result.stdout + result.stderr
    return line


def _nothing_changed(stand_in: SandboxServer, folder: Folder) -> None:
    assert mutating_calls(stand_in.calls()) == []
    assert folder.untouched()


def _config(folder: Folder, text: str) -> str:
    path = folder.dir.parent / "eksprivate.toml"
    path.write_text(text)
    return str(path)


def test_unknown_region(cli: Cli, stand_in: SandboxServer, folder: Folder, cluster_name: str) -> None:
    _refused(cli("up", "--name", cluster_name, "--region", "eu-middle-9"), 2, "unknown region 'eu-middle-9'")
    _nothing_changed(stand_in, folder)


@pytest.mark.parametrize("bad", ["-starts-with-dash", "_underscore-first", "has space", "dot.ted", "x" * 101,
                                 "ünïcode", ""])
def test_cluster_name_eks_would_reject(cli: Cli, stand_in: SandboxServer, folder: Folder, bad: str) -> None:
    line = _refused(cli("up", f"--name={bad}", "--region", REGION), 2, "is not valid for EKS", "1-100")
    assert repr(bad) in line
    _nothing_changed(stand_in, folder)


def test_longest_valid_name_is_accepted_by_validation(cli: Cli, stand_in: SandboxServer, folder: Folder) -> None:
    # 100 characters is EKS's limit: the name passes (plan reads only).
    result = cli("plan", "--name", "a" * 100, "--region", REGION)
    assert result.exit_code == 0, result.stderr
    _nothing_changed(stand_in, folder)


@pytest.mark.parametrize("cidr", ["10.20.0.0/33", "10.20.0.1/16", "300.1.0.0/16", "fd00::/48", "banana"])
def test_invalid_vpc_cidr(cli: Cli, stand_in: SandboxServer, folder: Folder, cluster_name: str, cidr: str) -> None:
    config = _config(folder, f'vpc_cidr = "{cidr}"\n')
    _refused(cli("up", "--name", cluster_name, "--region", REGION, "--config", config), 2, "vpc_cidr", repr(cidr))
    _nothing_changed(stand_in, folder)


def test_vpc_cidr_too_small_for_the_subnets(
        cli: Cli, stand_in: SandboxServer, folder: Folder, cluster_name: str) -> None:
    config = _config(folder, 'vpc_cidr = "10.20.0.0/27"\navailability_zones = 3\n')
    _refused(cli("up", "--name", cluster_name, "--region", REGION, "--config", config), 2,
             "10.20.0.0/27 is too small for 3 subnets")
    _nothing_changed(stand_in, folder)


def test_more_azs_than_the_region_has(cli: Cli, stand_in: SandboxServer, folder: Folder, cluster_name: str) -> None:
    zones = clients(stand_in.url)["ec2"].describe_availability_zones()["AvailabilityZones"]
    assert len(zones) == 3  # the sandbox's eu-central-1
    config = _config(folder, "availability_zones = 6\n")
    stand_in.clear_calls()
    _refused(cli("up", "--name", f"{cluster_name}-b", "--region", REGION, "--config", config), 2,
             f"{REGION} has 3 AZ(s)", "asks for 6")
    _nothing_changed(stand_in, folder)


def test_unknown_config_key_is_named(cli: Cli, stand_in: SandboxServer, folder: Folder, cluster_name: str) -> None:
    config = _config(folder, 'vpc_cidr = "10.20.0.0/16"\nnode_count = 3\n')
    _refused(cli("up", "--name", cluster_name, "--region", REGION, "--config", config), 2,
             "unknown config key 'node_count'")
    _nothing_changed(stand_in, folder)


@pytest.mark.parametrize(("toml", "key"), [('flow_logs = "yes"\n', "flow_logs"),
                                           ("log_retention_days = 7.5\n", "log_retention_days"),
                                           ('[[nodegroups]]\nname = "a"\nmax_size = "3"\n', "nodegroups[0].max_size")])
def test_wrong_value_type_names_the_key(
        cli: Cli, stand_in: SandboxServer, folder: Folder, cluster_name: str, toml: str, key: str) -> None:
    config = _config(folder, toml)
    _refused(cli("up", "--name", cluster_name, "--region", REGION, "--config", config), 2, f"'{key}' must be")
    _nothing_changed(stand_in, folder)


def test_config_that_is_not_toml(cli: Cli, stand_in: SandboxServer, folder: Folder, cluster_name: str) -> None:
    config = _config(folder, '{"name": "json, not toml"}\n')
    _refused(cli("up", "--name", cluster_name, "--region", REGION, "--config", config), 2, "is not valid TOML")
    _nothing_changed(stand_in, folder)


@pytest.mark.parametrize("verb", [["up"], ["down", "--yes"], ["status"]])
def test_corrupt_state_file_points_at_the_backup(
        cli: Cli, stand_in: SandboxServer, folder: Folder, cluster_name: str, verb: list[str]) -> None:
    folder.state.write_text('{"schema": 1, "name": "' + cluster_name + '", "steps": {"vpc": {"ids": {"vpc_i')
    folder.before = folder.snapshot()
    relative = folder.state.relative_to(folder.dir.parent)
    line = _refused(cli(*verb, "--name", cluster_name, "--region", REGION), 2, f"state file {relative} is corrupt",
                    f"the previous version is {relative}.bak")
    assert "copy it over" in line
    _nothing_changed(stand_in, folder)


@pytest.mark.parametrize(("field", "value"), [("name", "someone-else"), ("region", "us-east-1"),
                                              ("account", "210987654321")])
def test_state_file_of_another_cluster_region_or_account(
        cli: Cli, stand_in: SandboxServer, folder: Folder, cluster_name: str, field: str, value: str) -> None:
    other = folder.dir / "other.json"
    other.write_text(json.dumps({**_state_doc(cluster_name), field: value}))
    folder.before = folder.snapshot()
    _refused(cli("up", "--name", cluster_name, "--region", REGION, "--state", str(other)), 2,
             f"belongs to {field} {value!r}")
    _nothing_changed(stand_in, folder)


def test_no_credentials(cli: Cli, stand_in: SandboxServer, folder: Folder, cluster_name: str,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance metadata lookup off the loopback
    _refused(cli("up", "--name", cluster_name, "--region", REGION), 2, "no AWS credentials found", "aws sso login")
    assert stand_in.calls() == []
    _nothing_changed(stand_in, folder)


def test_expired_credentials(cli: Cli, stand_in: SandboxServer, folder: Folder, hooks: SdkHooks,
                             cluster_name: str) -> None:
    hooks.fail("sts", "GetCallerIdentity", "ExpiredToken", "The security token included in the request is expired")
    _refused(cli("up", "--name", cluster_name, "--region", REGION), 1, "ExpiredToken", "expired", "aws sso login")
    _nothing_changed(stand_in, folder)


DENIED = ("You are not authorized to perform this operation. User: arn:aws:iam::123456789012:user/dev is not "
          "authorized to perform: ec2:CreateVpc on resource: arn:aws:ec2:eu-central-1:123456789012:vpc/* because no "
          "identity-based policy allows the ec2:CreateVpc action. Encoded authorization failure message: "
          + "Zm9v" * 200)


@pytest.mark.parametrize(("code", "message", "status", "says"), [
    ("UnauthorizedOperation", DENIED, 403, "not allowed to call ec2:CreateVpc"),
    ("VpcLimitExceeded", "The maximum number of VPCs has been reached.", 400, "VPCs per Region"),
])
def test_aws_refusing_the_first_create_leaves_nothing(
        cli: Cli, stand_in: SandboxServer, hooks: SdkHooks, aws_env: Path, cluster_name: str,
        code: str, message: str, status: int, says: str) -> None:
    # Permissions and quotas are AWS's to check: the VPC is created first and alone, so a refused
    # CreateVpc stops the run before anything exists (no IAM role, no KMS key pending deletion for 7 days).
    refusals = hooks.fail("ec2", "CreateVpc", code, message, status=status)
    stand_in.clear_calls()
    first = cli("up", "--name", cluster_name, "--region", REGION)
    _refused(first, 1, "up failed at VPC", f"CreateVpc failed: {code}", says, progress=True)
    assert refusals == [1]
    assert mutating_calls(stand_in.calls()) == []
    state = aws_env / "state" / f"{cluster_name}-{REGION}.json"
    assert all(not step.get("ids") for step in json.loads(state.read_text())["steps"].values())

    # The same refusal again: the state (the AZs and the VPC's intent) stays byte-for-byte as it was.
    before = state.read_bytes()
    again = cli("up", "--name", cluster_name, "--region", REGION)
    _refused(again, 1, f"CreateVpc failed: {code}", progress=True)
    assert state.read_bytes() == before
    assert mutating_calls(stand_in.calls()) == []
