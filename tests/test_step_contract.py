"""The step contract: one typed change list per step (`Step.diff`), which `plan` prints and `up` applies,
and typed AWS errors that steps catch by type.

Fake in-memory steps drive the real `Engine`; the error tests go through the boundary's own table
(`aws.typed_error`), as a real ClientError would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from eksprivate.aws import typed_error
from eksprivate.engine import Engine
from eksprivate.errors import (
    AccessDenied,
    AlreadyExists,
    AwsApiError,
    DependencyViolation,
    InUse,
    InvalidParameter,
    InvalidState,
    NotFound,
)
from eksprivate.steps import Change, Context, Found, Step
from eksprivate.steps.base import raise_unsuccessful
from tests.test_engine import offline_context


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Context:
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return offline_context(tmp_path)


class Reporter:
    def __init__(self) -> None:
        self.phases: list[tuple[str, str, str]] = []
        self.notes: list[tuple[str, str]] = []

    def phase(self, key: str, title: str, phase: str, detail: str = "") -> None:
        self.phases.append((key, phase, detail))

    def note(self, key: str, text: str) -> None:
        self.notes.append((key, text))


class Differ(Step):
    """A step that writes its differences once, as `diff`: two it applies, one it cannot."""

    key = "differ"
    title = "Differ"

    def __init__(self) -> None:
        self.live = {"size": 1, "color": "red", "shape": "round"}
        self.calls: list[str] = []

    def find(self, ctx: Context) -> Found | None:
        self.calls.append("find")
        return {"thing_id": "t-1", **self.live}

    def diff(self, ctx: Context, found: Found) -> list[Change]:
        self.calls.append("diff")
        out = []
        if found["size"] != 3:
            out.append(Change("set size to 3", lambda: self._set("size", 3), waits_on="the resize"))
        if found["color"] != "blue":
            out.append(Change("paint it blue", lambda: self._set("color", "blue")))
        if found["shape"] != "square":
            out.append(Change(f"shape is {found['shape']}, the config says square",
                              blocked="a shape cannot change in place: make a new one"))
        return out

    def _set(self, field_name: str, value: Any) -> str:
        self.calls.append(f"apply {field_name}")
        self.live[field_name] = value
        return f"{field_name} is {value}"

    def remove(self, ctx: Context, found: Found) -> None:
        return None


def test_a_read_steps_share_is_made_once_even_side_by_side(ctx: Context) -> None:
    """`Context.once`: steps run in parallel, and several ask for the same read (the cluster's minor, an add-on's
    default version, an AMI release). A plain check-then-set cache lets two of them call AWS, or hands one a
    placeholder while the other is still reading; here one reads, the others wait for its answer. A None
    answer is an answer (not read again); other keys do not wait."""
    import threading
    import time

    calls: list[str] = []
    started = threading.Barrier(8)

    def slow_read() -> str | None:
        calls.append("read")
        time.sleep(0.05)  # long enough for every other thread to ask meanwhile
        return None

    answers: list[object] = []

    def ask() -> None:
        started.wait()
        answers.append(ctx.once("addon-default/coredns/1.32", slow_read))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == ["read"] and answers == [None] * 8
    assert ctx.once("addon-default/coredns/1.32", lambda: "asked again") is None
    assert ctx.once("cluster-minor", lambda: "1.32") == "1.32"


def test_plan_prints_the_diff_and_up_applies_it_in_order(ctx: Context) -> None:
    """`plan` shows every change of `diff` (a blocked one as a "!" line naming why and what to do); `up`
    applies the applicable ones once each, in order, and warns of the blocked one. Naive code writing the
    difference twice (changes, update) could print one thing and do another; here there is one list."""
    step = Differ()
    ctx.ledger.persist = False
    (item,) = Engine(ctx, [step], Reporter()).plan()
    assert item.action == "update"
    assert item.details == ["set size to 3", "paint it blue",
                            "! shape is round, the config says square: a shape cannot change in place: make a "
                            "new one"]
    assert step.calls == ["find", "diff"]  # plan read, applied nothing

    step.calls.clear()
    ctx.ledger.persist = True
    reporter = Reporter()
    (outcome,) = Engine(ctx, [step], reporter).up()
    assert outcome.phase == "updated"
    assert outcome.changes == ["size is 3", "color is blue"]
    assert outcome.warnings == ["shape is round, the config says square: a shape cannot change in place: make a "
                                "new one"]
    # One diff, read before anything was applied; the changes applied from that same list.
    assert step.calls == ["find", "diff", "apply size", "apply color"]
    assert ("differ", "set size to 3: waiting for the resize") in reporter.notes

    step.calls.clear()
    (again,) = Engine(ctx, [step], Reporter()).up()
    assert again.phase == "ready" and again.changes == []
    assert [c for c in step.calls if c.startswith("apply")] == []  # a rerun applies nothing
    assert again.warnings == outcome.warnings  # still said: up will never make it


def test_changes_and_update_derive_from_diff(ctx: Context) -> None:
    """The text API (`changes` for plan, `update` for up) comes from the one `diff`."""
    step = Differ()
    found = step.find(ctx) or {}
    assert step.changes(ctx, found) == ["set size to 3", "paint it blue",
                                        "! shape is round, the config says square: a shape cannot change in "
                                        "place: make a new one"]
    assert step.update(ctx, found) == ["size is 3", "color is blue"]
    assert step.changes(ctx, step.find(ctx) or {})[:1] == ["! shape is round, the config says square: a shape "
                                                           "cannot change in place: make a new one"]


def test_a_blocked_only_diff_plans_no_update(ctx: Context) -> None:
    step = Differ()
    step.live.update(size=3, color="blue")
    ctx.ledger.persist = False
    (item,) = Engine(ctx, [step], Reporter()).plan()
    assert item.action == "none" and [d[:2] for d in item.details] == ["! "]


class Resumer(Differ):
    """A step whose earlier, killed run left an update running that makes the size change itself."""

    def resume(self, ctx: Context, found: Found) -> list[str]:
        self.calls.append("resume")
        if self.live["size"] == 3:
            return []
        self.live["size"] = 3
        found.update(self.live)
        return ["finished the resize an earlier run started"]


def test_up_finishes_what_an_earlier_run_started_then_applies_what_is_left(ctx: Context) -> None:
    """`resume` runs before any change; what it finished is not started again (naive code applying the list
    read before the resume would resize twice: an EKS update started on top of the one in flight)."""
    step = Resumer()
    (outcome,) = Engine(ctx, [step], Reporter()).up()
    assert outcome.changes == ["finished the resize an earlier run started", "color is blue"]
    assert step.calls == ["find", "diff", "resume", "diff", "apply color"]


class TextStep(Step):
    """A step still on the compatibility path: it writes `changes` text ("!" marks what it cannot apply)
    and its own `update`."""

    key = "text"
    title = "Text"

    def __init__(self) -> None:
        self.updated = 0

    def find(self, ctx: Context) -> Found | None:
        return {"thing_id": "t-2"}

    def changes(self, ctx: Context, found: Found) -> list[str]:
        return ["grow", "! cannot shrink: recreate it"]

    def update(self, ctx: Context, found: Found) -> list[str]:
        self.updated += 1
        return ["grown"]

    def remove(self, ctx: Context, found: Found) -> None:
        return None


def test_a_step_still_writing_text_goes_through_the_compatibility_path(ctx: Context) -> None:
    step = TextStep()
    assert [(c.text, c.applies) for c in step.planned_changes(ctx, {})] == [("grow", True),
                                                                           ("cannot shrink: recreate it", False)]
    (outcome,) = Engine(ctx, [step], Reporter()).up()
    assert step.updated == 1 and outcome.changes == ["grown"]
    assert outcome.warnings == ["cannot shrink: recreate it"]
    ctx.ledger.persist = False
    (item,) = Engine(ctx, [step], Reporter()).plan()
    assert item.action == "update" and item.details == ["grow", "! cannot shrink: recreate it"]


# -- typed errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("service", "code", "kind"), [
    # What the steps catch, and the codes AWS answers for it (each in docs/aws-fidelity.md, step-contract).
    ("ecr", "PullThroughCacheRuleAlreadyExistsException", AlreadyExists),
    ("ecr", "RepositoryAlreadyExistsException", AlreadyExists),
    ("iam", "EntityAlreadyExists", AlreadyExists),
    ("logs", "ResourceAlreadyExistsException", AlreadyExists),
    ("kms", "AlreadyExistsException", AlreadyExists),
    ("ec2", "InvalidPermission.NotFound", NotFound),
    ("ec2", "InvalidLaunchTemplateName.NotFoundException", NotFound),
    ("ec2", "InvalidLaunchTemplateId.NotFound", NotFound),
    ("ec2", "InvalidLaunchTemplateId.Malformed", InvalidParameter),
    ("ec2", "InvalidLaunchTemplateName.MalformedException", InvalidParameter),
    ("ec2", "InvalidVpcEndpointId.NotFound", NotFound),
    ("kms", "KMSInvalidStateException", InvalidState),
    ("eks", "ResourceInUseException", InUse),
    ("eks", "ResourceNotFoundException", NotFound),
    ("ecr", "AccessDeniedException", AccessDenied),
    ("ec2", "DependencyViolation", DependencyViolation),
])
def test_the_boundary_types_every_code_a_step_relies_on(service: str, code: str, kind: type[AwsApiError]) -> None:
    """Naive code without the code in `aws.error_class` raises a bare AwsApiError, which `except <type>`
    in the step never catches (e.g. a pull-through rule made meanwhile would fail `up`)."""
    error = typed_error(service, "Op", code, "message")
    assert isinstance(error, kind) and error.code == code


def test_per_id_failures_in_a_batch_delete_are_typed() -> None:
    """DeleteVpcEndpoints/DeleteFlowLogs report failures in the body: "already gone" is done, anything else
    is raised as the boundary's type (naive code raised a bare AwsApiError nobody could catch by type)."""
    gone = {"Unsuccessful": [{"ResourceId": "vpce-1", "Error": {"Code": "InvalidVpcEndpointId.NotFound",
                                                                 "Message": "gone"}}]}
    raise_unsuccessful(gone, "DeleteVpcEndpoints")
    held = {"Unsuccessful": [*gone["Unsuccessful"], {"ResourceId": "vpce-2", "Error": {
        "Code": "DependencyViolation", "Message": "in use"}}]}
    with pytest.raises(DependencyViolation, match="vpce-2: in use"):
        raise_unsuccessful(held, "DeleteVpcEndpoints")


def test_no_code_outside_the_boundary_compares_aws_error_codes() -> None:
    """Only the boundary (the aws package, and propagation.py which it asks) reads AWS error codes; everything else
    catches the typed errors. Naive code comparing `exc.code == "..."` in a step breaks as soon as a service
    spells the code differently (ResourceNotFoundException, InvalidVpcID.NotFound, NoSuchEntity, ...)."""
    import re

    import eksprivate

    root = Path(eksprivate.__file__).parent
    comparing = re.compile(r"\.code\s*(==|!=|in\s|not\s+in\s)|\.code\.(startswith|endswith)\(|is_not_found\(")
    boundary = {*(root / "aws").glob("*.py"), root / "propagation.py"}
    offenders = [f"{path.relative_to(root)}:{number}: {line.strip()}"
                 for path in sorted(root.rglob("*.py")) if path not in boundary and "sandbox" not in path.parts
                 for number, line in enumerate(path.read_text().splitlines(), 1) if comparing.search(line)]
    assert offenders == []
