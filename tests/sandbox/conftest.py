"""One in-process sandbox for these tests.

moto's state is process-wide and other test packages share the process: like theirs, every test here
starts from an empty moto (tests/conftest.py `SandboxResets`) and works with its own uniquely named
resources. Timing and faults are set again before every test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from eksprivate.sandbox import SandboxServer, Timing

from .helpers import NO_FAULTS, REGION, TEST_TIMING, ClientFactory


@pytest.fixture(scope="session")
def sandbox_under_test() -> Iterator[SandboxServer]:
    """Our own server (own call log and faults), beside any other test package's: moto's state and the
    Timing are process-wide, so tests set the timing they need."""
    with SandboxServer(timing=Timing(**TEST_TIMING)) as server:
        yield server


@pytest.fixture
def sandbox(sandbox_under_test: SandboxServer, sandbox_resets: Any) -> Iterator[SandboxServer]:
    sandbox_resets.before_test(sandbox_under_test)
    sandbox_under_test.configure(**TEST_TIMING, **NO_FAULTS)
    yield sandbox_under_test
    sandbox_under_test.configure(**TEST_TIMING, **NO_FAULTS)


@pytest.fixture
def client(sandbox: SandboxServer) -> ClientFactory:
    """boto3 clients for the sandbox; no retries unless asked, so errors show as they come."""

    def make(service: str, attempts: int = 1) -> Any:
        return boto3.client(
            service,
            endpoint_url=sandbox.url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            # total_max_attempts counts the first try; botocore's max_attempts counts retries only.
            config=Config(retries={"mode": "standard", "total_max_attempts": attempts}),
        )

    return make


@pytest.fixture
def name() -> str:
    """A name no other test uses."""
    return f"t{uuid.uuid4().hex[:10]}"
