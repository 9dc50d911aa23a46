"""What a step is, and the context every step works in.

A step owns one kind of resource (or a small fixed set of them). It declares the steps it needs and
five verbs; the engine does ordering, concurrency, state and display. `find` is read-only and must work
from the state file *or* from tags alone, which is what makes resume-after-crash and lost-state
recovery fall out for free.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eksprivate.aws import Aws, typed_error
from eksprivate.config import Settings
from eksprivate.endpoint_services import EndpointService
from eksprivate.errors import Interrupted, NotFound
from eksprivate.grants import Arns, Grant
from eksprivate.partitions import AWS, Partition
from eksprivate.state import Ledger
from eksprivate.zones import SkippedZone

Found = dict[str, Any]  # ids and the live attributes `find` read; JSON-able
CLUSTER_TAG = "eksprivate:cluster"
MANAGED_BY = "eksprivate"


@dataclass
class Timeouts:
    """How long to wait for AWS, in seconds: long enough for real AWS tails (aws-facts)."""

    cluster_create: float = 40 * 60
    cluster_delete: float = 25 * 60
    nodegroup_create: float = 40 * 60
    nodegroup_delete: float = 25 * 60
    nodegroup_update: float = 30 * 60
    # An UpdateClusterConfig: minutes (endpoint access); eksctl waits up to 45 min for cluster updates.
    cluster_update: float = 45 * 60
    # An add-on's create, update or delete: about a minute; coredns waits for nodes (EKS's AddonActive waiter
    # polls 10 min).
    addon: float = 20 * 60
    # An add-on still DEGRADED once its nodes are Ready (pods starting, images pulling through the endpoints):
    # waited for up to this long, then said as a warning.
    addon_settle: float = 5 * 60
    # UpdateClusterVersion: ~8-10 min; UpdateNodegroupVersion rolls every node (drains them, PDBs permitting).
    cluster_upgrade: float = 60 * 60
    nodegroup_upgrade: float = 120 * 60
    endpoint_create: float = 15 * 60
    endpoint_delete: float = 15 * 60
    iam_propagation: float = 3 * 60
    dependency_violation: float = 20 * 60


CLUSTER_MINOR = "cluster-minor"  # Context.run_cache key: the cluster's Kubernetes minor this run


@dataclass
class Context:
    aws: Aws
    settings: Settings
    ledger: Ledger
    account: str
    azs: list[str]
    poll: float
    timeouts: Timeouts = field(default_factory=Timeouts)
    cancel: threading.Event = field(default_factory=threading.Event)
    say: Callable[[str, str], None] = lambda key, text: None  # (step key, progress text)
    prune: bool = False
    # `down --delete-volumes`: also delete the volumes and file systems Kubernetes made (they hold data).
    delete_volumes: bool = False
    # The caller's partition (from its ARN): every ARN and service principal is built from it.
    partition: Partition = AWS
    # Endpoint service short name -> what DescribeVpcEndpointServices says of it (full name, AZs, private
    # DNS); filled by target.open_context, else resolved by the endpoints step on first use.
    endpoint_services: dict[str, EndpointService] = field(default_factory=dict)
    # Zones left out when choosing AZs, and why (shown by `plan` and `up`).
    skipped_zones: list[SkippedZone] = field(default_factory=list)
    # AZ name -> zone ID, as this account maps them (names differ per account; IDs do not).
    zone_ids: dict[str, str] = field(default_factory=dict)
    # Reads shared by several steps within one run (the cluster's Kubernetes minor, add-on default versions,
    # AMI releases): one call each instead of one per step (`once`). Whoever changes what is cached updates
    # it (the Upgrade step).
    run_cache: dict[str, Any] = field(default_factory=dict)
    _once_locks: dict[str, threading.Lock] = field(default_factory=dict, repr=False)
    _once_guard: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def once(self, key: str, read: Callable[[], Any]) -> Any:
        """`read()` the first time `key` is asked for in this run, its answer after. Steps run side by side:
        one of them reads, the others asking for the same key wait for its answer (never a second call, never
        a half-made answer); different keys do not wait on each other."""
        with self._once_guard:
            lock = self._once_locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self.run_cache:
                self.run_cache[key] = read()
            return self.run_cache[key]

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def region(self) -> str:
        return self.aws.region

    @property
    def arns(self) -> Arns:
        """This cluster's ARNs in the caller's partition, region and account (what grants name)."""
        return Arns(self.partition.name, self.region, self.account, self.name)

    def zone_name(self, zone: str) -> str:
        """The AZ name for `zone`, given as a name or as a zone ID (`availability_zones` takes both)."""
        return next((name for name, zone_id in self.zone_ids.items() if zone_id == zone), zone)

    # -- tags -------------------------------------------------------------------------------
    def tags(self, name: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        """Every resource carries the cluster tag (how `find` recovers it) plus the user's tags."""
        tags = dict(self.settings.tags)
        tags.update({"Name": name, CLUSTER_TAG: self.name, "eksprivate:managed-by": MANAGED_BY})
        tags.update(extra or {})
        return tags

    def tag_list(self, name: str, extra: dict[str, str] | None = None) -> list[dict[str, str]]:
        return [{"Key": k, "Value": v} for k, v in self.tags(name, extra).items()]

    def tag_spec(self, resource_type: str, name: str, extra: dict[str, str] | None = None) -> list[dict[str, Any]]:
        return [{"ResourceType": resource_type, "Tags": self.tag_list(name, extra)}]

    def cluster_filter(self) -> list[dict[str, Any]]:
        return [{"Name": f"tag:{CLUSTER_TAG}", "Values": [self.name]}]

    def resource_name(self, suffix: str) -> str:
        return f"{self.name}-{suffix}"

    def iam_name(self, suffix: str) -> str:
        """IAM names are account-wide and at most 64 characters: include the region, hash if long."""
        full = f"{self.name}-{self.region}-{suffix}"
        if len(full) <= 64:
            return full
        digest = hashlib.sha256(full.encode()).hexdigest()[:8]
        return f"{full[: 64 - len(suffix) - 10]}-{digest}-{suffix}"

    # -- intents ------------------------------------------------------------------------------
    def pending_intent(self, key: str) -> bool:
        """A create was started (token recorded) but its id never came back: the process died in
        between, so the resource may exist without the state knowing it."""
        return self.ledger.token(key) is not None and not self.ledger.ids(key)

    def intent(self, key: str) -> str:
        """The idempotency token for creating `key`, recorded before the call. Reused after a crash (no
        id came back), fresh once a create under it returned (ids recorded): AWS answers a spent token
        with what it made then, even when that has since been deleted."""
        token = self.ledger.token(key)
        if token is None or self.ledger.ids(key):
            token = str(uuid.uuid4())
            self.ledger.begin(key, token)
        return token

    def check_cancel(self) -> None:
        if self.cancel.is_set():
            raise Interrupted("interrupted")


@dataclass(frozen=True)
class Change:
    """One difference between the config and what `find` saw: `plan` prints it, `up` applies it.

    Exactly one of these holds: `apply` makes the change (returning what `up` reports, None for nothing worth
    saying), or `blocked` says why `up` will not make it and what to do instead (plan shows it as a "!"
    line, `up` as a warning). A change with neither is done by another verb (an orphan's delete is `down`'s).
    """

    text: str
    apply: Callable[[], str | None] | None = None
    blocked: str | None = None
    # What applying it waits on (an EKS update already running, ...): `up` says so before it starts.
    waits_on: str | None = None

    @property
    def applies(self) -> bool:
        """`up` makes it (plan's action is then "update")."""
        return self.blocked is None

    @property
    def warning(self) -> str:
        """A blocked change as `up` warns of it: what differs, then why and what to do."""
        return ": ".join(part for part in (self.text, self.blocked) if part)

    @property
    def line(self) -> str:
        """As `plan` prints it: a blocked change starts with "!"."""
        return self.text if self.blocked is None else f"! {self.warning}"

    @classmethod
    def from_line(cls, line: str) -> Change:
        """A change a step not yet moved to `diff` said as text ("!" marks what it cannot apply)."""
        if line.startswith("!"):
            return cls(line.removeprefix("!").strip(), blocked="")
        return cls(line)


class Step:
    """One node of the graph. Subclasses set `key`, `title`, `needs` and implement the verbs."""

    key: str
    title: str
    # Three kinds of edge, the engine's whole model of order (it knows nothing else of what a step does):
    # `needs`: steps that must be *ready* before this one starts (its find/create).
    needs: tuple[str, ...] = ()
    # `needs_created`: steps whose resource must *exist* before this one starts: their create (or update) call
    # has returned, their `ready` may still be waiting (a node group needs its cluster's CNI add-on to exist
    # when its instances boot, not to be ACTIVE).
    needs_created: tuple[str, ...] = ()
    # `ready_needs`: steps that must be ready before this one's `ready` begins; it is created without them (an
    # add-on whose pods need nodes is made beside the node groups and judged once they are ready).
    ready_needs: tuple[str, ...] = ()
    orphan: bool = False  # made by eksprivate, no longer in the config: only ever removed
    # What `down` reports once remove and gone returned; a phrase whose first word is the status word.
    deleted_as: str = "deleted"

    # Read-only: where is it (state ids, else tags/names)? None when it does not exist.
    def find(self, ctx: Context) -> Found | None:
        raise NotImplementedError

    # Create it; record ids in ctx.ledger the moment each create call returns.
    def create(self, ctx: Context) -> Found:
        raise NotImplementedError

    # Wait until usable; raise ResourceFailed on a failed status. Cheap when already ready.
    def ready(self, ctx: Context, found: Found) -> None:
        return None

    # After `ready`: what is wrong with a resource that is usable all the same (a DEGRADED node group's
    # health issues). `up` reports these as warnings, not as a failure.
    def health(self, found: Found) -> list[str]:
        return []

    # Every difference between the config and `found`, each knowing how `up` applies it (or why it cannot).
    # Read-only, and empty when nothing differs: that is what makes a rerun make no call. The one place a
    # step writes its differences; `changes` (plan's text) and `update` (up's apply) derive from it.
    def diff(self, ctx: Context, found: Found) -> list[Change]:
        return []

    # Before any change is applied: finish what an earlier, killed run started (an EKS update whose id the
    # state holds), so nothing is started twice. Returns what it finished; `diff` is then read again.
    def resume(self, ctx: Context, found: Found) -> list[str]:
        return []

    # What `up` would change on an existing resource, as plan prints it. Derived from `diff`.
    def changes(self, ctx: Context, found: Found) -> list[str]:
        return [change.line for change in self.diff(ctx, found)]

    # Apply what differs; returns what was changed. Derived from `diff`; no call when nothing differs.
    def update(self, ctx: Context, found: Found) -> list[str]:
        return self.apply_changes(ctx, found, self.diff(ctx, found))

    # -- what the engine calls: the typed list, also for steps still on the text path ------------------
    def planned_changes(self, ctx: Context, found: Found) -> list[Change]:
        """`diff`; for a step that still writes `changes` text itself (compatibility path), that text
        parsed ("!" = blocked)."""
        if _overrides(self, "changes"):
            return [Change.from_line(line) for line in self.changes(ctx, found)]
        return self.diff(ctx, found)

    def apply_changes(self, ctx: Context, found: Found, changes: list[Change]) -> list[str]:
        """Apply `changes` (from `planned_changes` on this `found`) in order; what was changed. A step still
        on the compatibility path applies through its own `update`."""
        if _overrides(self, "update"):
            return self.update(ctx, found)
        done = self.resume(ctx, found)
        if done:  # the finished updates changed the resource: what is left to do
            changes = self.diff(ctx, found)
        for change in changes:
            if change.apply is None:
                continue
            if change.waits_on:
                ctx.say(self.key, f"{change.text}: waiting for {change.waits_on}")
            said = change.apply()
            if said:
                done.append(said)
        return done

    # Start deleting; NotFound counts as done.
    def remove(self, ctx: Context, found: Found) -> None:
        raise NotImplementedError

    # Wait until really gone.
    def gone(self, ctx: Context, found: Found) -> None:
        return None

    # What `create` would make, from the config alone, for `plan` (no AWS call).
    def preview(self, ctx: Context) -> list[str]:
        return []

    # `plan --destroy`: the action word for a found resource ("delete"; "blocked" for what `down` will not
    # touch) and detail lines (what `down` keeps). Read-only.
    def destroy_action(self, found: Found) -> str:
        return "delete"

    def destroy_details(self, ctx: Context, found: Found) -> list[str]:
        return []

    # The IAM actions this step's verbs call, on what, with what AWS checks beside them (iam:PassRole,
    # tag-on-create, KMS grants), as plain values (`eksprivate.grants`). No AWS call: read from the config
    # and the state. `eksprivate permissions` is their union over the graph; the sandbox's call log checks
    # that every call a whole life makes is declared here (tests/test_permissions.py).
    def grants(self, ctx: Context) -> list[Grant]:
        return []

    # One line naming the resources (ids) for progress/status.
    def describe(self, found: Found) -> str:
        return ", ".join(str(v) for k, v in found.items() if k.endswith("_id") or k == "name")

    # The live status word for `status`.
    def status(self, found: Found) -> str:
        return str(found.get("status", "exists"))

    # The ids worth remembering in the state file (no live attributes).
    def ids(self, found: Found) -> dict[str, Any]:
        return {k: v for k, v in found.items() if k.endswith(("_id", "_ids", "_arn", "_name")) or k == "parts"}


def _overrides(step: Step, verb: str) -> bool:
    """Whether `step`'s class writes `verb` itself instead of deriving it from `diff`."""
    return getattr(type(step), verb) is not getattr(Step, verb)


def tags_of(item: dict[str, Any]) -> dict[str, str]:
    """EC2's `Tags: [{Key, Value}]` as a dict."""
    return {t["Key"]: t["Value"] for t in item.get("Tags", []) or []}


def raise_unsuccessful(result: dict[str, Any], operation: str) -> None:
    """EC2's batch deletes (DeleteVpcEndpoints, DeleteFlowLogs) report per-id failures in the response
    body, not as an error: raise the first one that is not "already gone", typed as the boundary types it."""
    for item in result.get("Unsuccessful", []):
        err = item.get("Error", {})
        error = typed_error("ec2", operation, str(err.get("Code", "")), f"{item.get('ResourceId')}: "
                                                                        f"{err.get('Message', '')}")
        if not isinstance(error, NotFound):
            raise error

