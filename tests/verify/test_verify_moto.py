"""`run_checks` against moto: a healthy private cluster, then one thing broken at a time behind its back."""

from __future__ import annotations

import json

import pytest
from rich.console import Console
from verify_world import AZS, LOG_TYPES, REGION, SUBNET_CIDRS, World, build_private, build_public, clients

from eksprivate.errors import UsageError
from eksprivate.verify import Check, Report, render, run_checks

pytestmark = pytest.mark.plain_moto

ALL_IDS = {
    "vpc.dns-support", "vpc.dns-hostnames", "nodegroup.present", "subnet.s3-gateway", "subnet.no-internet-route",
    "endpoint.available", "endpoint.private-dns", "endpoint.azs", "endpoint.sg-443", "cluster.private-access",
    "cluster.public-access", "cluster.logging", "cluster.secrets-encryption", "nodegroup.imdsv2",
    "sg.no-world-ingress", "endpoint.policy",
}


def bad(report: Report, status: str = "FAIL") -> list[Check]:
    return [c for c in report.checks if c.status == status]


def only_failure(report: Report, check_id: str) -> list[Check]:
    """The failures, asserting they all carry `check_id` (one break → one kind of failure)."""
    fails = bad(report)
    assert fails, "expected a failure"
    assert {c.id for c in fails} == {check_id}, [(c.id, c.resource, c.detail) for c in fails]
    for c in fails:
        assert c.fix and "\n" not in c.fix
    return fails


# -- healthy ----------------------------------------------------------------------------------------------
def test_healthy_private_cluster_passes_everything(world: World) -> None:
    aws = world.aws
    report = run_checks(aws, world.name)
    assert not report.failed
    assert [c for c in report.checks if c.status != "PASS"] == []
    assert {c.id for c in report.checks} == ALL_IDS
    assert all(c.fix == "" for c in report.checks)
    # 3 node subnets x 2 route checks, 5 services x 4 endpoint checks, 3 node groups.
    assert len(report.by_id("subnet.s3-gateway")) == 3
    assert len(report.by_id("endpoint.sg-443")) == 5
    assert len(report.by_id("nodegroup.imdsv2")) == 3
    # Few, batched, read-only calls (moto omits the cluster's vpcId, which costs one DescribeSubnets more).
    calls = aws.log.summary()
    assert aws.log.mutating == []
    assert calls["eks:DescribeNodegroup"] == 3
    assert calls["ec2:DescribeLaunchTemplateVersions"] == 1  # one shared template version, read once
    for op in ("DescribeRouteTables", "DescribeVpcEndpoints", "DescribeSecurityGroups"):
        assert calls[f"ec2:{op}"] == 1
    assert aws.log.total <= 14


# -- broken one thing at a time ---------------------------------------------------------------------------
def test_deleted_endpoint_fails(world: World) -> None:
    world.ec2.delete_vpc_endpoints(VpcEndpointIds=[world.endpoints["ecr.dkr"]])
    (fail,) = only_failure(world.verify(), "endpoint.available")
    assert fail.resource == f"ecr.dkr (none in {world.vpc})"
    assert "ImagePullBackOff" in fail.detail


def test_private_dns_off_fails(world: World) -> None:
    # moto's ModifyVpcEndpoint cannot switch private DNS: replace the endpoint with one that has it off.
    world.ec2.delete_vpc_endpoints(VpcEndpointIds=[world.endpoints["sts"]])
    vpce = world.create_interface_endpoint("sts", world.subnets, private_dns=False)
    (fail,) = only_failure(world.verify(), "endpoint.private-dns")
    assert fail.resource == f"{vpce} (sts)"
    assert vpce in fail.fix and "--private-dns-enabled" in fail.fix


def test_dns_hostnames_off_fails(world: World) -> None:
    world.ec2.modify_vpc_attribute(VpcId=world.vpc, EnableDnsHostnames={"Value": False})
    (fail,) = only_failure(world.verify(), "vpc.dns-hostnames")
    assert fail.resource == world.vpc


def test_dns_support_off_fails(world: World) -> None:
    world.ec2.modify_vpc_attribute(VpcId=world.vpc, EnableDnsSupport={"Value": False})
    (fail,) = only_failure(world.verify(), "vpc.dns-support")
    assert fail.resource == world.vpc


def test_internet_gateway_route_fails(world: World) -> None:
    igw = world.ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    world.ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=world.vpc)
    world.ec2.create_route(RouteTableId=world.route_tables[0], DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    (fail,) = only_failure(world.verify(), "subnet.no-internet-route")
    assert fail.resource == f"{world.subnets[0]} / {world.route_tables[0]}"
    assert igw in fail.detail and "not private" in fail.detail
    rtb = world.route_tables[0]
    assert fail.fix == f"aws ec2 delete-route --route-table-id {rtb} --destination-cidr-block 0.0.0.0/0"


def test_nat_gateway_route_fails_even_for_a_narrow_destination(world: World) -> None:
    alloc = world.ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = world.ec2.create_nat_gateway(SubnetId=world.subnets[2], AllocationId=alloc)["NatGateway"]["NatGatewayId"]
    world.ec2.create_route(RouteTableId=world.route_tables[1], DestinationCidrBlock="203.0.113.0/24", NatGatewayId=nat)
    (fail,) = only_failure(world.verify(), "subnet.no-internet-route")
    assert fail.resource == f"{world.subnets[1]} / {world.route_tables[1]}"
    assert f"203.0.113.0/24 → {nat}" in fail.detail


def test_revoked_443_fails_every_endpoint_naming_the_group(world: World) -> None:
    world.ec2.revoke_security_group_ingress(GroupId=world.endpoint_sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.20.0.0/16"}]}])
    fails = only_failure(world.verify(), "endpoint.sg-443")
    assert len(fails) == 5
    sts = next(c for c in fails if "(sts)" in c.resource)
    assert sts.resource == f"{world.endpoints['sts']} (sts) / {world.endpoint_sg}"
    assert "#1847" in sts.detail and world.endpoint_sg in sts.fix


def test_443_from_too_narrow_a_cidr_names_the_uncovered_subnets(world: World) -> None:
    world.ec2.revoke_security_group_ingress(GroupId=world.endpoint_sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.20.0.0/16"}]}])
    world.ec2.authorize_security_group_ingress(GroupId=world.endpoint_sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": SUBNET_CIDRS[0]}]}])
    fails = only_failure(world.verify(), "endpoint.sg-443")
    assert all(world.subnets[1] in c.detail and world.subnets[2] in c.detail for c in fails)
    assert all(world.subnets[0] not in c.detail for c in fails)


def test_443_from_a_security_group_passes(world: World) -> None:
    world.ec2.revoke_security_group_ingress(GroupId=world.endpoint_sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.20.0.0/16"}]}])
    world.ec2.authorize_security_group_ingress(GroupId=world.endpoint_sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "UserIdGroupPairs": [{"GroupId": world.cluster_sg}]}])
    report = world.verify()
    assert not report.failed
    assert all(world.cluster_sg in c.detail for c in report.by_id("endpoint.sg-443"))


def test_removed_s3_gateway_fails_every_node_subnet(world: World) -> None:
    world.ec2.delete_vpc_endpoints(VpcEndpointIds=[world.s3_gateway])  # stays listed as "deleted"
    fails = only_failure(world.verify(), "subnet.s3-gateway")
    assert [c.resource for c in fails] == [f"{s} / {r}" for s, r in zip(world.subnets, world.route_tables, strict=True)]


def test_s3_gateway_missing_on_one_route_table_names_it(world: World) -> None:
    world.ec2.modify_vpc_endpoint(VpcEndpointId=world.s3_gateway, RemoveRouteTableIds=[world.route_tables[2]])
    (fail,) = only_failure(world.verify(), "subnet.s3-gateway")
    assert fail.resource == f"{world.subnets[2]} / {world.route_tables[2]}"
    assert f"--add-route-table-ids {world.route_tables[2]}" in fail.fix


def test_endpoint_missing_one_az_fails_naming_it(world: World) -> None:
    world.ec2.modify_vpc_endpoint(VpcEndpointId=world.endpoints["logs"], RemoveSubnetIds=[world.subnets[2]])
    (fail,) = only_failure(world.verify(), "endpoint.azs")
    assert fail.resource == f"{world.endpoints['logs']} (logs)"
    assert AZS[2] in fail.detail and world.subnets[2] in fail.fix


def test_public_api_open_to_the_world_fails(world: World) -> None:
    world.vpc_config(endpointPublicAccess=True, publicAccessCidrs=["0.0.0.0/0"])
    (fail,) = only_failure(world.verify(), "cluster.public-access")
    assert fail.resource == f"cluster {world.name}"
    assert "endpointPublicAccess=false" in fail.fix


def test_public_api_limited_to_cidrs_warns(world: World) -> None:
    world.vpc_config(endpointPublicAccess=True, publicAccessCidrs=["198.51.100.0/24"])
    report = world.verify()
    assert not report.failed
    (warn,) = bad(report, "WARN")
    assert warn.id == "cluster.public-access" and "198.51.100.0/24" in warn.detail


def test_private_api_off_fails(world: World) -> None:
    world.vpc_config(endpointPrivateAccess=False, endpointPublicAccess=True, publicAccessCidrs=["198.51.100.0/24"])
    report = world.verify()
    assert {c.id for c in bad(report)} == {"cluster.private-access"}


def test_no_logging_fails(world: World) -> None:
    world.eks.update_cluster_config(name=world.name,
                                    logging={"clusterLogging": [{"types": LOG_TYPES, "enabled": False}]})
    (fail,) = only_failure(world.verify(), "cluster.logging")
    assert fail.resource == f"cluster {world.name}"


def test_some_logging_warns(world: World) -> None:
    world.eks.update_cluster_config(name=world.name, logging={"clusterLogging": [
        {"types": ["api", "audit"], "enabled": True},
        {"types": ["authenticator", "controllerManager", "scheduler"], "enabled": False}]})
    report = world.verify()
    (warn,) = bad(report, "WARN")
    assert warn.id == "cluster.logging" and "scheduler" in warn.detail and "audit" not in warn.detail


def test_no_secrets_encryption_fails(moto_aws: None) -> None:
    world = build_private("plain", encryption=False)  # encryption cannot be removed from a cluster
    (fail,) = only_failure(world.verify(), "cluster.secrets-encryption")
    assert fail.resource == "cluster plain" and "associate-encryption-config" in fail.fix


def test_imdsv1_launch_template_fails(world: World) -> None:
    lt = world.launch_template_with("v1-allowed", {"HttpTokens": "optional", "HttpPutResponseHopLimit": 2})
    world.add_nodegroup("legacy", world.subnets[0], lt)
    (fail,) = only_failure(world.verify(), "nodegroup.imdsv2")
    assert fail.resource == f"legacy / {lt['id']} v1"
    assert "optional" in fail.detail


def test_high_hop_limit_and_missing_launch_template_warn(world: World) -> None:
    lt = world.launch_template_with("hops", {"HttpTokens": "required", "HttpPutResponseHopLimit": 3})
    world.add_nodegroup("hops", world.subnets[1], lt)
    world.add_nodegroup("default-lt", world.subnets[2])
    report = world.verify()
    assert not report.failed
    warns = {c.resource.split(" /")[0]: c for c in bad(report, "WARN")}
    assert set(warns) == {"hops", "default-lt"}
    assert all(c.id == "nodegroup.imdsv2" for c in warns.values())
    assert "hop limit 3" in warns["hops"].detail


def test_deleted_launch_template_fails(world: World) -> None:
    lt = world.launch_template_with("short-lived", {"HttpTokens": "required"})
    world.add_nodegroup("orphan", world.subnets[0], lt)
    world.ec2.delete_launch_template(LaunchTemplateId=lt["id"])
    (fail,) = only_failure(world.verify(), "nodegroup.imdsv2")
    assert fail.resource.startswith("orphan / ")


@pytest.mark.parametrize("cidr", ["0.0.0.0/0", "::/0"])
def test_security_group_open_to_the_world_fails(world: World, cidr: str) -> None:
    ranges = {"Ipv6Ranges": [{"CidrIpv6": cidr}]} if ":" in cidr else {"IpRanges": [{"CidrIp": cidr}]}
    world.ec2.authorize_security_group_ingress(GroupId=world.cluster_sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, **ranges}])
    (fail,) = only_failure(world.verify(), "sg.no-world-ingress")
    assert fail.resource == world.cluster_sg
    assert f"tcp 22 from {cidr}" in fail.detail and world.cluster_sg in fail.fix


def test_extra_endpoints_are_required_too(world: World) -> None:
    (fail,) = only_failure(world.verify(extra=("ssm", "ecr.api", "s3")), "endpoint.available")
    assert fail.resource == f"ssm (none in {world.vpc})"


def test_no_nodegroups_warns_and_audits_the_cluster_subnets(moto_aws: None) -> None:
    world = build_private("bare", nodegroups=False)
    report = world.verify()
    assert not report.failed
    (warn,) = bad(report, "WARN")
    assert warn.id == "nodegroup.present" and "node checks limited to cluster subnets" in warn.detail
    assert len(report.by_id("subnet.no-internet-route")) == 3
    assert report.by_id("nodegroup.imdsv2") == []


# -- a public cluster, a missing cluster -------------------------------------------------------------------
def test_public_cluster_without_endpoints_fails_everywhere(moto_aws: None) -> None:
    world = build_public()
    report = world.verify()
    assert report.failed
    failed = {c.id for c in bad(report)}
    assert failed == {
        "vpc.dns-hostnames", "subnet.s3-gateway", "subnet.no-internet-route", "endpoint.available",
        "cluster.private-access", "cluster.public-access", "cluster.logging", "cluster.secrets-encryption",
        "sg.no-world-ingress",
    }
    assert len(report.by_id("endpoint.available")) == 5
    # Nothing to look at for endpoints that do not exist.
    assert report.by_id("endpoint.private-dns") == report.by_id("endpoint.sg-443") == []
    route = report.by_id("subnet.no-internet-route")[0]
    assert route.resource == f"{world.subnets[0]} / {world.route_tables[0]} (main)"
    (imds,) = report.by_id("nodegroup.imdsv2")
    assert imds.status == "WARN" and imds.resource == "workers"


def test_missing_cluster_is_a_usage_error(moto_aws: None) -> None:
    with pytest.raises(UsageError) as err:
        run_checks(clients().aws, "nope")
    assert err.value.message == f"no EKS cluster named 'nope' in {REGION}"
    assert "\n" not in str(err.value)


# -- output ------------------------------------------------------------------------------------------------
def test_json_shape(moto_aws: None) -> None:
    report = build_public().verify()
    data = json.loads(json.dumps(report.to_dict()))
    assert list(data) == ["cluster", "region", "summary", "checks"]
    assert data["cluster"] == "public" and data["region"] == REGION
    assert list(data["summary"]) == ["pass", "warn", "fail"]
    assert sum(data["summary"].values()) == len(data["checks"]) == len(report.checks)
    assert data["summary"]["fail"] == len(bad(report)) > 0
    for item in data["checks"]:
        assert list(item) == ["id", "title", "status", "resource", "detail", "fix"]
        assert all(isinstance(v, str) for v in item.values())
        assert item["status"] in ("PASS", "WARN", "FAIL")
        assert (item["fix"] == "") == (item["status"] == "PASS")


def test_render_shows_status_resource_fix_and_summary(moto_aws: None) -> None:
    world = build_public()
    report = world.verify()
    console = Console(record=True, width=240, color_system=None)
    render(report, console)
    out = console.export_text()
    assert "FAIL" in out and "WARN" in out and "PASS" in out
    assert "cluster.private-access" in out and world.vpc in out
    assert "fix: aws eks update-cluster-config" in out
    summary = out.strip().splitlines()[-1]
    assert summary.startswith(f"{report.count('PASS')} pass, 1 warn, {report.count('FAIL')} fail")


# -- endpoint policies: the data perimeter ---------------------------------------------------------------------
def test_an_endpoint_opened_behind_its_back_is_named(world: World) -> None:
    """The S3 gateway reset to AWS's default: FAIL (data can leave to any account's bucket), naming the endpoint
    and its service; an interface endpoint open to any principal: WARN; the others still PASS."""
    world.ec2.modify_vpc_endpoint(VpcEndpointId=world.s3_gateway, PolicyDocument=json.dumps(
        {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}]}))
    world.ec2.modify_vpc_endpoint(VpcEndpointId=world.endpoints["logs"], PolicyDocument=json.dumps(
        {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "logs:*", "Resource": "*"}]}))
    report = run_checks(world.aws, world.name)
    (fail,) = only_failure(report, "endpoint.policy")
    assert fail.resource == f"{world.s3_gateway} (s3)"
    assert "writes to other accounts' buckets" in fail.detail and "accepts principals of any account" in fail.detail
    assert f"--vpc-endpoint-id {world.s3_gateway}" in fail.fix
    (warn,) = [c for c in bad(report, "WARN") if c.id == "endpoint.policy"]
    assert warn.resource == f"{world.endpoints['logs']} (logs)" and "accepts principals of any account" in warn.detail
    passing = [c.resource for c in report.by_id("endpoint.policy") if c.status == "PASS"]
    assert len(passing) == 4  # ec2, ecr.api, ecr.dkr, sts


def test_a_perimeter_that_stops_image_pulls_fails(world: World) -> None:
    """The naive perimeter on the S3 gateway (this account's principals only) refuses ECR's pre-signed layer
    downloads: nodes never pull an image."""
    naive = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*",
         "Condition": {"StringEquals": {"aws:PrincipalAccount": "123456789012",
                                        "aws:ResourceAccount": "123456789012"}}}]}
    world.ec2.modify_vpc_endpoint(VpcEndpointId=world.s3_gateway, PolicyDocument=json.dumps(naive))
    (fail,) = only_failure(run_checks(world.aws, world.name), "endpoint.policy")
    assert "refuses what the nodes need: download image layers" in fail.detail
