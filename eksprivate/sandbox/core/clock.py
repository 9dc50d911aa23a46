"""Real-world durations (`Timing`), the time scale, and the clock every lifecycle in the sandbox is read from.

States are computed lazily from a monotonic clock whenever a resource is read, against the *current*
`Timing`, so changing the time scale at runtime also speeds up resources already in flight.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

# ---------------------------------------------------------------------------------------------------
# Timing


@dataclass(frozen=True)
class Timing:
    """Real-world durations in seconds (public measurements); each is multiplied by `time_scale`."""

    cluster_create: float = 540.0
    cluster_delete: float = 240.0
    nodegroup_create: float = 180.0
    nodegroup_delete: float = 240.0
    interface_endpoint_create: float = 90.0
    interface_endpoint_delete: float = 60.0
    gateway_endpoint: float = 2.0
    # An UpdateClusterConfig keeps the cluster UPDATING: logging updates ~40 s (ministryofjustice/cloud-platform
    # #8501, rancher/eks-operator #672), endpoint-access updates 3.5 min and more (eksctl #4545).
    cluster_update: float = 120.0
    # An UpdateNodegroupConfig of sizes/labels/taints (no node replaced): no public figure found; a minute.
    nodegroup_update: float = 60.0
    # UpdateClusterVersion keeps the cluster UPDATING about 8-10 min; UpdateNodegroupVersion rolls the nodes
    # (new ones up, old ones drained, max_unavailable at a time) in about 5-15 min (issue 12; eksctl docs).
    cluster_version_update: float = 540.0
    nodegroup_version_update: float = 600.0
    # EKS managed add-ons: CREATING/UPDATING/DELETING for about a minute or less (no published figure).
    addon_create: float = 45.0
    addon_update: float = 30.0
    addon_delete: float = 20.0
    # A managed node group whose nodes never become Ready (no CNI on a cluster made without the self-managed
    # add-ons) fails with NodeCreationFailure after about 20 min (terraform-aws-eks #1910: 21-24 min; eks_addons).
    nodegroup_join_timeout: float = 1200.0
    # A new IAM role is not assumable by EKS until it has propagated.
    iam_role_delay: float = 10.0
    # A deleted load balancer's network interfaces stay until AWS releases them; no published figure, public
    # reports of DependencyViolation on its subnets and groups speak of minutes (lb_dependents).
    lb_eni_release: float = 120.0
    # 0.03 turns a 9-minute cluster create into ~16 s: a full "up" takes well under a minute.
    time_scale: float = 0.03

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Timing.{item.name} must be a number >= 0, not {value!r}")

    def scaled(self, seconds: float) -> float:
        """Sandbox seconds for `seconds` of real-world time."""
        return seconds * self.time_scale

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


TIMING_FIELDS: frozenset[str] = frozenset(f.name for f in dataclasses.fields(Timing))

_timing = Timing()
_timing_lock = threading.Lock()


def current_timing() -> Timing:
    """The timing every lifecycle is measured against right now."""
    return _timing


def set_timing(timing: Timing) -> None:
    """Replace the timing; resources already in flight follow the new one."""
    global _timing
    with _timing_lock:
        _timing = timing


def update_timing(**changes: float) -> Timing:
    """Change some fields of the current timing (e.g. `update_timing(time_scale=0.001)`)."""
    global _timing
    unknown = set(changes) - TIMING_FIELDS
    if unknown:
        raise ValueError(f"unknown timing field(s): {', '.join(sorted(unknown))}")
    with _timing_lock:
        _timing = dataclasses.replace(_timing, **changes)
        return _timing


def now() -> float:
    # Monotonic: a wall-clock jump must not finish or restart a create.
    return time.monotonic()


# ---------------------------------------------------------------------------------------------------
# Lifecycles: a resource's phase, read from the clock

Phase = Literal["creating", "ready", "deleting", "gone"]


@dataclass(frozen=True)
class Kind:
    """How long one kind of resource takes, and what its API calls each phase."""

    create_seconds: Callable[[Timing], float]
    delete_seconds: Callable[[Timing], float]
    states: Mapping[Phase, str]


@dataclass
class Life:
    """When a resource was created and, once asked, when its deletion started."""

    kind: Kind
    born: float = field(default_factory=now)
    dying: float | None = None

    def phase(self) -> Phase:
        timing = current_timing()
        moment = now()
        if self.dying is not None:
            done = moment - self.dying >= timing.scaled(self.kind.delete_seconds(timing))
            return "gone" if done else "deleting"
        done = moment - self.born >= timing.scaled(self.kind.create_seconds(timing))
        return "ready" if done else "creating"

    def state(self) -> str:
        return self.kind.states[self.phase()]

    def start_deleting(self) -> None:
        if self.dying is None:
            self.dying = now()


_LIFE = "_sandbox_life"


def life_of(resource: Any) -> Life | None:
    """The lifecycle attached to a moto model, or None for one made before `install()`."""
    life: Life | None = vars(resource).get(_LIFE)
    return life


def attach_life(resource: Any, kind: Kind) -> None:
    vars(resource)[_LIFE] = Life(kind)


def phase_of(resource: Any) -> Phase:
    life = life_of(resource)
    return "ready" if life is None else life.phase()


def state_property(name: str) -> property:
    """A `status`/`state` attribute read from the lifecycle.

    moto's own writes (its constructors set ACTIVE/available) land in the instance dict, which this
    data descriptor shadows; they are still returned for objects that predate `install()`.
    """

    def get(resource: Any) -> Any:
        life = life_of(resource)
        return vars(resource).get(name) if life is None else life.state()

    def set_(resource: Any, value: Any) -> None:
        vars(resource)[name] = value

    return property(get, set_)
