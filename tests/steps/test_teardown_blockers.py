"""The network steps' deletes against what they cannot delete: a DependencyViolation whose cause is not the
cluster's is named at once (no retry), the ENI sweep takes only the VPC CNI's interfaces, the VPC step
touches only the cluster's security groups, and EFS mount targets go while the file system stays."""

from __future__ import annotations

from typing import Any

import pytest

from eksprivate.sandbox import SandboxServer
from eksprivate.steps.k8s_leftovers import K8sLeftovers, kept_data
from eksprivate.steps.network import EndpointSecurityGroup, Subnets, Vpc
from eksprivate.steps.vpc_contents import BlockedByForeign

from .world import World, converge, down_one


def _calls(ctx: Any, operation: str, mark: int) -> int:
    return sum(1 for _, op in ctx.aws.log.calls[mark:] if op == operation)


def test_a_foreign_interface_in_a_subnet_is_named_at_once_and_kept(world: World) -> None:
    """Naive: the sweep deleted every `available` interface in the subnet (the user's too), or, for one in
    use, DeleteSubnet was retried for 20 minutes. Here one refusal, the interface named, left alone; the
    CNI's own leftover interface is deleted."""
    ctx = world.ctx()
    converge(ctx, Vpc())
    found = converge(ctx, Subnets())
    ec2 = world.client("ec2")
    subnet = found["parts"][ctx.azs[0]]["subnet_id"]
    theirs = ec2.create_network_interface(SubnetId=subnet, Description="appliance")["NetworkInterface"][
        "NetworkInterfaceId"]
    cni = ec2.create_network_interface(SubnetId=subnet, Description="aws-K8S-i-0123456789abcdef0")[
        "NetworkInterface"]["NetworkInterfaceId"]
    mark = len(ctx.aws.log.calls)
    with pytest.raises(BlockedByForeign) as blocked:
        Subnets().remove(ctx, found)
    assert theirs in str(blocked.value) and "appliance" in str(blocked.value)
    assert [b.ident for b in blocked.value.blockers] == [theirs]
    assert _calls(ctx, "DeleteSubnet", mark) == 1  # refused once, explained, not retried
    assert ec2.describe_network_interfaces(NetworkInterfaceIds=[theirs])["NetworkInterfaces"]
    assert ec2.describe_network_interfaces(Filters=[{"Name": "network-interface-id", "Values": [cni]}])[
        "NetworkInterfaces"] == []
    ec2.delete_network_interface(NetworkInterfaceId=theirs)
    Subnets().remove(ctx, found)
    assert ec2.describe_subnets(Filters=world.tag_filter())["Subnets"] == []


def test_the_vpc_step_leaves_a_foreign_group_and_its_rules_alone(world: World) -> None:
    """Naive: every non-default group in the VPC had its rules revoked and was deleted. Here only the
    cluster's (eksprivate's, EKS's cluster group) go; the user's group keeps its rule and is named."""
    ctx = world.ctx()
    vpc = converge(ctx, Vpc())
    ec2 = world.client("ec2")
    rule = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "203.0.113.0/24"}]}
    theirs = ec2.create_security_group(GroupName="bastion", VpcId=vpc["vpc_id"], Description="ssh")["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=theirs, IpPermissions=[rule])
    eks_sg = ec2.create_security_group(
        GroupName=f"eks-cluster-sg-{world.name}", VpcId=vpc["vpc_id"], Description="EKS created security group",
        TagSpecifications=[{"ResourceType": "security-group",
                            "Tags": [{"Key": "aws:eks:cluster-name", "Value": world.name}]}])["GroupId"]
    mark = len(ctx.aws.log.calls)
    with pytest.raises(BlockedByForeign) as blocked:
        Vpc().remove(ctx, vpc)
    assert theirs in str(blocked.value) and "bastion" in str(blocked.value)
    assert _calls(ctx, "DeleteVpc", mark) == 1
    group = ec2.describe_security_groups(GroupIds=[theirs])["SecurityGroups"][0]
    assert [p["FromPort"] for p in group["IpPermissions"]] == [22]
    assert ec2.describe_security_groups(Filters=[{"Name": "group-id", "Values": [eks_sg]}])["SecurityGroups"] == []
    ec2.delete_security_group(GroupId=theirs)
    Vpc().remove(ctx, vpc)


def test_efs_mount_targets_go_the_file_system_stays_unless_asked(stand_in: SandboxServer, world: World) -> None:
    """Mount targets block the subnets; the file system holds data. Naive: either both stay (down fails on
    the subnets) or both go (data lost). Works from tags alone (a fresh state file)."""
    ctx = world.ctx()
    converge(ctx, Vpc())
    converge(ctx, EndpointSecurityGroup())
    subnets = converge(ctx, Subnets())
    efs = world.client("efs")
    fs = efs.create_file_system(CreationToken=world.name, Tags=[
        {"Key": f"kubernetes.io/cluster/{world.name}", "Value": "owned"}, {"Key": "Name", "Value": "shared"}])[
        "FileSystemId"]
    targets = [efs.create_mount_target(FileSystemId=fs, SubnetId=p["subnet_id"])["MountTargetId"]
               for p in subnets["parts"].values()]
    lost = world.ctx(fresh=True)
    found = K8sLeftovers().find(lost)
    assert found is not None and sorted(found["file_systems"][0]["mount_targets"]) == sorted(targets)
    K8sLeftovers().remove(lost, found)
    assert efs.describe_mount_targets(FileSystemId=fs)["MountTargets"] == []
    assert [f["FileSystemId"] for f in efs.describe_file_systems(FileSystemId=fs)["FileSystems"]] == [fs]
    assert any(fs in line and "shared" in line for line in kept_data(lost))
    Subnets().remove(lost, subnets)  # nothing holds them now

    lost.delete_volumes = True
    again = K8sLeftovers().find(lost)
    assert again is not None
    K8sLeftovers().remove(lost, again)
    assert fs not in [f["FileSystemId"] for f in efs.describe_file_systems()["FileSystems"]]
    assert K8sLeftovers().find(lost) is None


def test_the_check_names_each_kind_of_foreign_resource_and_nothing_of_the_clusters(world: World) -> None:
    """The first look `down` takes: nothing for what eksprivate, EKS and Kubernetes made; each foreign
    resource that would block the VPC (or be ended with it, as a peering) named with what to do."""
    from eksprivate.steps.foreign_check import ForeignCheck

    ctx = world.ctx()
    vpc = converge(ctx, Vpc())["vpc_id"]
    converge(ctx, Subnets())
    converge(ctx, EndpointSecurityGroup())
    ec2 = world.client("ec2")
    ec2.create_security_group(GroupName=f"eks-cluster-sg-{world.name}", VpcId=vpc, Description="EKS",
                              TagSpecifications=[{"ResourceType": "security-group", "Tags": [
                                  {"Key": "aws:eks:cluster-name", "Value": world.name}]}])
    ec2.create_security_group(GroupName="k8s-traffic", VpcId=vpc, Description="backend", TagSpecifications=[
        {"ResourceType": "security-group", "Tags": [{"Key": "elbv2.k8s.aws/cluster", "Value": world.name}]}])
    assert ForeignCheck(()).find(ctx) is None

    other = ec2.create_vpc(CidrBlock="10.99.0.0/16")["Vpc"]["VpcId"]
    foreign = {
        "security group": ec2.create_security_group(GroupName="bastion", VpcId=vpc, Description="ssh")["GroupId"],
        "subnet": ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.200.0/24")["Subnet"]["SubnetId"],
        "internet gateway": ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"],
        "VPC peering connection": ec2.create_vpc_peering_connection(VpcId=vpc, PeerVpcId=other)[
            "VpcPeeringConnection"]["VpcPeeringConnectionId"],
    }
    # Another cluster's controller group: its cluster tag names someone else.
    other_cluster = ec2.create_security_group(
        GroupName="k8s-other", VpcId=vpc, Description="backend", TagSpecifications=[{
            "ResourceType": "security-group", "Tags": [{"Key": "elbv2.k8s.aws/cluster", "Value": "other"}]}])
    foreign_groups = {foreign["security group"], other_cluster["GroupId"]}
    ec2.attach_internet_gateway(InternetGatewayId=foreign["internet gateway"], VpcId=vpc)
    found = ForeignCheck(()).find(ctx)
    assert found is not None
    named = {(b["kind"], b["ident"]) for b in found["blockers"]}
    expected = {(kind, ident) for kind, ident in foreign.items()} | {("security group", g) for g in foreign_groups}
    # Exactly those: the cluster's own groups, subnets, route tables and endpoints group are not listed.
    assert named == expected, found["blockers"]
    ec2.delete_vpc_peering_connection(VpcPeeringConnectionId=foreign["VPC peering connection"])
    ec2.detach_internet_gateway(InternetGatewayId=foreign["internet gateway"], VpcId=vpc)


def test_a_resumed_down_does_not_take_what_is_already_going_for_a_blocker(stand_in: SandboxServer,
                                                                          world: World) -> None:
    """A `down` stopped after deleting the load balancers and endpoints leaves their interfaces for AWS to
    release. A naive check would see interfaces whose owner it cannot find (the load balancer is gone, the
    endpoint `deleting`) and refuse to go on: the rerun would be stuck until AWS caught up."""
    from eksprivate.steps.endpoints import Endpoints
    from eksprivate.steps.foreign_check import ForeignCheck

    ctx = world.ctx()
    converge(ctx, Vpc())
    subnets = converge(ctx, Subnets())
    converge(ctx, EndpointSecurityGroup())
    endpoints = converge(ctx, Endpoints())
    ids = [p["subnet_id"] for p in subnets["parts"].values()]
    elbv2 = world.client("elbv2")
    lb = elbv2.create_load_balancer(Name=f"k8s-{world.name[-10:]}", Subnets=ids[:2], Scheme="internal",
                                    Type="network", Tags=[{"Key": "elbv2.k8s.aws/cluster", "Value": world.name}])
    stand_in.configure(lb_eni_release=10_000_000.0, interface_endpoint_delete=10_000_000.0)
    elbv2.delete_load_balancer(LoadBalancerArn=lb["LoadBalancers"][0]["LoadBalancerArn"])
    Endpoints().remove(ctx, endpoints)
    ec2 = world.client("ec2")
    held = ec2.describe_network_interfaces(Filters=[{"Name": "subnet-id", "Values": ids}])["NetworkInterfaces"]
    assert any(e["Description"].startswith("ELB ") for e in held)
    assert any(e["Description"].startswith("VPC Endpoint Interface") for e in held)
    assert ForeignCheck(()).find(world.ctx(fresh=True)) is None
    stand_in.configure(lb_eni_release=0.0, interface_endpoint_delete=0.0)


def test_in_a_network_teams_vpc_only_load_balancers_naming_this_cluster_are_taken(world: World) -> None:
    """With `vpc_id` the VPC is the network team's: other clusters' controllers work there too. The cluster's
    load balancers still bill and still go; one with only the controller's stack tags could be anyone's."""
    ec2 = world.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.42.{i}.0/24", AvailabilityZone=az)["Subnet"]["SubnetId"]
               for i, az in enumerate(["eu-central-1a", "eu-central-1b"])]
    elbv2 = world.client("elbv2")
    mine = elbv2.create_load_balancer(Name=f"k8s-{world.name[-10:]}-a", Subnets=subnets, Scheme="internal",
                                      Type="network", Tags=[{"Key": "elbv2.k8s.aws/cluster", "Value": world.name}])
    anyones = elbv2.create_load_balancer(Name=f"k8s-{world.name[-10:]}-b", Subnets=subnets, Scheme="internal",
                                         Type="network", Tags=[{"Key": "service.k8s.aws/stack", "Value": "a/b"}])
    ctx = world.ctx(vpc_id=vpc, subnet_ids=subnets)
    found = K8sLeftovers().find(ctx)
    assert found is not None
    assert [lb["ident"] for lb in found["load_balancers"]] == [mine["LoadBalancers"][0]["LoadBalancerArn"]]
    K8sLeftovers().remove(ctx, found)
    left = [lb["LoadBalancerArn"] for lb in elbv2.describe_load_balancers()["LoadBalancers"] if lb["VpcId"] == vpc]
    assert left == [anyones["LoadBalancers"][0]["LoadBalancerArn"]]
    elbv2.delete_load_balancer(LoadBalancerArn=left[0])


def test_a_colleagues_private_hosted_zone_on_the_vpc_stops_down_before_anything_is_deleted(world: World) -> None:
    """A Route 53 private hosted zone someone associated with the cluster's VPC (to resolve a team's names
    from the nodes, say) is theirs: deleting the VPC would take the association with it. Naive code, which
    looks only at EC2, deletes the VPC and changes their zone. The check names the zone; `down` of the check
    fails, which stops the engine before any other step, and the zone keeps its association."""
    from eksprivate.steps.foreign_check import ForeignCheck

    ctx = world.ctx()
    vpc = converge(ctx, Vpc())["vpc_id"]
    assert ForeignCheck(()).find(ctx) is None
    r53 = world.client("route53")
    zone = r53.create_hosted_zone(Name="corp.internal", CallerReference=world.name,
                                  VPC={"VPCRegion": ctx.region, "VPCId": vpc},
                                  HostedZoneConfig={"PrivateZone": True})["HostedZone"]["Id"].split("/")[-1]

    found = ForeignCheck(()).find(ctx)
    assert found is not None
    assert [(b["kind"], b["ident"]) for b in found["blockers"]] == [("private hosted zone", zone)]
    assert f"disassociate {vpc}" in found["blockers"][0]["advice"]
    with pytest.raises(BlockedByForeign, match=zone):
        down_one(ctx, ForeignCheck(()))
    zones = r53.list_hosted_zones_by_vpc(VPCId=vpc, VPCRegion=ctx.region)["HostedZoneSummaries"]
    assert [z["HostedZoneId"] for z in zones] == [zone]
    r53.delete_hosted_zone(Id=zone)


def test_hosted_zones_follow_next_token_and_leave_out_zones_a_service_owns(world: World) -> None:
    """ListHostedZonesByVPC has no botocore paginator: naive code reads the first page only. It also lists
    zones services own (`OwningService`, e.g. EFS's), which no account can disassociate and which go with
    their service: naming them would stop every `down` for nothing. Stubbed: moto answers one page, all
    `OwningAccount`."""
    from botocore.stub import Stubber

    from eksprivate.steps.vpc_contents import hosted_zones

    ctx = world.ctx()
    r53 = ctx.aws.client("route53").raw
    page = {"VPCId": "vpc-1", "VPCRegion": ctx.region}
    with Stubber(r53) as stub:
        stub.add_response("list_hosted_zones_by_vpc", {"MaxItems": "1", "NextToken": "next", "HostedZoneSummaries": [
            {"HostedZoneId": "ZSERVICE", "Name": "efs.internal.", "Owner": {"OwningService": "efs.amazonaws.com"}}]},
            page)
        stub.add_response("list_hosted_zones_by_vpc", {"MaxItems": "1", "HostedZoneSummaries": [
            {"HostedZoneId": "ZTEAM", "Name": "corp.internal.", "Owner": {"OwningAccount": "210987654321"}}]},
            {**page, "NextToken": "next"})
        zones = hosted_zones(ctx, ["vpc-1"])
        stub.assert_no_pending_responses()
        # A caller without route53:ListHostedZonesByVPC: the check goes on with what EC2 tells it.
        stub.add_client_error("list_hosted_zones_by_vpc", "AccessDenied", "not authorized", 403, expected_params=page)
        assert hosted_zones(ctx, ["vpc-1"]) == []
    assert [(z["HostedZoneId"], z["VpcId"]) for z in zones] == [("ZTEAM", "vpc-1")]
