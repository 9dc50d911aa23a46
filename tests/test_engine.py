"""The engine with fake in-memory steps: concurrency, needs, failures, reverse order, read-only verbs.

Order is checked from events the fake steps record (a global sequence number per event), never from
wall-clock time. Where a test needs steps to run at the same time, a barrier proves it: a runner that
ran them one after another would break the barrier and fail the test.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from eksprivate.aws import Aws
from eksprivate.config import build_settings
from eksprivate.engine import Engine, RunFailed
from eksprivate.errors import AwsApiError, Interrupted
from eksprivate.state import Ledger
from eksprivate.steps import Context, Found, Step, build_graph

REGION = "eu-central-1"
BARRIER_GUARD = 30.0  # only ever reached when the engine fails to run steps side by side


@dataclass
class Events:
    """(sequence, step key, event) in the order they happened, from any thread."""

    items: list[tuple[int, str, str]] = field(default_factory=list)
    _count: itertools.count[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, key: str, event: str) -> None:
        with self._lock:
            self.items.append((next(self._count), key, event))

    def at(self, key: str, event: str) -> int:
        hits = [seq for seq, k, e in self.items if k == key and e == event]
        assert len(hits) == 1, f"{key} {event}: {hits}"
        return hits[0]

    def of(self, key: str) -> list[str]:
        return [e for _, k, e in self.items if k == key]

    def any(self, event: str) -> list[str]:
        return [k for _, k, e in self.items if e == event]


Hook = Callable[[], None]


class Fake(Step):
    """A step whose resource lives in memory. Hooks run in the middle of create/remove."""

    def __init__(self, key: str, needs: tuple[str, ...], events: Events, *, exists: bool = False,
                 changes: list[str] | None = None, on_create: Hook | None = None,
                 on_remove: Hook | None = None, on_ready: Hook | None = None, orphan: bool = False,
                 needs_created: tuple[str, ...] = (), ready_needs: tuple[str, ...] = ()) -> None:
        self.key = key
        self.title = f"step {key}"
        self.needs = needs
        self.needs_created = needs_created
        self.ready_needs = ready_needs
        self.events = events
        self.exists = exists
        self.pending = list(changes or [])
        self.on_create = on_create
        self.on_remove = on_remove
        self.on_ready = on_ready
        self.orphan = orphan

    def find(self, ctx: Context) -> Found | None:
        self.events.add(self.key, "find")
        return {"thing_id": f"id-{self.key}"} if self.exists else None

    def create(self, ctx: Context) -> Found:
        self.events.add(self.key, "create")
        if self.on_create:
            self.on_create()
        self.exists = True
        ctx.ledger.record(self.key, thing_id=f"id-{self.key}")
        self.events.add(self.key, "created")
        return {"thing_id": f"id-{self.key}"}

    def ready(self, ctx: Context, found: Found) -> None:
        if self.on_ready:
            self.on_ready()
        self.events.add(self.key, "ready")

    def changes(self, ctx: Context, found: Found) -> list[str]:
        return list(self.pending)

    def update(self, ctx: Context, found: Found) -> list[str]:
        self.events.add(self.key, "update")
        done, self.pending = self.pending, []
        return done

    def remove(self, ctx: Context, found: Found) -> None:
        self.events.add(self.key, "remove")
        if self.on_remove:
            self.on_remove()
        self.exists = False

    def gone(self, ctx: Context, found: Found) -> None:
        self.events.add(self.key, "gone")


class Reporter:
    def __init__(self) -> None:
        self.phases: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def phase(self, key: str, title: str, phase: str, detail: str = "") -> None:
        with self._lock:
            self.phases.append((key, phase))

    def note(self, key: str, text: str) -> None:
        return None


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Context:
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return offline_context(tmp_path)


def offline_context(tmp_path: Path) -> Context:
    """A Context that never reaches AWS: the fakes do not call it."""
    aws = Aws(REGION, credentials={"aws_access_key_id": "x", "aws_secret_access_key": "x"})
    ledger = Ledger(tmp_path / "state.json", "fake", REGION, "123456789012")
    return Context(aws=aws, settings=build_settings(name="fake"), ledger=ledger, account="123456789012",
                   azs=["eu-central-1a", "eu-central-1b", "eu-central-1c"], poll=0.0)


def together(n: int) -> Hook:
    """A hook that returns only once `n` steps are inside it at the same time."""
    barrier = threading.Barrier(n, timeout=BARRIER_GUARD)

    def meet() -> None:
        barrier.wait()

    return meet


def engine(ctx: Context, steps: Sequence[Step], reporter: Reporter) -> Engine:
    return Engine(ctx, list(steps), reporter)


def assert_set(event: threading.Event) -> None:
    assert event.wait(BARRIER_GUARD)


def real_shape(ctx: Context, events: Events, **kw: Any) -> list[Fake]:
    """Fakes with the keys and needs of the real graph for the default configuration."""
    return [Fake(s.key, s.needs, events, needs_created=s.needs_created, ready_needs=s.ready_needs, **kw)
            for s in build_graph(ctx)]


# -- up --------------------------------------------------------------------------------------------------


def test_independent_steps_overlap(ctx: Context) -> None:
    events = Events()
    meet = together(3)
    steps = [Fake(k, (), events, on_create=meet) for k in ("vpc", "cluster-role", "node-role")]
    steps.append(Fake("subnets", ("vpc",), events))
    engine(ctx, steps, Reporter()).up()
    # All three were inside create at once: each started before any of them finished.
    last_start = max(events.at(k, "create") for k in ("vpc", "cluster-role", "node-role"))
    first_end = min(events.at(k, "created") for k in ("vpc", "cluster-role", "node-role"))
    assert last_start < first_end


def test_node_groups_are_created_and_waited_on_together(ctx: Context) -> None:
    events = Events()
    meet = together(3)
    steps = [Fake(s.key, s.needs, events, on_create=meet if s.key.startswith("nodegroup/") else None)
             for s in build_graph(ctx)]
    assert sum(s.key.startswith("nodegroup/") for s in steps) == 3
    engine(ctx, steps, Reporter()).up()


def test_a_step_starts_only_after_its_needs_are_ready(ctx: Context) -> None:
    events = Events()
    steps = real_shape(ctx, events)
    outcomes = engine(ctx, steps, Reporter()).up()
    assert {o.phase for o in outcomes} == {"created"}
    for step in steps:
        for need in step.needs:
            assert events.at(need, "ready") < events.at(step.key, "find"), f"{step.key} started before {need}"
        for need in step.needs_created:
            assert events.at(need, "created") < events.at(step.key, "find"), f"{step.key} started before {need}"
        for need in step.ready_needs:
            assert events.at(need, "ready") < events.at(step.key, "ready"), f"{step.key} ready before {need}"
    # The graph really has the shape the product relies on.
    needs = {s.key: set(s.needs) for s in steps}
    assert {"cluster", "endpoints", "node-role"} <= needs["nodegroup/nodes-a"]
    assert "endpoints" not in needs["cluster"]  # the cluster (the long pole) does not wait for endpoints
    # Node groups start once the networking add-ons exist, not once they are ready; coredns is made beside them.
    made_first = {s.key: set(s.needs_created) for s in steps}["nodegroup/nodes-a"]
    assert made_first == {"addon/vpc-cni", "addon/kube-proxy", "addon/eks-pod-identity-agent"}
    assert not {k for k in needs["nodegroup/nodes-a"] if k.startswith("addon/")}
    assert not {k for k in needs["addon/coredns"] if k.startswith("nodegroup/")}
    assert {s.key: set(s.ready_needs) for s in steps}["addon/coredns"] == {
        "nodegroup/nodes-a", "nodegroup/nodes-b", "nodegroup/nodes-c"}


def test_a_step_needing_another_created_starts_while_that_one_still_waits(ctx: Context) -> None:
    """`needs_created`: the node group starts once the add-on's create returned; the add-on's `ready` cannot end
    before the node group was created (a runner that waited for it to be ready would never get there)."""
    events = Events()
    group_made = threading.Event()
    steps = [Fake("cni", (), events, on_ready=lambda: assert_set(group_made)),
             Fake("group", (), events, needs_created=("cni",), on_create=group_made.set)]
    outcomes = {o.key: o.phase for o in engine(ctx, steps, Reporter()).up()}
    assert outcomes == {"cni": "created", "group": "created"}
    assert events.at("cni", "created") < events.at("group", "find") < events.at("cni", "ready")


def test_a_step_made_beside_its_ready_needs_is_judged_after_them(ctx: Context) -> None:
    """`ready_needs`: coredns is created while the node group is still being made, and waited on only after."""
    events = Events()
    coredns_made = threading.Event()
    steps = [Fake("group", (), events, on_create=lambda: assert_set(coredns_made)),
             Fake("coredns", (), events, ready_needs=("group",), on_create=coredns_made.set)]
    engine(ctx, steps, Reporter()).up()
    assert events.at("coredns", "created") < events.at("group", "created")
    assert events.at("group", "ready") < events.at("coredns", "ready")


def test_failures_through_the_new_edges(ctx: Context) -> None:
    """An add-on that fails before it exists skips what needs it created; a node group that fails leaves the
    add-on judged after it made but not waited for; the run fails naming the failed step."""
    events = Events()

    def refused(operation: str) -> Hook:
        def fail() -> None:
            raise AwsApiError("eks", operation, "InvalidParameterException", "refused")
        return fail

    steps = [Fake("cni", (), events, on_create=refused("CreateAddon")),
             Fake("group", (), events, needs_created=("cni",)),
             Fake("group2", (), events, on_create=refused("CreateNodegroup")),
             Fake("coredns", (), events, ready_needs=("group2",))]
    with pytest.raises(RunFailed) as info:
        engine(ctx, steps, Reporter()).up()
    outcomes = {o.key: o for o in info.value.outcomes}
    assert {k: o.phase for k, o in outcomes.items()} == {
        "cni": "failed", "group": "skipped", "group2": "failed", "coredns": "skipped"}
    assert events.of("group") == [] and events.of("coredns") == ["find", "create", "created"]
    assert "waits for group2" in outcomes["coredns"].detail


def test_endpoints_and_cluster_are_built_side_by_side(ctx: Context) -> None:
    events = Events()
    meet = together(2)
    steps = [Fake(s.key, s.needs, events, on_create=meet if s.key in ("cluster", "endpoints") else None)
             for s in build_graph(ctx)]
    engine(ctx, steps, Reporter()).up()
    assert events.at("cluster", "create") < events.at("endpoints", "created")
    assert events.at("endpoints", "create") < events.at("cluster", "created")


def test_existing_resources_are_updated_not_created(ctx: Context) -> None:
    events = Events()
    steps = [Fake("a", (), events, exists=True), Fake("b", ("a",), events, exists=True, changes=["fix it"])]
    outcomes = {o.key: o for o in engine(ctx, steps, Reporter()).up()}
    assert (outcomes["a"].phase, outcomes["b"].phase) == ("ready", "updated")
    assert outcomes["b"].changes == ["fix it"]
    assert events.any("create") == []
    assert ctx.ledger.ids("a") == {"thing_id": "id-a"}  # ids of what was found are remembered


def test_failure_skips_dependents_but_independent_steps_finish(ctx: Context) -> None:
    events = Events()
    failed = threading.Event()

    def fail() -> None:
        failed.set()
        raise AwsApiError("ec2", "CreateVpc", "VpcLimitExceeded", "The maximum number of VPCs has been reached.")

    def after_the_failure() -> None:  # still running when the other branch has already failed
        assert failed.wait(BARRIER_GUARD)

    steps = [
        Fake("vpc", (), events, on_create=fail),
        Fake("subnets", ("vpc",), events),
        Fake("cluster", ("subnets", "role"), events),
        Fake("role", (), events, on_create=after_the_failure),
        Fake("policy", ("role",), events),
    ]
    with pytest.raises(RunFailed) as info:
        engine(ctx, steps, Reporter()).up()
    outcomes = {o.key: o for o in info.value.outcomes}
    assert {k: o.phase for k, o in outcomes.items()} == {
        "vpc": "failed", "subnets": "skipped", "cluster": "skipped", "role": "created", "policy": "created"}
    assert outcomes["subnets"].detail == "waits for vpc"
    assert events.of("subnets") == [] and events.of("cluster") == []  # not even looked at
    assert "VpcLimitExceeded" in info.value.message and "step vpc" in info.value.message


def test_a_bug_in_one_step_is_reported_and_the_others_finish(ctx: Context) -> None:
    events = Events()

    def bug() -> None:
        raise KeyError("role_arn")

    steps = [Fake("a", (), events, on_create=bug), Fake("b", (), events)]
    with pytest.raises(RunFailed) as info:
        engine(ctx, steps, Reporter()).up()
    outcomes = {o.key: o for o in info.value.outcomes}
    assert outcomes["a"].phase == "failed" and outcomes["b"].phase == "created"
    assert "internal error in step a: KeyError: 'role_arn'" in info.value.message


def test_cancel_skips_what_has_not_started(ctx: Context) -> None:
    """Ctrl-C sets `ctx.cancel`: a running create finishes and is recorded, then stops; steps not yet
    started are skipped; steps waiting on AWS finish their wait."""
    events = Events()
    waiting = threading.Event()

    def wait_for_aws() -> None:  # w is in its waiter when the user presses Ctrl-C
        waiting.set()
        assert_set(ctx.cancel)

    def ctrl_c() -> None:
        assert_set(waiting)
        ctx.cancel.set()

    steps = [
        Fake("x", (), events, on_create=ctrl_c),
        Fake("w", (), events, on_ready=wait_for_aws),
        Fake("z", ("w",), events),
    ]
    with pytest.raises(RunFailed) as info:
        engine(ctx, steps, Reporter()).up()
    outcomes = {o.key: o for o in info.value.outcomes}
    assert isinstance(outcomes["x"].error, Interrupted)
    assert ctx.ledger.ids("x") == {"thing_id": "id-x"}  # made before the stop, so recorded
    assert outcomes["w"].phase == "created"
    assert (outcomes["z"].phase, outcomes["z"].detail) == ("skipped", "interrupted")
    assert events.of("z") == []


def test_orphans_are_kept_unless_pruned(ctx: Context) -> None:
    events = Events()
    orphan = Fake("nodegroup/old", (), events, exists=True, orphan=True)
    assert engine(ctx, [orphan], Reporter()).up()[0].phase == "kept"
    assert events.any("remove") == []
    ctx.prune = True
    assert engine(ctx, [orphan], Reporter()).up()[0].phase == "deleted"
    assert events.of("nodegroup/old")[-2:] == ["remove", "gone"]


# -- down ------------------------------------------------------------------------------------------------


def test_down_runs_in_reverse_dependency_order(ctx: Context) -> None:
    events = Events()
    meet = together(3)  # the three node groups are deleted side by side
    steps = [Fake(s.key, s.needs, events, exists=True, on_remove=meet if s.key.startswith("nodegroup/") else None)
             for s in build_graph(ctx)]
    for s in steps:
        ctx.ledger.record(s.key, thing_id=f"id-{s.key}")
    outcomes = engine(ctx, steps, Reporter()).down()
    assert {o.phase for o in outcomes} == {"deleted"}
    for step in steps:
        for need in step.needs:  # what a step needs is removed only once the step is really gone
            assert events.at(step.key, "gone") < events.at(need, "remove"), f"{need} removed before {step.key}"
    assert ctx.ledger.snapshot()["steps"] == {}  # forgotten once gone
    # In particular: node groups, then the cluster, then IAM and the network under it.
    removal = {k: events.at(k, "remove") for k in ("cluster", "cluster-role", "node-role", "subnets", "vpc")}
    assert max(events.at(f"nodegroup/nodes-{z}", "gone") for z in "abc") < removal["cluster"]
    assert events.at("cluster", "gone") < min(removal["cluster-role"], removal["node-role"], removal["subnets"])
    assert events.at("subnets", "gone") < removal["vpc"]


def test_down_stops_under_a_failed_delete(ctx: Context) -> None:
    """If the cluster cannot be deleted, the network and roles it runs in stay; the rest goes."""
    events = Events()

    def in_use() -> None:
        raise AwsApiError("eks", "DeleteCluster", "ResourceInUseException", "Cluster has nodegroups attached")

    steps = [Fake(s.key, s.needs, events, exists=True, on_remove=in_use if s.key == "cluster" else None)
             for s in build_graph(ctx)]
    with pytest.raises(RunFailed) as info:
        engine(ctx, steps, Reporter()).down()
    phases = {o.key: o.phase for o in info.value.outcomes}
    assert phases["cluster"] == "failed"
    for key in ("subnets", "vpc", "cluster-role", "node-role", "kms-key", "cluster-log-group"):
        assert phases[key] == "skipped", key
        assert "remove" not in events.of(key)
    assert phases["nodegroup/nodes-a"] == "deleted" and phases["endpoints"] == "deleted"
    assert info.value.hint is not None


def test_down_of_nothing_touches_nothing(ctx: Context) -> None:
    events = Events()
    outcomes = engine(ctx, real_shape(ctx, events), Reporter()).down()
    assert {o.phase for o in outcomes} == {"absent"}
    assert {e for _, _, e in events.items} == {"find"}


# -- plan and status -------------------------------------------------------------------------------------


def test_plan_and_status_only_read(ctx: Context) -> None:
    ctx.ledger.persist = False  # as the CLI opens it for plan and status
    events = Events()
    steps = [Fake("vpc", (), events, exists=True), Fake("subnets", ("vpc",), events, exists=True, changes=["x"]),
             Fake("sg", ("vpc",), events, exists=True, changes=["! cannot change in place"]),
             Fake("cluster", ("subnets",), events)]
    quiet = Reporter()
    plan = {i.key: i for i in engine(ctx, steps, quiet).plan()}
    assert {k: i.action for k, i in plan.items()} == {"vpc": "none", "subnets": "update", "sg": "none",
                                                      "cluster": "create"}
    assert plan["sg"].details == ["! cannot change in place"]
    destroy = {i.key: i.action for i in engine(ctx, steps, quiet).plan(destroy=True)}
    assert destroy == {"vpc": "delete", "subnets": "delete", "sg": "delete", "cluster": "absent"}
    status = {i.key: i.status for i in engine(ctx, steps, quiet).status()}
    assert status == {"vpc": "exists", "subnets": "exists", "sg": "exists", "cluster": "absent"}

    assert {e for _, _, e in events.items} == {"find"}  # nothing but reads
    assert [p for p in quiet.phases if p[1] != "pending"] == []
    assert not ctx.ledger.path.exists()


def test_the_graph_in_docs_architecture_is_the_real_one(ctx: Context) -> None:
    text = (Path(__file__).parent.parent / "docs" / "architecture.md").read_text()
    block = text.split("The same as a list (`key: needs`", 1)[1].split("```", 2)[1]
    documented: dict[str, tuple[tuple[str, ...], ...]] = {}

    def keys(text: str) -> tuple[str, ...]:
        return tuple(n.strip() for n in text.split(",")) if text.strip() not in ("—", "") else ()

    for line in block.strip().splitlines():
        key, edges = line.split(":", 1)
        needs, *others = edges.split(";")
        extra = {kind.strip(): keys(rest) for kind, rest in (o.split(":", 1) for o in others)}
        documented[key.strip()] = (keys(needs), extra.get("created", ()), extra.get("ready after", ()))
    assert documented == {s.key: (s.needs, s.needs_created, s.ready_needs) for s in build_graph(ctx)}
