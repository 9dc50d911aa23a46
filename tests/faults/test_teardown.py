"""Teardown that really finishes: what real AWS leaves in the way (dependency violations that clear after
a while, detached ENIs of the VPC CNI, the security group EKS makes for the cluster) is handled, roles
outlive the cluster, and the KMS key is scheduled for deletion. Checked from the calls `down` made."""

from __future__ import annotations

from eksprivate.sandbox import SandboxServer

from .helpers import REGION, Cli, SdkHooks, clients, inventory


def _up(cli: Cli, name: str) -> None:
    result = cli("up", "--name", name, "--region", REGION)
    assert result.exit_code == 0, result.stderr


def _down(cli: Cli, name: str) -> None:
    result = cli("down", "--name", name, "--region", REGION, "--yes")
    assert result.exit_code == 0, result.stderr


def test_dependency_violation_on_sg_subnet_and_vpc_is_retried_until_it_clears(
        stand_in: SandboxServer, cli: Cli, hooks: SdkHooks, cluster_name: str) -> None:
    _up(cli, cluster_name)
    refusals = {
        op: hooks.fail("ec2", op, "DependencyViolation", message, times=3)
        for op, message in (("DeleteSecurityGroup", "resource sg-0 has a dependent object"),
                            ("DeleteSubnet", "The subnet 'subnet-0' has dependencies and cannot be deleted."),
                            ("DeleteVpc", "The vpc 'vpc-0' has dependencies and cannot be deleted."))}
    hooks.watch("ec2.DeleteSecurityGroup", "ec2.DeleteSubnet", "ec2.DeleteVpc")
    _down(cli, cluster_name)
    assert {op: count[0] for op, count in refusals.items()} == {
        "DeleteSecurityGroup": 3, "DeleteSubnet": 3, "DeleteVpc": 3}
    # Each refused delete was tried again until AWS let it through.
    assert [s.status for s in hooks.calls("DeleteVpc")] == [400, 400, 400, 200]
    assert inventory(stand_in.url, cluster_name) == []


def test_leftover_enis_and_the_eks_cluster_security_group_are_deleted_after_the_endpoints(
        stand_in: SandboxServer, cli: Cli, hooks: SdkHooks, cluster_name: str) -> None:
    _up(cli, cluster_name)
    ec2 = clients(stand_in.url)["ec2"]
    tag = [{"Name": "tag:eksprivate:cluster", "Values": [cluster_name]}]
    vpc_id = ec2.describe_vpcs(Filters=tag)["Vpcs"][0]["VpcId"]
    subnets = [s["SubnetId"] for s in ec2.describe_subnets(Filters=tag)["Subnets"]]
    # What EKS leaves in a real account: its cluster security group (rules referencing itself) ...
    eks_sg = ec2.create_security_group(
        GroupName=f"eks-cluster-sg-{cluster_name}-123456789", VpcId=vpc_id, Description="EKS created security group",
        TagSpecifications=[{"ResourceType": "security-group", "Tags": [
            {"Key": "aws:eks:cluster-name", "Value": cluster_name},
            {"Key": f"kubernetes.io/cluster/{cluster_name}", "Value": "owned"}]}])["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=eks_sg, IpPermissions=[
        {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": eks_sg}]}])
    # ... and detached ENIs of the VPC CNI in the node subnets.
    enis = [ec2.create_network_interface(SubnetId=s, Groups=[eks_sg], Description="aws-K8S-i-0123456789abcdef0",
                                         )["NetworkInterface"]["NetworkInterfaceId"] for s in subnets]
    # Endpoints take a while to go (0.3 s here): their subnets and SG must wait for them.
    stand_in.configure(interface_endpoint_delete=600.0)
    hooks.watch("ec2.DeleteNetworkInterface", "ec2.DeleteSecurityGroup", "ec2.DeleteSubnet", "ec2.DeleteVpc",
                "ec2.RevokeSecurityGroupIngress")
    stand_in.clear_calls()
    _down(cli, cluster_name)

    order = [(s.operation, s.params.get("GroupId") or s.params.get("SubnetId") or s.params.get("VpcId")
              or s.params.get("NetworkInterfaceId"), s.status) for s in hooks.seen]
    deleted_enis = [i for op, i, status in order if op == "DeleteNetworkInterface" and status == 200]
    assert sorted(deleted_enis) == sorted(enis)
    first_subnet = next(n for n, (op, _, _) in enumerate(order) if op == "DeleteSubnet")
    assert all(n < first_subnet for n, (op, i, _) in enumerate(order) if op == "DeleteNetworkInterface")
    eks_sg_deleted = next(n for n, (op, i, s) in enumerate(order) if op == "DeleteSecurityGroup" and i == eks_sg)
    vpc_deleted = next(n for n, (op, i, s) in enumerate(order) if op == "DeleteVpc" and s == 200)
    assert eks_sg_deleted < vpc_deleted
    refused = [(r.operation, r.status) for r in stand_in.calls()
               if r.operation in ("DeleteSubnet", "DeleteSecurityGroup", "DeleteVpc") and r.status != 200]
    assert refused == [], "a subnet or SG was deleted while the endpoints still used it"
    assert ec2.describe_security_groups(Filters=[{"Name": "group-id", "Values": [eks_sg]}])["SecurityGroups"] == []
    assert ec2.describe_network_interfaces(Filters=[{"Name": "network-interface-id", "Values": enis}])[
        "NetworkInterfaces"] == []
    assert inventory(stand_in.url, cluster_name) == []


def test_roles_outlive_the_cluster_and_the_kms_key_is_scheduled_for_deletion_by_id(
        stand_in: SandboxServer, cli: Cli, hooks: SdkHooks, cluster_name: str) -> None:
    _up(cli, cluster_name)
    key_id = clients(stand_in.url)["kms"].describe_key(KeyId=f"alias/eksprivate/{cluster_name}")["KeyMetadata"]["KeyId"]
    hooks.watch("eks.DescribeCluster", "eks.DeleteCluster", "iam.DeleteRole", "kms.ScheduleKeyDeletion")
    _down(cli, cluster_name)

    seen = list(hooks.seen)
    gone = next(n for n, s in enumerate(seen) if s.operation == "DescribeCluster" and s.status == 404)
    assert any(s.operation == "DeleteCluster" for s in seen[:gone])
    roles = [(n, s.params["RoleName"]) for n, s in enumerate(seen) if s.operation == "DeleteRole"]
    for suffix in ("cluster", "node"):
        n, role = next((n, r) for n, r in roles if r.endswith(f"-{suffix}"))
        assert n > gone, f"role {role} deleted while the cluster still existed"
    scheduled = [s.params for s in seen if s.operation == "ScheduleKeyDeletion"]
    assert scheduled == [{"KeyId": key_id, "PendingWindowInDays": 7, "url_path": "/"}]
    meta = clients(stand_in.url)["kms"].describe_key(KeyId=key_id)["KeyMetadata"]
    assert meta["KeyState"] == "PendingDeletion"
    assert inventory(stand_in.url, cluster_name) == []
