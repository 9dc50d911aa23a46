"""Fault injection, the call log and the control endpoints."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.retries.standard import ExponentialBackoff

from eksprivate.sandbox import CallRecord, SandboxServer

from .helpers import NODE_TRUST, ClientFactory, make_role

# Loopback requests must not go through a proxy from the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _control(sandbox: SandboxServer, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(f"{sandbox.url}/_sandbox/{path}", data=data, method=method)
    try:
        with _opener.open(request, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore waits up to 1 s, doubling, before retrying throttling: these tests check *which*
    responses it retries, not how long it waits."""
    monkeypatch.setitem(ExponentialBackoff._DEFAULT_BACKOFF_CONFIG, "throttling_base_scale", 0.05)


def _operations(calls: list[CallRecord]) -> list[tuple[str, str]]:
    return [(c.service, c.operation) for c in calls]


@pytest.mark.parametrize(
    ("service", "call", "status", "code"),
    [
        ("ec2", lambda c: c.describe_vpcs(), 503, "RequestLimitExceeded"),
        ("iam", lambda c: c.list_roles(), 400, "Throttling"),
        ("kms", lambda c: c.list_keys(), 400, "ThrottlingException"),
        ("eks", lambda c: c.list_clusters(), 429, "ThrottlingException"),
    ],
)
def test_throttling_speaks_each_protocol(
    sandbox: SandboxServer, client: ClientFactory, service: str, call: Any, status: int, code: str
) -> None:
    sandbox.configure(throttle_rate=1.0)
    with pytest.raises(ClientError) as error:
        call(client(service))
    assert error.value.response["Error"]["Code"] == code
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


def test_unavailable_is_http_503(sandbox: SandboxServer, client: ClientFactory) -> None:
    sandbox.configure(unavailable_rate=1.0)
    with pytest.raises(ClientError) as error:
        client("eks").list_clusters()
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert error.value.response["Error"]["Code"] == "ServiceUnavailableException"


@pytest.mark.usefixtures("fast_backoff")
def test_botocore_retries_injected_faults(sandbox: SandboxServer, client: ClientFactory) -> None:
    sandbox.configure(throttle_rate=1.0)
    sandbox.clear_calls()
    with pytest.raises(ClientError) as error:
        client("eks", attempts=3).list_clusters()
    assert error.value.response["ResponseMetadata"]["RetryAttempts"] == 2
    assert [c.fault for c in sandbox.calls()] == ["throttle"] * 3


@pytest.mark.usefixtures("fast_backoff")
def test_standard_retries_get_through_30_percent_faults(
    sandbox: SandboxServer, client: ClientFactory, name: str
) -> None:
    sandbox.configure(throttle_rate=0.15, unavailable_rate=0.15, seed=7)
    sandbox.clear_calls()
    ec2, iam, eks, kms = (client(s, attempts=10) for s in ("ec2", "iam", "eks", "kms"))
    for i in range(5):
        ec2.create_vpc(CidrBlock="10.9.0.0/16")
        iam.create_role(RoleName=f"{name}-{i}", AssumeRolePolicyDocument="{}")
        eks.list_clusters()
        kms.list_keys()
        ec2.describe_vpcs()

    calls = sandbox.calls()
    faulted = [c for c in calls if c.fault]
    assert faulted, "the seed should inject some faults"
    assert {c.fault for c in faulted} == {"throttle", "unavailable"}
    # Every call got through in the end: one success per operation per round.
    succeeded = [(c.service, c.operation) for c in calls if c.status == 200]
    assert sorted(succeeded) == sorted(
        [("ec2", "CreateVpc"), ("iam", "CreateRole"), ("eks", "ListClusters"), ("kms", "ListKeys")] * 5
        + [("ec2", "DescribeVpcs")] * 5
    )


def test_call_log_names_operations(sandbox: SandboxServer, client: ClientFactory, name: str) -> None:
    sandbox.clear_calls()
    role = make_role(client("iam"), name, NODE_TRUST)  # query protocol: Action (one call: no cluster policy)
    client("kms").list_keys()  # JSON protocol: X-Amz-Target
    eks = client("eks")  # REST: method + path
    eks.list_clusters()
    with pytest.raises(ClientError):
        eks.describe_cluster(name=name)
    with pytest.raises(ClientError):
        eks.describe_access_entry(clusterName=name, principalArn=role)
    with pytest.raises(ClientError):
        eks.list_associated_access_policies(clusterName=name, principalArn=role)
    with pytest.raises(ClientError):
        eks.describe_nodegroup(clusterName=name, nodegroupName="workers")

    calls = sandbox.calls()
    assert _operations(calls) == [
        ("iam", "CreateRole"),
        ("kms", "ListKeys"),
        ("eks", "ListClusters"),
        ("eks", "DescribeCluster"),
        ("eks", "DescribeAccessEntry"),
        ("eks", "ListAssociatedAccessPolicies"),
        ("eks", "DescribeNodegroup"),
    ]
    assert [c.status for c in calls] == [200, 200, 200, 404, 404, 404, 404]
    assert all(c.region == "eu-central-1" for c in calls)
    assert calls == sorted(calls, key=lambda c: c.timestamp)


def test_control_endpoints(sandbox: SandboxServer, client: ClientFactory) -> None:
    status, health = _control(sandbox, "GET", "health")
    assert status == 200
    assert health["ok"] is True

    sandbox.clear_calls()
    client("eks").list_clusters()
    status, calls = _control(sandbox, "GET", "calls")
    assert [(c["service"], c["operation"]) for c in calls] == [("eks", "ListClusters")]
    assert CallRecord.from_dict(calls[0]) == sandbox.calls()[0]
    assert _control(sandbox, "POST", "calls/clear")[0] == 200
    assert sandbox.calls() == []

    status, settings = _control(sandbox, "POST", "config", {"time_scale": 0.5, "throttle_rate": 0.25})
    assert status == 200
    assert settings["time_scale"] == 0.5
    assert settings["throttle_rate"] == 0.25
    assert _control(sandbox, "GET", "config")[1] == settings
    assert sandbox.settings() == settings

    assert _control(sandbox, "POST", "config", {"no_such_setting": 1})[0] == 400
    assert _control(sandbox, "POST", "config", {"throttle_rate": 2})[0] == 400
    assert _control(sandbox, "POST", "config", {"time_scale": -1})[0] == 400
    assert sandbox.settings() == settings  # nothing applied from a rejected request
    assert _control(sandbox, "GET", "nothing-here")[0] == 404
    # The control API is never faulted nor logged.
    sandbox.configure(throttle_rate=1.0)
    assert _control(sandbox, "GET", "health")[0] == 200
    assert sandbox.calls() == []
