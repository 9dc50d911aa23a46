"""Small parts of the sandbox, without a server."""

from __future__ import annotations

import io
from typing import Any

import pytest

from eksprivate.sandbox import FaultConfig, Timing, install, uninstall
from eksprivate.sandbox.core.clock import current_timing, update_timing
from eksprivate.sandbox.families import installed
from eksprivate.sandbox.faults import FaultInjector, _rest_routes, fault_response, identify


def test_timing_scales_real_durations() -> None:
    timing = Timing()
    assert timing.scaled(timing.cluster_create) == pytest.approx(540 * 0.03)
    with pytest.raises(ValueError, match="time_scale"):
        Timing(time_scale=-1)


def test_update_timing_rejects_unknown_fields() -> None:
    before = current_timing()
    with pytest.raises(ValueError, match="unknown timing field"):
        update_timing(warp_speed=1)
    assert current_timing() == before


def test_install_is_idempotent_and_reversible() -> None:
    from moto.ec2.models import EC2Backend
    from moto.eks.models import Cluster, EKSBackend

    was_installed = installed()
    uninstall()
    moto_own = (EKSBackend.create_cluster, EC2Backend.delete_subnet)
    try:
        install()
        patched = (EKSBackend.create_cluster, EC2Backend.delete_subnet)
        assert patched != moto_own
        install()
        assert (EKSBackend.create_cluster, EC2Backend.delete_subnet) == patched
        assert isinstance(vars(Cluster)["status"], property)

        uninstall()
        assert (EKSBackend.create_cluster, EC2Backend.delete_subnet) == moto_own
        assert "status" not in vars(Cluster)
        assert "delete_subnet" not in vars(EC2Backend)  # inherited from a mixin again
    finally:
        if was_installed:  # the package's sandbox server relies on it
            install()


def test_fault_config_validation() -> None:
    with pytest.raises(ValueError):
        FaultConfig(throttle_rate=1.5)
    with pytest.raises(ValueError):
        FaultConfig(throttle_rate=0.6, unavailable_rate=0.6)


def test_faults_are_reproducible_with_a_seed() -> None:
    def draws(seed: int) -> list[Any]:
        injector = FaultInjector(FaultConfig(throttle_rate=0.2, unavailable_rate=0.2, seed=seed))
        return [injector.draw() for _ in range(50)]

    assert draws(1) == draws(1)
    assert set(draws(1)) == {None, "throttle", "unavailable"}


def _environ(method: str, path: str, service: str, **extra: Any) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "RAW_URI": path,
        "HTTP_AUTHORIZATION": (
            f"AWS4-HMAC-SHA256 Credential=testing/20250101/eu-central-1/{service}/aws4_request, "
            "SignedHeaders=host, Signature=0"
        ),
        "wsgi.input": io.BytesIO(b""),
        **extra,
    }


def test_identify_each_protocol() -> None:
    body = b"Action=DescribeVpcs&Version=2016-11-15"
    query = _environ(
        "POST",
        "/",
        "ec2",
        CONTENT_TYPE="application/x-www-form-urlencoded; charset=utf-8",
        CONTENT_LENGTH=str(len(body)),
        **{"wsgi.input": io.BytesIO(body)},
    )
    info = identify(query)
    assert (info.service, info.operation, info.protocol) == ("ec2", "DescribeVpcs", "ec2")
    assert query["wsgi.input"].read() == body  # still there for moto

    json_request = _environ("POST", "/", "kms", HTTP_X_AMZ_TARGET="TrentService.ListKeys")
    assert identify(json_request).operation == "ListKeys"

    arn = "arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fops%2Fadmin"
    cases = {
        ("GET", "/clusters"): "ListClusters",
        ("POST", "/clusters"): "CreateCluster",
        ("GET", "/clusters/c1"): "DescribeCluster",
        ("DELETE", "/clusters/c1/node-groups/ng"): "DeleteNodegroup",
        ("POST", "/clusters/c1/access-entries"): "CreateAccessEntry",
        ("GET", f"/clusters/c1/access-entries/{arn}"): "DescribeAccessEntry",
        ("POST", f"/clusters/c1/access-entries/{arn}/access-policies"): "AssociateAccessPolicy",
    }
    for (method, path), operation in cases.items():
        info = identify(_environ(method, path, "eks"))
        assert (info.operation, info.protocol) == (operation, "rest-json"), path


def test_s3_calls_are_named_after_a_client_in_this_process_used_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's S3 client strips `/{Bucket}` from an operation's requestUri in its loader's model the first
    time it calls it. With one loader shared by every session in the process (as eksprivate and the test
    suite share it), a route table read after that named CreateBucket and HeadBucket "PUT /b" / "HEAD /b",
    so they counted as mutating and an enforced operator policy refused them."""
    import botocore.loaders
    import botocore.session
    from botocore.stub import Stubber

    shared = botocore.loaders.create_loader()
    monkeypatch.setattr(botocore.session, "create_loader", lambda *_: shared)
    s3 = botocore.session.get_session().create_client(
        "s3", region_name="eu-central-1", aws_access_key_id="k", aws_secret_access_key="s")
    with Stubber(s3) as stub:
        stub.add_response("head_bucket", {})
        stub.add_response("create_bucket", {})
        s3.head_bucket(Bucket="b")
        s3.create_bucket(Bucket="b", CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
    shared_model = botocore.session.get_session().get_service_model("s3")
    assert shared_model.operation_model("HeadBucket").http["requestUri"] == ""  # the mutation this is about

    _rest_routes.cache_clear()  # read the routes now, after the client's calls
    monkeypatch.setattr(botocore.session, "create_loader", lambda *_: shared)
    assert identify(_environ("HEAD", "/b", "s3")).operation == "HeadBucket"
    assert identify(_environ("PUT", "/b", "s3")).operation == "CreateBucket"
    assert identify(_environ("PUT", "/b/state.json", "s3")).operation == "PutObject"


def test_fault_responses_carry_the_protocols_error_code() -> None:
    status, headers, body = fault_response("throttle", "rest-json")
    assert status == 429
    assert ("x-amzn-ErrorType", "ThrottlingException") in headers
    status, _, body = fault_response("unavailable", "ec2")
    assert status == 503
    assert b"<Code>Unavailable</Code>" in body
