"""IAM propagation in the sandbox (`iam_propagation`): EKS and EC2 refuse a role, or a policy attachment,
that is younger than `iam_role_delay`, each with AWS's own message.

The sandbox's clock is replaced by one the test moves by hand, so "young" and "old" are exact and a
loaded machine cannot skip a state (moto runs in this process: the server threads read the same clock).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from eksprivate.sandbox import SandboxServer, iam_propagation
from eksprivate.sandbox.core import clock as sandbox_clock

from .helpers import EKS_TRUST, NODE_TRUST, ClientFactory, make_network, make_role

DELAY = 600.0  # iam_role_delay, in sandbox seconds (time_scale 1 in these tests): no test runs that long
CLUSTER_POLICY = "arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"
FLOW_LOGS_TRUST = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "vpc-flow-logs.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
ACCOUNT = "123456789012"


class Clock:
    """The sandbox's monotonic clock, pushed ahead by the test. It still runs (resources made elsewhere with
    the real clock keep aging forward), but IAM delays of DELAY seconds pass only when the test says so."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(sandbox_clock, "now", fake)
    sandbox.configure(iam_role_delay=DELAY)
    return fake


@pytest.fixture
def refusal_form() -> Iterator[None]:
    """Leaves the CreateFlowLogs refusal form as it found it."""
    previous = iam_propagation.flow_logs_refusal()
    yield
    iam_propagation.set_flow_logs_refusal(previous)


def _error(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as refused:
        call(**kwargs)
    error = refused.value.response["Error"]
    return str(error["Code"]), str(error["Message"])


def test_create_cluster_waits_for_the_cluster_policy_attachment(
    clock: Clock, client: ClientFactory, name: str
) -> None:
    """EKS checks the role, then its AmazonEKSClusterPolicy attachment, which propagates on its own. Naive
    code that attaches the policy and calls CreateCluster at once (with no retry) fails here."""
    iam, eks = client("iam"), client("eks")
    subnets = make_network(client("ec2"))[1]
    role_name = f"{name}-cluster"
    role = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(EKS_TRUST))["Role"]["Arn"]
    create = {"name": name, "roleArn": role, "resourcesVpcConfig": {"subnetIds": subnets}}

    assert _error(eks.create_cluster, **create) == (
        "InvalidParameterException",
        f"Role with arn: {role}, could not be assumed because it does not exist or the trusted entity is not correct")
    clock.advance(DELAY)  # the role has propagated; no policy is attached at all
    managed = ("InvalidParameterException", "The provided role doesn't have the Amazon EKS Managed Policies "
               f"associated with it. Please ensure the following policy is attached: {CLUSTER_POLICY}")
    assert _error(eks.create_cluster, **create) == managed

    iam.attach_role_policy(RoleName=role_name, PolicyArn=CLUSTER_POLICY)
    assert _error(eks.create_cluster, **create) == managed  # the attachment is young
    clock.advance(DELAY - 60)  # still young (unless this test took a minute since the attachment)
    assert _error(eks.create_cluster, **create) == managed
    clock.advance(60)
    assert eks.create_cluster(**create)["cluster"]["status"] == "ACTIVE"  # TEST_TIMING: created at once
    eks.delete_cluster(name=name)


def test_create_nodegroup_refuses_a_young_node_role_with_the_trust_relationship_message(
    clock: Clock, client: ClientFactory, name: str
) -> None:
    iam, eks = client("iam"), client("eks")
    subnets = make_network(client("ec2"))[1]
    cluster_role = make_role(iam, f"{name}-cluster")
    clock.advance(DELAY)
    eks.create_cluster(name=name, roleArn=cluster_role, resourcesVpcConfig={"subnetIds": subnets})
    node_role = make_role(iam, f"{name}-node", NODE_TRUST)
    create = {"clusterName": name, "nodegroupName": "workers", "nodeRole": node_role, "subnets": subnets}

    trust_message = ("InvalidParameterException", "Following required service principals [ec2.amazonaws.com] "
                     f"were not found in the trust relationships of nodeRole {node_role}")
    assert _error(eks.create_nodegroup, **create) == trust_message
    clock.advance(DELAY)
    assert eks.create_nodegroup(**create)["nodegroup"]["nodeRole"] == node_role

    # A role that trusts another service gets the same answer however old it is.
    wrong = make_role(iam, f"{name}-wrong")  # trusts eks.amazonaws.com
    clock.advance(DELAY)
    refused = _error(eks.create_nodegroup, **{**create, "nodegroupName": "other", "nodeRole": wrong})
    assert refused[1].endswith(f"trust relationships of nodeRole {wrong}")
    eks.delete_nodegroup(clusterName=name, nodegroupName="workers")
    eks.delete_cluster(name=name)


def _flow_logs_request(client: ClientFactory, name: str, role: str) -> dict[str, Any]:
    vpc = make_network(client("ec2"), subnets=1)[0]
    client("logs").create_log_group(logGroupName=f"/{name}/flow")
    return {"ResourceIds": [vpc], "ResourceType": "VPC", "TrafficType": "ALL",
            "LogDestinationType": "cloud-watch-logs", "LogGroupName": f"/{name}/flow",
            "DeliverLogsPermissionArn": role}


@pytest.mark.parametrize("form", ["error", "unsuccessful"])
def test_create_flow_logs_refuses_a_young_role_in_the_form_chosen(
    clock: Clock, client: ClientFactory, name: str, form: iam_propagation.FlowLogsRefusal, refusal_form: None
) -> None:
    """Naive code (CreateFlowLogs right after CreateRole, no retry) gets "Unable to assume given IAM role",
    as an InvalidParameter error or as an `Unsuccessful` item of a 200 answer."""
    iam_propagation.set_flow_logs_refusal(form)
    ec2 = client("ec2")
    role = make_role(client("iam"), f"{name}-flow-logs", FLOW_LOGS_TRUST)
    request = _flow_logs_request(client, name, role)
    message = f"Unable to assume given IAM role: '{role}'"

    if form == "error":
        assert _error(ec2.create_flow_logs, **request) == ("InvalidParameter", message)
    else:
        answer = ec2.create_flow_logs(**request)
        assert answer.get("FlowLogIds", []) == []
        assert answer["Unsuccessful"] == [{"ResourceId": request["ResourceIds"][0],
                                           "Error": {"Code": "InvalidParameter", "Message": message}}]
    assert ec2.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": request["ResourceIds"]}])[
        "FlowLogs"] == []

    clock.advance(DELAY)
    made = ec2.create_flow_logs(**request)
    assert len(made["FlowLogIds"]) == 1 and not made.get("Unsuccessful")
    ec2.delete_flow_logs(FlowLogIds=made["FlowLogIds"])


def test_flow_logs_trust_conditions_must_admit_this_accounts_flow_logs(
    clock: Clock, client: ClientFactory, name: str
) -> None:
    """The confused-deputy conditions are evaluated: a trust policy limited to another account (or to
    something that is not a flow log) is never assumable, however old the role."""
    ec2, iam = client("ec2"), client("iam")

    def role_with(condition: dict[str, Any], suffix: str) -> str:
        trust = {"Version": "2012-10-17", "Statement": [{**FLOW_LOGS_TRUST["Statement"][0], "Condition": condition}]}
        return make_role(iam, f"{name}-{suffix}", trust)

    right = role_with({"StringEquals": {"aws:SourceAccount": ACCOUNT},
                       "ArnLike": {"aws:SourceArn": f"arn:aws:ec2:eu-central-1:{ACCOUNT}:vpc-flow-log/*"}}, "right")
    other_account = role_with({"StringEquals": {"aws:SourceAccount": "999999999999"}}, "other-account")
    other_region = role_with({"ArnLike": {"aws:SourceArn": f"arn:aws:ec2:us-east-1:{ACCOUNT}:vpc-flow-log/*"}},
                             "other-region")
    clock.advance(DELAY)
    for wrong in (other_account, other_region):
        request = _flow_logs_request(client, f"{name}-{wrong[-5:]}", wrong)
        assert _error(ec2.create_flow_logs, **request) == (
            "InvalidParameter", f"Unable to assume given IAM role: '{wrong}'")
    made = ec2.create_flow_logs(**_flow_logs_request(client, name, right))
    assert len(made["FlowLogIds"]) == 1
    ec2.delete_flow_logs(FlowLogIds=made["FlowLogIds"])


def test_refusal_form_is_checked(refusal_form: None) -> None:
    with pytest.raises(ValueError, match="'error' or 'unsuccessful'"):
        iam_propagation.set_flow_logs_refusal("sometimes")  # type: ignore[arg-type]
