"""The state in S3, through the CLI as teams use it: two `up` runs at once (one refused, naming the
holder), a run killed mid-way then resumed from another machine (another working folder, no local
state at all) after an explicit `unlock`, `state migrate` there and back, and the bad-input cases on the
bucket — each one line, exit 2, nothing created."""

from __future__ import annotations

import getpass
import json
import signal
import socket
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from eksprivate.sandbox import SandboxServer

from .conftest import FAST, SLOW
from .helpers import REGION, Children, Cli, CliResult, SdkHooks, inventory, mutating_calls, shape

# What these tests check is where the state lives and who holds its lock, not the cluster's shape: they build a
# lean one (one node group, no flow logs or KMS key), a fifth fewer calls than a default `up`
# (88 against 113) and `down` (102 against 132).
LEAN = "flow_logs = false\nsecrets_encryption = false\navailability_zones = 2\nper_az = false\n"


def lean(folder: Path) -> str:
    path = folder / "lean.toml"
    path.write_text(LEAN)
    return str(path)


def clients(url: str, region: str = REGION) -> dict[str, Any]:
    return {"s3": boto3.client("s3", endpoint_url=url, region_name=region, aws_access_key_id="testing",
                               aws_secret_access_key="testing")}


@pytest.fixture
def bucket(stand_in: SandboxServer) -> str:
    name = f"team-{uuid.uuid4().hex[:12]}"
    s3 = clients(stand_in.url)["s3"]
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


@pytest.fixture
def in_process_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The call logs of every `Aws` made in this process (the in-process CLI runs, not the children)."""
    from eksprivate.aws import Aws

    logs: list[Any] = []
    original = Aws.__init__

    def init(aws: Aws, *args: Any, **kwargs: Any) -> None:
        original(aws, *args, **kwargs)
        logs.append(aws.log)

    monkeypatch.setattr(Aws, "__init__", init)
    return logs


def _objects(url: str, bucket: str) -> dict[str, bytes]:
    s3 = clients(url)["s3"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def _error_line(result: CliResult) -> str:
    assert result.exception is None, result.exception
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), result.stderr
    assert [n for n, text in enumerate(lines) if text.startswith("error")] == [len(lines) - 1], result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return lines[-1]


def test_two_up_runs_at_once_one_is_refused_naming_the_holder(
        stand_in: SandboxServer, children: Children, cli: Cli, cluster_name: str, bucket: str,
        in_process_calls: list[Any], tmp_path: Path) -> None:
    """Naive code (no lock, or a check-then-write lock) lets both runs create the cluster's resources."""
    url = f"s3://{bucket}/eks/{cluster_name}.json"
    config = lean(tmp_path)
    stand_in.configure(cluster_create=SLOW)
    runs = [children.start("up", "--name", cluster_name, "--region", REGION, "--state", url, "--config", config)
            for _ in range(2)]
    (loser,) = _first_to_end(runs)
    winner = runs[1 - runs.index(loser)]
    assert loser.wait() == 2, loser.stderr  # wait(): its output is read to the end
    line = loser.stderr.strip().splitlines()[-1]
    assert f"locked by {getpass.getuser()}@{socket.gethostname()} since " in line, line
    assert f"(up), pid {winner.proc.pid}" in line, line
    winner.wait_for(r"\] cluster: CREATING")

    # While it runs: a third `up` and a `down` are refused at once; status and plan read without the lock.
    for verb in (["up"], ["down", "--yes"]):
        refused = cli(*verb, "--name", cluster_name, "--region", REGION, "--state", url, "--config", config)
        assert refused.exit_code == 2 and "locked by " in _error_line(refused)
    # The refused runs' only write was their refused attempt at the lock (If-None-Match: *).
    assert {call for log in in_process_calls for call in log.mutating} == {("s3", "PutObject")}
    for verb in ("status", "plan"):
        read = cli(verb, "--name", cluster_name, "--region", REGION, "--state", url, "--config", config)
        assert read.exit_code == 0, read.stderr

    stand_in.configure(cluster_create=FAST["cluster_create"])
    assert winner.wait() == 0, winner.stderr
    assert set(_objects(stand_in.url, bucket)) == {f"eks/{cluster_name}.json"}  # the lock went with the run


def _first_to_end(runs: list[Any]) -> list[Any]:
    """The runs that ended first (the refused one ends within seconds, the holder waits on AWS)."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    pool = ThreadPoolExecutor(len(runs))
    waits = {pool.submit(run.proc.wait): run for run in runs}
    done, _ = wait(waits, return_when=FIRST_COMPLETED)
    pool.shutdown(wait=False)  # the holder's wait ends when the test lets it finish (or kills it)
    return [waits[f] for f in done]


def test_a_killed_run_resumes_from_another_machine_after_an_explicit_unlock(
        stand_in: SandboxServer, children: Children, cli: Cli, cluster_name: str, bucket: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"s3://{bucket}/eks/"  # a prefix: the key is <name>-<region>.json
    key = f"eks/{cluster_name}-{REGION}.json"
    where = ("--name", cluster_name, "--region", REGION, "--state", url)
    laptop_config = lean(tmp_path)
    stand_in.configure(cluster_create=SLOW)
    laptop = children.start("up", *where, "--config", laptop_config)
    laptop.wait_for(r"\] cluster: CREATING")
    assert laptop.signal(signal.SIGKILL) == -signal.SIGKILL
    assert set(_objects(stand_in.url, bucket)) == {key, key + ".lock"}  # a SIGKILL releases nothing

    # The other machine: another folder, with its own copy of the config and no state. Its commands run
    # in-process: only the killed run needs to be a process (the lock names its pid, now dead).
    ci_dir = tmp_path / "ci-runner"
    ci_dir.mkdir()
    monkeypatch.chdir(ci_dir)
    config = lean(ci_dir)
    blocked = cli("up", *where, "--config", config)
    assert blocked.exit_code == 2
    assert f"(up), pid {laptop.proc.pid}" in blocked.stderr and "eksprivate unlock" in blocked.stderr

    unlocked = cli("unlock", *where, "--config", config, "--yes")
    assert unlocked.exit_code == 0, unlocked.stderr
    assert f"pid {laptop.proc.pid}" in unlocked.stderr + unlocked.stdout

    stand_in.configure(cluster_create=FAST["cluster_create"])
    resumed = cli("up", *where, "--config", config)
    assert resumed.exit_code == 0, resumed.stderr
    for kind, labels in shape(inventory(stand_in.url, cluster_name)).items():
        assert len(labels) == len(set(labels)), f"duplicate {kind}: {labels}"  # resumed, not made twice
    assert not list(ci_dir.glob("state/*.json")) and not list(tmp_path.glob("state/*.json"))  # no local state

    down = cli("down", *where, "--config", config, "--yes")
    assert down.exit_code == 0, down.stderr
    assert inventory(stand_in.url, cluster_name) == []
    assert _objects(stand_in.url, bucket) == {}  # the state and its lock are gone after a complete down


def test_unlock_refuses_while_the_holder_still_runs_here(
        stand_in: SandboxServer, children: Children, cli: Cli, cluster_name: str, bucket: str) -> None:
    url = f"s3://{bucket}/{cluster_name}.json"
    stand_in.configure(cluster_create=SLOW)
    holder = children.start("up", "--name", cluster_name, "--region", REGION, "--state", url)
    holder.wait_for(r"\] cluster: CREATING")
    refused = cli("unlock", "--name", cluster_name, "--region", REGION, "--state", url, "--yes")
    assert refused.exit_code == 2 and f"pid {holder.proc.pid}, is still running" in _error_line(refused)
    assert f"{cluster_name}.json.lock" in _objects(stand_in.url, bucket)


def test_state_migrate_to_s3_and_back(cli: Cli, aws_env: Path, stand_in: SandboxServer, cluster_name: str,
                                      bucket: str, in_process_calls: list[Any]) -> None:
    local = aws_env / "state" / f"{cluster_name}-{REGION}.json"
    config = lean(aws_env)
    assert cli("up", "--name", cluster_name, "--region", REGION, "--config", config).exit_code == 0
    recorded = json.loads(local.read_text())
    url = f"s3://{bucket}/eks/{cluster_name}.json"

    moved = cli("state", "migrate", "--to", url, "--name", cluster_name, "--region", REGION)
    assert moved.exit_code == 0, moved.stderr
    assert json.loads(_objects(stand_in.url, bucket)[f"eks/{cluster_name}.json"]) == recorded
    assert not local.exists() and local.with_name(local.name + ".migrated").exists()

    in_process_calls.clear()
    rerun = cli("up", "--name", cluster_name, "--region", REGION, "--state", url, "--config", config)
    assert rerun.exit_code == 0, rerun.stderr
    # The rerun finds everything from the migrated state: its only writes are its lock (taken, released).
    assert sorted(call for log in in_process_calls for call in log.mutating) == [
        ("s3", "DeleteObject"), ("s3", "PutObject")]

    again = cli("state", "migrate", "--to", str(local), "--name", cluster_name, "--region", REGION, "--state", url)
    assert again.exit_code == 0, again.stderr
    assert json.loads(local.read_text())["steps"] == recorded["steps"]
    assert _objects(stand_in.url, bucket) == {}
    refused = cli("state", "migrate", "--to", str(local), "--name", cluster_name, "--region", REGION)
    assert refused.exit_code == 2 and "already is" in _error_line(refused)
    assert cli("down", "--name", cluster_name, "--region", REGION, "--config", config, "--yes").exit_code == 0


# -- bad input: one line, exit 2, nothing created ------------------------------------------------------------


def _nothing_created(stand_in: SandboxServer, aws_env: Path) -> None:
    assert mutating_calls(stand_in.calls()) == []
    assert not (aws_env / "state").exists()


def test_a_state_bucket_that_does_not_exist(
        cli: Cli, aws_env: Path, stand_in: SandboxServer, cluster_name: str) -> None:
    stand_in.clear_calls()
    result = cli("up", "--name", cluster_name, "--region", REGION, "--state", "s3://no-such-bucket-h8/x.json")
    assert result.exit_code == 2
    assert "state bucket no-such-bucket-h8 does not exist" in _error_line(result)
    _nothing_created(stand_in, aws_env)


def test_no_permission_on_the_state_bucket(cli: Cli, aws_env: Path, stand_in: SandboxServer, hooks: SdkHooks,
                                           cluster_name: str, bucket: str) -> None:
    hooks.fail("s3", "HeadBucket", "403", "Forbidden", status=403)
    stand_in.clear_calls()
    result = cli("up", "--name", cluster_name, "--region", REGION, "--state", f"s3://{bucket}/x.json")
    assert result.exit_code == 2
    assert f"no permission to use state bucket {bucket}" in _error_line(result)
    _nothing_created(stand_in, aws_env)


def test_a_key_holding_something_else(cli: Cli, aws_env: Path, stand_in: SandboxServer, cluster_name: str,
                                      bucket: str) -> None:
    s3 = clients(stand_in.url)["s3"]
    s3.put_object(Bucket=bucket, Key="terraform.tfstate", Body=b'{"version": 4, "resources": []}')
    stand_in.clear_calls()
    for verb in (["up"], ["down", "--yes"], ["status"]):
        result = cli(*verb, "--name", cluster_name, "--region", REGION, "--state", f"s3://{bucket}/terraform.tfstate")
        assert result.exit_code == 2
        assert "holds something that is not an eksprivate state" in _error_line(result)
    _nothing_created(stand_in, aws_env)
    assert _objects(stand_in.url, bucket) == {"terraform.tfstate": b'{"version": 4, "resources": []}'}


def test_a_state_bucket_in_another_region(cli: Cli, aws_env: Path, stand_in: SandboxServer, cluster_name: str) -> None:
    name = f"team-{uuid.uuid4().hex[:12]}"
    far = clients(stand_in.url, "ap-southeast-2")["s3"]
    far.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "ap-southeast-2"})
    stand_in.clear_calls()
    result = cli("up", "--name", cluster_name, "--region", REGION, "--state", f"s3://{name}/x.json")
    assert result.exit_code == 2
    assert f"state bucket {name} is in ap-southeast-2, not in {REGION}" in _error_line(result)
    _nothing_created(stand_in, aws_env)


def test_state_from_the_config_file_and_versioning_off_is_warned(
        cli: Cli, aws_env: Path, stand_in: SandboxServer, cluster_name: str) -> None:
    name = f"team-{uuid.uuid4().hex[:12]}"
    clients(stand_in.url)["s3"].create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    config = aws_env / "team.toml"
    config.write_text(f'state = "s3://{name}/eks/"\n{LEAN}')
    key = f"eks/{cluster_name}-{REGION}.json"
    result = cli("plan", "--name", cluster_name, "--region", REGION, "--config", str(config), "--output", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["state"] == f"s3://{name}/{key}"
    built = cli("up", "--name", cluster_name, "--region", REGION, "--config", str(config))
    assert built.exit_code == 0, built.stderr
    assert f"state bucket {name} has versioning off" in built.stderr
    assert set(_objects(stand_in.url, name)) == {key}
    assert cli("down", "--name", cluster_name, "--region", REGION, "--config", str(config), "--yes").exit_code == 0
