"""Settings: defaults, a TOML file, flags on top — validated before anything touches AWS.

Pure: no AWS calls here. What needs AWS to check (region exists, AZs offer the instance types,
endpoint services exist) is resolved by `eksprivate.plan_inputs` before the first mutating call.
"""

from __future__ import annotations

import ipaddress
import math
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from eksprivate.errors import UsageError

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


@dataclass(frozen=True)
class Settings:
    name: str = "eksprivate"
    region: str | None = None
    kubernetes_version: str | None = None  # None: EKS's current default
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
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def az_count(self) -> int:
        azs = self.availability_zones
        return azs if isinstance(azs, int) else len(azs)

    @property
    def interface_endpoints(self) -> tuple[str, ...]:
        """Required endpoints first, then the user's extras, without repeats."""
        seen: list[str] = []
        for svc in (*REQUIRED_ENDPOINTS, *self.endpoints):
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

_TOP_KEYS: dict[str, str] = {
    "name": "str", "region": "str", "kubernetes_version": "str", "vpc_cidr": "str",
    "availability_zones": "int|list[str]", "endpoints": "list[str]", "public_access_cidrs": "list[str]",
    "allow_public_api_from_anywhere": "bool", "tags": "table[str]", "nodegroups": "array of tables",
    "admins": "list[str]", "secrets_encryption": "bool", "kms_key_arn": "str",
    "control_plane_logging": "bool", "log_retention_days": "int", "flow_logs": "bool",
    "imds_hop_limit": "int", "ecr_repositories": "list[str]",
}
# Node group keys: allowed at top level (defaults for every group) and in each [[nodegroups]] entry.
_NODE_KEYS: dict[str, str] = {
    "instance_types": "list[str]", "capacity_type": "str", "min_size": "int", "desired_size": "int",
    "max_size": "int", "disk_size": "int", "ami_type": "str", "labels": "table[str]",
    "taints": "array of tables", "per_az": "bool",
}
CONFIG_KEYS = {**_TOP_KEYS, **_NODE_KEYS}


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
            raise UsageError(f"unknown config key {key!r}",
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
                    raise UsageError(f"unknown config key 'nodegroups[{i}].{key}'")
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

    return Settings(
        name=name, region=region, kubernetes_version=version, vpc_cidr=vpc_cidr,
        availability_zones=azs, endpoints=endpoints, public_access_cidrs=public,
        allow_public_api_from_anywhere=anywhere, tags=tuple(sorted(tags.items())), nodegroups=nodegroups,
        admins=admins, secrets_encryption=secrets, kms_key_arn=kms_arn, control_plane_logging=logging_on,
        log_retention_days=retention, flow_logs=flow_logs, imds_hop_limit=hop, ecr_repositories=repos,
        warnings=tuple(warnings),
    )


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
