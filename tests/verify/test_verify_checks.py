"""The checks as pure functions over a hand-written inventory: the edge cases moto cannot produce."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from eksprivate.verify import Check, Inventory, Report, check_inventory
from eksprivate.verify.discover import matches_service, wanted_services

REGION = "eu-west-1"
SUBNETS = {
    "subnet-a": {"SubnetId": "subnet-a", "AvailabilityZone": "eu-west-1a", "CidrBlock": "10.0.0.0/24"},
    "subnet-b": {"SubnetId": "subnet-b", "AvailabilityZone": "eu-west-1b", "CidrBlock": "10.0.1.0/24"},
}
SG_443 = {"GroupId": "sg-ep", "IpPermissions": [
    {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]}]}


def endpoint(svc: str, **over: Any) -> dict[str, Any]:
    ep: dict[str, Any] = {"VpcEndpointId": f"vpce-{svc}", "VpcEndpointType": "Interface",
                          "ServiceName": f"com.amazonaws.{REGION}.{svc}", "State": "available",
                          "PrivateDnsEnabled": True, "SubnetIds": ["subnet-a", "subnet-b"],
                          "Groups": [{"GroupId": "sg-ep"}], "RouteTableIds": []}
    ep.update(over)
    return ep


def healthy() -> Inventory:
    return Inventory(
        region=REGION, cluster_name="c",
        cluster={"name": "c", "resourcesVpcConfig": {
            "vpcId": "vpc-1", "subnetIds": ["subnet-a", "subnet-b"], "securityGroupIds": ["sg-cl"],
            "clusterSecurityGroupId": "sg-eks", "endpointPrivateAccess": True, "endpointPublicAccess": False,
            "publicAccessCidrs": ["0.0.0.0/0"]},  # AWS reports this even with public access off
            "logging": {"clusterLogging": [{"types": ["api", "audit", "authenticator", "controllerManager",
                                                      "scheduler"], "enabled": True}]},
            "encryptionConfig": [{"resources": ["secrets"], "provider": {"keyArn": "arn:aws:kms:k"}}]},
        nodegroups=[{"nodegroupName": "ng", "subnets": ["subnet-a", "subnet-b"],
                     "launchTemplate": {"id": "lt-1", "version": "3"}}],
        vpc_id="vpc-1", dns_support=True, dns_hostnames=True, subnets=copy.deepcopy(SUBNETS),
        route_tables=[
            {"RouteTableId": "rtb-main", "Associations": [{"Main": True}],
             "Routes": [{"DestinationCidrBlock": "10.0.0.0/16", "GatewayId": "local"}]},
            {"RouteTableId": "rtb-a", "Associations": [{"Main": False, "SubnetId": "subnet-a"}],
             "Routes": [{"DestinationCidrBlock": "10.0.0.0/16", "GatewayId": "local"},
                        {"DestinationPrefixListId": "pl-s3", "GatewayId": "vpce-s3"}]}],
        endpoints=[*(endpoint(s) for s in ("ec2", "ecr.api", "ecr.dkr", "sts", "logs")),
                   endpoint("s3", VpcEndpointId="vpce-s3", VpcEndpointType="Gateway", SubnetIds=[], Groups=[],
                            RouteTableIds=["rtb-a", "rtb-main"])],
        security_groups={"sg-ep": copy.deepcopy(SG_443), "sg-cl": {"GroupId": "sg-cl", "IpPermissions": []},
                         "sg-eks": {"GroupId": "sg-eks", "IpPermissions": []}},
        launch_templates={("lt-1", "3"): {"MetadataOptions": {"HttpTokens": "required",
                                                              "HttpPutResponseHopLimit": 2}}},
    )


def of(inv: Inventory, check_id: str) -> list[Check]:
    return check_inventory(inv).by_id(check_id)


def not_passing(inv: Inventory) -> list[tuple[str, str, str]]:
    return [(c.id, c.status, c.resource) for c in check_inventory(inv).checks if c.status != "PASS"]


def test_healthy_inventory_passes() -> None:
    inv = healthy()
    assert not_passing(inv) == []
    # subnet-b has no explicit association: the main table is its table, and it is said so.
    assert [c.resource for c in of(inv, "subnet.no-internet-route")] == ["subnet-a / rtb-a",
                                                                        "subnet-b / rtb-main (main)"]
    (sgs,) = of(inv, "sg.no-world-ingress")
    assert sgs.resource == "sg-cl, sg-eks, sg-ep"


@pytest.mark.parametrize(("state", "status"), [("pending", "WARN"), ("pendingAcceptance", "WARN"),
                                               ("Available", "PASS"), ("failed", "FAIL"), ("rejected", "FAIL")])
def test_endpoint_states(state: str, status: str) -> None:
    inv = healthy()
    inv.endpoints[3]["State"] = state  # sts
    (c,) = [c for c in of(inv, "endpoint.available") if c.resource == "vpce-sts (sts)"]
    assert c.status == status
    assert (c.fix == "") == (status == "PASS")


def test_a_live_endpoint_wins_over_a_deleted_one() -> None:
    inv = healthy()
    inv.endpoints.append(endpoint("sts", VpcEndpointId="vpce-old", State="deleted", PrivateDnsEnabled=False))
    assert not_passing(inv) == []


def test_gateway_endpoint_for_an_interface_service_is_named() -> None:
    inv = healthy()
    inv.services = (*inv.services, "dynamodb")
    inv.endpoints.append(endpoint("dynamodb", VpcEndpointId="vpce-ddb", VpcEndpointType="Gateway"))
    (c,) = [c for c in of(inv, "endpoint.available") if c.status == "FAIL"]
    assert c.resource == "dynamodb (none in vpc-1)" and "vpce-ddb is a Gateway endpoint" in c.detail


@pytest.mark.parametrize("route", [
    {"DestinationIpv6CidrBlock": "::/0", "EgressOnlyInternetGatewayId": "eigw-1"},
    {"DestinationCidrBlock": "0.0.0.0/0", "TransitGatewayId": "tgw-1"},
    {"DestinationCidrBlock": "192.0.2.0/24", "GatewayId": "igw-1"},
])
def test_internet_routes_fail(route: dict[str, str]) -> None:
    inv = healthy()
    inv.route_tables[0]["Routes"].append(route)
    assert not_passing(inv) == [("subnet.no-internet-route", "FAIL", "subnet-b / rtb-main (main)")]


def test_blackhole_default_route_carries_nothing() -> None:
    inv = healthy()
    inv.route_tables[1]["Routes"].append({"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": "igw-gone",
                                          "State": "blackhole"})
    assert not_passing(inv) == []


@pytest.mark.parametrize(("state", "status"), [("pending", "WARN"), ("failed", "FAIL"), ("deleting", "FAIL")])
def test_s3_gateway_states(state: str, status: str) -> None:
    inv = healthy()
    inv.endpoints[-1]["State"] = state
    assert {(i, s) for i, s, _ in not_passing(inv)} == {("subnet.s3-gateway", status)}


@pytest.mark.parametrize(("perm", "status"), [
    ({"IpProtocol": "-1", "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}, "PASS"),
    ({"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535, "IpRanges": [{"CidrIp": "10.0.0.0/23"}]}, "PASS"),
    ({"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "UserIdGroupPairs": [{"GroupId": "sg-nodes"}]}, "PASS"),
    ({"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "PrefixListIds": [{"PrefixListId": "pl-1"}]}, "WARN"),
    ({"IpProtocol": "udp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]}, "FAIL"),
    ({"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]}, "FAIL"),
    ({"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.0.0.0/24"}]}, "FAIL"),
])
def test_endpoint_sg_rules(perm: dict[str, Any], status: str) -> None:
    inv = healthy()
    inv.security_groups["sg-ep"]["IpPermissions"] = [perm]
    checks = of(inv, "endpoint.sg-443")
    assert {c.status for c in checks} == {status}
    if status == "FAIL" and perm.get("FromPort") == 443 and perm["IpProtocol"] == "tcp":
        assert "subnet-b (10.0.1.0/24)" in checks[0].detail and "subnet-a" not in checks[0].detail


def test_missing_endpoint_sg_fails() -> None:
    inv = healthy()
    del inv.security_groups["sg-ep"]
    checks = of(inv, "endpoint.sg-443")
    assert {c.status for c in checks} == {"FAIL"} and "sg-ep not found" in checks[0].detail


@pytest.mark.parametrize(("public", "cidrs", "status"), [
    (True, None, "FAIL"),  # AWS's default is 0.0.0.0/0
    (True, ["::/0"], "FAIL"),
    (True, ["203.0.113.0/24"], "WARN"),
    (False, ["0.0.0.0/0"], "PASS"),
])
def test_public_access(public: bool, cidrs: list[str] | None, status: str) -> None:
    inv = healthy()
    cfg = inv.cluster["resourcesVpcConfig"]
    cfg["endpointPublicAccess"] = public
    if cidrs is None:
        del cfg["publicAccessCidrs"]
    else:
        cfg["publicAccessCidrs"] = cidrs
    (c,) = of(inv, "cluster.public-access")
    assert c.status == status


@pytest.mark.parametrize(("meta", "status"), [
    ({"HttpTokens": "required", "HttpPutResponseHopLimit": 3}, "WARN"),
    ({"HttpTokens": "required"}, "PASS"),
    ({"HttpTokens": "optional", "HttpPutResponseHopLimit": 1}, "FAIL"),
    ({}, "FAIL"),
])
def test_imds(meta: dict[str, Any], status: str) -> None:
    inv = healthy()
    inv.launch_templates[("lt-1", "3")] = {"MetadataOptions": meta} if meta else {}
    (c,) = of(inv, "nodegroup.imdsv2")
    assert (c.status, c.resource) == (status, "ng / lt-1 v3")


def test_unreadable_launch_template_fails() -> None:
    inv = healthy()
    inv.launch_templates[("lt-1", "3")] = "cannot read it: InvalidLaunchTemplateId.NotFound"
    (c,) = of(inv, "nodegroup.imdsv2")
    assert c.status == "FAIL" and "NotFound" in c.detail


def test_node_subnet_outside_the_vpc_fails() -> None:
    inv = healthy()
    inv.nodegroups[0]["subnets"] = ["subnet-a", "subnet-gone"]
    assert ("subnet.s3-gateway", "FAIL", "subnet-gone") in not_passing(inv)


def test_world_open_cluster_sg_fails_with_a_usable_fix() -> None:
    inv = healthy()
    inv.security_groups["sg-eks"]["IpPermissions"] = [
        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}]
    (c,) = of(inv, "sg.no-world-ingress")
    assert c.status == "FAIL" and c.resource == "sg-eks"
    assert "all traffic from 0.0.0.0/0, tcp 22 from ::/0" in c.detail
    assert "'IpProtocol=-1,IpRanges=[{CidrIp=0.0.0.0/0}]' (and 1 more)" in c.fix


def test_service_names() -> None:
    assert matches_service("com.amazonaws.eu-west-1.ecr.api", "eu-west-1", "ecr.api")
    assert matches_service("cn.com.amazonaws.cn-north-1.ecr.api", "cn-north-1", "ecr.api")
    assert not matches_service("com.amazonaws.eu-west-1.ecr.dkr", "eu-west-1", "ecr.api")
    assert not matches_service("com.amazonaws.eu-west-1.api", "eu-west-1", "ecr.api")
    assert matches_service("com.amazonaws.eu-west-1.ssm", "eu-west-1", "com.amazonaws.eu-west-1.ssm")
    assert wanted_services(["ssm", "sts", "s3", " "]) == ("ec2", "ecr.api", "ecr.dkr", "sts", "logs", "ssm")


def test_report_basics() -> None:
    report = Report("c", REGION, [Check("a", "A", "PASS", "r", "ok"), Check("b", "B", "WARN", "r", "hm", "do")])
    assert not report.failed
    assert report.to_dict()["summary"] == {"pass": 1, "warn": 1, "fail": 0}
    report.checks.append(Check("c", "C", "FAIL", "r", "bad", "fix it"))
    assert report.failed and report.to_dict()["summary"]["fail"] == 1


def test_endpoint_policies_are_judged_against_the_clusters_account() -> None:
    """The account and partition come from the cluster's ARN: a GovCloud cluster's perimeter passes, the AWS
    default fails on the S3 gateway, and a policy the evaluator cannot read is a WARN, never a guess."""
    import json

    from eksprivate.partitions import Partition
    from eksprivate.perimeter import Perimeter

    inv = healthy()
    region = "us-gov-west-1"
    inv.region = region
    inv.cluster["arn"] = f"arn:aws-us-gov:eks:{region}:123456789012:cluster/c"
    drawn = Perimeter(partition=Partition("aws-us-gov", "amazonaws.com"), region=region, account="123456789012")
    inv.endpoints = [endpoint("s3", ServiceName=f"com.amazonaws.{region}.s3", PolicyDocument=json.dumps(
                         drawn.policy("s3"))),
                     endpoint("sts", ServiceName=f"com.amazonaws.{region}.sts", PolicyDocument=json.dumps(
                         drawn.policy("sts"))),
                     endpoint("logs", ServiceName=f"com.amazonaws.{region}.logs", PolicyDocument=json.dumps(
                         {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*",
                                         "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]}))]
    checks = {c.resource: c for c in of(inv, "endpoint.policy")}
    assert checks["vpce-s3 (s3)"].status == "PASS" and checks["vpce-sts (sts)"].status == "PASS"
    assert checks["vpce-logs (logs)"].status == "WARN" and "not judged" in checks["vpce-logs (logs)"].detail
    inv.endpoints[0]["PolicyDocument"] = None  # what an endpoint without a policy reads as: AWS's full access
    assert {c.resource: c.status for c in of(inv, "endpoint.policy")}["vpce-s3 (s3)"] == "FAIL"
