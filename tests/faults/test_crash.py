"""A kill at any instant, then a rerun: the account ends up exactly as after an uninterrupted run.

The CLI runs as a child process against the in-process sandbox and is SIGKILLed at step boundaries
(seen on its progress lines) and inside the long waits (cluster and node group CREATING/DELETING, made
long by the sandbox's timing and short again before the rerun). The window between a create call
returning and its id reaching the state file cannot be aimed at from outside: `crashpoint.py` makes the
process kill itself exactly there.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

from eksprivate.sandbox import SandboxServer
from tests.sandbox.helpers import wait_until

from .conftest import FAST, SLOW
from .helpers import HANG_SECONDS, REGION, Children, inventory, mutating_calls, shape, unrecorded


def _args(verb: str, name: str) -> list[str]:
    return [verb, "--name", name, "--region", REGION] + (["--yes"] if verb == "down" else [])


def _state(tmp: Path, name: str) -> Path:
    return tmp / "state" / f"{name}-{REGION}.json"


def _assert_no_duplicates(url: str, name: str) -> None:
    for kind, labels in shape(inventory(url, name)).items():
        assert len(labels) == len(set(labels)), f"duplicate {kind}: {labels}"


def _assert_converged(stand_in: SandboxServer, children: Children, name: str, clean: dict[str, list[str]],
                      *, rerun: bool = False) -> None:
    """Same resources as a clean run, each recorded in the state file; with `rerun`, one more `up` changes
    nothing."""
    items = inventory(stand_in.url, name)
    assert shape(items) == clean
    assert unrecorded(items, _state(children.cwd, name)) == []
    if rerun:
        stand_in.clear_calls()
        children.ok(*_args("up", name))
        assert mutating_calls(stand_in.calls()) == []


def test_clean_run_makes_the_expected_resources(clean_shape: dict[str, list[str]]) -> None:
    counts = {kind: len(labels) for kind, labels in clean_shape.items()}
    # endpoints: 5 interface, eks-auth (the Pod Identity add-on), the S3 gateway
    assert counts == {"cluster": 1, "endpoint": 7, "flow-log": 1, "kms-alias": 1, "kms-key": 1,
                      "launch-template": 1, "log-group": 2, "nodegroup": 3, "role": 3, "route-table": 3,
                      "security-group": 1, "subnet": 3, "vpc": 1}


def test_up_killed_at_boundaries_and_inside_waits_converges(
        stand_in: SandboxServer, children: Children, cluster_name: str, clean_shape: dict[str, list[str]]) -> None:
    up = _args("up", cluster_name)
    stand_in.configure(cluster_create=SLOW, nodegroup_create=SLOW)
    kill_points = [
        r"\] vpc: creating",                 # the very first create
        r"\] subnets: creating",             # in the middle of subnets and route tables
        r"\] endpoints: \S+: vpce-",         # some endpoints made, others not yet
        r"\] cluster: CREATING",             # inside the ~9 min cluster wait
    ]
    for point in kill_points:
        child = children.start(*up)
        # Should an earlier run have got past a point before its kill landed, the cluster wait (slow until
        # told otherwise) is where this run dies instead: every run is killed somewhere.
        child.wait_for(f"{point}|\\] cluster: CREATING")
        assert child.signal(signal.SIGKILL) == -signal.SIGKILL
        _assert_no_duplicates(stand_in.url, cluster_name)
    stand_in.configure(cluster_create=FAST["cluster_create"])  # the killed run's cluster finishes meanwhile
    child = children.start(*up)
    child.wait_for(r"\] nodegroup/\S+: CREATING")  # inside the node group wait
    assert child.signal(signal.SIGKILL) == -signal.SIGKILL
    _assert_no_duplicates(stand_in.url, cluster_name)

    stand_in.configure(nodegroup_create=FAST["nodegroup_create"])
    children.ok(*up)
    _assert_converged(stand_in, children, cluster_name, clean_shape, rerun=True)


def test_crash_between_create_and_record_is_adopted_not_duplicated(
        stand_in: SandboxServer, children: Children, cluster_name: str, clean_shape: dict[str, list[str]]) -> None:
    # One crash right after each create call returns, before its id is recorded: token-less APIs
    # (VPC, subnet, SG, role, KMS key) must be found by tag/name; token APIs must not duplicate either.
    targets = ["vpc", "subnets", "endpoint-sg", "endpoints/ec2", "cluster-role", "kms-key", "cluster",
               "nodegroup/nodes-a"]
    runs = 0
    while True:
        child = children.run(*_args("up", cluster_name), crash_at=targets)
        runs += 1
        if child.proc.returncode == 0:
            break
        assert child.proc.returncode == -signal.SIGKILL, child.stderr
        _assert_no_duplicates(stand_in.url, cluster_name)
        assert runs <= len(targets), "more crashes than crash points"
    crashed = (children.cwd / "crashes.log").read_text().split()
    # Steps run concurrently: a crash in one thread can land while another's create call is in flight,
    # so that resource is never recorded by that run and the next one adopts it by tag/token instead of
    # crashing at it. Each key crashes at most once, and most of them must have been hit.
    assert len(crashed) == len(set(crashed)) and set(crashed) <= set(targets)
    assert len(crashed) >= len(targets) - 2, crashed
    _assert_converged(stand_in, children, cluster_name, clean_shape)


def test_down_killed_midway_then_rerun_leaves_nothing(
        stand_in: SandboxServer, children: Children, cluster_name: str) -> None:
    children.ok(*_args("up", cluster_name))
    down = _args("down", cluster_name)
    # Killed while node groups delete, then while the cluster and the endpoints delete (in parallel).
    stand_in.configure(nodegroup_delete=SLOW)
    child = children.start(*down)
    child.wait_for(r"\] nodegroup/\S+: DELETING")
    assert child.signal(signal.SIGKILL) == -signal.SIGKILL
    stand_in.configure(nodegroup_delete=FAST["nodegroup_delete"], cluster_delete=SLOW, interface_endpoint_delete=SLOW)
    mark = len(stand_in.calls())
    child = children.start(*down)
    child.wait_for(r"\] cluster: DELETING")
    # The endpoints are deleting once AWS accepted their DeleteVpcEndpoints. (Their progress line says so only
    # as its once-a-minute "still deleting (1:00)": waiting for that line cost this test a minute.)
    wait_until(lambda: [c for c in stand_in.calls()[mark:] if c.operation == "DeleteVpcEndpoints" and c.status == 200],
               timeout=HANG_SECONDS)
    assert child.signal(signal.SIGKILL) == -signal.SIGKILL
    stand_in.configure(cluster_delete=FAST["cluster_delete"])

    # The rerun finds the endpoints still deleting: it must wait for them before their subnets and SG.
    stand_in.clear_calls()
    child = children.start(*down)
    line = child.wait_for(r"\] endpoints: (deleting|absent)")
    assert "deleting" in line, "endpoints that are still deleting were taken for gone"
    stand_in.configure(interface_endpoint_delete=FAST["interface_endpoint_delete"])
    assert child.wait() == 0, child.stderr
    refused = [f"{r.operation} {r.status}" for r in stand_in.calls()
               if r.operation in ("DeleteSubnet", "DeleteSecurityGroup", "DeleteVpc") and r.status != 200]
    assert refused == [], "deleted before the endpoints were gone"
    assert inventory(stand_in.url, cluster_name) == []
    assert not _state(children.cwd, cluster_name).exists()


def test_ctrl_c_stops_cleanly_saves_state_and_says_rerun(
        stand_in: SandboxServer, children: Children, cluster_name: str) -> None:
    stand_in.configure(cluster_create=SLOW)
    child = children.start(*_args("up", cluster_name))
    child.wait_for(r"\] cluster: CREATING")
    assert child.signal(signal.SIGINT) == 130
    last = child.lines[-1]
    # The hint is spelled as the child was invoked (`<python> -m eksprivate up`): copy-pasteable.
    assert last.startswith("error: up interrupted") and "eksprivate up` to resume" in last, child.stderr
    assert "Traceback" not in child.stderr
    steps = json.loads(_state(children.cwd, cluster_name).read_text())["steps"]
    assert steps["cluster"]["ids"]["cluster_name"] == cluster_name
    assert steps["vpc"]["ids"]["vpc_id"].startswith("vpc-")
    stand_in.configure(cluster_create=FAST["cluster_create"])
    children.ok(*_args("up", cluster_name))
    _assert_no_duplicates(stand_in.url, cluster_name)
