"""Helpers shared by the sandbox tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

REGION = "eu-central-1"

# time_scale 1 and every duration 0: resources are ready and gone at once, like plain moto.  A test that
# looks at a transitional state sets that duration long (so a loaded machine cannot skip the state),
# then sets it back to 0 to finish it: states follow the current timing lazily.
TEST_TIMING: dict[str, float] = {
    "time_scale": 1.0,
    "cluster_create": 0.0,
    "cluster_delete": 0.0,
    "nodegroup_create": 0.0,
    "nodegroup_delete": 0.0,
    "interface_endpoint_create": 0.0,
    "interface_endpoint_delete": 0.0,
    "gateway_endpoint": 0.0,
    "iam_role_delay": 0.0,
    "cluster_update": 0.0,
    "nodegroup_update": 0.0,
    "lb_eni_release": 0.0,
    "cluster_version_update": 0.0,
    "nodegroup_version_update": 0.0,
    "addon_create": 0.0,
    "addon_update": 0.0,
    "addon_delete": 0.0,
    "nodegroup_join_timeout": 0.0,
}
LONG = 3600.0  # a duration no test waits for
NO_FAULTS: dict[str, Any] = {"throttle_rate": 0.0, "unavailable_rate": 0.0, "seed": 0}

EKS_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "eks.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
NODE_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}

ClientFactory = Callable[..., Any]


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll until `condition()` is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def make_role(iam: Any, role_name: str, trust: dict[str, Any] = EKS_TRUST) -> str:
    """A role trusting `trust`'s service; a cluster role (EKS trust) gets AmazonEKSClusterPolicy, without
    which EKS (and the sandbox) refuses CreateCluster."""
    arn: str = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    if trust is EKS_TRUST:
        iam.attach_role_policy(RoleName=role_name, PolicyArn="arn:aws:iam::aws:policy/AmazonEKSClusterPolicy")
    return arn


def make_network(ec2: Any, subnets: int = 2) -> tuple[str, list[str], str]:
    """A VPC with subnets and a security group: (vpc id, subnet ids, security group id)."""
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet_ids = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24")["Subnet"]["SubnetId"] for i in range(subnets)
    ]
    group = ec2.create_security_group(VpcId=vpc, GroupName="endpoints", Description="endpoints")["GroupId"]
    return vpc, subnet_ids, group
