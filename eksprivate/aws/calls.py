"""Call accounting and what the calls show: every API call counted once (`CallLog`, retries not twice), and the
live statuses of clusters, node groups and endpoints that any Describe answer carries, told to listeners."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

READ_PREFIXES = ("Describe", "List", "Get", "Head")  # S3 HeadBucket/HeadObject read too


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


class StatusWatch:
    """Listeners of the statuses botocore's answers carry (`after-call` of DescribeCluster, DescribeNodegroup,
    DescribeVpcEndpoints): the live table shows the real phases while a waiter polls."""

    EVENTS = ("after-call.eks.DescribeCluster", "after-call.eks.DescribeNodegroup",
              "after-call.ec2.DescribeVpcEndpoints")

    def __init__(self) -> None:
        self._listeners: list[StatusListener] = []

    def add(self, listener: StatusListener) -> None:
        self._listeners.append(listener)

    def remove(self, listener: StatusListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def saw(self, parsed: Any = None, model: Any = None, **_: Any) -> None:
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
