"""Every command a "Next:" line suggests runs as printed: `up` with a local and an S3 state, on the sandbox
(`--sandbox`) and on an AWS endpoint. Naive code suggested `verify ... --state s3://...`, and verify has no
--state (exit 2, "No such option")."""

from __future__ import annotations

import os
import re
import shlex
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest

from eksprivate.sandbox import SandboxServer
from tests.conftest import REGION, CliResult

# No managed add-ons (an empty [addons] table, last as TOML tables go: EKS bootstraps its self-managed
# networking add-ons instead): the hints and the commands they name are the subject, not what the cluster runs.
CONFIG = 'per_az = false\navailability_zones = 2\nflow_logs = false\n[addons]\n'
NEXT = re.compile(r"Next: (.*)$", re.MULTILINE)


def next_commands(stderr: str) -> list[list[str]]:
    """The backquoted commands of every "Next:" line, split as a shell would."""
    lines = NEXT.findall(" ".join(stderr.split("\n")).replace("  ", " "))
    assert lines, stderr
    return [shlex.split(command) for line in lines for command in re.findall(r"`([^`]+)`", line)]


@pytest.mark.parametrize("sandbox", [False, True], ids=["aws-endpoint", "sandbox"])
@pytest.mark.parametrize("state", ["local", "s3"])
def test_every_next_command_runs_as_printed(cli: Callable[..., CliResult], cluster_name: str, aws_env: Path,
                                           stand_in: SandboxServer, monkeypatch: pytest.MonkeyPatch,
                                           sandbox: bool, state: str) -> None:
    from eksprivate.sandbox import process

    monkeypatch.setattr(sys, "argv", ["eksprivate"])  # as a user runs it (pytest's own argv[0] otherwise)
    if sandbox:  # `--sandbox` against this test's stand-in instead of a background process
        monkeypatch.setattr(process, "ensure_running", lambda *a, **k: process.SandboxInfo(
            pid=os.getpid(), port=0, url=stand_in.url, time_scale=0.0005, started_at="2000-01-01T00:00:00+00:00"))
    config = aws_env / "cluster.toml"
    config.write_text(CONFIG)
    args = ["up", "--name", cluster_name, "--config", str(config)]
    if state == "s3":
        bucket = f"state-{uuid.uuid4().hex[:10]}"
        s3 = boto3.client("s3", endpoint_url=stand_in.url, region_name=REGION, aws_access_key_id="testing",
                          aws_secret_access_key="testing")
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        args += ["--state", f"s3://{bucket}/"]
    if sandbox:
        args.append("--sandbox")
    up = cli(*args)
    assert up.exit_code == 0, up.stderr
    commands = next_commands(up.stderr)
    assert {c[1] for c in commands} >= {"status", "verify"}, commands
    for words in commands:
        assert words[0] == "eksprivate", words
        assert ("--sandbox" in words) == sandbox, words
        result = cli(*words[1:])
        assert result.exit_code == 0 and result.exception is None, (words, result.stderr, result.stdout, up.stderr)
        assert result.stdout.strip(), words  # it did its job: a status table, a verify report
