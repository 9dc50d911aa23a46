"""VPC endpoints in the sandbox: lifecycles, ClientToken and the deletes they block."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from eksprivate.sandbox import SandboxServer

from .helpers import LONG, ClientFactory, make_network, wait_until

INTERFACE_SERVICE = "com.amazonaws.eu-central-1.sts"
GATEWAY_SERVICE = "com.amazonaws.eu-central-1.s3"


@pytest.fixture
def ec2(client: ClientFactory) -> Any:
    return client("ec2")


@pytest.fixture
def network(ec2: Any) -> tuple[str, list[str], str]:
    return make_network(ec2)


def _state(ec2: Any, endpoint_id: str) -> str | None:
    """The endpoint's state, or None once it is gone."""
    try:
        endpoints = ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint_id])["VpcEndpoints"]
    except ClientError as error:
        assert error.response["Error"]["Code"] == "InvalidVpcEndpointId.NotFound"
        return None
    state: str = endpoints[0]["State"]
    return state


def _interface_endpoint(ec2: Any, network: tuple[str, list[str], str], *, private_dns: bool = True,
                        **extra: Any) -> dict[str, Any]:
    vpc, subnets, group = network
    endpoint: dict[str, Any] = ec2.create_vpc_endpoint(
        VpcId=vpc,
        ServiceName=INTERFACE_SERVICE,
        VpcEndpointType="Interface",
        SubnetIds=subnets,
        SecurityGroupIds=[group],
        PrivateDnsEnabled=private_dns,
        **extra,
    )["VpcEndpoint"]
    return endpoint


def _error_code(error: pytest.ExceptionInfo[ClientError]) -> str:
    code: str = error.value.response["Error"]["Code"]
    return code


def test_interface_endpoint_is_pending_then_available(
    sandbox: SandboxServer, ec2: Any, network: tuple[str, list[str], str]
) -> None:
    sandbox.configure(interface_endpoint_create=LONG)
    endpoint = _interface_endpoint(ec2, network)
    assert endpoint["State"] == "pending"
    assert _state(ec2, endpoint["VpcEndpointId"]) == "pending"

    sandbox.configure(interface_endpoint_create=0)
    assert _state(ec2, endpoint["VpcEndpointId"]) == "available"
    filtered = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-endpoint-state", "Values": ["available"]}])
    assert endpoint["VpcEndpointId"] in [e["VpcEndpointId"] for e in filtered["VpcEndpoints"]]


def test_interface_endpoint_takes_its_time(
    sandbox: SandboxServer, ec2: Any, network: tuple[str, list[str], str]
) -> None:
    sandbox.configure(time_scale=0.005, interface_endpoint_create=90)  # the real 1.5 minutes, scaled
    started = time.monotonic()
    endpoint_id = _interface_endpoint(ec2, network)["VpcEndpointId"]
    wait_until(lambda: _state(ec2, endpoint_id) == "available")
    assert time.monotonic() - started >= 0.45


def test_interface_endpoint_delete_is_deleting_then_gone(
    sandbox: SandboxServer, ec2: Any, network: tuple[str, list[str], str]
) -> None:
    endpoint = _interface_endpoint(ec2, network)
    endpoint_id = endpoint["VpcEndpointId"]
    enis = endpoint["NetworkInterfaceIds"]
    assert len(enis) == 2

    sandbox.configure(interface_endpoint_delete=LONG)
    ec2.delete_vpc_endpoints(VpcEndpointIds=[endpoint_id])
    assert _state(ec2, endpoint_id) == "deleting"
    # Its network interfaces stay until the endpoint is gone.
    assert len(ec2.describe_network_interfaces(NetworkInterfaceIds=enis)["NetworkInterfaces"]) == 2

    sandbox.configure(interface_endpoint_delete=0)
    assert _state(ec2, endpoint_id) is None
    remaining = ec2.describe_network_interfaces(Filters=[{"Name": "vpc-id", "Values": [network[0]]}])
    assert not {e["NetworkInterfaceId"] for e in remaining["NetworkInterfaces"]} & set(enis)


def test_gateway_endpoint_lifecycle(sandbox: SandboxServer, ec2: Any, network: tuple[str, list[str], str]) -> None:
    vpc = network[0]
    route_table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    sandbox.configure(gateway_endpoint=LONG)
    endpoint = ec2.create_vpc_endpoint(
        VpcId=vpc, ServiceName=GATEWAY_SERVICE, VpcEndpointType="Gateway", RouteTableIds=[route_table]
    )["VpcEndpoint"]
    assert endpoint["State"] == "pending"
    sandbox.configure(gateway_endpoint=0)
    assert _state(ec2, endpoint["VpcEndpointId"]) == "available"

    sandbox.configure(gateway_endpoint=LONG)
    ec2.delete_vpc_endpoints(VpcEndpointIds=[endpoint["VpcEndpointId"]])
    assert _state(ec2, endpoint["VpcEndpointId"]) == "deleting"
    sandbox.configure(gateway_endpoint=0)
    assert _state(ec2, endpoint["VpcEndpointId"]) is None


def test_client_token_makes_create_idempotent(ec2: Any, network: tuple[str, list[str], str]) -> None:
    first = _interface_endpoint(ec2, network, ClientToken="same-token")
    again = _interface_endpoint(ec2, network, ClientToken="same-token")
    assert again["VpcEndpointId"] == first["VpcEndpointId"]
    in_vpc = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [network[0]]}])
    assert len(in_vpc["VpcEndpoints"]) == 1

    vpc, subnets, group = network
    with pytest.raises(ClientError) as error:
        _interface_endpoint(ec2, (vpc, subnets[:1], group), ClientToken="same-token")
    assert _error_code(error) == "IdempotentParameterMismatch"

    # A new token is a new endpoint (without private DNS: AWS refuses a second private-DNS endpoint for one
    # service in a VPC, "conflicting DNS domain", which sandbox/endpoint_dns.py models).
    other = _interface_endpoint(ec2, network, private_dns=False, ClientToken="other-token")
    assert other["VpcEndpointId"] != first["VpcEndpointId"]


def test_subnet_security_group_and_vpc_wait_for_the_endpoint(
    sandbox: SandboxServer, ec2: Any, network: tuple[str, list[str], str]
) -> None:
    vpc, subnets, group = network
    endpoint_id = _interface_endpoint(ec2, network)["VpcEndpointId"]

    deletes: list[tuple[Any, dict[str, str]]] = [
        (ec2.delete_subnet, {"SubnetId": subnets[0]}),
        (ec2.delete_security_group, {"GroupId": group}),
        (ec2.delete_vpc, {"VpcId": vpc}),
    ]

    def refusals() -> list[str]:
        codes = []
        for delete, arguments in deletes:
            with pytest.raises(ClientError) as error:
                delete(**arguments)
            codes.append(_error_code(error))
        return codes

    assert refusals() == ["DependencyViolation"] * 3
    sandbox.configure(interface_endpoint_delete=LONG)
    ec2.delete_vpc_endpoints(VpcEndpointIds=[endpoint_id])
    assert refusals() == ["DependencyViolation"] * 3  # still deleting

    sandbox.configure(interface_endpoint_delete=0)
    assert _state(ec2, endpoint_id) is None
    for subnet in subnets:
        ec2.delete_subnet(SubnetId=subnet)
    ec2.delete_security_group(GroupId=group)
    ec2.delete_vpc(VpcId=vpc)


def test_dependency_violation_message(ec2: Any, network: tuple[str, list[str], str]) -> None:
    subnets = network[1]
    _interface_endpoint(ec2, network)
    with pytest.raises(ClientError) as error:
        ec2.delete_subnet(SubnetId=subnets[1])
    assert error.value.response["Error"]["Message"] == (
        f"The subnet '{subnets[1]}' has dependencies and cannot be deleted."
    )


def test_vpc_waits_for_a_gateway_endpoint(sandbox: SandboxServer, ec2: Any) -> None:
    # No subnets and only the main route table: moto alone would delete this VPC.
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    main_table = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"][0]
    endpoint_id = ec2.create_vpc_endpoint(
        VpcId=vpc,
        ServiceName=GATEWAY_SERVICE,
        VpcEndpointType="Gateway",
        RouteTableIds=[main_table["RouteTableId"]],
    )["VpcEndpoint"]["VpcEndpointId"]
    with pytest.raises(ClientError) as error:
        ec2.delete_vpc(VpcId=vpc)
    assert _error_code(error) == "DependencyViolation"

    sandbox.configure(gateway_endpoint=LONG)
    ec2.delete_vpc_endpoints(VpcEndpointIds=[endpoint_id])
    with pytest.raises(ClientError) as error:
        ec2.delete_vpc(VpcId=vpc)
    assert _error_code(error) == "DependencyViolation"
    sandbox.configure(gateway_endpoint=0)
    ec2.delete_vpc(VpcId=vpc)


def test_deleting_a_subnet_drops_its_route_table_association(ec2: Any, network: tuple[str, list[str], str]) -> None:
    vpc, subnets, _group = network
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=table, SubnetId=subnets[0])
    with pytest.raises(ClientError) as error:
        ec2.delete_route_table(RouteTableId=table)
    assert _error_code(error) == "DependencyViolation"
    ec2.delete_subnet(SubnetId=subnets[0])
    ec2.delete_route_table(RouteTableId=table)  # moto alone would refuse this forever
