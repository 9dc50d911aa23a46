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

from eksprivate.aws import Aws, is_not_found
from eksprivate.config import Settings
from eksprivate.endpoint_services import EndpointService
from eksprivate.errors import AwsApiError, Interrupted
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
    # UpdateClusterVersion: ~8-10 min; UpdateNodegroupVersion rolls every node (drains them, PDBs permitting).
    cluster_upgrade: float = 60 * 60
    nodegroup_upgrade: float = 120 * 60
    endpoint_create: float = 15 * 60
    endpoint_delete: float = 15 * 60
    iam_propagation: float = 3 * 60
    dependency_violation: float = 20 * 60


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

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def region(self) -> str:
        return self.aws.region

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


class Step:
    """One node of the graph. Subclasses set `key`, `title`, `needs` and implement the verbs."""

    key: str
    title: str
    needs: tuple[str, ...] = ()
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

    # What `up` would change on an existing resource (for plan). Read-only.
    def changes(self, ctx: Context, found: Found) -> list[str]:
        return []

    # Apply `changes`; returns what was changed. Must make no call when nothing differs.
    def update(self, ctx: Context, found: Found) -> list[str]:
        return []

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

    # One line naming the resources (ids) for progress/status.
    def describe(self, found: Found) -> str:
        return ", ".join(str(v) for k, v in found.items() if k.endswith("_id") or k == "name")

    # The live status word for `status`.
    def status(self, found: Found) -> str:
        return str(found.get("status", "exists"))

    # The ids worth remembering in the state file (no live attributes).
    def ids(self, found: Found) -> dict[str, Any]:
        return {k: v for k, v in found.items() if k.endswith(("_id", "_ids", "_arn", "_name")) or k == "parts"}


def tags_of(item: dict[str, Any]) -> dict[str, str]:
    """EC2's `Tags: [{Key, Value}]` as a dict."""
    return {t["Key"]: t["Value"] for t in item.get("Tags", []) or []}


def raise_unsuccessful(result: dict[str, Any], operation: str) -> None:
    """EC2's batch deletes (DeleteVpcEndpoints, DeleteFlowLogs) report per-id failures in the response
    body, not as an error: raise the first one that is not "already gone"."""
    failed = [u for u in result.get("Unsuccessful", []) if not not_found(u.get("Error", {}).get("Code", ""))]
    if failed:
        err = failed[0].get("Error", {})
        raise AwsApiError("ec2", operation, err.get("Code", ""),
                          f"{failed[0].get('ResourceId')}: {err.get('Message', '')}")


def not_found(code: str) -> bool:
    return is_not_found(code)
