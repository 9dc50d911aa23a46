"""`down` of a cluster somebody used: what Kubernetes made in the VPC behind eksprivate's back (an internal
NLB with a target group and a controller security group, a classic ELB with its k8s-elb group, a volume for
a claim) is removed through the AWS API, the volume is kept unless asked, and what a person added (a
bastion's security group) is never touched: `down` stops before deleting anything, naming it.

The sandbox refuses what AWS refuses (`sandbox/lb_dependents.py`): subnets and groups while a load balancer
or an interface uses them, a VPC with a group left, and a deleted load balancer's interfaces stay a while.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from eksprivate.sandbox import SandboxServer
from tests.test_updates_support import LEAN

from .helpers import REGION, Cli, SdkHooks, clients, inventory, mutating_calls


@pytest.fixture
def where(cluster_name: str, aws_env: Path) -> list[str]:
    """The cluster's arguments. What `down` must do with what others added to the network does not depend on
    the cluster's shape: a lean one (two AZs, one node group, no flow logs or KMS key) makes a fifth fewer
    calls than a default `up` and `down`."""
    config = aws_env / "lean.toml"
    config.write_text(LEAN + "per_az = false\n")
    return ["--name", cluster_name, "--region", REGION, "--config", str(config)]


def _ok(result: Any) -> Any:
    assert result.exit_code == 0, result.stderr
    return result


def _network(ec2: Any, name: str) -> tuple[str, list[str]]:
    tag = [{"Name": "tag:eksprivate:cluster", "Values": [name]}]
    vpc_id = ec2.describe_vpcs(Filters=tag)["Vpcs"][0]["VpcId"]
    return vpc_id, sorted(s["SubnetId"] for s in ec2.describe_subnets(Filters=tag)["Subnets"])


def _tags(**tags: str) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _what_kubernetes_made(url: str, name: str) -> dict[str, str]:
    """What the AWS Load Balancer Controller, the in-tree cloud provider and the EBS CSI driver make for a
    `Service` of type LoadBalancer (NLB), a legacy one (classic ELB) and a claim, with their tags."""
    c = {**clients(url), "elbv2": _client(url, "elbv2"), "elb": _client(url, "elb")}
    ec2, elbv2, elb = c["ec2"], c["elbv2"], c["elb"]
    vpc_id, subnets = _network(ec2, name)
    suffix = uuid.uuid4().hex[:6]
    owned = {f"kubernetes.io/cluster/{name}": "owned"}
    # EKS's cluster security group (the nodes'): the controller lets its load balancer in to the pods.
    eks_sg = ec2.create_security_group(
        GroupName=f"eks-cluster-sg-{name}-1", VpcId=vpc_id, Description="EKS created security group",
        TagSpecifications=[{"ResourceType": "security-group",
                            "Tags": _tags(**{"aws:eks:cluster-name": name}, **owned)}])["GroupId"]
    lbc = {"elbv2.k8s.aws/cluster": name, "service.k8s.aws/stack": "default/web",
           "service.k8s.aws/resource": "LoadBalancer"}
    lbc_sg = ec2.create_security_group(
        GroupName=f"k8s-default-web-{suffix}", VpcId=vpc_id, Description="[k8s] Managed SecurityGroup for LoadBalancer",
        TagSpecifications=[{"ResourceType": "security-group", "Tags": _tags(**lbc)}])["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=eks_sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "UserIdGroupPairs": [{"GroupId": lbc_sg}]}])
    nlb = elbv2.create_load_balancer(Name=f"k8s-default-web-{suffix}", Subnets=subnets[:2], SecurityGroups=[lbc_sg],
                                     Scheme="internal", Type="network", Tags=_tags(**lbc))["LoadBalancers"][0]
    tg = elbv2.create_target_group(Name=f"k8s-default-web-{suffix}", Protocol="TCP", Port=8080, VpcId=vpc_id,
                                   TargetType="ip", Tags=_tags(**lbc))["TargetGroups"][0]
    elbv2.create_listener(LoadBalancerArn=nlb["LoadBalancerArn"], Protocol="TCP", Port=80,
                          DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])
    classic_name = f"a{uuid.uuid4().hex[:20]}"
    elb_sg = ec2.create_security_group(
        GroupName=f"k8s-elb-{classic_name}", VpcId=vpc_id, Description="Security group for Kubernetes ELB",
        TagSpecifications=[{"ResourceType": "security-group", "Tags": _tags(**owned)}])["GroupId"]
    elb.create_load_balancer(LoadBalancerName=classic_name, Subnets=subnets, SecurityGroups=[elb_sg],
                             Scheme="internal", Tags=_tags(**owned, **{"kubernetes.io/service-name": "default/legacy"}),
                             Listeners=[{"Protocol": "TCP", "LoadBalancerPort": 80, "InstancePort": 30080}])
    az = ec2.describe_subnets(SubnetIds=[subnets[0]])["Subnets"][0]["AvailabilityZone"]
    volume = ec2.create_volume(Size=10, AvailabilityZone=az, VolumeType="gp3", TagSpecifications=[{
        "ResourceType": "volume", "Tags": _tags(**owned, **{
            "ebs.csi.aws.com/cluster": "true", "CSIVolumeName": f"pvc-{suffix}",
            "kubernetes.io/created-for/pvc/name": "data-db-0",
            "kubernetes.io/created-for/pvc/namespace": "default"})}])["VolumeId"]
    return {"vpc": vpc_id, "eks_sg": eks_sg, "lbc_sg": lbc_sg, "nlb": nlb["LoadBalancerArn"],
            "nlb_name": nlb["LoadBalancerName"], "tg": tg["TargetGroupArn"], "tg_name": tg["TargetGroupName"],
            "classic": classic_name, "elb_sg": elb_sg, "volume": volume}


def _client(url: str, service: str) -> Any:
    import boto3

    return boto3.client(service, endpoint_url=url, region_name=REGION, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def _exists(call: Any) -> bool:
    try:
        call()
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        assert "NotFound" in code, exc.response
        return False
    return True


def _groups(ec2: Any, *ids: str) -> list[str]:
    return [g["GroupId"] for g in ec2.describe_security_groups(
        Filters=[{"Name": "group-id", "Values": list(ids)}])["SecurityGroups"]]


def test_down_removes_what_kubernetes_made_keeps_the_volume_and_never_touches_a_users_group(
        stand_in: SandboxServer, cli: Cli, cluster_name: str, aws_env: Path, where: list[str]) -> None:
    """Naive `down` (before this): revoked and deleted the bastion's group with its own, then spun 20 minutes
    on subnets the load balancers held, which kept billing; a volume was never mentioned. Here: the first
    `down` deletes nothing and names the bastion group at once (no delete call at all), the second, after the
    user removed it, deletes the load balancers, target group and Kubernetes' groups before the subnets and
    waits for the interfaces AWS releases late (so no delete is refused), keeps and lists the volume; the
    third, with --delete-volumes, deletes it."""
    _ok(cli("up", *where))
    url = stand_in.url
    made = _what_kubernetes_made(url, cluster_name)
    ec2, elbv2, elb, eks = clients(url)["ec2"], _client(url, "elbv2"), _client(url, "elb"), clients(url)["eks"]
    bastion = ec2.create_security_group(GroupName="bastion", VpcId=made["vpc"],
                                        Description="SSH from the office")["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=bastion, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "203.0.113.0/24"}]}])

    # plan --destroy and status show both: under the step that removes them, and what blocks.
    plan = {s["key"]: s for s in json.loads(_ok(cli("plan", *where, "--destroy", "--output", "json")).stdout)["steps"]}
    assert plan["foreign-check"]["action"] == "blocked"
    assert any(bastion in d and "bastion" in d for d in plan["foreign-check"]["details"])
    leftovers = plan["k8s-leftovers"]
    assert leftovers["action"] == "delete"
    for shown in (made["nlb_name"], made["classic"], made["tg_name"], made["lbc_sg"], made["elb_sg"]):
        assert shown in leftovers["resources"], shown
    assert made["eks_sg"] not in leftovers["resources"]  # EKS's group: the VPC step's, as before
    assert any(made["volume"] in d and "10 GiB" in d and "default/data-db-0" in d and "--delete-volumes" in d
               for d in leftovers["details"])
    text = _ok(cli("plan", *where, "--destroy")).stdout
    assert "1 blocked" in text  # the table folds long ids at 80 columns: the JSON above has them whole
    status = {s["key"]: s for s in json.loads(_ok(cli("status", *where, "--output", "json")).stdout)["steps"]}
    assert made["nlb_name"] in status["k8s-leftovers"]["resources"]
    assert status["foreign-check"]["status"] == "blocked"

    # down: stops before deleting anything, naming the blocker and what to do.
    stand_in.clear_calls()
    refused = cli("down", *where, "--yes")
    assert refused.exit_code == 1 and refused.exception is None, refused.stderr
    assert bastion in refused.stderr and "security group" in refused.stderr and "bastion" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert mutating_calls(stand_in.calls()) == []  # nothing deleted, nothing retried
    assert eks.describe_cluster(name=cluster_name)["cluster"]["status"] == "ACTIVE"
    assert _groups(ec2, bastion) == [bastion]

    # The user removes their group; `down` then completes, from tags alone (the state file is lost too).
    ec2.delete_security_group(GroupId=bastion)
    state = aws_env / "state" / f"{cluster_name}-{REGION}.json"
    for path in (state, state.with_name(state.name + ".bak")):
        path.unlink(missing_ok=True)
    stand_in.configure(lb_eni_release=600.0)  # x 0.0005: AWS releases the interfaces 0.3 s after the delete
    stand_in.clear_calls()
    done = _ok(cli("down", *where, "--yes"))
    calls = stand_in.calls()
    assert not _exists(lambda: elbv2.describe_load_balancers(LoadBalancerArns=[made["nlb"]]))
    assert not _exists(lambda: elbv2.describe_target_groups(TargetGroupArns=[made["tg"]]))
    assert not _exists(lambda: elb.describe_load_balancers(LoadBalancerNames=[made["classic"]]))
    assert _groups(ec2, made["lbc_sg"], made["elb_sg"], made["eks_sg"]) == []
    assert inventory(url, cluster_name) == []
    refusals = [(r.operation, r.status) for r in calls
                if r.operation in ("DeleteSubnet", "DeleteSecurityGroup", "DeleteVpc", "DeleteTargetGroup")
                and r.status != 200]
    assert refusals == [], "a delete was tried while a load balancer or its interfaces still held the resource"
    cluster_gone = next(n for n, r in enumerate(calls) if r.operation == "DescribeCluster" and r.status == 404)
    deletes_lb = [n for n, r in enumerate(calls) if r.operation == "DeleteLoadBalancer"]
    first_subnet = next(n for n, r in enumerate(calls) if r.operation == "DeleteSubnet")
    assert len(deletes_lb) == 2 and cluster_gone < min(deletes_lb)  # no controller left to recreate them
    assert max(deletes_lb) < first_subnet
    # The volume holds data: kept, and said last, with its size and claim.
    vol = ec2.describe_volumes(VolumeIds=[made["volume"]])["Volumes"]
    assert [v["VolumeId"] for v in vol] == [made["volume"]]
    last = done.stderr.strip().splitlines()[-1]
    assert made["volume"] in last and "10 GiB" in last and "default/data-db-0" in last and "--delete-volumes" in last

    # --delete-volumes takes it too.
    _ok(cli("down", *where, "--yes", "--delete-volumes"))
    assert not _exists(lambda: ec2.describe_volumes(VolumeIds=[made["volume"]]))


def test_a_cni_interface_still_detaching_is_swept_again_not_fatal(
        stand_in: SandboxServer, cli: Cli, hooks: SdkHooks, cluster_name: str, where: list[str]) -> None:
    """EC2 answers DeleteNetworkInterface with "currently in use" for an interface listed `available` a moment
    before (still detaching). The old sweep aborted `down` on that; now it skips it and sweeps again."""
    _ok(cli("up", *where))
    ec2 = clients(stand_in.url)["ec2"]
    _, subnets = _network(ec2, cluster_name)
    eni = ec2.create_network_interface(SubnetId=subnets[0], Description="aws-K8S-i-0123456789abcdef0")[
        "NetworkInterface"]["NetworkInterfaceId"]
    refused = hooks.fail("ec2", "DeleteNetworkInterface", "InvalidParameterValue",
                         f"Network interface '{eni}' is currently in use.", times=1)
    _ok(cli("down", *where, "--yes"))
    assert refused == [1]
    assert ec2.describe_network_interfaces(Filters=[{"Name": "network-interface-id", "Values": [eni]}])[
        "NetworkInterfaces"] == []
    assert inventory(stand_in.url, cluster_name) == []


@pytest.mark.parametrize("kind", ["instance", "interface"])
def test_a_users_instance_or_interface_in_a_subnet_stops_down_before_anything_is_deleted(
        stand_in: SandboxServer, cli: Cli, cluster_name: str, kind: str, where: list[str]) -> None:
    """A naive sweep deleted any `available` interface in the subnet (a user's too), and an instance kept the
    subnet busy for the whole 20-minute retry. Both are named first and left alone."""
    _ok(cli("up", *where))
    ec2 = clients(stand_in.url)["ec2"]
    _, subnets = _network(ec2, cluster_name)
    if kind == "instance":
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        ident = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, SubnetId=subnets[0], TagSpecifications=[
            {"ResourceType": "instance", "Tags": _tags(Name="jump-host")}])["Instances"][0]["InstanceId"]
    else:
        ident = ec2.create_network_interface(SubnetId=subnets[0], Description="appliance")["NetworkInterface"][
            "NetworkInterfaceId"]
    stand_in.clear_calls()
    refused = cli("down", *where, "--yes")
    assert refused.exit_code == 1, refused.stderr
    assert ident in refused.stderr and ("jump-host" if kind == "instance" else "appliance") in refused.stderr
    assert mutating_calls(stand_in.calls()) == []
    if kind == "instance":
        ec2.terminate_instances(InstanceIds=[ident])
    else:
        assert ec2.describe_network_interfaces(NetworkInterfaceIds=[ident])["NetworkInterfaces"]
        ec2.delete_network_interface(NetworkInterfaceId=ident)
    _ok(cli("down", *where, "--yes"))
    assert inventory(stand_in.url, cluster_name) == []
