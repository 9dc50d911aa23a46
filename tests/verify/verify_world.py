"""A hand-built private EKS cluster in moto, made with plain boto3 (not with eksprivate's own steps).

`build_private` makes the healthy shape the audit expects; tests then break one thing behind the
tool's back. `build_public` makes the opposite: a default-VPC-style public cluster with no endpoints.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3

from eksprivate.aws import Aws, CallLog
from eksprivate.partitions import AWS
from eksprivate.perimeter import Perimeter
from eksprivate.verify import Report, run_checks

REGION = "eu-central-1"
AZS = ("eu-central-1a", "eu-central-1b", "eu-central-1c")
VPC_CIDR = "10.20.0.0/16"
SUBNET_CIDRS = ("10.20.0.0/18", "10.20.64.0/18", "10.20.128.0/18")
SERVICES = ("ec2", "ecr.api", "ecr.dkr", "sts", "logs")
LOG_TYPES = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
KEY_ARN = "arn:aws:kms:eu-central-1:123456789012:key/11111111-2222-3333-4444-555555555555"
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": ["eks.amazonaws.com", "ec2.amazonaws.com"]},
     "Action": "sts:AssumeRole"}]})
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
ACCOUNT = "123456789012"  # moto's
# A private cluster as it should be built: every endpoint carries the data perimeter (docs/security.md).
PERIMETER = Perimeter(partition=AWS, region=REGION, account=ACCOUNT)


@dataclass(frozen=True)
class Clients:
    """Made once per test process: building botocore clients (parsing the EC2 model) is the slow part.

    moto intercepts every botocore client made after it is imported, so these serve every `mock_aws`.
    """

    ec2: Any
    eks: Any
    iam: Any
    aws: Aws


@functools.cache
def clients() -> Clients:
    session = boto3.session.Session(region_name=REGION, **CREDENTIALS)
    return Clients(ec2=session.client("ec2"), eks=session.client("eks"), iam=session.client("iam"),
                   aws=Aws(REGION, credentials=dict(CREDENTIALS)))


@dataclass
class World:
    """The ids of everything built, the raw boto3 clients (to break things) and an `Aws` (to audit)."""

    name: str
    ec2: Any
    eks: Any
    iam: Any
    vpc: str
    subnets: list[str]
    route_tables: list[str]
    endpoint_sg: str
    cluster_sg: str
    role: str
    endpoints: dict[str, str] = field(default_factory=dict)
    s3_gateway: str = ""
    launch_template: str = ""
    nodegroups: list[str] = field(default_factory=list)

    @property
    def aws(self) -> Aws:
        """The shared `Aws`, with a fresh call log."""
        aws = clients().aws
        aws.log = CallLog()
        return aws

    def verify(self, extra: Sequence[str] = ()) -> Report:
        return run_checks(self.aws, self.name, extra)

    def vpc_config(self, **changes: Any) -> None:
        """UpdateClusterConfig. moto replaces resourcesVpcConfig wholesale (AWS merges), so send it all."""
        cfg: dict[str, Any] = {"subnetIds": self.subnets, "securityGroupIds": [self.cluster_sg],
                               "endpointPrivateAccess": True, "endpointPublicAccess": False}
        cfg.update(changes)
        self.eks.update_cluster_config(name=self.name, resourcesVpcConfig=cfg)

    def add_nodegroup(self, name: str, subnet: str, launch_template: dict[str, str] | None = None) -> None:
        kwargs: dict[str, Any] = {"launchTemplate": launch_template} if launch_template else {}
        self.eks.create_nodegroup(clusterName=self.name, nodegroupName=name, subnets=[subnet], nodeRole=self.role,
                                  scalingConfig={"minSize": 1, "maxSize": 2, "desiredSize": 1}, **kwargs)
        self.nodegroups.append(name)

    def launch_template_with(self, name: str, metadata: dict[str, Any]) -> dict[str, str]:
        lt = self.ec2.create_launch_template(LaunchTemplateName=name,
                                            LaunchTemplateData={"MetadataOptions": metadata})["LaunchTemplate"]
        return {"id": str(lt["LaunchTemplateId"]), "version": "1"}

    def create_interface_endpoint(self, service: str, subnets: Sequence[str], private_dns: bool = True) -> str:
        out = self.ec2.create_vpc_endpoint(
            VpcId=self.vpc, VpcEndpointType="Interface", ServiceName=f"com.amazonaws.{REGION}.{service}",
            SubnetIds=list(subnets), SecurityGroupIds=[self.endpoint_sg], PrivateDnsEnabled=private_dns,
            PolicyDocument=json.dumps(PERIMETER.policy(service)))
        vpce = str(out["VpcEndpoint"]["VpcEndpointId"])
        self.endpoints[service] = vpce
        return vpce


def _role(iam: Any, name: str) -> str:
    return str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST)["Role"]["Arn"])


def build_private(name: str = "private", *, encryption: bool = True, nodegroups: bool = True) -> World:
    c = clients()
    ec2, eks, iam = c.ec2, c.eks, c.iam
    vpc = ec2.create_vpc(CidrBlock=VPC_CIDR)["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsSupport={"Value": True})
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnets, tables = [], []
    for az, cidr in zip(AZS, SUBNET_CIDRS, strict=True):
        sid = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=az)["Subnet"]["SubnetId"]
        rtb = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        ec2.associate_route_table(RouteTableId=rtb, SubnetId=sid)
        subnets.append(sid)
        tables.append(rtb)
    ep_sg = ec2.create_security_group(GroupName=f"{name}-endpoints", Description="endpoints", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=ep_sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": VPC_CIDR}]}])
    cl_sg = ec2.create_security_group(GroupName=f"{name}-cluster", Description="cluster", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=cl_sg, IpPermissions=[
        {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": cl_sg}]}])
    role = _role(iam, f"{name}-role")
    world = World(name=name, ec2=ec2, eks=eks, iam=iam, vpc=vpc, subnets=subnets, route_tables=tables,
                  endpoint_sg=ep_sg, cluster_sg=cl_sg, role=role)
    world.s3_gateway = ec2.create_vpc_endpoint(
        VpcId=vpc, VpcEndpointType="Gateway", ServiceName=f"com.amazonaws.{REGION}.s3",
        RouteTableIds=tables, PolicyDocument=json.dumps(PERIMETER.policy("s3")))["VpcEndpoint"]["VpcEndpointId"]
    for svc in SERVICES:
        world.create_interface_endpoint(svc, subnets)

    kwargs: dict[str, Any] = {}
    if encryption:
        kwargs["encryptionConfig"] = [{"resources": ["secrets"], "provider": {"keyArn": KEY_ARN}}]
    eks.create_cluster(
        name=name, roleArn=role,
        resourcesVpcConfig={"subnetIds": subnets, "securityGroupIds": [cl_sg],
                            "endpointPrivateAccess": True, "endpointPublicAccess": False},
        logging={"clusterLogging": [{"types": LOG_TYPES, "enabled": True}]}, **kwargs)
    if nodegroups:
        lt = world.launch_template_with(f"{name}-nodes", {"HttpTokens": "required", "HttpPutResponseHopLimit": 1})
        world.launch_template = lt["id"]
        for az, sid in zip(AZS, subnets, strict=True):
            world.add_nodegroup(f"nodes-{az[-1]}", sid, lt)
    return world


def build_public(name: str = "public") -> World:
    """The classic public cluster: IGW default route, no endpoints, public API, nothing hardened."""
    c = clients()
    ec2, eks, iam = c.ec2, c.eks, c.iam
    vpc = ec2.create_vpc(CidrBlock=VPC_CIDR)["Vpc"]["VpcId"]  # DNS hostnames off (moto/AWS default)
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    main = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                              {"Name": "association.main", "Values": ["true"]}])["RouteTables"][0]
    ec2.create_route(RouteTableId=main["RouteTableId"], DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=az)["Subnet"]["SubnetId"]
               for az, cidr in zip(AZS[:2], SUBNET_CIDRS[:2], strict=True)]
    sg = ec2.create_security_group(GroupName=f"{name}-cluster", Description="cluster", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    role = _role(iam, f"{name}-role")
    eks.create_cluster(name=name, roleArn=role, resourcesVpcConfig={
        "subnetIds": subnets, "securityGroupIds": [sg], "endpointPrivateAccess": False,
        "endpointPublicAccess": True, "publicAccessCidrs": ["0.0.0.0/0"]})
    world = World(name=name, ec2=ec2, eks=eks, iam=iam, vpc=vpc, subnets=subnets,
                  route_tables=[main["RouteTableId"]], endpoint_sg="", cluster_sg=sg, role=role)
    world.add_nodegroup("workers", subnets[0])
    return world
