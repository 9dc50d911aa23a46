"""What keeps EC2 from deleting subnets, security groups and VPCs in the sandbox (`lb_dependents`): load
balancers and their network interfaces, interfaces in use, rules naming a group, groups and instances left
in a VPC. Plain moto lets every one of these deletes through (a naive sandbox: each test below passes the
delete it must refuse)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from eksprivate.sandbox import SandboxServer

from .helpers import LONG, ClientFactory, make_network, wait_until


@pytest.fixture
def ec2(client: ClientFactory) -> Any:
    return client("ec2")


def _refused(call: Any, code: str = "DependencyViolation") -> str:
    with pytest.raises(ClientError) as refused:
        call()
    assert refused.value.response["Error"]["Code"] == code, refused.value.response
    return str(refused.value.response["Error"]["Message"])


def _nlb(client: ClientFactory, name: str, subnets: list[str], groups: list[str]) -> dict[str, Any]:
    lb: dict[str, Any] = client("elbv2").create_load_balancer(
        Name=name, Subnets=subnets, SecurityGroups=groups, Scheme="internal", Type="network")["LoadBalancers"][0]
    return lb


def test_a_load_balancer_blocks_its_subnets_and_group_until_its_interfaces_are_released(
        sandbox: SandboxServer, client: ClientFactory, ec2: Any, name: str) -> None:
    _vpc, subnets, group = make_network(ec2)
    lb = _nlb(client, name, subnets, [group])
    path = lb["LoadBalancerArn"].split(":loadbalancer/", 1)[1]
    enis = ec2.describe_network_interfaces(Filters=[{"Name": "description", "Values": [f"ELB {path}"]}])[
        "NetworkInterfaces"]
    # One requester-managed interface per subnet, in use, in the load balancer's group, as AWS makes them.
    assert sorted(e["SubnetId"] for e in enis) == sorted(subnets)
    assert all(e["RequesterManaged"] and e["Status"] == "in-use" for e in enis)
    assert all([g["GroupId"] for g in e["Groups"]] == [group] for e in enis)
    assert "has dependencies" in _refused(lambda: ec2.delete_subnet(SubnetId=subnets[0]))
    assert "dependent object" in _refused(lambda: ec2.delete_security_group(GroupId=group))
    _refused(lambda: ec2.delete_network_interface(NetworkInterfaceId=enis[0]["NetworkInterfaceId"]),
             "InvalidParameterValue")

    sandbox.configure(lb_eni_release=LONG)
    client("elbv2").delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
    # Gone from ELBv2 at once; its interfaces are not, and still block.
    assert ec2.describe_network_interfaces(Filters=[{"Name": "description", "Values": [f"ELB {path}"]}])[
        "NetworkInterfaces"]
    _refused(lambda: ec2.delete_subnet(SubnetId=subnets[0]))
    sandbox.configure(lb_eni_release=0.0)
    wait_until(lambda: not ec2.describe_network_interfaces(
        Filters=[{"Name": "description", "Values": [f"ELB {path}"]}])["NetworkInterfaces"])
    ec2.delete_subnet(SubnetId=subnets[0])
    ec2.delete_security_group(GroupId=group)


def test_a_classic_load_balancer_blocks_its_subnet(client: ClientFactory, ec2: Any, name: str) -> None:
    _vpc, subnets, group = make_network(ec2, subnets=1)
    elb = client("elb")
    elb.create_load_balancer(LoadBalancerName=name, Subnets=subnets, SecurityGroups=[group], Scheme="internal",
                             Listeners=[{"Protocol": "TCP", "LoadBalancerPort": 80, "InstancePort": 30080}])
    enis = ec2.describe_network_interfaces(Filters=[{"Name": "description", "Values": [f"ELB {name}"]}])[
        "NetworkInterfaces"]
    assert [e["SubnetId"] for e in enis] == subnets
    _refused(lambda: ec2.delete_subnet(SubnetId=subnets[0]))
    elb.delete_load_balancer(LoadBalancerName=name)
    ec2.delete_subnet(SubnetId=subnets[0])  # lb_eni_release 0: released at once


def test_a_group_named_by_another_groups_rule_or_used_by_an_interface_is_refused(ec2: Any) -> None:
    vpc, subnets, group = make_network(ec2, subnets=1)
    other = ec2.create_security_group(VpcId=vpc, GroupName="nodes", Description="nodes")["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=other, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "UserIdGroupPairs": [{"GroupId": group}]}])
    _refused(lambda: ec2.delete_security_group(GroupId=group))
    ec2.revoke_security_group_ingress(GroupId=other, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "UserIdGroupPairs": [{"GroupId": group}]}])
    eni = ec2.create_network_interface(SubnetId=subnets[0], Groups=[group])["NetworkInterface"]["NetworkInterfaceId"]
    _refused(lambda: ec2.delete_security_group(GroupId=group))
    _refused(lambda: ec2.delete_subnet(SubnetId=subnets[0]))
    ec2.delete_network_interface(NetworkInterfaceId=eni)  # detached and the caller's own: allowed
    ec2.delete_security_group(GroupId=group)
    ec2.delete_subnet(SubnetId=subnets[0])


def test_a_vpc_with_a_group_or_an_instance_left_is_refused(ec2: Any) -> None:
    vpc, subnets, group = make_network(ec2, subnets=1)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, SubnetId=subnets[0])["Instances"][0][
        "InstanceId"]
    _refused(lambda: ec2.delete_subnet(SubnetId=subnets[0]))  # the instance's interface
    ec2.terminate_instances(InstanceIds=[instance])
    ec2.delete_subnet(SubnetId=subnets[0])
    assert "has dependencies" in _refused(lambda: ec2.delete_vpc(VpcId=vpc))  # the group is left
    ec2.delete_security_group(GroupId=group)
    ec2.delete_vpc(VpcId=vpc)


def test_endpoint_and_mount_target_interfaces_look_as_on_aws(client: ClientFactory, ec2: Any, name: str) -> None:
    vpc, subnets, group = make_network(ec2, subnets=1)
    endpoint = ec2.create_vpc_endpoint(VpcId=vpc, ServiceName="com.amazonaws.eu-central-1.sts",
                                       VpcEndpointType="Interface", SubnetIds=subnets,
                                       SecurityGroupIds=[group])["VpcEndpoint"]
    eni = ec2.describe_network_interfaces(NetworkInterfaceIds=endpoint["NetworkInterfaceIds"])[
        "NetworkInterfaces"][0]
    assert (eni["Description"], eni["InterfaceType"], eni["RequesterManaged"]) == (
        f"VPC Endpoint Interface {endpoint['VpcEndpointId']}", "vpc_endpoint", True)
    efs = client("efs")
    fs = efs.create_file_system(CreationToken=name)["FileSystemId"]
    target = efs.create_mount_target(FileSystemId=fs, SubnetId=subnets[0])
    eni = ec2.describe_network_interfaces(NetworkInterfaceIds=[target["NetworkInterfaceId"]])["NetworkInterfaces"][0]
    assert eni["Description"] == f"EFS mount target for {fs} ({target['MountTargetId']})"
    _refused(lambda: ec2.delete_subnet(SubnetId=subnets[0]))
    efs.delete_mount_target(MountTargetId=target["MountTargetId"])  # EFS removes its own interface
    assert not ec2.describe_network_interfaces(Filters=[{"Name": "description", "Values": [eni["Description"]]}])[
        "NetworkInterfaces"]
