"""The state in S3 on the sandbox, as docs/state.md tells a new user: `eksprivate sandbox bucket` makes the
bucket (versioned), `--state s3://bucket/` uses it; `plan` warns about an unversioned bucket as `up` does
(naive: only `up` said it, after the user had planned against it)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest

from eksprivate.sandbox import SandboxServer
from tests.conftest import REGION, CliResult

UNVERSIONED = "has versioning off: the object versions are the state's backup"


@pytest.fixture
def on_sandbox(stand_in: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> SandboxServer:
    """`--sandbox` and `sandbox bucket` against this test's stand-in instead of a background process."""
    from eksprivate.sandbox import process

    monkeypatch.setattr(process, "ensure_running", lambda *a, **k: process.SandboxInfo(
        pid=os.getpid(), port=0, url=stand_in.url, time_scale=0.0005, started_at="2000-01-01T00:00:00+00:00"))
    return stand_in


def test_sandbox_bucket_makes_a_versioned_bucket_and_says_how_to_use_it(
        cli: Callable[..., CliResult], aws_env: Path, on_sandbox: SandboxServer, cluster_name: str) -> None:
    bucket = f"team-{uuid.uuid4().hex[:10]}"
    made = cli("sandbox", "bucket", bucket)
    assert made.exit_code == 0, made.stderr
    s3 = boto3.client("s3", endpoint_url=on_sandbox.url, region_name=REGION, aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert s3.head_bucket(Bucket=bucket)["BucketRegion"] == REGION
    assert f"--state s3://{bucket}/" in " ".join(made.stderr.split())
    again = cli("sandbox", "bucket", bucket)  # a rerun is fine
    assert again.exit_code == 0 and "already there" in again.stderr, again.stderr
    plan = cli("plan", "--sandbox", "--name", cluster_name, "--state", f"s3://{bucket}/")
    assert plan.exit_code == 0, plan.stderr
    assert "warning: state bucket" not in plan.stderr


def test_plan_warns_about_an_unversioned_bucket_as_up_does(
        cli: Callable[..., CliResult], aws_env: Path, on_sandbox: SandboxServer, cluster_name: str) -> None:
    bucket = f"loose-{uuid.uuid4().hex[:10]}"
    assert cli("sandbox", "bucket", bucket, "--no-versioning").exit_code == 0
    state = ["--sandbox", "--name", cluster_name, "--state", f"s3://{bucket}/", "--config", "none.toml"]
    (aws_env / "none.toml").write_text("per_az = false\navailability_zones = 2\n")
    for command in ("plan", "up"):
        result = cli(command, *state)
        assert result.exit_code == 0, result.stderr
        assert f"warning: state bucket {bucket} {UNVERSIONED}" in " ".join(result.stderr.split()), command
