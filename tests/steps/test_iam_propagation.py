"""IAM propagation where a fresh role is used: CreateCluster, CreateNodegroup and CreateFlowLogs are refused
while the role (or its policy attachment) propagates; the steps retry at a fixed pace for a bounded time,
and a genuinely wrong role still fails after the bound with one line naming the role and AWS's message.

The sandbox keeps a role "young" for as long as a test wants (`iam_role_delay` set huge), then lets it
propagate (`iam_role_delay` 0) once it has seen the step retry: no race with the clock.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from eksprivate.aws import typed_error
from eksprivate.errors import AwsApiError, EksPrivateError, InvalidParameter, StillPropagating
from eksprivate.propagation import PROPAGATION
from eksprivate.sandbox import SandboxServer, iam_propagation
from eksprivate.steps import Context, Found
from eksprivate.steps.iam import FlowLogsRole, NodeRole, flow_log_group_name
from eksprivate.steps.network import Vpc
from eksprivate.steps.nodegroups import planned_nodegroups
from eksprivate.steps.security import FlowLogs, LogGroup

from .world import World, build, converge, down_one, graph_step, needed_by

NEVER = 1e12  # iam_role_delay: the role stays young until the test lets it propagate
LEAN = {"secrets_encryption": False, "control_plane_logging": False, "flow_logs": False}

# One refusal per (service, operation) as AWS words it (docs/aws-fidelity.md, iam-propagation).
AWS_REFUSALS = [
    ("eks", "CreateCluster", "InvalidParameterException",
     "Role with arn: arn:aws:iam::123456789012:role/c, could not be assumed because it does not exist or the "
     "trusted entity is not correct"),
    ("eks", "CreateCluster", "InvalidParameterException", "Error in role params"),
    ("eks", "CreateCluster", "InvalidParameterException", "roleArn, arn:aws:iam::123456789012:role/c, does not exist"),
    ("eks", "CreateCluster", "InvalidParameterException",
     "The provided role doesn't have the Amazon EKS Managed Policies associated with it. Please ensure the "
     "following policy is attached: arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"),
    ("eks", "CreateCluster", "InvalidParameterException",
     "IAM role's policy must include the `ec2:DescribeSubnets` action"),
    ("eks", "CreateNodegroup", "InvalidParameterException",
     "Following required service principals [ec2.amazonaws.com] were not found in the trust relationships of "
     "nodeRole arn:aws:iam::123456789012:role/n"),
    ("ec2", "CreateFlowLogs", "InvalidParameter",
     "Unable to assume given IAM role: 'arn:aws:iam::123456789012:role/f'"),
]


@pytest.mark.parametrize(("service", "operation", "code", "message"), AWS_REFUSALS)
def test_the_boundary_types_each_propagation_refusal(service: str, operation: str, code: str, message: str) -> None:
    assert isinstance(typed_error(service, operation, code, message), StillPropagating)
    # The same words from another call, or another refusal of this call, are not propagation.
    other = "CreateFlowLogs" if operation != "CreateFlowLogs" else "CreateCluster"
    assert not isinstance(typed_error(service, other, code, message), StillPropagating)
    plain = typed_error(service, operation, code, "Subnets specified must be in at least two different AZs")
    assert type(plain) is InvalidParameter


def test_a_refusal_in_a_response_body_is_judged_by_its_message() -> None:
    """EC2 reports per-resource refusals in `Unsuccessful` items, with codes it does not document as the
    error's: the message decides (naive code keyed on the error code would not retry it)."""
    message = "Unable to assume given IAM role: 'arn:aws:iam::123456789012:role/f'"
    assert isinstance(typed_error("ec2", "CreateFlowLogs", "400", message, in_body=True), StillPropagating)
    assert not isinstance(typed_error("ec2", "CreateFlowLogs", "400", message), StillPropagating)
    other = typed_error("ec2", "CreateFlowLogs", "400", "LogDestination: b does not exist.", in_body=True)
    assert not isinstance(other, StillPropagating)


def test_every_listed_call_has_an_aws_refusal_here() -> None:
    assert set(PROPAGATION) == {(s, o) for s, o, _, _ in AWS_REFUSALS}


@pytest.fixture
def young_roles(stand_in: SandboxServer) -> Iterator[SandboxServer]:
    """Roles (and attachments) made from now on stay young until `propagate`."""
    stand_in.configure(iam_role_delay=NEVER)
    yield stand_in
    stand_in.configure(iam_role_delay=0)


@pytest.fixture
def refusal_form() -> Iterator[None]:
    previous = iam_propagation.flow_logs_refusal()
    yield
    iam_propagation.set_flow_logs_refusal(previous)


def retried_then_propagated(stand_in: SandboxServer, operation: str, action: Callable[[], Found]) -> Found:
    """Run `action` (a step's create) in a thread; once the sandbox has seen `operation` twice (refused,
    then retried), let IAM propagate; return what `action` returned."""
    stand_in.clear_calls()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["found"] = action()
        except BaseException as exc:  # handed to the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while thread.is_alive() and sum(c.operation == operation for c in stand_in.calls()) < 2:
        assert time.monotonic() < deadline, f"{operation} was not retried within 60 s"
        thread.join(timeout=0.02)  # polls the sandbox's call log; the role stays young meanwhile
    assert thread.is_alive(), f"{operation} finished while the role was young: {outcome}"
    stand_in.configure(iam_role_delay=0)
    thread.join(timeout=60)
    assert not thread.is_alive(), f"{operation} still retrying after the role propagated"
    if "error" in outcome:
        raise outcome["error"]
    found: Found = outcome["found"]
    return found


def flow_logs_ready_but_the_role(world: World) -> Context:
    ctx = world.ctx()
    build(ctx, Vpc(), LogGroup("flow-log-group", "Flow log group", flow_log_group_name(ctx)))
    return ctx


@pytest.mark.parametrize("form", ["error", "unsuccessful"])
def test_flow_logs_wait_out_a_young_role_in_either_refusal_form(
        world: World, young_roles: SandboxServer, refusal_form: None, form: iam_propagation.FlowLogsRefusal) -> None:
    """Naive code (CreateFlowLogs once, right after CreateRole) fails: the error form raises, the
    `Unsuccessful` form returns no flow log. The step retries both until the role has propagated."""
    iam_propagation.set_flow_logs_refusal(form)
    ctx = flow_logs_ready_but_the_role(world)
    role = converge(ctx, FlowLogsRole())
    naive = {"ResourceIds": [ctx.ledger.ids("vpc")["vpc_id"]], "ResourceType": "VPC", "TrafficType": "ALL",
             "LogDestinationType": "cloud-watch-logs", "LogGroupName": flow_log_group_name(ctx),
             "DeliverLogsPermissionArn": role["role_arn"]}
    if form == "error":
        with pytest.raises(StillPropagating, match="Unable to assume given IAM role"):
            ctx.aws.ec2.create_flow_logs(**naive)
    else:
        answer = ctx.aws.ec2.create_flow_logs(**naive)
        assert answer.get("FlowLogIds", []) == []
        assert "Unable to assume" in answer["Unsuccessful"][0]["Error"]["Message"]

    first_token = None

    def create() -> Found:
        nonlocal first_token
        first_token = ctx.ledger.token("flow-logs")
        return FlowLogs().create(ctx)

    found = retried_then_propagated(young_roles, "CreateFlowLogs", create)
    live = world.client("ec2").describe_flow_logs(Filters=world.tag_filter())["FlowLogs"]
    assert [f["FlowLogId"] for f in live] == [found["flow_log_id"]]  # one flow log, however many tries
    assert ctx.ledger.ids("flow-logs")["flow_log_id"] == found["flow_log_id"]
    # A refused attempt made nothing: the accepted one used a fresh token, never one AWS answered "failed".
    assert ctx.ledger.token("flow-logs") != first_token
    FlowLogs().remove(ctx, found)


def test_cluster_waits_out_a_young_role_and_policy_attachment(world: World, young_roles: SandboxServer) -> None:
    """CreateCluster is refused while the cluster role, then its AmazonEKSClusterPolicy attachment,
    propagates. Naive code (one CreateCluster) fails; the step retries until EKS can use the role."""
    ctx = world.ctx(**LEAN)
    build(ctx, *needed_by(ctx, "cluster"))
    cluster = graph_step(ctx, "cluster")
    with pytest.raises(StillPropagating):
        ctx.aws.eks.create_cluster(name=ctx.name, roleArn=ctx.ledger.ids("cluster-role")["role_arn"],
                                   resourcesVpcConfig={"subnetIds": [p["subnet_id"] for p in ctx.ledger.ids(
                                       "subnets")["parts"].values()]})

    found = retried_then_propagated(young_roles, "CreateCluster", lambda: converge(ctx, cluster))
    assert found["status"] == "ACTIVE"
    assert down_one(ctx, cluster).phase == "deleted"


def test_nodegroup_waits_out_a_young_node_role(world: World, stand_in: SandboxServer) -> None:
    """A node role made anew (e.g. deleted by hand since the last run) is not trusted by EKS at once:
    CreateNodegroup says "...were not found in the trust relationships of nodeRole" until it propagates."""
    ctx = world.ctx(**LEAN)
    group = planned_nodegroups(ctx)[0]
    build(ctx, *needed_by(ctx, group.key))
    node_role = converge(ctx, NodeRole())
    NodeRole().remove(ctx, node_role)
    stand_in.configure(iam_role_delay=NEVER)
    try:
        converge(ctx, NodeRole())  # the same name and ARN, young again
        found = retried_then_propagated(stand_in, "CreateNodegroup", lambda: converge(ctx, group))
    finally:
        stand_in.configure(iam_role_delay=0)
    assert found["status"] == "ACTIVE"
    assert down_one(ctx, group).phase == "deleted"
    graph_step(ctx, "cluster").remove(ctx, {"status": "ACTIVE"})


def wrong_role(world: World, suffix: str, trusted: str) -> tuple[str, str]:
    name = f"{world.name}-{suffix}"
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": trusted}, "Action": "sts:AssumeRole"}]}
    arn = world.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    return name, str(arn)


def assert_one_clear_line(error: EksPrivateError, role: str, user: str, aws_message: str) -> None:
    assert not isinstance(error, AwsApiError)  # the retry's own verdict, not the last refusal passed on
    text = str(error)
    assert "\n" not in text
    assert text.startswith(f"IAM role {role} is still not usable by {user} after ")
    assert aws_message in text
    assert error.hint and "rerun" in error.hint


def test_a_flow_logs_role_that_trusts_another_service_fails_after_the_bound(world: World) -> None:
    ctx = flow_logs_ready_but_the_role(world)
    ctx.timeouts.iam_propagation = 0.3
    name, arn = wrong_role(world, "flow-wrong", "ec2.amazonaws.com")
    ctx.ledger.record("flow-logs-role", role_name=name, role_arn=arn)
    with pytest.raises(EksPrivateError) as failed:
        FlowLogs().create(ctx)
    assert_one_clear_line(failed.value, name, "VPC flow logs (CreateFlowLogs)",
                          f"Unable to assume given IAM role: '{arn}'")
    assert world.client("ec2").describe_flow_logs(Filters=world.tag_filter())["FlowLogs"] == []


def test_a_missing_cluster_role_fails_after_the_bound(world: World) -> None:
    ctx = world.ctx(**LEAN)
    build(ctx, *[s for s in needed_by(ctx, "cluster") if s.key != "cluster-role"])
    ctx.timeouts.iam_propagation = 0.3
    name = f"{world.name}-deleted"
    arn = f"arn:aws:iam::123456789012:role/{name}"
    ctx.ledger.record("cluster-role", role_name=name, role_arn=arn)
    with pytest.raises(EksPrivateError) as failed:
        graph_step(ctx, "cluster").create(ctx)
    assert_one_clear_line(failed.value, name, "EKS (CreateCluster)", f"Role with arn: {arn}, could not be assumed")


def test_a_node_role_that_trusts_another_service_fails_after_the_bound(world: World) -> None:
    ctx = world.ctx(**LEAN)
    group = planned_nodegroups(ctx)[0]
    build(ctx, *needed_by(ctx, group.key))
    ctx.timeouts.iam_propagation = 0.3
    name, arn = wrong_role(world, "node-wrong", "eks.amazonaws.com")
    ctx.ledger.record("node-role", role_name=name, role_arn=arn)
    with pytest.raises(EksPrivateError) as failed:
        group.create(ctx)
    assert_one_clear_line(failed.value, name, "EKS (CreateNodegroup)",
                          f"were not found in the trust relationships of nodeRole {arn}")
    graph_step(ctx, "cluster").remove(ctx, {"status": "ACTIVE"})
