"""Fixtures for the step tests: a `World` (one fresh cluster name) on the shared sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from eksprivate.aws import Aws
from eksprivate.sandbox import SandboxServer

from .world import CREDENTIALS, REGION, World


@pytest.fixture(scope="session")
def sandbox_aws(sandbox_server: SandboxServer) -> Iterator[Aws]:
    """The real AWS boundary, pointed at the sandbox with explicit credentials (no profile, no env)."""
    with pytest.MonkeyPatch.context() as mp:
        for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL"):
            mp.delenv(var, raising=False)
        mp.setenv("AWS_CONFIG_FILE", "/dev/null")
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        aws = Aws(REGION, endpoint_url=sandbox_server.url, credentials=CREDENTIALS)
        for service in ("ec2", "eks", "iam", "kms", "logs"):
            aws.client(service)  # made while the environment is clean
    yield aws


@pytest.fixture
def world(stand_in: SandboxServer, sandbox_aws: Aws, tmp_path: Path, cluster_name: str) -> World:
    return World(stand_in, tmp_path, cluster_name, sandbox_aws)
