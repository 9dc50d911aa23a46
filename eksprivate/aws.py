"""The AWS boundary: sessions, retry policy, waiters, call accounting and error translation.

This is the only module that imports boto3/botocore. Everything above it sees `AwsApiError` (with the
AWS error code) and the project's other errors, never botocore's exceptions.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import boto3
import botocore.exceptions as bx
from botocore.config import Config
from botocore.waiter import WaiterModel, create_waiter_with_client

from eksprivate.errors import (
    AccessDenied,
    AlreadyExists,
    AwsApiError,
    ConditionalConflict,
    DependencyViolation,
    EksPrivateError,
    InUse,
    InvalidParameter,
    InvalidState,
    NotFound,
    PreconditionFailed,
    ResourceFailed,
    StillPropagating,
    UsageError,
    WaitTimeout,
)
from eksprivate.propagation import is_propagating

# Standard mode retries throttling and 5xx on every call, waiter polls included (aws-facts).
RETRY_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 10},
    max_pool_connections=32,
    connect_timeout=10,
    read_timeout=60,
)

POLL_ENV = "EKSPRIVATE_POLL_INTERVAL"
READ_PREFIXES = ("Describe", "List", "Get", "Head")  # S3 HeadBucket/HeadObject read too

# Error codes that mean "a service quota was hit", so we can say which.
QUOTA_CODES = {
    "VpcLimitExceeded",
    "SubnetLimitExceeded",
    "RouteTableLimitExceeded",
    "SecurityGroupLimitExceeded",
    "VpcEndpointLimitExceeded",
    "AddressLimitExceeded",
    "ResourceLimitExceededException",
    "LimitExceeded",
    "LimitExceededException",
    "ServiceQuotaExceededException",
}
# The Service Quotas entry behind an EC2 limit code, so the message can say which quota to raise
# (EKS, IAM and KMS name the quota in their error message already).
QUOTA_NAMES = {
    "VpcLimitExceeded": "VPCs per Region (vpc L-F678F1CE)",
    "SubnetLimitExceeded": "Subnets per VPC (vpc L-407747CB)",
    "RouteTableLimitExceeded": "Route tables per VPC (vpc L-589F43AA)",
    "SecurityGroupLimitExceeded": "VPC security groups per Region (vpc L-E79EC296)",
    "VpcEndpointLimitExceeded": "Interface VPC endpoints per VPC (vpc L-29B6F2EB)",
    "NetworkInterfaceLimitExceeded": "Network interfaces per Region (vpc L-DF5E4CA3)",
}
DENIED_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess"}
EXPIRED_CODES = {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}
BAD_CREDENTIAL_CODES = {"InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch",
                        "AuthFailure", "InvalidAccessKeyId"}


def poll_interval(default: float) -> float:
    """Seconds between status polls: `EKSPRIVATE_POLL_INTERVAL` overrides the real-AWS default."""
    raw = os.environ.get(POLL_ENV)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{POLL_ENV}={raw!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"{POLL_ENV}={raw!r} must be zero or a positive number of seconds")
    return value


# The pace a status wait runs at on real AWS (target.REAL_POLL_SECONDS); a smaller poll (the sandbox, tests)
# scales the expected durations below by the same factor.
REAL_POLL_SECONDS = 15.0
NEAR_END_FACTOR = 5  # near a phase's expected end poll 5x as often: 3 s on real AWS, lag <= 3 s (not 15 s)

# Real-world durations (seconds: typical low, high) of the waits on the critical path, from aws-facts and the
# sandbox's Timing: `up` polls at its usual pace until `low`, then fast until a little past `high`.
EXPECTED: dict[str, tuple[float, float]] = {
    "cluster_create": (480.0, 720.0),  # 8.5-9 min typical, 11-16 min tail (aws-facts)
    "nodegroup_create": (90.0, 330.0),  # 1.5-3.5 min typical, 5.5 min tail
    "cluster_delete": (150.0, 300.0),  # 2.5-4 min
    "nodegroup_delete": (240.0, 480.0),  # 4-8 min
    "cluster_version_update": (480.0, 660.0),  # 8-10 min (issue 12)
    "nodegroup_version_update": (300.0, 900.0),  # 5-15 min: depends on the node count and max unavailable
    "addon": (20.0, 90.0),  # about a minute (no published figure)
}


def paced(delay: float, timeout: float, expected: tuple[float, float] | None) -> list[tuple[float, float]]:
    """(pause, span) phases for a wait of at most `timeout`: `delay` until the phase's expected end draws near,
    `delay / NEAR_END_FACTOR` from its expected low to a little past its high, `delay` again after (a long
    tail is not polled fast for ever). `expected` is in the same (scaled) seconds as `delay`. At 3 s a poll,
    one Describe call per resource is far inside EKS's and EC2's request rate limits."""
    if not expected or delay <= 0:
        return [(delay, timeout)]
    low, high = expected
    fast = delay / NEAR_END_FACTOR
    slow_span = max(0.0, low - delay)  # the last slow pause ends before `low`
    fast_span = max(0.0, high - slow_span + 2 * delay)
    phases = [(delay, slow_span)] if slow_span >= delay else []
    phases.append((fast, min(fast_span, max(timeout - slow_span, fast))))
    rest = timeout - slow_span - fast_span
    if rest > 0:
        phases.append((delay, rest))
    return phases


def expected_for(kind: str, delay: float) -> tuple[float, float] | None:
    """EXPECTED[kind] scaled to the poll in use (a sandbox at time scale s polls at 15 s x s)."""
    if kind not in EXPECTED or delay <= 0:
        return None
    scale = delay / REAL_POLL_SECONDS
    low, high = EXPECTED[kind]
    return low * scale, high * scale


def _pause_at(phases: list[tuple[float, float]], elapsed: float) -> float:
    """The pause of the phase `elapsed` seconds into a paced wait."""
    for pause, span in phases:
        if elapsed < span:
            return pause
        elapsed -= span
    return phases[-1][0]


def is_mutating(operation: str) -> bool:
    return not operation.startswith(READ_PREFIXES)


@dataclass
class CallLog:
    """Counts every API call made (once per logical call, retries not counted twice)."""

    calls: list[tuple[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, service: str, operation: str) -> None:
        with self._lock:
            self.calls.append((service, operation))

    @property
    def total(self) -> int:
        return len(self.calls)

    @property
    def mutating(self) -> list[tuple[str, str]]:
        return [c for c in self.calls if is_mutating(c[1])]

    def summary(self) -> dict[str, int]:
        return dict(Counter(f"{s}:{o}" for s, o in self.calls))


StatusListener = Callable[[str, str, str], None]  # (kind, resource name, status)


ALREADY_EXISTS_CODES = {"EntityAlreadyExists", "ResourceAlreadyExistsException", "AlreadyExistsException",
                        "RepositoryAlreadyExistsException", "InvalidLaunchTemplateName.AlreadyExistsException",
                        "PullThroughCacheRuleAlreadyExistsException"}
INVALID_PARAMETER_CODES = {"InvalidParameterException", "InvalidParameter", "InvalidParameterValue",
                           "InvalidParameterCombination", "InvalidRequestException", "ValidationError",
                           "MalformedPolicyDocument", "InvalidLaunchTemplateId.Malformed",
                           "InvalidLaunchTemplateName.MalformedException"}
INVALID_STATE_CODES = {"KMSInvalidStateException", "IncorrectState", "InvalidStateException"}


def is_not_found(code: str) -> bool:
    """Every service spells "no such resource" its own way (InvalidVpcID.NotFound, NoSuchEntity, ...)."""
    return code.endswith(("NotFound", "NotFoundException", ".NotFound", "NotFoundFault")) or code in {
        "NoSuchEntity", "ResourceNotFoundException", "InvalidServiceName", "InvalidVpcID.NotFound",
        "LoadBalancerNotFound",
        "InvalidLaunchTemplateName.NotFoundException", "InvalidLaunchTemplateId.NotFound",
        "NoSuchBucket", "NoSuchKey", "404"}  # S3; HEAD requests have no body, so only the status: "404"


def error_class(code: str) -> type[AwsApiError]:
    """The typed error for an AWS error code (AwsApiError itself when none fits)."""
    if is_not_found(code):
        return NotFound
    if code in ALREADY_EXISTS_CODES or code.endswith("AlreadyExists"):
        return AlreadyExists
    # EKS's ResourceInUseException; ELBv2's ResourceInUse (a target group a listener uses); EC2's
    # InvalidNetworkInterface.InUse, VolumeInUse; EFS's FileSystemInUse (mount targets left).
    if code in ("ResourceInUseException", "ResourceInUse", "VolumeInUse", "FileSystemInUse") or code.endswith(".InUse"):
        return InUse
    if code == "DependencyViolation":
        return DependencyViolation
    if code in DENIED_CODES or code == "403":  # "403": S3's HEAD requests answer with the status only
        return AccessDenied
    if code == "PreconditionFailed":
        return PreconditionFailed
    if code == "ConditionalRequestConflict":
        return ConditionalConflict
    if code in INVALID_STATE_CODES:
        return InvalidState
    if code in INVALID_PARAMETER_CODES:
        return InvalidParameter
    return AwsApiError


def typed_error(service: str, operation: str, code: str, message: str, hint: str | None = None, *,
                in_body: bool = False) -> AwsApiError:
    """The typed error for an AWS refusal, also for one reported in a response body (`in_body`: EC2's
    `Unsuccessful` items, judged by message alone): a refusal `propagation` lists for this call is
    `StillPropagating`, so callers can retry it."""
    cls = error_class(code)
    if (issubclass(cls, InvalidParameter) or in_body) and is_propagating(service, operation, code, message,
                                                                         any_code=in_body):
        cls = StillPropagating
    return cls(service, operation, code, message, hint)


def translate(exc: Exception, service: str = "", operation: str = "") -> EksPrivateError:
    """Turn a botocore exception into the project's error with a hint a human can act on."""
    if isinstance(exc, EksPrivateError):
        return exc
    if isinstance(exc, bx.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", "Unknown"))
        message = one_line(str(err.get("Message", "")) or str(exc))
        op = operation or exc.operation_name
        hint: str | None = None
        if code in DENIED_CODES:
            hint = (f"the caller is not allowed to call {service}:{op}; "
                    "grant it (README lists every permission eksprivate needs)")
        elif code in EXPIRED_CODES:
            hint = "your AWS credentials have expired; refresh them (e.g. `aws sso login`) and rerun"
        elif code in BAD_CREDENTIAL_CODES:
            hint = "the AWS credentials are not valid for this account/region; check your profile"
        elif code in QUOTA_CODES or code in QUOTA_NAMES:
            quota = f"the {service} quota {QUOTA_NAMES[code]}" if code in QUOTA_NAMES else f"a {service} quota"
            hint = f"{quota} is used up; raise it in Service Quotas or free some, then rerun"
        elif code == "UnsupportedAvailabilityZoneException":  # a zone EKS refuses that eksprivate.zones lacks
            hint = ("the AZs of a cluster cannot change: `eksprivate down`, then `up` with availability_zones "
                    "set to zones EKS lists as valid (and please report the zone ID)")
        return typed_error(service, op, code, message, hint)
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return UsageError("no AWS credentials found",
                          "set --profile or AWS_PROFILE, run `aws sso login`, or try --sandbox")
    if isinstance(exc, bx.ProfileNotFound):
        return UsageError(str(exc), "list profiles with `aws configure list-profiles`")
    if isinstance(exc, bx.NoRegionError):
        return UsageError("no AWS region given", "pass --region, set AWS_REGION, or set one in the profile")
    if isinstance(exc, bx.SSOError | bx.TokenRetrievalError | bx.UnauthorizedSSOTokenError
                  | bx.SSOTokenLoadError):
        return UsageError(f"AWS SSO login needed: {exc}", "run `aws sso login` and rerun")
    if isinstance(exc, bx.EndpointConnectionError | bx.ConnectTimeoutError | bx.ReadTimeoutError):
        return EksPrivateError(f"cannot reach AWS: {exc}", "check the network (or the sandbox) and rerun")
    if isinstance(exc, bx.ParamValidationError):
        return UsageError(f"invalid request to {service} {operation}: {exc}")
    if isinstance(exc, bx.BotoCoreError):
        return EksPrivateError(f"AWS SDK error in {service} {operation}: {exc}")
    raise exc


class Client:
    """A boto3 client whose calls raise the project's errors instead of botocore's."""

    def __init__(self, service: str, raw: Any) -> None:
        self.service = service
        self.raw = raw

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.raw, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except (bx.ClientError, bx.BotoCoreError) as exc:
                raise translate(exc, self.service, _op_name(name)) from exc

        return call

    def paginate(self, operation: str, key: str, **kwargs: Any) -> Iterator[Any]:
        """Yield every item under `key` across all pages."""
        try:
            for page in self.raw.get_paginator(operation).paginate(**kwargs):
                yield from page.get(key, [])
        except (bx.ClientError, bx.BotoCoreError) as exc:
            raise translate(exc, self.service, _op_name(operation)) from exc


def one_line(text: str, limit: int = 300) -> str:
    """AWS (and proxies in front of it) sometimes answer with HTML or multi-line text."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _op_name(method: str) -> str:
    return "".join(part.capitalize() for part in method.split("_"))


def _custom_waiters(service: str) -> WaiterModel:
    text = resources.files("eksprivate").joinpath(f"waiters/{service}.json").read_text()
    return WaiterModel(json.loads(text))


class Aws:
    """One account+region: clients are made once (sessions are not thread-safe, clients are)."""

    def __init__(
        self,
        region: str,
        profile: str | None = None,
        endpoint_url: str | None = None,
        credentials: dict[str, str] | None = None,
    ) -> None:
        try:
            self.session = _share_loader(boto3.session.Session(
                profile_name=profile, region_name=region, **(credentials or {})))
        except bx.BotoCoreError as exc:
            raise translate(exc) from exc
        self.region = region
        self.profile = profile
        self.endpoint_url = endpoint_url
        self.log = CallLog()
        self._clients: dict[str, Client] = {}
        self._lock = threading.Lock()
        self._listeners: list[StatusListener] = []
        events = self.session._session.get_component("event_emitter")
        events.register("before-call", self._count)
        events.register("after-call.eks.DescribeCluster", self._saw_status)
        events.register("after-call.eks.DescribeNodegroup", self._saw_status)
        events.register("after-call.ec2.DescribeVpcEndpoints", self._saw_status)

    # -- clients -------------------------------------------------------------------------------
    def client(self, service: str) -> Client:
        return self._made(service, self.region)

    def regional_client(self, service: str, region: str) -> Client:
        """A client for an API that answers in other regions only (the Price List: us-east-1, eu-central-1,
        ap-south-1), made once like the others."""
        return self._made(service, region)

    def _made(self, service: str, region: str) -> Client:
        key = service if region == self.region else f"{service}@{region}"
        with self._lock:
            if key not in self._clients:
                kwargs: dict[str, Any] = {"config": RETRY_CONFIG}
                if region != self.region:
                    kwargs["region_name"] = region
                if self.endpoint_url:
                    kwargs["endpoint_url"] = self.endpoint_url
                try:
                    raw = self.session.client(service, **kwargs)  # type: ignore[call-overload]
                except bx.BotoCoreError as exc:
                    raise translate(exc, service) from exc
                self._clients[key] = Client(service, raw)
            return self._clients[key]

    @property
    def ec2(self) -> Client:
        return self.client("ec2")

    @property
    def eks(self) -> Client:
        return self.client("eks")

    @property
    def iam(self) -> Client:
        return self.client("iam")

    @property
    def sts(self) -> Client:
        return self.client("sts")

    @property
    def kms(self) -> Client:
        return self.client("kms")

    @property
    def logs(self) -> Client:
        return self.client("logs")

    @property
    def ecr(self) -> Client:
        return self.client("ecr")

    def account_id(self) -> str:
        return str(self.sts.get_caller_identity()["Account"])

    def caller_arn(self) -> str:
        return str(self.sts.get_caller_identity()["Arn"])

    # -- waiting -------------------------------------------------------------------------------
    def wait(self, service: str, waiter_name: str, *, delay: float, timeout: float, what: str,
             expected: str | None = None, **kwargs: Any) -> None:
        """Wait with a boto3 waiter (or one of ours) until it succeeds, fails, or `timeout` passes. `expected`
        names the wait's EXPECTED duration: polled faster near its end (`paced`)."""
        client = self.client(service)
        try:
            if waiter_name in client.raw.waiter_names:
                waiter = client.raw.get_waiter(waiter_name)
            else:
                waiter = create_waiter_with_client(waiter_name, _custom_waiters(service), client.raw)
        except (ValueError, bx.WaiterConfigError) as exc:
            raise EksPrivateError(f"no waiter {waiter_name} for {service}: {exc}") from exc
        phases = paced(delay, timeout, expected_for(expected, delay) if expected else None)
        for number, (pause, span) in enumerate(phases, 1):
            try:
                self._wait_phase(waiter, pause, span, **kwargs)
                return
            except _PhaseOver:
                if number == len(phases):
                    raise WaitTimeout(f"{what} did not finish within {timeout / 60:.0f} min",
                                      "it may still finish: check the console, then rerun to resume") from None
            except bx.WaiterError as exc:
                self._waiter_failed(exc, service, waiter_name, what)
            except (bx.ClientError, bx.BotoCoreError) as exc:
                raise translate(exc, service, waiter_name) from exc

    @staticmethod
    def _wait_phase(waiter: Any, pause: float, span: float, **kwargs: Any) -> None:
        """One pace of a wait: a fixed pause, at least one attempt, enough of them to cover `span`."""
        attempts = max(1, math.ceil(span / pause)) if pause > 0 else 1_000_000
        try:
            waiter.wait(WaiterConfig={"Delay": pause, "MaxAttempts": attempts}, **kwargs)
        except bx.WaiterError as exc:
            reason = str(exc.kwargs.get("reason", "")) if hasattr(exc, "kwargs") else str(exc)
            if "Max attempts exceeded" in reason:
                raise _PhaseOver from exc
            raise

    @staticmethod
    def _waiter_failed(exc: Exception, service: str, waiter_name: str, what: str) -> None:
        """A waiter that ended on a failure state or an error: raise the project's error for it."""
        reason = str(getattr(exc, "kwargs", {}).get("reason", "")) if hasattr(exc, "kwargs") else str(exc)
        last = getattr(exc, "last_response", None) or {}
        if "Error" in last and last["Error"].get("Code"):
            err = last["Error"]
            raise AwsApiError(service, _op_name(waiter_name), str(err.get("Code")),
                              str(err.get("Message", ""))) from exc
        raise ResourceFailed(f"{what} failed: {_failure_detail(last) or reason}") from exc

    def wait_update(self, cluster: str, update_id: str, *, nodegroup: str | None = None, addon: str | None = None,
                    delay: float, timeout: float, what: str, expected: str | None = None) -> dict[str, Any]:
        """Poll EKS DescribeUpdate (botocore has no waiter for it) until the update leaves InProgress.

        Successful: returns the update. Failed or Cancelled: ResourceFailed naming the update id, its type
        and AWS's error details (the change was not made, though the cluster reads ACTIVE again). Still
        InProgress after `timeout`: WaitTimeout (a rerun waits on the same update)."""
        args: dict[str, Any] = {"name": cluster, "updateId": update_id}
        if nodegroup is not None:
            args["nodegroupName"] = nodegroup
        if addon is not None:  # an UpdateAddon's update
            args["addonName"] = addon
        start = time.monotonic()
        end = start + timeout
        phases = paced(delay, timeout, expected_for(expected, delay) if expected else None)
        while True:
            update: dict[str, Any] = self.eks.describe_update(**args)["update"]
            status = str(update.get("status", ""))
            if status == "Successful":
                return update
            if status in ("Failed", "Cancelled"):
                raise ResourceFailed(f"{what}: update {update_id} ({update.get('type', 'unknown type')}) "
                                     f"{status}: {update_errors(update)}",
                                     "the change was not made; fix what AWS names, then rerun to try again")
            pause = _pause_at(phases, time.monotonic() - start)
            if time.monotonic() + pause > end:  # InProgress (or a status this code does not know yet)
                raise WaitTimeout(f"{what}: update {update_id} did not finish within {timeout / 60:.0f} min",
                                  "it may still finish: rerun to wait on the same update")
            time.sleep(pause)

    # -- observation -----------------------------------------------------------------------------
    def on_status(self, listener: StatusListener) -> None:
        self._listeners.append(listener)

    def off_status(self, listener: StatusListener) -> None:
        """Stop telling `listener` (an engine done with a long-lived `Aws`, as the tests share one)."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _count(self, model: Any = None, **_: Any) -> None:
        if model is not None:
            self.log.add(model.service_model.endpoint_prefix, model.name)

    def _saw_status(self, parsed: Any = None, model: Any = None, **_: Any) -> None:
        if not self._listeners or not isinstance(parsed, dict):
            return
        seen: list[tuple[str, str, str]] = []
        if "cluster" in parsed:
            seen.append(("cluster", parsed["cluster"].get("name", ""), parsed["cluster"].get("status", "")))
        if "nodegroup" in parsed:
            ng = parsed["nodegroup"]
            seen.append(("nodegroup", ng.get("nodegroupName", ""), ng.get("status", "")))
        for ep in parsed.get("VpcEndpoints", []) or []:
            seen.append(("endpoint", ep.get("VpcEndpointId", ""), ep.get("State", "")))
        for item in seen:
            for listener in self._listeners:
                listener(*item)


class _PhaseOver(Exception):
    """One pace of a paced wait ran out of attempts: the next pace takes over."""


def update_errors(update: dict[str, Any]) -> str:
    """EKS's ErrorDetail list of a failed update, as one line (or the cancellation reason)."""
    parts = []
    for err in update.get("errors") or []:
        ids = ", ".join(err.get("resourceIds") or [])
        parts.append(f"{err.get('errorCode', 'Unknown')}: {one_line(str(err.get('errorMessage', '')))}"
                     + (f" ({ids})" if ids else ""))
    reason = (update.get("cancellation") or {}).get("reason")
    if reason:
        parts.append(f"cancelled: {one_line(str(reason))}")
    return "; ".join(parts) or "AWS gave no error details"


def _failure_detail(response: dict[str, Any]) -> str:
    """Pull the useful part out of a failed resource (EKS health issues, endpoint state)."""
    for key in ("cluster", "nodegroup", "addon"):
        res = response.get(key)
        if isinstance(res, dict):
            issues = res.get("health", {}).get("issues", [])
            text = "; ".join(f"{i.get('code')}: {i.get('message')}" for i in issues)
            return f"status {res.get('status')}" + (f" ({text})" if text else "")
    eps = response.get("VpcEndpoints")
    if isinstance(eps, list):
        return ", ".join(f"{e.get('VpcEndpointId')} {e.get('State')}" for e in eps)
    return ""


def known_regions() -> list[str]:
    """Regions where EKS exists in any partition, from botocore's bundled endpoint data (no network call)."""
    return list(_known_regions(os.environ.get("AWS_DATA_PATH")))


def _partitions() -> tuple[dict[str, Any], ...]:
    """botocore's partition data (partitions.json: id, regionRegex, dnsSuffix, implicitGlobalRegion)."""
    return _partition_data(os.environ.get("AWS_DATA_PATH"))


# Both read botocore's bundled data, fixed for a given data path: made once per process, not once per
# question (each built a botocore session, ~10 ms, and `up` asks several times).
@functools.lru_cache(maxsize=4)
def _known_regions(data_path: str | None) -> tuple[str, ...]:
    session = _share_loader(boto3.session.Session())
    return tuple(sorted({r for p in session.get_available_partitions()
                         for r in session.get_available_regions("eks", p)}))


@functools.lru_cache(maxsize=4)
def _partition_data(data_path: str | None) -> tuple[dict[str, Any], ...]:
    core = _share_loader(boto3.session.Session())._session
    data: dict[str, Any] = core.get_component("data_loader").load_data("partitions")
    return tuple(data.get("partitions", []))


def partition_dns_suffix(name: str) -> str:
    """The DNS suffix of partition `name` (amazonaws.com, amazonaws.com.cn, ...); amazonaws.com when
    botocore does not know the partition."""
    for part in _partitions():
        if part.get("id") == name:
            return str(part.get("outputs", {}).get("dnsSuffix", "amazonaws.com"))
    return "amazonaws.com"


def home_region(region: str) -> str:
    """A region of `region`'s partition that botocore knows and every account has enabled (the
    partition's implicit global region: us-east-1, cn-northwest-1, us-gov-west-1, ...), matched by the
    partition's region pattern. For asking AWS about a region botocore does not know yet."""
    fallback = "us-east-1"
    for part in _partitions():
        outputs = part.get("outputs", {})
        if part.get("id") == "aws":
            fallback = str(outputs.get("implicitGlobalRegion", fallback))
        if region in part.get("regions", {}) or re.match(str(part.get("regionRegex", "^$")), region):
            return str(outputs.get("implicitGlobalRegion", fallback))
    return fallback


_loaders: dict[str, Any] = {}
_loaders_lock = threading.Lock()


def _share_loader(session: boto3.session.Session) -> boto3.session.Session:
    """Give the session the process's botocore data loader (one per AWS_DATA_PATH). The loader caches
    the parsed service models, megabytes of JSON: without this every command run in one process (tests,
    the sandbox's clients) parses them again, ~0.5 s a command."""
    core = session._session
    key = str(core.get_config_variable("data_path"))
    with _loaders_lock:
        loader = _loaders.setdefault(key, core.get_component("data_loader"))
    core.register_component("data_loader", loader)
    return session


def retry_transient(
    call: Callable[[], Any],
    errors: type[AwsApiError] | tuple[type[AwsApiError], ...],
    *,
    timeout: float,
    delay: float,
    message_contains: tuple[str, ...] = (),
    backoff: float = 1.5,
) -> Any:
    """Retry `call` while it fails with one of the typed `errors` (and a matching message), up to `timeout` s.

    For the errors botocore never retries but real AWS makes transient: DependencyViolation during
    teardown, InvalidParameterException while a new IAM role propagates. Pauses start at `delay` and
    grow by `backoff` (1.0: a fixed pace) up to 4 x `delay` (at most 15 s).
    """
    end = time.monotonic() + timeout
    pause = max(delay, 0.01)
    while True:
        try:
            return call()
        except errors as exc:
            transient = not message_contains or any(m in exc.aws_message for m in message_contains)
            if not transient or time.monotonic() + pause > end:
                raise
            time.sleep(pause)
            pause = min(pause * backoff, max(delay, 0.01) * 4, 15.0)
