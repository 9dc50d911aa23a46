"""Secure by default (issue 5): `eksprivate up` against the sandbox, then the result read back with boto3.

What AWS keeps is checked live (DescribeCluster, GetKeyPolicy, DescribeFlowLogs, ...). What AWS does not
keep, or moto does not (the exact CreateCluster body, whether a call was ever made), is read from the
requests eksprivate sent, captured client-side with a botocore event hook on its session (`Sent`), and
call order from the sandbox's server-side call log.

One default cluster is built once for the module (`built`) and inspected by many small tests; each
variant (own KMS key, hop limit 2, public CIDRs, a default switched off, ...) builds its own cluster.
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import json
import re
import stat
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import suite_speed
from conftest import held_empty_sandbox
from typer.testing import CliRunner

from eksprivate.aws import Aws
from eksprivate.sandbox import CallRecord, SandboxServer

REGION = "eu-central-1"
ACCOUNT = "123456789012"  # moto's account for any credentials
LOG_TYPES = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
WORLD = {"0.0.0.0/0", "::/0"}
# Credentials that must never land in a state file: distinctive, so a leak cannot hide.
SENTINEL_KEY_ID = "AKIAEKSPRIVATESNTNL1"
SENTINEL_SECRET = "sentinel/secret+never-stored/0123456789abcdef"
SENTINEL_TOKEN = "sentinel-session-token-never-stored-FwoGZXIvYXdz"

CliRun = Callable[..., Any]


# -- what eksprivate sent ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    service: str  # endpoint prefix: ec2, eks, iam, kms, logs, sts
    operation: str  # CreateCluster, ...
    params: dict[str, Any]


@dataclass
class Sent:
    """Every request eksprivate's boto3 clients build, in the order they were built, with their parameters.

    Hooked on `before-parameter-build` of each `Aws` session, so it sees exactly what the steps pass.
    """

    requests: list[Request] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, params: dict[str, Any] | None = None, model: Any = None, **_: Any) -> None:
        if model is None:
            return
        with self._lock:
            self.requests.append(Request(model.service_model.endpoint_prefix, model.name, copy.deepcopy(params or {})))

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original = Aws.__init__
        sent = self

        def init(aws: Aws, *args: Any, **kwargs: Any) -> None:
            original(aws, *args, **kwargs)
            aws.session._session.get_component("event_emitter").register("before-parameter-build", sent)

        monkeypatch.setattr(Aws, "__init__", init)

    def of(self, service: str, operation: str) -> list[dict[str, Any]]:
        return [r.params for r in self.requests if (r.service, r.operation) == (service, operation)]

    def index(self, service: str, operation: str, where: Callable[[dict[str, Any]], bool] = lambda p: True) -> int:
        for i, r in enumerate(self.requests):
            if (r.service, r.operation) == (service, operation) and where(r.params):
                return i
        raise AssertionError(f"{service}:{operation} was never sent")

    def mutating(self) -> list[str]:
        return [f"{r.service}:{r.operation}" for r in self.requests
                if not r.operation.startswith(("Describe", "List", "Get"))]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    recorder = Sent()
    recorder.install(monkeypatch)
    return recorder


# -- reading the sandbox back -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Clients:
    ec2: Any
    eks: Any
    iam: Any
    kms: Any
    logs: Any


@functools.cache
def clients(url: str) -> Clients:
    """Plain boto3 against the sandbox, made once per process (parsing the EC2 model is the slow part)."""
    session = boto3.session.Session(region_name=REGION, aws_access_key_id="inspector",
                                    aws_secret_access_key="inspector")
    make = functools.partial(session.client, endpoint_url=url)
    return Clients(ec2=make("ec2"), eks=make("eks"), iam=make("iam"), kms=make("kms"), logs=make("logs"))


def state_of(folder: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "state" / f"{name}-{REGION}.json").read_text())
    return data


def ids(state: dict[str, Any], key: str) -> dict[str, Any]:
    found: dict[str, Any] = state["steps"].get(key, {}).get("ids", {})
    return found


def log_group(c: Clients, name: str) -> dict[str, Any] | None:
    groups = c.logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    return next((g for g in groups if g["logGroupName"] == name), None)


def role_names(name: str) -> dict[str, str]:
    return {suffix: f"{name}-{REGION}-{suffix}" for suffix in ("cluster", "node", "flow-logs")}


def statements(document: Any) -> list[dict[str, Any]]:
    doc = json.loads(document) if isinstance(document, str) else document
    stmts = doc["Statement"]
    return stmts if isinstance(stmts, list) else [stmts]


def warnings_in(stderr: str) -> list[str]:
    return [line.removeprefix("warning: ") for line in stderr.splitlines() if line.startswith("warning: ")]


def up(cli: CliRun, folder: Path, name: str, config: str = "") -> Any:
    (folder / "eksprivate.toml").write_text(config)
    result = cli("up", "--name", name, "--config", "eksprivate.toml")
    assert result.exit_code == 0, (result.stderr, result.exception)
    return result


def user_env(url: str) -> dict[str, str | None]:
    """A user pointed at the sandbox (as conftest's `aws_env`), with sentinel credentials."""
    return {
        "AWS_ENDPOINT_URL": url, "AWS_REGION": REGION, "AWS_ACCESS_KEY_ID": SENTINEL_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SENTINEL_SECRET, "AWS_SESSION_TOKEN": SENTINEL_TOKEN,
        "AWS_CONFIG_FILE": "no-aws-config", "AWS_SHARED_CREDENTIALS_FILE": "no-aws-credentials",
        "EKSPRIVATE_POLL_INTERVAL": suite_speed.POLL_INTERVAL, "AWS_PROFILE": None, "AWS_DEFAULT_PROFILE": None,
        "AWS_DEFAULT_REGION": None, "EKSPRIVATE_METRICS": None, "KUBECONFIG": None,
    }


# -- the default cluster, built once ---------------------------------------------------------------------
@dataclass
class Built:
    name: str
    folder: Path
    exit_code: int
    stdout: str
    stderr: str
    sent: Sent
    calls: list[CallRecord]
    retention: int = 30


@pytest.fixture(scope="module")
def built(sandbox_server: SandboxServer, sandbox_resets: Any,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """`eksprivate up` with nothing but a log retention in the config, as a user with session credentials."""
    from eksprivate.cli import app

    folder = tmp_path_factory.mktemp("secure-defaults")
    name = f"sd-{uuid.uuid4().hex[:10]}"
    recorder = Sent()
    with held_empty_sandbox(sandbox_server, sandbox_resets):  # the module's tests read what this `up` made
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(folder)
            recorder.install(mp)
            (folder / "eksprivate.toml").write_text("log_retention_days = 30\n")
            first = len(sandbox_server.calls())
            result = CliRunner().invoke(app, ["up", "--name", name, "--config", "eksprivate.toml"],
                                        env=user_env(sandbox_server.url))
            calls = sandbox_server.calls()[first:]
        yield Built(name, folder, result.exit_code, result.stdout, result.stderr, recorder, calls)


@pytest.fixture
def c(sandbox_server: SandboxServer) -> Clients:
    return clients(sandbox_server.url)


def test_default_up_succeeds_without_warnings(built: Built) -> None:
    assert built.exit_code == 0, built.stderr
    assert warnings_in(built.stderr) == []


# KMS: CKV_AWS_58 (secrets encryption) and CKV_AWS_7 (rotation) ------------------------------------------
def test_kms_key_is_created_with_rotation_and_an_account_scoped_policy(built: Built, c: Clients) -> None:
    key_id = ids(state_of(built.folder, built.name), "kms-key")["key_id"]
    meta = c.kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert meta["KeyState"] == "Enabled" and meta["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert c.kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True
    (statement,) = statements(c.kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}  # the account, never "*"
    tags = {t["TagKey"]: t["TagValue"] for t in c.kms.list_resource_tags(KeyId=key_id)["Tags"]}
    assert tags["eksprivate:cluster"] == built.name
    aliases = c.kms.list_aliases(KeyId=key_id)["Aliases"]
    assert [a["AliasName"] for a in aliases] == [f"alias/eksprivate/{built.name}"]
    # ... and it is the key the cluster encrypts its secrets with, from CreateCluster on.
    want = [{"resources": ["secrets"], "provider": {"keyArn": meta["Arn"]}}]
    (create,) = built.sent.of("eks", "CreateCluster")
    assert create["encryptionConfig"] == want
    assert c.eks.describe_cluster(name=built.name)["cluster"]["encryptionConfig"] == want
    assert len(built.sent.of("kms", "CreateKey")) == 1


# Logging: CKV_AWS_37 (all five types) and CKV_AWS_66 (a log group with retention) -------------------------
def test_control_plane_logging_all_types_into_a_group_with_retention(built: Built, c: Clients) -> None:
    want = {"clusterLogging": [{"types": LOG_TYPES, "enabled": True}]}
    (create,) = built.sent.of("eks", "CreateCluster")
    assert create["logging"] == want
    live = c.eks.describe_cluster(name=built.name)["cluster"]["logging"]["clusterLogging"]
    assert sorted(t for entry in live if entry["enabled"] for t in entry["types"]) == sorted(LOG_TYPES)
    group_name = f"/aws/eks/{built.name}/cluster"
    group = log_group(c, group_name)
    assert group is not None and group["retentionInDays"] == built.retention
    # Made (with its retention) before CreateCluster: otherwise EKS makes it with "never expire".
    is_group: Callable[[dict[str, Any]], bool] = lambda p: p.get("logGroupName") == group_name  # noqa: E731
    cluster_at = built.sent.index("eks", "CreateCluster")
    assert built.sent.index("logs", "CreateLogGroup", is_group) < cluster_at
    assert built.sent.index("logs", "PutRetentionPolicy", is_group) < cluster_at


# Flow logs: CKV2_AWS_11, with a least-privilege role ----------------------------------------------------------
def test_vpc_flow_logs_to_cloudwatch_with_a_least_privilege_role(built: Built, c: Clients) -> None:
    vpc_id = ids(state_of(built.folder, built.name), "vpc")["vpc_id"]
    (flow,) = c.ec2.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [vpc_id]}])["FlowLogs"]
    group_name = f"/eksprivate/{built.name}/vpc-flow-logs"
    role_name = role_names(built.name)["flow-logs"]
    assert flow["LogDestinationType"] == "cloud-watch-logs" and flow["TrafficType"] == "ALL"
    assert flow["LogGroupName"] == group_name
    assert flow["DeliverLogsPermissionArn"] == f"arn:aws:iam::{ACCOUNT}:role/{role_name}"
    group = log_group(c, group_name)
    assert group is not None and group["retentionInDays"] == built.retention

    role = c.iam.get_role(RoleName=role_name)["Role"]
    (trust,) = statements(role["AssumeRolePolicyDocument"])
    # Only this account's flow logs may have the service assume it (confused deputy; VPC user guide).
    assert trust == {"Effect": "Allow", "Principal": {"Service": "vpc-flow-logs.amazonaws.com"},
                     "Action": "sts:AssumeRole",
                     "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT},
                                   "ArnLike": {"aws:SourceArn": f"arn:aws:ec2:{REGION}:{ACCOUNT}:vpc-flow-log/*"}}}
    assert c.iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"] == []
    assert c.iam.list_role_policies(RoleName=role_name)["PolicyNames"] == ["eksprivate"]
    grant, find = statements(c.iam.get_role_policy(RoleName=role_name, PolicyName="eksprivate")["PolicyDocument"])
    group_arn = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{group_name}"
    assert grant["Effect"] == "Allow"
    assert sorted(grant["Resource"]) == [group_arn, f"{group_arn}:*"]  # writes: that one group, nothing else
    assert all(a.startswith("logs:") and "*" not in a for a in grant["Action"])
    # DescribeLogGroups takes no resource ARN: "*" (read-only), as AWS's documented delivery role has it.
    assert find == {"Sid": "FindTheFlowLogGroup", "Effect": "Allow", "Action": "logs:DescribeLogGroups",
                    "Resource": "*"}


# Nodes: CKV_AWS_79 / 341 (IMDSv2, hop 1), CKV_AWS_8 (encrypted EBS), CKV_AWS_88 (no public IP), CKV_AWS_100 ------
def test_nodes_get_imdsv2_an_encrypted_gp3_root_and_no_public_ip(built: Built, c: Clients) -> None:
    state = state_of(built.folder, built.name)
    lt_id = ids(state, "launch-template/nodes")["launch_template_id"]
    (version,) = c.ec2.describe_launch_template_versions(LaunchTemplateId=lt_id)["LaunchTemplateVersions"]
    data = version["LaunchTemplateData"]
    assert data["MetadataOptions"] == {"HttpTokens": "required", "HttpPutResponseHopLimit": 1,
                                       "HttpEndpoint": "enabled"}
    (root,) = data["BlockDeviceMappings"]
    assert root["Ebs"]["Encrypted"] is True and root["Ebs"]["VolumeType"] == "gp3"
    # No public address: the template asks for none, and no node subnet hands one out.
    assert all(not ni.get("AssociatePublicIpAddress") for ni in data.get("NetworkInterfaces", []))
    subnet_ids = [p["subnet_id"] for p in ids(state, "subnets")["parts"].values()]
    subnets = c.ec2.describe_subnets(SubnetIds=subnet_ids)["Subnets"]
    assert len(subnets) == 3 and not any(s["MapPublicIpOnLaunch"] for s in subnets)
    assert "KeyName" not in data  # no SSH key on the nodes

    groups = built.sent.of("eks", "CreateNodegroup")
    assert len(groups) == 3
    for group in groups:
        # EKS refuses remoteAccess together with a launch template, so these nodes can never get SSH.
        # (moto reports a made-up remoteAccess on every node group, so the request is what is checked.)
        assert "remoteAccess" not in group
        assert group["launchTemplate"] == {"id": lt_id, "version": "1"}
        live = c.eks.describe_nodegroup(clusterName=built.name, nodegroupName=group["nodegroupName"])["nodegroup"]
        assert live["launchTemplate"]["id"] == lt_id


# Security groups: CKV_AWS_23 (descriptions), 24/25/260/277 (nothing from the world) -----------------------------
def _rule_sources(perm: dict[str, Any]) -> list[dict[str, Any]]:
    return [*perm.get("IpRanges", []), *perm.get("Ipv6Ranges", []), *perm.get("UserIdGroupPairs", []),
            *perm.get("PrefixListIds", [])]


def test_security_groups_and_rules_have_descriptions_and_no_world_ingress(built: Built, c: Clients) -> None:
    vpc_id = ids(state_of(built.folder, built.name), "vpc")["vpc_id"]
    every = c.ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["SecurityGroups"]
    ours = [g for g in every if {"Key": "eksprivate:cluster", "Value": built.name} in g.get("Tags", [])]
    assert len(ours) == 1  # the endpoints' group; EKS makes its cluster group itself
    for group in ours:
        assert group["Description"].strip()
        assert group["IpPermissions"], "the endpoint group admits HTTPS from the VPC"
        for perm in group["IpPermissions"] + group["IpPermissionsEgress"]:
            for source in _rule_sources(perm):
                assert source.get("Description", "").strip(), (group["GroupId"], perm)
        assert group["IpPermissionsEgress"] == []  # endpoints never start connections
        rules = c.ec2.describe_security_group_rules(
            Filters=[{"Name": "group-id", "Values": [group["GroupId"]]}])["SecurityGroupRules"]
        assert rules and all(r.get("Description", "").strip() for r in rules)
    for group in every:  # no group in the VPC, ours or AWS's default, admits the internet
        for perm in group["IpPermissions"]:
            sources = [r.get("CidrIp") for r in perm.get("IpRanges", [])]
            sources += [r.get("CidrIpv6") for r in perm.get("Ipv6Ranges", [])]
            assert not WORLD & set(sources), (group["GroupId"], perm)
    # What was sent agrees: every group and every rule eksprivate asked for carried a description.
    assert all(p["Description"].strip() for p in built.sent.of("ec2", "CreateSecurityGroup"))
    authorizations = built.sent.of("ec2", "AuthorizeSecurityGroupIngress")
    assert authorizations
    for request in authorizations:
        for perm in request["IpPermissions"]:
            for source in _rule_sources(perm):
                assert source.get("Description", "").strip()
                cidr = source.get("CidrIp") or source.get("CidrIpv6")
                assert cidr is None or ipaddress.ip_network(cidr).prefixlen > 0
    assert built.sent.of("ec2", "AuthorizeSecurityGroupEgress") == []


# IAM: CKV_AWS_60 / 61 (a trust policy names one service) ---------------------------------------------------------
def test_every_role_trusts_exactly_one_service(built: Built, c: Clients) -> None:
    services = {"cluster": "eks.amazonaws.com", "node": "ec2.amazonaws.com",
                "flow-logs": "vpc-flow-logs.amazonaws.com"}
    for suffix, role_name in role_names(built.name).items():
        role = c.iam.get_role(RoleName=role_name)["Role"]
        (trust,) = statements(role["AssumeRolePolicyDocument"])
        assert trust["Effect"] == "Allow" and trust["Action"] == "sts:AssumeRole"
        assert trust["Principal"] == {"Service": services[suffix]}, role_name
    created = built.sent.of("iam", "CreateRole")
    assert len(created) == 3
    for request in created:
        (trust,) = statements(request["AssumeRolePolicyDocument"])
        principal = trust["Principal"]
        assert list(principal) == ["Service"] and isinstance(principal["Service"], str)


# API endpoint: CKV_AWS_39 (public off) and CIS EKS 5.4.2 -- never public, not even for a moment ---------------
def test_the_api_is_private_from_create_cluster_on(built: Built, c: Clients) -> None:
    (create,) = built.sent.of("eks", "CreateCluster")
    assert create["resourcesVpcConfig"]["endpointPublicAccess"] is False
    assert create["resourcesVpcConfig"]["endpointPrivateAccess"] is True
    assert "publicAccessCidrs" not in create["resourcesVpcConfig"]
    # Access entries, not the aws-auth ConfigMap: nothing has to reach the API from outside to finish.
    assert create["accessConfig"]["authenticationMode"] == "API"
    assert built.sent.of("eks", "UpdateClusterConfig") == []
    assert not [r for r in built.calls if r.operation == "UpdateClusterConfig"]
    vpc = c.eks.describe_cluster(name=built.name)["cluster"]["resourcesVpcConfig"]
    assert vpc["endpointPublicAccess"] is False and vpc["endpointPrivateAccess"] is True


# State: 0600 files in a 0700 folder, no credentials -------------------------------------------------------------
def test_state_files_are_private_and_hold_no_credentials(built: Built) -> None:
    folder = built.folder / "state"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = sorted(p for p in folder.iterdir() if p.is_file())
    names = {p.name for p in files}
    assert f"{built.name}-{REGION}.json" in names and f"{built.name}-{REGION}.json.bak" in names
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        text = path.read_text()
        for secret in (SENTINEL_KEY_ID, SENTINEL_SECRET, SENTINEL_TOKEN):
            assert secret not in text, path
        assert not re.search(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b", text), path
    keys: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            keys.update(k.lower() for k in node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(state_of(built.folder, built.name))
    assert not {k for k in keys if "secret" in k or "session" in k or "access_key" in k or "credential" in k}
    for stream in (built.stdout, built.stderr):
        assert SENTINEL_SECRET not in stream and SENTINEL_TOKEN not in stream


def test_an_existing_open_state_folder_is_closed(cli: CliRun, aws_env: Path, cluster_name: str) -> None:
    """A git checkout leaves the repository's `state/` folder 0755: the first `up` makes it 0700."""
    folder = aws_env / "state"
    folder.mkdir()
    folder.chmod(0o755)
    up(cli, aws_env, cluster_name, "flow_logs = false\nsecrets_encryption = false\n")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / f"{cluster_name}-{REGION}.json").stat().st_mode) == 0o600


# -- variants -------------------------------------------------------------------------------------------------
def test_a_given_kms_key_is_used_and_none_is_created(cli: CliRun, aws_env: Path, cluster_name: str,
                                                     sent: Sent, stand_in: SandboxServer) -> None:
    c = clients(stand_in.url)
    key_arn = c.kms.create_key(Description="the platform team's key")["KeyMetadata"]["Arn"]
    up(cli, aws_env, cluster_name, f'kms_key_arn = "{key_arn}"\n')
    want = [{"resources": ["secrets"], "provider": {"keyArn": key_arn}}]
    (create,) = sent.of("eks", "CreateCluster")
    assert create["encryptionConfig"] == want
    assert c.eks.describe_cluster(name=cluster_name)["cluster"]["encryptionConfig"] == want
    assert [r for r in sent.requests if r.service == "kms"] == []  # not even a lookup
    assert "kms-key" not in state_of(aws_env, cluster_name)["steps"]
    aliases = [a["AliasName"] for a in c.kms.list_aliases()["Aliases"]]
    assert f"alias/eksprivate/{cluster_name}" not in aliases


def test_imds_hop_limit_two_is_honoured_with_a_warning(cli: CliRun, aws_env: Path, cluster_name: str,
                                                       stand_in: SandboxServer) -> None:
    result = up(cli, aws_env, cluster_name, "imds_hop_limit = 2\n")
    assert any("imds_hop_limit is 2" in w and "CKV_AWS_341" in w for w in warnings_in(result.stderr))
    c = clients(stand_in.url)
    lt_id = ids(state_of(aws_env, cluster_name), "launch-template/nodes")["launch_template_id"]
    (version,) = c.ec2.describe_launch_template_versions(LaunchTemplateId=lt_id)["LaunchTemplateVersions"]
    assert version["LaunchTemplateData"]["MetadataOptions"]["HttpPutResponseHopLimit"] == 2
    assert version["LaunchTemplateData"]["MetadataOptions"]["HttpTokens"] == "required"


@pytest.mark.parametrize("value", ["3", "0"])
def test_imds_hop_limit_out_of_range_is_refused(cli: CliRun, aws_env: Path, cluster_name: str,
                                                stand_in: SandboxServer, value: str) -> None:
    (aws_env / "eksprivate.toml").write_text(f"imds_hop_limit = {value}\n")
    first = len(stand_in.calls())
    result = cli("up", "--name", cluster_name, "--config", "eksprivate.toml")
    assert result.exit_code == 2 and result.exception is None
    assert len(result.stderr.strip().splitlines()) == 1 and "imds_hop_limit" in result.stderr
    assert stand_in.calls()[first:] == []


def test_public_access_cidrs_are_honoured_and_limited(cli: CliRun, aws_env: Path, cluster_name: str,
                                                      sent: Sent, stand_in: SandboxServer) -> None:
    result = up(cli, aws_env, cluster_name, 'public_access_cidrs = ["203.0.113.0/24"]\n')
    assert any("203.0.113.0/24" in w and "CKV_AWS_39" in w for w in warnings_in(result.stderr))
    (create,) = sent.of("eks", "CreateCluster")
    assert create["resourcesVpcConfig"]["endpointPublicAccess"] is True
    assert create["resourcesVpcConfig"]["endpointPrivateAccess"] is True
    assert create["resourcesVpcConfig"]["publicAccessCidrs"] == ["203.0.113.0/24"]
    assert sent.of("eks", "UpdateClusterConfig") == []
    vpc = clients(stand_in.url).eks.describe_cluster(name=cluster_name)["cluster"]["resourcesVpcConfig"]
    assert vpc["endpointPublicAccess"] is True and vpc["publicAccessCidrs"] == ["203.0.113.0/24"]


@pytest.mark.parametrize("cidr", ["0.0.0.0/0", "::/0"])
def test_a_public_api_open_to_the_world_is_refused(cli: CliRun, aws_env: Path, cluster_name: str,
                                                   stand_in: SandboxServer, cidr: str) -> None:
    (aws_env / "eksprivate.toml").write_text(f'public_access_cidrs = ["10.1.0.0/16", "{cidr}"]\n')
    first = len(stand_in.calls())
    result = cli("up", "--name", cluster_name, "--config", "eksprivate.toml")
    assert result.exit_code == 2 and result.exception is None
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and cidr in line and "allow_public_api_from_anywhere" in line
    assert "Traceback" not in result.stderr + result.stdout
    assert stand_in.calls()[first:] == []  # refused before any AWS call: nothing created
    assert not (aws_env / "state").exists()


def test_a_world_open_api_is_built_only_when_allowed_and_then_with_a_warning(
        cli: CliRun, aws_env: Path, cluster_name: str, sent: Sent) -> None:
    config = 'public_access_cidrs = ["0.0.0.0/0"]\nallow_public_api_from_anywhere = true\n'
    result = up(cli, aws_env, cluster_name, config)
    (warning,) = [w for w in warnings_in(result.stderr) if "0.0.0.0/0" in w]
    assert "whole internet" in warning and "CKV_AWS_38" in warning
    (create,) = sent.of("eks", "CreateCluster")
    assert create["resourcesVpcConfig"]["publicAccessCidrs"] == ["0.0.0.0/0"]


# -- each default turned off: a warning, and the resource is not made ---------------------------------------------
def test_secrets_encryption_off(cli: CliRun, aws_env: Path, cluster_name: str, sent: Sent,
                                stand_in: SandboxServer) -> None:
    result = up(cli, aws_env, cluster_name, "secrets_encryption = false\n")
    assert [w for w in warnings_in(result.stderr) if "secrets_encryption is off" in w and "CKV_AWS_58" in w]
    (create,) = sent.of("eks", "CreateCluster")
    assert "encryptionConfig" not in create
    assert not clients(stand_in.url).eks.describe_cluster(name=cluster_name)["cluster"].get("encryptionConfig")
    assert [r for r in sent.requests if r.service == "kms"] == []
    assert "kms-key" not in state_of(aws_env, cluster_name)["steps"]


def test_control_plane_logging_off(cli: CliRun, aws_env: Path, cluster_name: str, sent: Sent,
                                   stand_in: SandboxServer) -> None:
    result = up(cli, aws_env, cluster_name, "control_plane_logging = false\n")
    assert [w for w in warnings_in(result.stderr) if "control_plane_logging is off" in w and "CKV_AWS_37" in w]
    (create,) = sent.of("eks", "CreateCluster")
    assert create["logging"] == {"clusterLogging": [{"types": LOG_TYPES, "enabled": False}]}
    group_name = f"/aws/eks/{cluster_name}/cluster"
    assert not [p for p in sent.of("logs", "CreateLogGroup") if p["logGroupName"] == group_name]
    assert log_group(clients(stand_in.url), group_name) is None


def test_flow_logs_off(cli: CliRun, aws_env: Path, cluster_name: str, sent: Sent, stand_in: SandboxServer) -> None:
    first = len(stand_in.calls())
    result = up(cli, aws_env, cluster_name, "flow_logs = false\nlog_retention_days = 14\n")
    assert [w for w in warnings_in(result.stderr) if "flow_logs is off" in w and "CKV2_AWS_11" in w]
    assert sent.of("ec2", "CreateFlowLogs") == []
    assert sent.of("iam", "CreateRole") and all(
        not p["RoleName"].endswith("-flow-logs") for p in sent.of("iam", "CreateRole"))
    c = clients(stand_in.url)
    vpc_id = ids(state_of(aws_env, cluster_name), "vpc")["vpc_id"]
    assert c.ec2.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [vpc_id]}])["FlowLogs"] == []
    assert log_group(c, f"/eksprivate/{cluster_name}/vpc-flow-logs") is None
    # With no flow log group, the server's call log alone shows the order: the one log group and its
    # retention come before CreateCluster.
    ops = [r.operation for r in stand_in.calls()[first:] if r.service in ("logs", "eks")]
    assert ops.count("CreateLogGroup") == 1 and ops.count("CreateCluster") == 1
    assert ops.index("CreateLogGroup") < ops.index("PutRetentionPolicy") < ops.index("CreateCluster")
    group = log_group(c, f"/aws/eks/{cluster_name}/cluster")
    assert group is not None and group["retentionInDays"] == 14



# -- docs/security.md quotes the code -----------------------------------------------------------------------------
@pytest.mark.parametrize("config", [
    {"secrets_encryption": False}, {"control_plane_logging": False}, {"flow_logs": False}, {"imds_hop_limit": 2},
    {"public_access_cidrs": ["203.0.113.0/24"]},
    {"public_access_cidrs": ["0.0.0.0/0"], "allow_public_api_from_anywhere": True},
])
def test_docs_quote_each_warning(config: dict[str, Any]) -> None:
    from eksprivate.config import build_settings

    doc = (Path(__file__).resolve().parents[1] / "docs" / "security.md").read_text(encoding="utf-8")
    (warning,) = build_settings(config).warnings
    assert f"`{warning}`" in doc


def test_docs_quote_the_refusal() -> None:
    from eksprivate.config import build_settings
    from eksprivate.errors import UsageError

    doc = (Path(__file__).resolve().parents[1] / "docs" / "security.md").read_text(encoding="utf-8")
    with pytest.raises(UsageError) as refused:
        build_settings({"public_access_cidrs": ["0.0.0.0/0"]})
    assert f"error: {refused.value}\n" in doc
