"""Sessions: one `Aws` per account and region, whose clients are made once and shared by every thread; botocore's
bundled data (regions, partitions) read once per process; the profile's region."""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Callable
from typing import Any

import boto3
import botocore.exceptions as bx

from eksprivate.aws.calls import CallLog, StatusListener, StatusWatch
from eksprivate.aws.errors import Client, translate
from eksprivate.aws.retries import RETRY_CONFIG
from eksprivate.aws.waiting import wait_for, wait_for_update
from eksprivate.errors import UsageError


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
        self.statuses = StatusWatch()
        events = self.session._session.get_component("event_emitter")
        events.register("before-call", self._count)
        for event in StatusWatch.EVENTS:
            events.register(event, self.statuses.saw)

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

    # -- waiting (waiting.py) --------------------------------------------------------------------
    def wait(self, service: str, waiter_name: str, *, delay: float, timeout: float, what: str,
             expected: str | None = None, seen_now: bool = False, **kwargs: Any) -> None:
        """Wait with a boto3 waiter (or one of ours) until it succeeds, fails, or `timeout` passes (`wait_for`)."""
        wait_for(self.client(service), waiter_name, delay=delay, timeout=timeout, what=what, expected=expected,
                 seen_now=seen_now, **kwargs)

    def wait_update(self, cluster: str, update_id: str, *, nodegroup: str | None = None, addon: str | None = None,
                    delay: float, timeout: float, what: str, expected: str | None = None,
                    progress: Callable[[str, float], None] | None = None) -> dict[str, Any]:
        """Poll EKS DescribeUpdate until the update leaves InProgress (`wait_for_update`)."""
        return wait_for_update(self.eks, cluster, update_id, nodegroup=nodegroup, addon=addon, delay=delay,
                               timeout=timeout, what=what, expected=expected, progress=progress)

    # -- observation (calls.py) ------------------------------------------------------------------
    def on_status(self, listener: StatusListener) -> None:
        self.statuses.add(listener)

    def off_status(self, listener: StatusListener) -> None:
        """Stop telling `listener` (an engine done with a long-lived `Aws`, as the tests share one)."""
        self.statuses.remove(listener)

    def _count(self, model: Any = None, **_: Any) -> None:
        if model is not None:
            self.log.add(model.service_model.endpoint_prefix, model.name)


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


def _partition_of(region: str) -> dict[str, Any] | None:
    """botocore's partition `region` belongs to (listed in it, or matching its region pattern)."""
    for part in _partitions():
        if region in part.get("regions", {}) or re.match(str(part.get("regionRegex", "^$")), region):
            return part
    return None


def same_partition(region: str, names: list[str]) -> list[str]:
    """The `names` in the partition of `region` (a DescribeRegions answer may list others: moto lists every
    partition's; a suggestion must never send an aws caller to aws-cn)."""
    part = _partition_of(region) or _partition_of(home_region(region))  # no pattern matches: as asked, aws
    if part is None:
        return names
    return [n for n in names if _partition_of(n) is part]


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


def partition_of_region(region: str) -> str:
    """The partition a region belongs to by botocore's partition data (its region list, then its pattern)."""
    for part in _partitions():
        if region in part.get("regions", {}) or re.match(str(part.get("regionRegex", "^$")), region):
            return str(part.get("id", "aws"))
    return "aws"


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




def profile_region(profile: str | None) -> str | None:
    """The region the profile (or the default chain) names, if any."""
    try:
        return boto3.session.Session(profile_name=profile).region_name  # type: ignore[no-any-return]
    except bx.ProfileNotFound as exc:
        raise UsageError(str(exc), "list profiles with `aws configure list-profiles`") from None
