"""Endpoint policies in the sandbox, as AWS keeps them: the full-access default (with ResetPolicy restoring it,
where plain moto keeps the old policy), policies answered reformatted, InvalidPolicyDocument."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from .helpers import ClientFactory, make_network

REGION = "eu-central-1"
PERIMETER = {"Version": "2012-10-17", "Statement": [
    {"Sid": "TrustedPrincipals", "Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*",
     "Condition": {"StringEquals": {"aws:PrincipalAccount": ["123456789012"]}}}]}
FULL_ACCESS = [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}]


@pytest.fixture
def ec2(client: ClientFactory) -> Any:
    return client("ec2")


def _endpoint(ec2: Any, kind: str, **kw: Any) -> str:
    vpc, subnets, group = make_network(ec2)
    if kind == "Interface":
        kw.update(SubnetIds=subnets, SecurityGroupIds=[group], ServiceName=f"com.amazonaws.{REGION}.sts")
    else:
        table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        kw.update(RouteTableIds=[table], ServiceName=f"com.amazonaws.{REGION}.s3")
    endpoint_id: str = ec2.create_vpc_endpoint(VpcEndpointType=kind, VpcId=vpc, **kw)["VpcEndpoint"]["VpcEndpointId"]
    return endpoint_id


def _policy(ec2: Any, endpoint_id: str) -> str:
    text: str = ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint_id])["VpcEndpoints"][0]["PolicyDocument"]
    return text


@pytest.mark.parametrize("kind", ["Interface", "Gateway"])
def test_reset_policy_restores_full_access(ec2: Any, kind: str) -> None:
    """moto ignores ResetPolicy and keeps the perimeter; AWS restores its full-access default."""
    endpoint_id = _endpoint(ec2, kind)
    assert json.loads(_policy(ec2, endpoint_id))["Statement"] == FULL_ACCESS  # created without one: the default
    ec2.modify_vpc_endpoint(VpcEndpointId=endpoint_id, PolicyDocument=json.dumps(PERIMETER))
    assert json.loads(_policy(ec2, endpoint_id)) == PERIMETER
    ec2.modify_vpc_endpoint(VpcEndpointId=endpoint_id, ResetPolicy=True)
    document = json.loads(_policy(ec2, endpoint_id))
    assert document["Statement"] == FULL_ACCESS
    assert ("Version" in document) == (kind == "Gateway")  # as DescribeVpcEndpoints shows AWS's defaults


def test_a_policy_is_answered_reformatted_not_as_sent(ec2: Any) -> None:
    """Code comparing the text it sent with the text AWS answers sees a change on every run."""
    sent = json.dumps(PERIMETER)
    endpoint_id = _endpoint(ec2, "Interface", PolicyDocument=sent)
    answered = _policy(ec2, endpoint_id)
    assert answered != sent and json.loads(answered) == PERIMETER


@pytest.mark.parametrize("policy", ["{not json", json.dumps({"Version": "2012-10-17"}),
                                    json.dumps({**PERIMETER, "Pad": "x" * 20480})])
def test_what_is_not_a_policy_is_refused(ec2: Any, policy: str) -> None:
    with pytest.raises(ClientError) as refused:
        _endpoint(ec2, "Interface", PolicyDocument=policy)
    assert refused.value.response["Error"]["Code"] == "InvalidPolicyDocument"
    endpoint_id = _endpoint(ec2, "Gateway")
    with pytest.raises(ClientError) as refused:
        ec2.modify_vpc_endpoint(VpcEndpointId=endpoint_id, PolicyDocument=policy)
    assert refused.value.response["Error"]["Code"] == "InvalidPolicyDocument"
    assert json.loads(_policy(ec2, endpoint_id))["Statement"] == FULL_ACCESS  # unchanged
