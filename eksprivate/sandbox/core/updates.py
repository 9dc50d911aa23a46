"""EKS's asynchronous updates, shared by the families that start them (eks_updates: cluster and node group
configuration; eks_addons: UpdateAddon; eks_upgrades: Kubernetes versions) and the settings that steer them.

An update is kept on the moto object it changes (a cluster, a node group, an add-on); its status follows the
sandbox clock: InProgress for its (scaled) duration, then Successful, or Failed when `fail_next_update` named
its cluster. Its change becomes visible once, when it is first read as finished (`settle`). One update at a
time per resource, and none while it is created or deleted (`refuse_while_busy`); the same
`clientRequestToken` answers the update it started (`by_token`).

Settings (through `SandboxServer.configure(...)` or `POST /_sandbox/config`), each naming one cluster so that
concurrent tests never see each other's:

* `fail_next_update = "<cluster>"`: the next update of that cluster or one of its node groups or add-ons ends
  Failed with an error detail (once).
* `degraded_nodegroups = "<cluster>"`: that cluster's ACTIVE node groups read DEGRADED with a health issue
  (eks_updates; until set back to null).
* `error_insights = "<cluster>"`: that cluster's upgrade insight for removed APIs reads ERROR (eks_upgrades).
* `newer_ami_release = "<minor>"`: a newer AMI release is published for that Kubernetes minor (eks_upgrades).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eksprivate.sandbox.core.clock import Timing, current_timing, now

# ---------------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class UpdateSettings:
    fail_next_update: str | None = None
    degraded_nodegroups: str | None = None
    # eks_upgrades: that cluster's upgrade insight for removed APIs reads ERROR (until set back to null).
    error_insights: str | None = None
    # eks_upgrades: a newer AMI release is published for this Kubernetes minor ("1.31"; a version, not a cluster).
    newer_ami_release: str | None = None

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{item.name} must be a cluster name or null, not {value!r}")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


UPDATE_FIELDS: frozenset[str] = frozenset(f.name for f in dataclasses.fields(UpdateSettings))

_settings = UpdateSettings()
# Held by every family while it reads or starts an update: requests run on moto's server threads.
lock = threading.RLock()


def current_settings() -> UpdateSettings:
    return _settings


def validate(**changes: Any) -> UpdateSettings:
    """The settings with `changes` applied, validated, not yet in force."""
    unknown = set(changes) - UPDATE_FIELDS
    if unknown:
        raise ValueError(f"unknown update setting(s): {', '.join(sorted(unknown))}")
    return dataclasses.replace(_settings, **changes)


def configure(**changes: Any) -> UpdateSettings:
    global _settings
    with lock:
        _settings = validate(**changes)
        return _settings


def _take_failure(cluster_name: str) -> bool:
    """Whether this update is the one told to fail (and forget the order: it fails once)."""
    global _settings
    with lock:
        if _settings.fail_next_update != cluster_name:
            return False
        _settings = dataclasses.replace(_settings, fail_next_update=None)
        return True


# An error detail of the kind EKS gives a failed update (ErrorDetail in the EKS model; the code is one of
# its ErrorCode enum).
INJECTED_ERROR = {
    "errorCode": "OperationNotPermitted",
    "errorMessage": "The cluster's service role does not allow this change (failure injected by the sandbox)",
}

# ---------------------------------------------------------------------------------------------------
# Updates


@dataclass
class Update:
    """One asynchronous update of a cluster, node group or add-on. Its status follows the (scaled) clock."""

    id: str
    type: str
    params: list[dict[str, str]]
    seconds: Callable[[Timing], float]
    apply: Callable[[], None] | None  # the change, made once the update succeeds
    token: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    created_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    started: float = field(default_factory=now)
    settled: bool = False

    def status(self) -> str:
        timing = current_timing()
        if now() - self.started < timing.scaled(self.seconds(timing)):
            return "InProgress"
        return "Failed" if self.errors else "Successful"

    def settle(self) -> None:
        """Make a finished update's change visible, once."""
        if self.settled or self.status() == "InProgress":
            return
        self.settled = True
        if not self.errors and self.apply is not None:
            self.apply()

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status(), "type": self.type, "params": self.params,
                "createdAt": self.created_at, "errors": self.errors}


_UPDATES = "_sandbox_updates"


def updates_of(resource: Any) -> dict[str, Update]:
    found: dict[str, Update] = vars(resource).setdefault(_UPDATES, {})
    return found


def settle(resource: Any) -> None:
    with lock:
        for update in list(updates_of(resource).values()):
            update.settle()


def running(resource: Any) -> Update | None:
    return next((u for u in updates_of(resource).values() if u.status() == "InProgress"), None)


def by_token(resource: Any, token: str | None) -> Update | None:
    """The update a request with this `clientRequestToken` started (a retried request), if any."""
    if not token:
        return None
    return next((u for u in updates_of(resource).values() if u.token == token), None)


def start(resource: Any, cluster_name: str, update_type: str, params: list[dict[str, str]],
          seconds: Callable[[Timing], float], apply: Callable[[], None], token: str | None) -> Update:
    fail = _take_failure(cluster_name)
    update = Update(id=str(uuid.uuid4()), type=update_type, params=params, seconds=seconds,
                    apply=None if fail else apply, token=token,
                    errors=[{**INJECTED_ERROR, "resourceIds": [cluster_name]}] if fail else [])
    updates_of(resource)[update.id] = update
    return update


def described(resource: Any, cluster_name: str, update_id: str) -> dict[str, Any]:
    """DescribeUpdate's `update` for an update of `resource` (settled first); ResourceNotFoundException when it
    has none by that id."""
    with lock:
        update = updates_of(resource).get(update_id)
        if update is None:
            raise not_found(cluster_name, f"No update found for ID: {update_id}")
        update.settle()
        return update.as_dict()


# ---------------------------------------------------------------------------------------------------
# Errors EKS answers updates with


def in_use(cluster_name: str, nodegroup_name: str | None, message: str) -> Exception:
    from moto.eks.exceptions import ResourceInUseException

    return ResourceInUseException(clusterName=cluster_name, nodegroupName=nodegroup_name, addonName=None,
                                  message=message)


def not_found(cluster_name: str, message: str) -> Exception:
    from moto.eks.exceptions import ResourceNotFoundException

    return ResourceNotFoundException(clusterName=cluster_name, nodegroupName=None, fargateProfileName=None,
                                     addonName=None, message=message)


def refuse_while_busy(resource: Any, what: str, update_type: str, cluster_name: str,
                      nodegroup_name: str | None = None) -> None:
    """EKS runs one update at a time per resource, and none while it is created or deleted."""
    busy = running(resource)
    if busy is not None:
        raise in_use(cluster_name, nodegroup_name,
                     f"Cannot {update_type} because {what} currently has update {busy.id} in progress")
    if resource.status not in ("ACTIVE", "DEGRADED"):
        raise in_use(cluster_name, nodegroup_name, f"Cannot {update_type} because {what} is {resource.status}")
