"""Fixtures for the verify tests: moto in-process with fake credentials, and a healthy private cluster."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws
from verify_world import REGION, World, build_private

PARTITIONS = tuple(boto3.session.Session().get_available_partitions())


class _Partitions:
    """Stands in for the boto3 Session moto's EKS builds on every CreateCluster/CreateNodegroup
    only to list partitions (~0.1 s each); the role ARN is still validated against the same list."""

    def get_available_partitions(self) -> list[str]:
        return list(PARTITIONS)


@pytest.fixture
def moto_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(var, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")  # 10k AMIs per EC2 backend: ~0.4 s a test
    monkeypatch.setattr("moto.eks.utils.Session", _Partitions)
    with mock_aws():
        yield


@pytest.fixture
def world(moto_aws: None) -> World:
    """A healthy private cluster: every check passes."""
    return build_private()
