"""Settings: defaults, a TOML file, flags on top — validated before anything touches AWS.

Pure: no AWS calls here. What needs AWS to check (region exists, AZs offer the instance types,
endpoint services exist) is resolved by `eksprivate.plan_inputs` before the first mutating call.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from eksprivate.errors import UsageError
from eksprivate.images import UPSTREAMS, PullThroughRule, credential_problem

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

NAME_RE = re.compile(r"^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$")  # EKS CreateCluster's rule
NODEGROUP_NAME_RE = re.compile(r"^[0-9A-Za-z][A-Za-z0-9_-]{0,62}$")
SERVICE_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{0,62}$")
VERSION_RE = re.compile(r"^1\.\d{1,2}$")
ARN_RE = re.compile(r"^arn:aws[a-z-]*:(iam|sts)::\d{12}:[A-Za-z0-9+=,.@_/:-]+$")
KMS_ARN_RE = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)/[A-Za-z0-9/_-]+$")
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827,
                      2192, 2557, 2922, 3288, 3653)
TAINT_EFFECTS = ("NO_SCHEDULE", "NO_EXECUTE", "PREFER_NO_SCHEDULE")
CAPACITY_TYPES = ("ON_DEMAND", "SPOT")
# EKS UpgradePolicy.supportType. AWS's default, when CreateCluster names none, is EXTENDED: about six times
# the control-plane price once the version leaves standard support. eksprivate's default is STANDARD.
SUPPORT_TYPES = ("STANDARD", "EXTENDED")

# Interface endpoints a node with no internet cannot work without (aws-facts: what a private cluster needs).
REQUIRED_ENDPOINTS = ("ec2", "ecr.api", "ecr.dkr", "sts", "logs")


@dataclass(frozen=True)
class Taint:
    key: str
    effect: str
    value: str = ""


@dataclass(frozen=True)
class NodeGroupSpec:
    """One `[[nodegroups]]` entry; `per_az` expands it into one managed node group per AZ."""

    name: str = "nodes"
    instance_types: tuple[str, ...] = ("t3.small",)
    capacity_type: str = "ON_DEMAND"
    min_size: int = 1
    desired_size: int = 1
    max_size: int = 2
    disk_size: int = 20
    ami_type: str = "AL2023_x86_64_STANDARD"
    labels: tuple[tuple[str, str], ...] = ()
    taints: tuple[Taint, ...] = ()
    per_az: bool = True


# EKS managed add-ons eksprivate installs when the config has no [addons] table (docs/configuration.md).
CORE_ADDONS = ("vpc-cni", "kube-proxy", "coredns", "eks-pod-identity-agent")
# Add-ons whose pods the nodes need to join and network (DaemonSets): they must exist before the node groups
# are created (not be ACTIVE). The others (coredns, CSI drivers: Deployments) need nodes to run on: made at the
# same time, judged once the node groups are ready.
NODE_ADDONS = ("vpc-cni", "kube-proxy", "eks-pod-identity-agent")
ADDON_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")
ADDON_VERSION_RE = re.compile(r"^v\d+\.\d+\.\d+(-eksbuild\.\d+)?$")


@dataclass(frozen=True)
class AddonSpec:
    """One EKS managed add-on: `version` "default" follows EKS's default for the cluster's Kubernetes version."""

    name: str
    version: str = "default"
    configuration_values: str = ""  # JSON, as CreateAddon takes it; "" for none


@dataclass(frozen=True)
class Settings:
    name: str = "eksprivate"
    region: str | None = None
    kubernetes_version: str | None = None  # None: EKS's current default
    support_type: str = "STANDARD"  # EKS upgrade policy: STANDARD (auto-upgraded) or EXTENDED (billed extra)
    vpc_cidr: str = "10.20.0.0/16"
    availability_zones: int | tuple[str, ...] = 3
    endpoints: tuple[str, ...] = ()
    public_access_cidrs: tuple[str, ...] = ()
    allow_public_api_from_anywhere: bool = False
    tags: tuple[tuple[str, str], ...] = ()
    nodegroups: tuple[NodeGroupSpec, ...] = (NodeGroupSpec(),)
    admins: tuple[str, ...] = ()
    secrets_encryption: bool = True
    kms_key_arn: str | None = None
    control_plane_logging: bool = True
    log_retention_days: int = 90
    flow_logs: bool = True
    imds_hop_limit: int = 1
    ecr_repositories: tuple[str, ...] = ()
    pull_through_cache: tuple[PullThroughRule, ...] = ()
    addons: tuple[AddonSpec, ...] = tuple(AddonSpec(name) for name in CORE_ADDONS)
    # EKS upgrade insights (by name) in ERROR that the user accepts: the upgrade goes on (force) despite them.
    upgrade_accept_insights: tuple[str, ...] = ()
    # Roll node groups to the newest EKS-optimized AMI release of their Kubernetes version on `up`.
    refresh_node_amis: bool = False
    # A managed policy every IAM role eksprivate makes carries as its permissions boundary (docs/permissions.md).
    permissions_boundary: str | None = None
    # Teams (docs/state.md, docs/configuration.md): a shared state and a network team's own VPC.
    state: str | None = None  # a path or s3://bucket/key; --state overrides it
    vpc_id: str | None = None
    subnet_ids: tuple[str, ...] = ()
    allow_internet_routes: bool = False
    # The data perimeter on the VPC endpoints (eksprivate/perimeter.py, docs/security.md): "perimeter" or "open"
    # (AWS's full-access default), a user's own policy per service (service -> the document's JSON text), and
    # the accounts and organisation the perimeter trusts besides this account.
    endpoint_policies: str = "perimeter"
    endpoint_policy_files: tuple[tuple[str, str], ...] = ()
    trusted_accounts: tuple[str, ...] = ()
    trusted_org_id: str | None = None
    # Roles an IAM team made, used instead of made (steps/given_roles.py): never changed or deleted.
    cluster_role_arn: str | None = None
    node_role_arn: str | None = None
    flow_logs_role_arn: str | None = None
    ebs_csi_role_arn: str | None = None
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def pull_through_credentials(self) -> dict[str, str]:
        """The `pull_through_credentials` table as read: upstream short name → Secrets Manager ARN."""
        return {r.upstream: r.credential_arn for r in self.pull_through_cache if r.credential_arn}

    @property
    def az_count(self) -> int:
        azs = self.availability_zones
        return azs if isinstance(azs, int) else len(azs)

    @property
    def interface_endpoints(self) -> tuple[str, ...]:
        """Required endpoints first, then the user's extras, without repeats."""
        seen: list[str] = []
        # The Pod Identity agent exchanges tokens with EKS Auth: without its endpoint no pod gets credentials.
        auth = ("eks-auth",) if any(a.name == "eks-pod-identity-agent" for a in self.addons) else ()
        for svc in (*REQUIRED_ENDPOINTS, *auth, *self.endpoints):
            if svc not in seen and svc != "s3":
                seen.append(svc)
        return tuple(seen)

    def subnet_cidrs(self) -> list[str]:
        """One CIDR per AZ, carved in order from the VPC CIDR."""
        return subnet_cidrs(self.vpc_cidr, self.az_count)


def subnet_cidrs(vpc_cidr: str, count: int) -> list[str]:
    net = ipaddress.IPv4Network(vpc_cidr)
    extra_bits = max(1, math.ceil(math.log2(count))) if count > 1 else 1
    new_prefix = net.prefixlen + extra_bits
    if new_prefix > 28:
        raise UsageError(
            f"vpc_cidr {vpc_cidr} is too small for {count} subnets (each would be /{new_prefix}; "
            "AWS subnets are /28 at the smallest)", "use a larger vpc_cidr, e.g. 10.20.0.0/16")
    return [str(s) for s in list(net.subnets(new_prefix=new_prefix))[:count]]


# -- loading ------------------------------------------------------------------------------------

# A managed IAM policy's ARN (customer's, or AWS's): what CreateRole's PermissionsBoundary takes.
POLICY_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}|aws):policy/[\w+=,.@/-]{1,128}$")

_TOP_KEYS: dict[str, str] = {
    "name": "str", "region": "str", "kubernetes_version": "str", "support_type": "str", "vpc_cidr": "str",
    "availability_zones": "int|list[str]", "endpoints": "list[str]", "public_access_cidrs": "list[str]",
    "allow_public_api_from_anywhere": "bool", "tags": "table[str]", "nodegroups": "array of tables",
    "admins": "list[str]", "secrets_encryption": "bool", "kms_key_arn": "str",
    "control_plane_logging": "bool", "log_retention_days": "int", "flow_logs": "bool",
    "imds_hop_limit": "int", "ecr_repositories": "list[str]",
    "state": "str", "vpc_id": "str", "subnet_ids": "list[str]", "allow_internet_routes": "bool",
    "pull_through_cache": "list[str]", "pull_through_credentials": "table[str]",
    "addons": "table", "upgrade_accept_insights": "list[str]", "refresh_node_amis": "bool",
    "endpoint_policies": "str", "endpoint_policy_files": "table[str]", "trusted_accounts": "list[str]",
    "trusted_org_id": "str",
    "cluster_role_arn": "str", "node_role_arn": "str", "flow_logs_role_arn": "str", "ebs_csi_role_arn": "str",
    "permissions_boundary": "str",
}
# Node group keys: allowed at top level (defaults for every group) and in each [[nodegroups]] entry.
_NODE_KEYS: dict[str, str] = {
    "instance_types": "list[str]", "capacity_type": "str", "min_size": "int", "desired_size": "int",
    "max_size": "int", "disk_size": "int", "ami_type": "str", "labels": "table[str]",
    "taints": "array of tables", "per_az": "bool",
}
CONFIG_KEYS = {**_TOP_KEYS, **_NODE_KEYS}


def _did_you_mean(key: str, known: Iterable[str]) -> str:
    """", did you mean 'nodegroups'?" for the closest known key (also a plural/singular slip), else ""."""
    import difflib

    close = difflib.get_close_matches(key.lower().replace("-", "_"), sorted(known), n=1, cutoff=0.6)
    return f", did you mean {close[0]!r}?" if close else ""


def load_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read config file {path}: {exc}") from None
    try:
        data: dict[str, Any] = tomllib.loads(text)
        return data
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config file {path} is not valid TOML: {exc}") from None


def build_settings(file_values: dict[str, Any] | None = None, **flags: Any) -> Settings:
    """Defaults ← config file ← flags (flags that are None are not given). Raises UsageError."""
    raw: dict[str, Any] = dict(file_values or {})
    for key in raw:
        if key not in CONFIG_KEYS:
            raise UsageError(f"unknown config key {key!r}{_did_you_mean(key, CONFIG_KEYS)}",
                             "see docs/configuration.md for the keys eksprivate reads")
    raw.update({k: v for k, v in flags.items() if v is not None})
    warnings: list[str] = []
    v = _Reader(raw, "")
    defaults = Settings()

    name = v.text("name", defaults.name)
    if not NAME_RE.match(name):
        raise UsageError(f"cluster name {name!r} is not valid for EKS",
                         "use 1-100 letters, digits, '-' or '_', starting with a letter or digit")
    region = v.opt_text("region")
    version = v.opt_text("kubernetes_version")
    if version is not None and not VERSION_RE.match(version):
        raise UsageError(f"kubernetes_version {version!r} is not a version like \"1.33\"")
    support_type = v.text("support_type", defaults.support_type).upper()
    if support_type not in SUPPORT_TYPES:
        raise UsageError(f"support_type {support_type!r} must be STANDARD or EXTENDED")
    if support_type == "EXTENDED":
        warnings.append("support_type is EXTENDED: once the Kubernetes version leaves standard support, the control "
                        "plane is billed at the extended-support rate (about 6x) instead of being upgraded")

    vpc_cidr = _cidr(v.text("vpc_cidr", defaults.vpc_cidr), "vpc_cidr")
    prefix = ipaddress.IPv4Network(vpc_cidr).prefixlen
    if not 16 <= prefix <= 28:
        raise UsageError(f"vpc_cidr {vpc_cidr} must be between /16 and /28 (an AWS VPC limit)")

    azs_raw = raw.get("availability_zones", defaults.availability_zones)
    azs: int | tuple[str, ...]
    if isinstance(azs_raw, bool) or not isinstance(azs_raw, int | list):
        raise UsageError("config key 'availability_zones' must be a count or a list of AZ names")
    if isinstance(azs_raw, int):
        if not 2 <= azs_raw <= 6:
            raise UsageError(f"availability_zones = {azs_raw}: EKS needs 2 to 6 AZs (3 recommended)")
        azs = azs_raw
    else:
        azs = tuple(v.texts("availability_zones"))
        if len(set(azs)) != len(azs) or not 2 <= len(azs) <= 6:
            raise UsageError("availability_zones must name 2 to 6 distinct AZs")
    subnet_cidrs(vpc_cidr, azs if isinstance(azs, int) else len(azs))  # raises when too small

    endpoints = tuple(v.texts("endpoints"))
    for svc in endpoints:
        if not SERVICE_RE.match(svc):
            raise UsageError(f"endpoints: {svc!r} is not a service short name like \"ssm\" or \"ecr.api\"")

    public = tuple(_cidr(c, "public_access_cidrs", any_version=True) for c in v.texts("public_access_cidrs"))
    anywhere = v.flag("allow_public_api_from_anywhere", False)
    open_cidrs = [c for c in public if ipaddress.ip_network(c).prefixlen == 0]
    if open_cidrs and not anywhere:
        raise UsageError(
            f"public_access_cidrs contains {open_cidrs[0]}: that opens the Kubernetes API to the whole internet",
            "name your office/VPN CIDRs instead, or set allow_public_api_from_anywhere = true")
    if open_cidrs:
        warnings.append(f"the cluster API will be public to the whole internet ({', '.join(open_cidrs)}): "
                        "allow_public_api_from_anywhere is true (fails CKV_AWS_38)")
    elif public:
        warnings.append(f"the cluster API will also be public to {', '.join(public)} (CKV_AWS_39)")

    tags = v.table("tags")
    for key in tags:
        if key.lower().startswith("aws:") or key.startswith("eksprivate:"):
            raise UsageError(f"tags: key {key!r} is reserved")

    node_defaults = _node_spec(v, NodeGroupSpec())
    groups_raw = raw.get("nodegroups")
    if groups_raw is None:
        nodegroups: tuple[NodeGroupSpec, ...] = (node_defaults,)
    else:
        if not isinstance(groups_raw, list) or not all(isinstance(g, dict) for g in groups_raw):
            raise UsageError("config key 'nodegroups' must be an array of tables ([[nodegroups]])")
        specs = []
        for i, g in enumerate(groups_raw):
            for key in g:
                if key not in _NODE_KEYS and key != "name":
                    raise UsageError(f"unknown config key 'nodegroups[{i}].{key}'"
                                     f"{_did_you_mean(key, [*_NODE_KEYS, 'name'])}")
            gr = _Reader(g, f"nodegroups[{i}].")
            gname = gr.text("name", "")
            if not NODEGROUP_NAME_RE.match(gname) or len(gname) > 58:
                raise UsageError(f"nodegroups[{i}].name {gname!r} is not a valid node group name",
                                 "use 1-58 letters, digits, '-' or '_', starting with a letter or digit")
            specs.append(replace(_node_spec(gr, node_defaults), name=gname))
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise UsageError("nodegroups: two entries have the same name")
        if not specs:
            raise UsageError("nodegroups is empty: a cluster needs at least one node group")
        nodegroups = tuple(specs)

    admins = tuple(v.texts("admins"))
    for arn in admins:
        if not ARN_RE.match(arn):
            raise UsageError(f"admins: {arn!r} is not an IAM role or user ARN")

    secrets = v.flag("secrets_encryption", True)
    kms_arn = v.opt_text("kms_key_arn")
    if kms_arn is not None and not KMS_ARN_RE.match(kms_arn):
        raise UsageError(f"kms_key_arn {kms_arn!r} is not a KMS key ARN")
    if not secrets:
        warnings.append("secrets_encryption is off: Kubernetes secrets are not envelope-encrypted (CKV_AWS_58)")
    logging_on = v.flag("control_plane_logging", True)
    if not logging_on:
        warnings.append("control_plane_logging is off: no audit trail of the API server (CKV_AWS_37)")
    retention = v.integer("log_retention_days", 90)
    if retention not in LOG_RETENTION_DAYS:
        raise UsageError(f"log_retention_days = {retention} is not a CloudWatch retention value",
                         f"use one of {', '.join(map(str, LOG_RETENTION_DAYS))}")
    flow_logs = v.flag("flow_logs", True)
    if not flow_logs:
        warnings.append("flow_logs is off: no record of the VPC's traffic (CKV2_AWS_11)")
    hop = v.integer("imds_hop_limit", 1)
    if not 1 <= hop <= 2:
        raise UsageError(f"imds_hop_limit = {hop}: use 1 (default, pods cannot reach IMDS) or 2")
    if hop == 2:
        warnings.append("imds_hop_limit is 2: pods can reach the node's instance metadata (CKV_AWS_341)")
    repos = tuple(v.texts("ecr_repositories"))
    for repo in repos:
        if not re.match(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$", repo):
            raise UsageError(f"ecr_repositories: {repo!r} is not a valid ECR repository name")
    pull_through = _pull_through(v)
    addons = _addons(raw.get("addons"))
    if any(a.name == "aws-ebs-csi-driver" for a in addons) and not any(a.name == "eks-pod-identity-agent"
                                                                        for a in addons):
        warnings.append("addons: aws-ebs-csi-driver gets its IAM role through EKS Pod Identity, which needs the "
                        "eks-pod-identity-agent add-on: add it, or volumes will not attach")

    settings = Settings(
        name=name, region=region, kubernetes_version=version, support_type=support_type, vpc_cidr=vpc_cidr,
        availability_zones=azs, endpoints=endpoints, public_access_cidrs=public,
        allow_public_api_from_anywhere=anywhere, tags=tuple(sorted(tags.items())), nodegroups=nodegroups,
        admins=admins, secrets_encryption=secrets, kms_key_arn=kms_arn, control_plane_logging=logging_on,
        log_retention_days=retention, flow_logs=flow_logs, imds_hop_limit=hop, ecr_repositories=repos,
        pull_through_cache=pull_through, addons=addons,
        upgrade_accept_insights=tuple(v.texts("upgrade_accept_insights")),
        refresh_node_amis=v.flag("refresh_node_amis", False),
        permissions_boundary=_permissions_boundary(v),
        **_team_settings(v),
        **_perimeter_settings(v, warnings),
        **_given_roles(v, flow_logs=flow_logs, addons=addons, pull_through=bool(pull_through), warnings=warnings),
        warnings=tuple(warnings),
    )
    accepted = check_accepted(settings, groups_raw)  # what AWS would refuse only after the cluster exists
    return replace(settings, warnings=settings.warnings + accepted)


def _pull_through(v: _Reader) -> tuple[PullThroughRule, ...]:
    """`pull_through_cache` upstream short names, with `pull_through_credentials` for those AWS requires
    to authenticate (a Secrets Manager ARN only: never a secret in the config)."""
    names = v.texts("pull_through_cache")
    credentials = v.table("pull_through_credentials")
    for name in names:
        if name not in UPSTREAMS:
            raise UsageError(f"pull_through_cache: unknown upstream {name!r}",
                             f"use any of {', '.join(UPSTREAMS)}")
    if len(set(names)) != len(names):
        raise UsageError("pull_through_cache names an upstream twice")
    for name, arn in credentials.items():
        if name not in names:
            raise UsageError(f"pull_through_credentials: {name!r} is not in pull_through_cache")
        if not UPSTREAMS[name].needs_credentials:
            raise UsageError(f"pull_through_credentials: {name} takes no credentials (ECR pulls it anonymously)")
        problem = credential_problem(arn)
        if problem:
            raise UsageError(f"pull_through_credentials.{name}: {problem}")
    for name in names:
        if UPSTREAMS[name].needs_credentials and name not in credentials:
            raise UsageError(f"pull_through_cache: {name} needs credentials: set pull_through_credentials.{name} "
                             "to the ARN of a Secrets Manager secret named ecr-pullthroughcache/<name>",
                             "see docs/mirroring-images.md")
    return tuple(PullThroughRule(name, credentials.get(name)) for name in names)


def _addons(raw: Any) -> tuple[AddonSpec, ...]:
    """`[addons]`: name = "default" | "v1.2.3-eksbuild.1", or a table with `version` and `configuration_values`
    (a TOML table, sent as JSON). Absent: the core add-ons at their default versions."""
    if raw is None:
        return Settings().addons
    if not isinstance(raw, dict):
        raise UsageError("config key 'addons' must be a table ([addons]) of add-on name = version")
    specs = []
    for name, value in raw.items():
        where = f"addons.{name}"
        if not ADDON_NAME_RE.match(name):
            raise UsageError(f"{where}: {name!r} is not an EKS add-on name like \"vpc-cni\"")
        values: dict[str, Any] = {}
        if isinstance(value, dict):
            unknown = set(value) - {"version", "configuration_values"}
            if unknown:
                raise UsageError(f"unknown config key '{where}.{sorted(unknown)[0]}'",
                                 "an add-on table takes version and configuration_values")
            version = value.get("version", "default")
            values = value.get("configuration_values", {})
            if not isinstance(values, dict):
                raise UsageError(f"{where}.configuration_values must be a table")
        else:
            version = value
        if not isinstance(version, str) or not (version == "default" or ADDON_VERSION_RE.match(version)):
            raise UsageError(f"{where} = {version!r}: use \"default\" or a version like \"v1.19.2-eksbuild.1\"")
        specs.append(AddonSpec(name, version, json.dumps(values, sort_keys=True) if values else ""))
    return tuple(specs)


def _node_spec(v: _Reader, base: NodeGroupSpec) -> NodeGroupSpec:
    p = v.prefix
    types = tuple(v.texts("instance_types")) or base.instance_types
    capacity = v.text("capacity_type", base.capacity_type).upper()
    if capacity not in CAPACITY_TYPES:
        raise UsageError(f"{p}capacity_type {capacity!r} must be ON_DEMAND or SPOT")
    lo, want, hi = (v.integer("min_size", base.min_size), v.integer("desired_size", base.desired_size),
                    v.integer("max_size", base.max_size))
    if not (0 <= lo <= want <= hi and hi >= 1):
        raise UsageError(f"{p}node group sizes must satisfy 0 <= min_size <= desired_size <= max_size, "
                         f"max_size >= 1 (got {lo}/{want}/{hi})")
    disk = v.integer("disk_size", base.disk_size)
    if not 8 <= disk <= 16384:
        raise UsageError(f"{p}disk_size = {disk} GiB is out of range (8-16384)")
    labels = tuple(sorted(v.table("labels").items())) or base.labels
    taints_raw = v.raw.get("taints")
    taints = base.taints
    if taints_raw is not None:
        if not isinstance(taints_raw, list) or not all(isinstance(t, dict) for t in taints_raw):
            raise UsageError(f"config key '{p}taints' must be an array of tables with key, value, effect")
        parsed = []
        for t in taints_raw:
            tr = _Reader(t, f"{p}taints.")
            effect = tr.text("effect", "NO_SCHEDULE").upper()
            if effect not in TAINT_EFFECTS:
                raise UsageError(f"{p}taints: effect {effect!r} must be one of {', '.join(TAINT_EFFECTS)}")
            parsed.append(Taint(key=tr.text("key", ""), value=tr.text("value", ""), effect=effect))
        taints = tuple(parsed)
    return NodeGroupSpec(
        name=base.name, instance_types=types, capacity_type=capacity, min_size=lo, desired_size=want,
        max_size=hi, disk_size=disk, ami_type=v.text("ami_type", base.ami_type), labels=labels, taints=taints,
        per_az=v.flag("per_az", base.per_az),
    )


def _cidr(value: str, key: str, any_version: bool = False) -> str:
    try:
        net = ipaddress.ip_network(value, strict=True) if any_version else ipaddress.IPv4Network(value)
    except ValueError as exc:
        raise UsageError(f"{key}: {value!r} is not a valid {'' if any_version else 'IPv4 '}CIDR ({exc})") from None
    return str(net)


class _Reader:
    """Typed access to a TOML table that names the offending key on a wrong type."""

    def __init__(self, raw: dict[str, Any], prefix: str) -> None:
        self.raw = raw
        self.prefix = prefix

    def _bad(self, key: str, want: str) -> UsageError:
        got = type(self.raw[key]).__name__
        return UsageError(f"config key '{self.prefix}{key}' must be {want}, not {got}")

    def text(self, key: str, default: str) -> str:
        value = self.raw.get(key, default)
        if not isinstance(value, str):
            raise self._bad(key, "a string")
        return value

    def opt_text(self, key: str) -> str | None:
        return None if self.raw.get(key) is None else self.text(key, "")

    def integer(self, key: str, default: int) -> int:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._bad(key, "an integer")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw.get(key, default)
        if not isinstance(value, bool):
            raise self._bad(key, "true or false")
        return value

    def texts(self, key: str) -> list[str]:
        value = self.raw.get(key, [])
        if not isinstance(value, list | tuple) or not all(isinstance(x, str) for x in value):
            raise self._bad(key, "a list of strings")
        return list(value)

    def table(self, key: str) -> dict[str, str]:
        value = self.raw.get(key, {})
        if not isinstance(value, dict) or not all(isinstance(x, str) for x in value.values()):
            raise self._bad(key, "a table of strings")
        return dict(value)


# -- what AWS will accept ---------------------------------------------------------------------------
# Checked here, before anything is created: AWS would refuse these only at CreateNodegroup or
# CreateAccessEntry, after the VPC, endpoints and the ~9-minute cluster already exist.

# The AMITypes enum of the EKS model (botocore eks/2017-11-01 service-2.json), copied because only
# aws.py imports botocore; tests/test_config_checks.py compares it with the installed model.
AMI_TYPES = (
    "AL2_x86_64", "AL2_x86_64_GPU", "AL2_ARM_64", "CUSTOM",
    "BOTTLEROCKET_ARM_64", "BOTTLEROCKET_x86_64", "BOTTLEROCKET_ARM_64_FIPS", "BOTTLEROCKET_x86_64_FIPS",
    "BOTTLEROCKET_ARM_64_NVIDIA", "BOTTLEROCKET_x86_64_NVIDIA", "BOTTLEROCKET_ARM_64_NVIDIA_FIPS",
    "BOTTLEROCKET_x86_64_NVIDIA_FIPS",
    "WINDOWS_CORE_2019_x86_64", "WINDOWS_FULL_2019_x86_64", "WINDOWS_CORE_2022_x86_64", "WINDOWS_FULL_2022_x86_64",
    "WINDOWS_CORE_2025_x86_64", "WINDOWS_FULL_2025_x86_64",
    "AL2023_x86_64_STANDARD", "AL2023_ARM_64_STANDARD", "AL2023_x86_64_NEURON", "AL2023_x86_64_NVIDIA",
    "AL2023_ARM_64_NVIDIA",
)
# EKS user guide (eks-ami-build-scripts): "Kubernetes version 1.32 is the last version for which Amazon EKS
# will release AL2 AMIs"; AL2 AMIs reached end of support on 2025-11-26.
AL2_LAST_VERSION = (1, 32)
AL2_SUCCESSOR = {"AL2_x86_64": "AL2023_x86_64_STANDARD", "AL2_ARM_64": "AL2023_ARM_64_STANDARD",
                 "AL2_x86_64_GPU": "AL2023_x86_64_NVIDIA"}
# Name limits: EC2 LaunchTemplateName 3-128 (the ec2 model's LaunchTemplateName shape); EKS node group
# names 1-63 (EKS user guide, create-managed-node-group; the eks model states none); taint key 1-63 and
# value 0-63 (the eks model's taintKey / taintValue shapes).
LAUNCH_TEMPLATE_NAME_MAX = 128
NODEGROUP_NAME_MAX = 63
TAINT_KEY_MAX = 63
TAINT_VALUE_MAX = 63
LABEL_MAX = 63  # labelKey, labelValue: 1-63 (eks model)
WINDOWS_MIN_DISK = 50  # CreateNodegroup diskSize: "The default disk size is 50 GiB for Windows"
_ASSUMED_ROLE = re.compile(r"^arn:(?P<partition>aws[a-z-]*):sts::(?P<account>\d{12}):assumed-role/(?P<role>[^/]+)/.+$")


def ami_family(ami_type: str) -> str:
    """AL2, AL2023, BOTTLEROCKET, WINDOWS or CUSTOM: what decides the node's disks and its AMIs' life."""
    for family in ("AL2023", "AL2", "BOTTLEROCKET", "WINDOWS"):
        if ami_type.startswith(family + "_"):
            return family
    return "CUSTOM"


def ami_architecture(ami_type: str) -> str:
    """The CPU architecture the AMI type is built for, as EC2's ProcessorInfo.SupportedArchitectures names it."""
    return "arm64" if "_ARM_64" in ami_type else "x86_64"


def ami_accelerator(ami_type: str) -> str | None:
    """`nvidia` for the GPU AMI types (NVIDIA drivers), `neuron` for AWS Inferentia/Trainium, else None."""
    if ami_type.endswith("_GPU") or "_NVIDIA" in ami_type:
        return "nvidia"
    return "neuron" if ami_type.endswith("_NEURON") else None


def kubernetes_minor(version: str) -> str:
    """The minor ("1.32") of a Kubernetes version ("1.32" or "1.32.5")."""
    return ".".join(str(version).split(".")[:2])


def version_tuple(version: str) -> tuple[int, int]:
    major, minor = version.split(".")
    return int(major), int(minor)


def assumed_role_arn(arn: str) -> str | None:
    """The IAM role ARN behind an STS assumed-role session ARN (without the role's path, which the
    session ARN does not carry), or None when `arn` is not one."""
    match = _ASSUMED_ROLE.match(arn)
    return None if match is None else f"arn:{match['partition']}:iam::{match['account']}:role/{match['role']}"


def check_accepted(settings: Settings, groups_raw: list[dict[str, Any]] | None) -> tuple[str, ...]:
    """Refuse (UsageError) what AWS would refuse later; returns warnings. `groups_raw` are the
    `[[nodegroups]]` tables as written (None: the default group), to name the key the user wrote."""
    warnings: list[str] = []
    for i, spec in enumerate(settings.nodegroups):
        own = groups_raw[i] if groups_raw is not None else {}
        where = f"nodegroups[{i}]." if groups_raw is not None else ""

        def key(name: str, own: dict[str, Any] = own, where: str = where) -> str:
            return f"{where}{name}" if name in own else name

        warnings += _check_ami_type(spec, key("ami_type"), settings.kubernetes_version)
        if ami_family(spec.ami_type) == "WINDOWS" and spec.disk_size < WINDOWS_MIN_DISK:
            # A root volume smaller than the AMI's snapshot fails at launch, in the node group, after the cluster.
            raise UsageError(f"{key('disk_size')} = {spec.disk_size}: Windows nodes need at least {WINDOWS_MIN_DISK} "
                             f"GiB (EKS's Windows default; ami_type {spec.ami_type})",
                             f"set disk_size = {WINDOWS_MIN_DISK} or more")
        template = f"{settings.name}-{spec.name}-nodes"
        if len(template) > LAUNCH_TEMPLATE_NAME_MAX:
            # Refused, not shortened: `find` and orphan discovery read the spec name back out of
            # `<cluster>-<spec>-nodes`, which a hashed name would no longer allow.
            raise UsageError(f"{where}name {spec.name!r}: launch template name {template[:40]}… is "
                             f"{len(template)} characters, EC2 allows {LAUNCH_TEMPLATE_NAME_MAX}",
                             "shorten the cluster name or the node group name")
        for label, value in spec.labels:
            if not 1 <= len(label) <= LABEL_MAX or not 1 <= len(value) <= LABEL_MAX:
                raise UsageError(f"{key('labels')}: {label[:20]!r} = {value[:20]!r}: EKS takes label keys and "
                                 f"values of 1 to {LABEL_MAX} characters")
        for taint in spec.taints:
            if not taint.key:
                raise UsageError(f"{key('taints')}: a taint has an empty key", "give every taint a key")
            if len(taint.key) > TAINT_KEY_MAX or len(taint.value) > TAINT_VALUE_MAX:
                raise UsageError(f"{key('taints')}: taint {taint.key[:20]!r}: EKS allows keys and values of at most "
                                 f"{TAINT_KEY_MAX} characters")
    made = {*settings.interface_endpoints, "s3"}
    for service, _ in settings.endpoint_policy_files:
        if service not in made:
            raise UsageError(f"endpoint_policy_files.{service}: eksprivate makes no {service} endpoint "
                             f"(it makes {', '.join(sorted(made))})", "add it to endpoints, or remove the file")
    for arn in settings.admins:
        if ":sts::" in arn:
            role = assumed_role_arn(arn)
            hint = (f"use the role's ARN, {role} (with its path if it has one: "
                    f"`aws iam get-role --role-name {role.rsplit('/', 1)[1]}` shows it)" if role
                    else "use an IAM role or user ARN")
            raise UsageError(f"admins: {arn!r} is an STS session, which EKS access entries do not accept", hint)
        if not re.match(r"^arn:[^:]+:iam::\d{12}:(role|user)/", arn):
            raise UsageError(f"admins: {arn!r} is not an IAM role or user ARN",
                             "EKS access entries take IAM roles and users (not groups)")
    return tuple(warnings)


def _check_ami_type(spec: NodeGroupSpec, key: str, version: str | None) -> list[str]:
    """The AMI type against the EKS enum and the Kubernetes version; returns warnings."""
    ami = spec.ami_type
    if ami not in AMI_TYPES:
        close = [t for t in AMI_TYPES if t.lower() == ami.lower()]
        hint = f"did you mean {close[0]}?" if close else f"use one of {', '.join(AMI_TYPES)}"
        raise UsageError(f"{key} {ami!r} is not an EKS AMI type", hint)
    if ami == "CUSTOM":
        raise UsageError(f"{key} CUSTOM needs an AMI id in the launch template, which eksprivate does not set",
                         "use an EKS AMI type such as AL2023_x86_64_STANDARD")
    if ami_family(ami) == "AL2":
        if version is not None and version_tuple(version) > AL2_LAST_VERSION:
            raise UsageError(f"{key} {ami}: EKS publishes no Amazon Linux 2 AMIs for Kubernetes 1.33 and later "
                             f"(kubernetes_version = \"{version}\")", f"use {AL2_SUCCESSOR[ami]}")
        return [f"{key} {ami}: Amazon Linux 2 AMIs reached end of support on 2025-11-26 (no more updates): "
                f"use {AL2_SUCCESSOR[ami]}"]
    return []


ACCOUNT_RE = re.compile(r"^\d{12}$")
ORG_ID_RE = re.compile(r"^o-[a-z0-9]{10,32}$")  # Organizations' Id pattern (botocore organizations model)


def _perimeter_settings(v: _Reader, warnings: list[str]) -> dict[str, Any]:
    """`endpoint_policies`, `endpoint_policy_files` (read and linted here: a bad file stops the run before any
    call), `trusted_accounts`, `trusted_org_id`."""
    from eksprivate.perimeter import MODES

    mode = v.text("endpoint_policies", "perimeter")
    if mode not in MODES:
        raise UsageError(f"endpoint_policies = {mode!r}: use \"perimeter\" (the default) or \"open\" (AWS's "
                         "full-access default)", "see docs/security.md")
    if mode == "open":
        warnings.append("endpoint_policies is \"open\": every VPC endpoint allows any principal to any resource "
                        "(data can leave through S3 and ECR to any account)")
    accounts = tuple(v.texts("trusted_accounts"))
    for account in accounts:
        if not ACCOUNT_RE.match(account):
            raise UsageError(f"trusted_accounts: {account!r} is not a 12-digit AWS account id")
    org = v.opt_text("trusted_org_id")
    if org is not None and not ORG_ID_RE.match(org):
        raise UsageError(f"trusted_org_id {org!r} is not an AWS Organizations id like o-a1b2c3d4e5")
    paths = v.table("endpoint_policy_files")
    for service in paths:
        if not SERVICE_RE.match(service):
            raise UsageError(f"endpoint_policy_files: {service!r} is not a service short name like \"s3\" or "
                             "\"ecr.api\"")
    files = tuple((service, _policy_file(service, path)) for service, path in sorted(paths.items()))
    return {"endpoint_policies": mode, "endpoint_policy_files": files, "trusted_accounts": accounts,
            "trusted_org_id": org}


# parliament's findings a perimeter cannot avoid: its statements allow "*" resources under conditions.
LINT_ACCEPTED = ("RESOURCE_STAR",)


def _policy_file(service: str, path: str) -> str:
    """The text of a user's endpoint policy for `service`, checked as AWS would and linted by parliament."""
    from eksprivate.perimeter import check_document

    where = f"endpoint_policy_files.{service} ({path})"
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{where}: cannot read it ({exc.__class__.__name__})") from None
    try:
        check_document(text, where)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    import parliament

    problems = [f"{f.issue} {f.detail}" for f in parliament.analyze_policy_string(text).findings
                if f.issue not in LINT_ACCEPTED]
    if problems:
        raise UsageError(f"{where}: the IAM linter (parliament) finds {problems[0]}"
                         + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
                         "fix the policy; docs/security.md shows the perimeter's own policies")
    return text


# An IAM role ARN (path allowed): `arn:<partition>:iam::<account>:role[/path]/<name>` (IAM's name rules).
ROLE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/(?:[\x21-\x7e]*/)?[A-Za-z0-9+=,.@_-]{1,64}$")
GIVEN_ROLE_KEYS = ("cluster_role_arn", "node_role_arn", "flow_logs_role_arn", "ebs_csi_role_arn")


def _given_roles(v: _Reader, *, flow_logs: bool, addons: tuple[AddonSpec, ...], pull_through: bool,
                 warnings: list[str]) -> dict[str, Any]:
    """Roles an IAM team made (`cluster_role_arn`, ...): well-formed ARNs here; that they exist, trust the
    right service and carry the policies EKS needs is checked against IAM before anything is made
    (steps/given_roles.check_given_roles). Appends warnings."""
    given = {key: v.opt_text(key) for key in GIVEN_ROLE_KEYS}
    for key, arn in given.items():
        if arn is not None and not ROLE_ARN_RE.match(arn):
            raise UsageError(f"{key} {arn!r} is not an IAM role ARN",
                             "use the role's ARN, e.g. arn:aws:iam::123456789012:role/eks-cluster")
    if given["cluster_role_arn"] is not None and given["cluster_role_arn"] == given["node_role_arn"]:
        raise UsageError("cluster_role_arn and node_role_arn name the same role: EKS needs two",
                         "the cluster role trusts eks.amazonaws.com, the node role ec2.amazonaws.com (EKS User "
                         "Guide: a node role cannot be a cluster's role)")
    if given["flow_logs_role_arn"] is not None and not flow_logs:
        warnings.append("flow_logs_role_arn is set but flow_logs is off: the role is not used")
    if given["ebs_csi_role_arn"] is not None and not any(a.name == "aws-ebs-csi-driver" for a in addons):
        warnings.append("ebs_csi_role_arn is set but [addons] has no aws-ebs-csi-driver: the role is not used")
    if given["node_role_arn"] is not None and pull_through:
        warnings.append("pull_through_cache with node_role_arn: eksprivate does not put the first-pull policy on a "
                        "given role; it needs ecr:BatchImportUpstreamImage and ecr:CreateRepository on the cache "
                        "repositories (docs/mirroring-images.md), or first pulls fail")
    return given


VPC_ID_RE = re.compile(r"^vpc-[0-9a-f]{8,17}$")
SUBNET_ID_RE = re.compile(r"^subnet-[0-9a-f]{8,17}$")


def _team_settings(v: _Reader) -> dict[str, Any]:
    """`state`, and bring-your-own-VPC: `vpc_id` with its `subnet_ids` (checked against AWS later)."""
    state = v.opt_text("state")
    if state is not None and not state.strip():
        raise UsageError("config key 'state' is empty", "name a file or an s3://bucket/key URL")
    vpc_id = v.opt_text("vpc_id")
    subnet_ids = tuple(v.texts("subnet_ids"))
    if vpc_id is not None and not VPC_ID_RE.match(vpc_id):
        raise UsageError(f"vpc_id {vpc_id!r} is not a VPC id like vpc-0123456789abcdef0")
    for subnet in subnet_ids:
        if not SUBNET_ID_RE.match(subnet):
            raise UsageError(f"subnet_ids: {subnet!r} is not a subnet id like subnet-0123456789abcdef0")
    if vpc_id is None and subnet_ids:
        raise UsageError("subnet_ids is set without vpc_id", "set vpc_id to the VPC these subnets are in")
    if vpc_id is not None and (len(set(subnet_ids)) != len(subnet_ids) or len(subnet_ids) < 2):
        raise UsageError("vpc_id needs subnet_ids: at least two distinct private subnets, in two or more AZs",
                         "EKS places the control plane's network interfaces in at least two AZs")
    return {"state": state, "vpc_id": vpc_id, "subnet_ids": subnet_ids,
            "allow_internet_routes": v.flag("allow_internet_routes", False)}


def _permissions_boundary(v: _Reader) -> str | None:
    arn = v.opt_text("permissions_boundary")
    if arn is not None and not POLICY_ARN_RE.match(arn):
        raise UsageError(f"permissions_boundary {arn!r} is not an IAM managed policy ARN",
                         "use the policy's ARN, e.g. arn:aws:iam::123456789012:policy/eks-boundary")
    return arn
