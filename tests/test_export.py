"""`eksprivate export`: a cluster made by `up` (and changed by hand) written as CloudFormation and Terraform,
judged by cfn-lint (AWS's resource schemas) and parsed by python-hcl2, against the sandbox through the CLI."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hcl2
import pytest
from cfnlint.api import ManualArgs, lint
from cfnlint.decode import decode_str

from eksprivate.export import write_dir
from eksprivate.export.cloudformation import TYPES as CFN_TYPES
from eksprivate.sandbox import SandboxServer
from tests.faults.helpers import Cli

CONFIG = """
name = "{name}"
admins = ["arn:aws:iam::123456789012:role/platform-admins"]
ecr_repositories = ["mirror/nginx"]
pull_through_cache = ["ecr-public"]
endpoints = ["ssm"]
[[nodegroups]]
name = "work"
labels = {{ team = "data" }}
taints = [{{ key = "dedicated", value = "batch", effect = "NO_SCHEDULE" }}]
"""



def _up(cli: Cli, folder: Path, name: str) -> Path:
    config = folder / "eksprivate.toml"
    config.write_text(CONFIG.format(name=name))
    result = cli("up", "--config", str(config))
    assert result.exit_code == 0, result.stderr
    return config


def _mutating(stand_in: SandboxServer, mark: int) -> list[str]:
    from eksprivate.aws import is_mutating

    return [f"{c.service}:{c.operation}" for c in stand_in.calls()[mark:] if is_mutating(c.operation)]


def _lint_errors(text: str) -> list[str]:
    matches = lint(text, config=ManualArgs(regions=["eu-central-1"]))
    return [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches if m.rule.id.startswith("E")]


def test_export_writes_the_live_cluster_for_both_tools_with_imports_and_says_what_was_changed_by_hand(
        cli: Cli, aws_env: Path, stand_in: SandboxServer, cluster_name: str,
        sandbox_client: Callable[[str], Any]) -> None:
    config = _up(cli, aws_env, cluster_name)
    # Changed by hand since `up`: the control-plane log group's retention, and the sts endpoint's policy.
    sandbox_client("logs").put_retention_policy(logGroupName=f"/aws/eks/{cluster_name}/cluster", retentionInDays=30)
    ec2 = sandbox_client("ec2")
    ours = [{"Name": "tag:eksprivate:cluster", "Values": [cluster_name]}]
    sts = next(e for e in ec2.describe_vpc_endpoints(Filters=ours)["VpcEndpoints"] if e["ServiceName"].endswith(".sts"))
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sts:*",
                                                      "Resource": "*",
                                                      "Condition": {"StringEquals": {"aws:PrincipalAccount":
                                                                                     "123456789012"}}}]}
    ec2.modify_vpc_endpoint(VpcEndpointId=sts["VpcEndpointId"], PolicyDocument=json.dumps(policy))
    # The config now names another node group: the old ones (orphans eksprivate made) are exported all the same.
    config.write_text(config.read_text().replace('name = "work"', 'name = "batch"'))
    mark = len(stand_in.calls())

    cfn = cli("export", "--config", str(config), "--format", "cloudformation", "--output", "cfn")
    tf = cli("export", "--config", str(config), "--format", "terraform", "--output", "tf")

    assert cfn.exit_code == 0 and tf.exit_code == 0, cfn.stderr + tf.stderr
    assert _mutating(stand_in, mark) == []  # reads only
    for result in (cfn, tf):
        assert "differs from the config" in result.stderr and "Control-plane log group" in result.stderr
    vpc_id = ec2.describe_vpcs(Filters=ours)["Vpcs"][0]["VpcId"]

    # -- CloudFormation: cfn-lint finds no error; every resource retained; ids only where they must be -----------
    text = (aws_env / "cfn" / "template.yaml").read_text()
    assert _lint_errors(text) == []
    template, problems = decode_str(text)
    assert not problems
    resources = template["Resources"]
    assert all(r["DeletionPolicy"] == "Retain" and r["UpdateReplacePolicy"] == "Retain" for r in resources.values())
    kinds = sorted({r["Type"] for r in resources.values()})
    assert {"AWS::EC2::VPC", "AWS::EC2::Subnet", "AWS::EC2::RouteTable", "AWS::EC2::SubnetRouteTableAssociation",
            "AWS::EC2::SecurityGroup", "AWS::EC2::SecurityGroupIngress", "AWS::EC2::VPCEndpoint", "AWS::IAM::Role",
            "AWS::KMS::Key", "AWS::KMS::Alias", "AWS::Logs::LogGroup", "AWS::EC2::FlowLog",
            "AWS::EC2::LaunchTemplate", "AWS::EKS::Cluster", "AWS::EKS::Nodegroup", "AWS::EKS::Addon",
            "AWS::EKS::AccessEntry", "AWS::ECR::Repository", "AWS::ECR::PullThroughCacheRule"} <= set(kinds)
    assert vpc_id not in json.dumps(resources)  # every use of the VPC is a !Ref
    properties = json.dumps([r["Properties"] for r in resources.values()])
    assert not re.search(r'"(subnet|sg|rtb|lt|vpce)-[0-9a-f]+"', properties), "literal ids instead of references"
    logs = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Logs::LogGroup"
            and r["Properties"]["LogGroupName"].endswith("/cluster")]
    assert logs[0]["RetentionInDays"] == 30  # as it is now, not the config's 90
    cluster = next(r["Properties"] for r in resources.values() if r["Type"] == "AWS::EKS::Cluster")
    assert cluster["ResourcesVpcConfig"]["EndpointPublicAccess"] is False
    assert cluster["RoleArn"] == {"Fn::GetAtt": ["ClusterRole", "Arn"]}
    group = next(r["Properties"] for r in resources.values() if r["Type"] == "AWS::EKS::Nodegroup")
    assert group["Taints"] == [{"Key": "dedicated", "Value": "batch", "Effect": "NO_SCHEDULE"}]
    assert resources["StsEndpoint"]["Properties"]["PolicyDocument"] == policy  # the live endpoint policy

    imports = json.loads((aws_env / "cfn" / "import.json").read_text())
    assert {i["LogicalResourceId"] for i in imports} == set(resources)
    by_id = {i["LogicalResourceId"]: i for i in imports}
    assert by_id["Vpc"]["ResourceIdentifier"] == {"VpcId": vpc_id}
    assert by_id["WorkANodegroup"]["ResourceIdentifier"] == {"Id": f"{cluster_name}/work-a"}
    assert by_id["Cluster"]["ResourceIdentifier"] == {"Name": cluster_name}
    for item in imports:  # the identifier names of AWS's resource schema, nothing else
        assert set(item["ResourceIdentifier"]) == set(_primary_identifier(item["ResourceType"]))
    readme = (aws_env / "cfn" / "README.md").read_text()
    assert "Control-plane log group" in readme and "cannot import" in readme
    assert "Node group batch-a: missing" in readme and "Node group work-a (`plan` says:" in readme
    assert {"WorkANodegroup", "WorkBNodegroup", "WorkCNodegroup", "WorkLaunchTemplate"} <= set(resources)

    # -- Terraform: parses as HCL; an import block per resource with the documented id formats ------------------
    parsed = {p.name: hcl2.loads(p.read_text()) for p in (aws_env / "tf").glob("*.tf")}
    blocks = [(kind.strip('"'), name.strip('"'), body) for doc in parsed.values() for item in doc.get("resource", [])
              for kind, named in item.items() for name, body in named.items()]
    to = {imp["to"].strip("${}"): imp["id"].strip('"') for doc in parsed.values() for imp in doc.get("import", [])}
    assert {f"{kind}.{name}" for kind, name, _ in blocks} == set(to)
    assert to["aws_eks_node_group.work_a"] == f"{cluster_name}:work-a"
    assert to["aws_eks_addon.coredns"] == f"{cluster_name}:coredns"
    admin = "arn:aws:iam::123456789012:role/platform-admins"
    assert to["aws_eks_access_entry.platform_admins"] == f"{cluster_name}:{admin}"
    assert to["aws_eks_access_policy_association.platform_admins_amazon_eks_cluster_admin_policy"] == \
        f"{cluster_name}#{admin}#arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
    subnet = ec2.describe_subnets(Filters=ours)["Subnets"]
    table = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id",
                                                "Values": [subnet[0]["SubnetId"]]}])["RouteTables"][0]
    assert f"{subnet[0]['SubnetId']}/{table['RouteTableId']}" in to.values()
    assert any(v.startswith(f"{cluster_name}-eu-central-1-node/arn:") for v in to.values())  # role/policy-arn
    hcl = "".join(p.read_text() for p in (aws_env / "tf").glob("*.tf") if p.name != "imports.tf")
    assert vpc_id not in hcl and not re.search(r'"(subnet|sg|rtb|lt|vpce)-[0-9a-f]+"', hcl)
    assert "role_arn = aws_iam_role.cluster_role.arn" in re.sub(r" +", " ", hcl)
    assert "retention_in_days = 30" in re.sub(r" +", " ", hcl)
    sts_block = next(body for kind, name, body in blocks if kind == "aws_vpc_endpoint" and name == "sts")
    assert '"aws:PrincipalAccount"' in sts_block["policy"]  # carried as jsonencode({...}) of the live document


def _primary_identifier(resource_type: str) -> list[str]:
    """The `primaryIdentifier` of AWS's CloudFormation resource schema (the copy cfn-lint ships)."""
    import cfnlint.data.schemas

    root = Path(cfnlint.data.schemas.__file__).parent
    index = json.loads((root / "providers" / "eu-central-1.json").read_text())
    schema = json.loads((root / "resources" / f"{index[resource_type]}.json").read_text())
    return [p.removeprefix("/properties/") for p in schema["primaryIdentifier"]]


def test_every_exported_type_is_importable_by_the_identifier_its_schema_names() -> None:
    for _kind, (resource_type, _suffix, identifier) in CFN_TYPES.items():
        assert sorted(identifier) == sorted(_primary_identifier(resource_type)), resource_type


def test_no_cluster_another_clusters_state_or_a_full_folder_write_nothing_and_exit_2(
        cli: Cli, aws_env: Path, cluster_name: str) -> None:
    missing = cli("export", "--name", cluster_name, "--format", "terraform", "--output", "out")
    assert missing.exit_code == 2 and "nothing to export" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1 and missing.exception is None
    assert not (aws_env / "out").exists() and not list(aws_env.glob(".out.*"))

    other = aws_env / "other.json"
    other.write_text(json.dumps({"schema": 1, "name": "someone-else", "region": "eu-central-1",
                                 "account": "123456789012", "steps": {}}))
    wrong = cli("export", "--name", cluster_name, "--state", str(other), "--format", "terraform", "--output", "out")
    assert wrong.exit_code == 2 and "someone-else" in wrong.stderr and not (aws_env / "out").exists()

    (aws_env / "full").mkdir()
    (aws_env / "full" / "keep.tf").write_text("# mine")
    full = cli("export", "--name", cluster_name, "--format", "cloudformation", "--output", "full")
    assert full.exit_code == 2 and "not empty" in full.stderr
    assert (aws_env / "full" / "keep.tf").read_text() == "# mine"
    bad = cli("export", "--name", cluster_name, "--format", "pulumi", "--output", "x")
    assert bad.exit_code == 2 and "cloudformation or terraform" in bad.stderr


def test_output_is_written_whole_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out"
    write_dir(target, {"a.tf": "a", "b.tf": "b"}, force=False)
    assert sorted(p.name for p in target.iterdir()) == ["a.tf", "b.tf"]

    real_fsync = os.fsync
    calls = {"n": 0}

    def dying_fsync(fd: int) -> None:  # the disk fills up on the second file
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", dying_fsync)
    with pytest.raises(OSError):
        write_dir(target, {"c.tf": "c", "d.tf": "d"}, force=True)
    assert sorted(p.name for p in target.iterdir()) == ["a.tf", "b.tf"]  # the previous export, untouched
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging folder left
    monkeypatch.setattr(os, "fsync", real_fsync)
    write_dir(target, {"c.tf": "c"}, force=True)
    assert [p.name for p in target.iterdir()] == ["c.tf"] and [p.name for p in tmp_path.iterdir()] == ["out"]
