"""The graph is built from the configuration and the state alone; what only AWS knows is read when it is walked.

`build_graph` makes no AWS call, whatever the flags (`orphans` for plan and up, `everything` for down and status),
the configuration (a network team's VPC, repositories, add-ons, the pull-through cache) or the state (orphans it
records, or none at all: a lost state). Node groups, launch templates and repositories the state does not name
are found by discovery steps (steps/discovery.py), expanded by the engine in place. `plan` against an account
it cannot read still lists every step it would take, each unread one as "unknown" with why, and exits 1.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from eksprivate.config import build_settings
from eksprivate.engine import Engine
from eksprivate.errors import EksPrivateError
from eksprivate.state import Ledger
from eksprivate.steps import Context, Discovery, Found, Step, build_graph
from eksprivate.steps.discovery import OrphanLaunchTemplates, OrphanNodeGroups, expand_discoveries

REGION = "eu-central-1"
ACCOUNT = "123456789012"
AZS = [f"{REGION}{z}" for z in "abc"]


class _Client:
    def __init__(self, service: str, fail: Callable[[str], Exception], calls: list[str]) -> None:
        self.service, self._fail, self._calls = service, fail, calls

    def __getattr__(self, operation: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            self._calls.append(f"{self.service}.{operation}")
            raise self._fail(f"{self.service}.{operation}")

        return call


class FailingAws:
    """An `Aws` every call of which fails with `fail(call)`; it remembers the calls tried."""

    region = REGION

    def __init__(self, fail: Callable[[str], Exception]) -> None:
        self.fail = fail
        self.calls: list[str] = []

    def client(self, service: str) -> _Client:
        return _Client(service, self.fail, self.calls)

    def regional_client(self, service: str, region: str) -> _Client:
        return self.client(service)

    def __getattr__(self, service: str) -> _Client:  # aws.ec2, aws.eks, ...
        return self.client(service)

    def on_status(self, listener: Any) -> None:
        pass

    def off_status(self, listener: Any) -> None:
        pass


def _no_call(call: str) -> Exception:
    return AssertionError(f"building the graph called AWS: {call}")


def _unreachable(call: str) -> Exception:
    # What the aws package makes of botocore's EndpointConnectionError.
    return EksPrivateError(f"cannot reach AWS: Could not connect to the endpoint URL for {call}",
                           "check the network (or the sandbox) and rerun")


CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "everything turned off": {"secrets_encryption": False, "control_plane_logging": False, "flow_logs": False},
    "an operator's": {
        "ecr_repositories": ["team/app"], "admins": [f"arn:aws:iam::{ACCOUNT}:role/admin"],
        "pull_through_cache": ["k8s"],
        "addons": {"vpc-cni": "default", "kube-proxy": "default", "coredns": "default",
                   "eks-pod-identity-agent": "default", "aws-ebs-csi-driver": "default"},
        "nodegroups": [{"name": "workers", "per_az": False}, {"name": "spot", "capacity_type": "SPOT"}],
    },
    "a network team's VPC": {"vpc_id": "vpc-0123456789abcdef0",
                             "subnet_ids": [f"subnet-0{z}23456789abcdef0" for z in "abc"]},
}

# What a state can say that the config does not: orphans of each kind it records.
RECORDED_ORPHANS = {
    "nodegroup/old": {"nodegroup_name": "old"},
    "launch-template/old": {"launch_template_id": "lt-0old", "launch_template_name": "c-old-nodes"},
    "ecr/team/old": {"repository_name": "team/old"},
    "addon/aws-efs-csi-driver": {"addon_name": "aws-efs-csi-driver"},
    "ebs-csi-role": {"role_name": "c-eu-central-1-ebs-csi"},
    "pull-through-cache": {"rule_prefixes": ["quay"]},
    "admins": {"admin_arns": [f"arn:aws:iam::{ACCOUNT}:role/gone"]},
}


def _context(tmp_path: Path, aws: FailingAws, config: dict[str, Any], state: dict[str, dict[str, Any]]) -> Context:
    ledger = Ledger(tmp_path / "state.json", "c", REGION, ACCOUNT, persist=False)
    for key, ids in state.items():
        ledger.record(key, **ids)
    settings = build_settings(dict(config), name="c")
    return Context(aws=aws, settings=settings, ledger=ledger, account=ACCOUNT, azs=list(AZS), poll=0)  # type: ignore[arg-type]


FLAGS = {"up": {"orphans": True}, "plan": {"orphans": True}, "down": {"everything": True}, "default": {}}


@pytest.mark.parametrize("state", ["empty (new or lost)", "recording orphans"])
@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("flags", sorted(FLAGS))
def test_the_graph_is_built_without_a_single_aws_call(tmp_path: Path, config: str, state: str, flags: str) -> None:
    aws = FailingAws(_no_call)
    ctx = _context(tmp_path, aws, CONFIGS[config], RECORDED_ORPHANS if state == "recording orphans" else {})
    steps = build_graph(ctx, **FLAGS[flags])
    assert aws.calls == []
    keys = [s.key for s in steps]
    assert len(keys) == len(set(keys)) and {"vpc", "subnets", "cluster"} <= set(keys)
    # Orphans come from the state where it names them, from discoveries where only AWS knows them.
    if FLAGS[flags] and state == "recording orphans":
        assert {"ecr/team/old", "addon/aws-efs-csi-driver"} <= set(keys)
    discoveries = {s.key for s in steps if isinstance(s, Discovery)}
    expected = {"discover/nodegroups", "discover/launch-templates"} if FLAGS[flags] else set()
    assert discoveries == expected | ({"discover/repositories"} if flags == "down" else set())


@pytest.mark.parametrize("destroy", [False, True])
def test_plan_on_an_unreachable_account_lists_every_step_it_would_take(tmp_path: Path, destroy: bool) -> None:
    aws = FailingAws(_unreachable)
    ctx = _context(tmp_path, aws, CONFIGS["an operator's"], RECORDED_ORPHANS)
    steps = build_graph(ctx, everything=destroy, orphans=True)
    keys = [s.key for s in steps]
    items = Engine(ctx, steps, _Quiet()).plan(destroy=destroy)
    assert [i.key for i in items] == keys  # every step, in graph order, the discoveries included
    assert {i.action for i in items} == {"unknown"}
    for item in items:
        (detail,) = item.details
        assert detail.startswith("could not read: cannot reach AWS: Could not connect to the endpoint URL for ")
        assert detail.rsplit(" ", 1)[-1] in aws.calls  # the call that step tried


def test_the_cli_prints_the_plan_then_says_it_is_incomplete(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from eksprivate import target
    from eksprivate.cli import app

    aws = FailingAws(_unreachable)
    ctx = _context(tmp_path, aws, {}, {})
    monkeypatch.setattr(target, "open_context", lambda opts, **kwargs: ctx)
    result = CliRunner().invoke(app, ["plan", "--name", "c", "--region", REGION, "--output", "json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    steps = {s["key"]: s for s in report["steps"]}
    assert {"vpc", "subnets", "endpoints", "cluster", "nodegroup/nodes-a", "discover/nodegroups"} <= set(steps)
    assert {s["action"] for s in steps.values()} == {"unknown"}
    assert "cost" not in report
    assert f"plan could not read {len(steps)} of {len(steps)} step(s)" in result.stderr
    assert "the plan above is incomplete" in result.stderr


class _Quiet:
    def phase(self, key: str, title: str, phase: str, detail: str = "") -> None:
        pass

    def note(self, key: str, text: str) -> None:
        pass


class _Found(Discovery):
    """A discovery whose read answers `names` (or fails)."""

    def __init__(self, inner: Discovery, names: list[str] | None) -> None:
        super().__init__(inner.known)
        self.inner, self.names = inner, names
        self.key, self.title, self.needs = inner.key, inner.title, inner.needs

    def find(self, ctx: Context) -> Found | None:
        if self.names is None:
            raise EksPrivateError("ec2 DescribeLaunchTemplates failed: AccessDenied")
        return {"names": self.names}

    def orphan_step(self, name: str) -> Step:
        return self.inner.orphan_step(name)


def test_what_a_discovery_finds_takes_its_place_and_its_needs(tmp_path: Path) -> None:
    """Found node groups need every launch template, found ones included; what needed a discovery (the
    foreign-resources check needs every step) needs each step it found; nothing is left of an empty one."""
    ctx = _context(tmp_path, FailingAws(_no_call), {}, {})
    steps = build_graph(ctx, everything=True)
    found = {"discover/nodegroups": ["old-a", "old-b"], "discover/launch-templates": ["old"],
             "discover/repositories": []}
    expanded = expand_discoveries(ctx, steps, {k: {"names": v} for k, v in found.items()})
    keys = [s.key for s in expanded]
    assert not any(key.startswith("discover/") for key in keys)
    assert keys.index("launch-template/old") == keys.index("launch-template/nodes") + 1
    assert keys.index("nodegroup/old-a") > keys.index("nodegroup/nodes-c")
    by_key = {s.key: s for s in expanded}
    for name in ("old-a", "old-b"):
        group = by_key[f"nodegroup/{name}"]
        assert group.orphan and {"launch-template/nodes", "launch-template/old", "cluster"} <= set(group.needs)
        assert not any(need.startswith("discover/") for need in group.needs)
    assert by_key["launch-template/old"].orphan and by_key["launch-template/old"].needs == ("vpc",)
    check = by_key["foreign-check"]
    assert {"nodegroup/old-a", "nodegroup/old-b", "launch-template/old"} <= set(check.needs)
    assert not any(need.startswith("discover/") for need in check.needs)


def test_up_stops_before_anything_when_a_discovery_cannot_read(tmp_path: Path) -> None:
    ctx = _context(tmp_path, FailingAws(_no_call), {}, {})
    steps = [_Found(s, None) if isinstance(s, OrphanLaunchTemplates) else
             _Found(s, ["old"]) if isinstance(s, OrphanNodeGroups) else s for s in build_graph(ctx, orphans=True)]
    with pytest.raises(EksPrivateError, match="DescribeLaunchTemplates failed"):
        Engine(ctx, steps, _Quiet()).up()
    assert ctx.aws.calls == []  # type: ignore[attr-defined]  # no step ran
