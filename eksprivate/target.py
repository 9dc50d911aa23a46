"""From flags to a ready Context: settings, region, credentials, state, AZs — all checked before the
first mutating call, so bad input creates nothing and leaves the state file untouched."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from eksprivate import endpoint_services, partitions
from eksprivate.aws import Aws, home_region, known_regions, poll_interval, profile_region, same_partition
from eksprivate.config import (
    AL2_LAST_VERSION,
    AL2_SUCCESSOR,
    AMI_TYPES,
    NODEGROUP_NAME_MAX,
    NodeGroupSpec,
    Settings,
    ami_accelerator,
    ami_architecture,
    ami_family,
    build_settings,
    kubernetes_minor,
    load_file,
    version_tuple,
)
from eksprivate.errors import AwsApiError, EksPrivateError, UsageError
from eksprivate.grants import Grant, reads
from eksprivate.kube_versions import CLUSTER_VERSIONS, new_cluster_version, offered_versions, read_cluster_versions
from eksprivate.kube_versions import version_status as _status
from eksprivate.state import Ledger, StateStore, close_folder, default_path
from eksprivate.state_s3 import S3Store, is_s3_url, parse_url
from eksprivate.steps.base import Context
from eksprivate.steps.given_roles import check_given_roles
from eksprivate.steps.used_network import check_vpc
from eksprivate.zones import EKS_REFUSES, SkippedZone, eks_refuses, why_unusable

REAL_POLL_SECONDS = 15.0
SANDBOX_POLL_SECONDS = 0.25
SANDBOX_REGION = "eu-central-1"
SANDBOX_CREDENTIALS = {"aws_access_key_id": "sandbox", "aws_secret_access_key": "sandbox"}
# What a region name looks like (eu-central-1, us-gov-west-1, eusc-de-east-1): checked before any call.
REGION_RE = re.compile(r"^[a-z]{2,}(-[a-z]+)+-\d+$")


@dataclass
class Options:
    """What the command line said (None: not given)."""

    name: str | None = None
    region: str | None = None
    profile: str | None = None
    config: Path | None = None
    state: Path | str | None = None  # a file, or s3://bucket/key
    state_dir: Path = Path("state")
    sandbox: bool = False
    time_scale: float | None = None
    prune: bool = False
    notify: Callable[[str], None] | None = None  # says what happens on the side (sandbox started, ...)


def grants(settings: Settings) -> list[Grant]:
    """What `open_context` reads before any step runs: the zones, instance types and endpoint services the
    config needs, the Kubernetes versions EKS offers (sts:GetCallerIdentity needs no permission: AWS allows it
    to every principal)."""
    return [reads("ec2:DescribeAvailabilityZones", "ec2:DescribeInstanceTypeOfferings", "ec2:DescribeInstanceTypes",
                  "ec2:DescribeVpcEndpointServices", "ec2:DescribeRegions",
                  why="check the zones, instance types and endpoint services before anything is made "
                      "(DescribeRegions: only for a region newer than the installed botocore)"),
            reads("eks:DescribeClusterVersions", why="check kubernetes_version against what EKS offers")]


def load_settings(opts: Options) -> Settings:
    values = load_file(opts.config) if opts.config else {}
    return build_settings(values, name=opts.name, region=opts.region)


def resolve_region(settings: Settings, opts: Options) -> str:
    region = settings.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        # The sandbox needs no profile; it plays eu-central-1 unless told otherwise.
        region = SANDBOX_REGION if opts.sandbox else profile_region(opts.profile)
    if not region:
        raise UsageError("no AWS region given", "pass --region, set AWS_REGION, or set a region in the profile")
    if not REGION_RE.match(region):
        raise UsageError(f"unknown region {region!r}: not a region name",
                         "use a region such as eu-central-1 or us-east-1")
    # A region newer than the installed botocore is not refused here: `confirm_region` asks AWS.
    return region


def confirm_region(aws: Aws) -> None:
    """A region botocore does not know may be newer than it: ask AWS (DescribeRegions, from a region of
    the same partition that botocore knows) whether the account has it, before any other call. A region
    botocore knows costs no call."""
    region = aws.region
    if region in known_regions():
        return
    try:
        listed = aws.regional_client("ec2", home_region(region)).describe_regions(AllRegions=True)["Regions"]
    except EksPrivateError as exc:
        raise UsageError(f"unknown region {region!r}: the installed botocore does not know it and AWS could "
                         f"not be asked ({exc.message})",
                         _did_you_mean(region, known_regions()) or "check the region name, or upgrade boto3") from exc
    entry = next((r for r in listed if r.get("RegionName") == region), None)
    if entry is None:
        names = sorted(str(r.get("RegionName")) for r in listed)
        raise UsageError(f"unknown region {region!r}: the account's partition has no such region",
                         _did_you_mean(region, names) or f"regions: {', '.join(same_partition(region, names))}")
    if entry.get("OptInStatus") == "not-opted-in":
        raise UsageError(f"region {region!r} is not enabled for this account",
                         "enable it (AWS console: Account > AWS Regions), or choose another region")


def _did_you_mean(region: str, names: list[str]) -> str | None:
    """The closest region name of `region`'s own partition (a typo of eu-central-1 is never sent to cn-…)."""
    import difflib

    close = difflib.get_close_matches(region, same_partition(region, names), n=1, cutoff=0.75)
    return f"did you mean {close[0]}?" if close else None


def connect(opts: Options, region: str) -> tuple[Aws, float]:
    """The AWS connection (real, or the sandbox on loopback) and the poll interval that suits it."""
    if opts.sandbox:
        import importlib.util

        from eksprivate.sandbox.process import SandboxStartError, ensure_running

        if importlib.util.find_spec("moto") is None:
            raise UsageError("the sandbox needs moto, which is not installed",
                             "pip install 'eksprivate[sandbox]'")
        try:
            info = ensure_running(opts.state_dir, opts.time_scale, on_start=opts.notify)
        except SandboxStartError as exc:
            first = str(exc).splitlines()[0]
            raise EksPrivateError(first, f"see {opts.state_dir / 'sandbox.log'}") from exc
        aws, poll = (Aws(region, endpoint_url=info.url, credentials=SANDBOX_CREDENTIALS),
                     poll_interval(SANDBOX_POLL_SECONDS))
    else:
        aws, poll = Aws(region, profile=opts.profile), poll_interval(REAL_POLL_SECONDS)
    confirm_region(aws)
    return aws, poll


def caller_partition(arn: str) -> partitions.Partition:
    """The partition of the account in use, from the caller's ARN (never guessed from the region)."""
    try:
        return partitions.of_arn(arn)
    except ValueError:
        raise EksPrivateError(f"sts GetCallerIdentity returned {arn!r}, not an ARN") from None


def state_location(opts: Options, settings: Settings, aws: Aws,
                   given: str | Path | None = None) -> tuple[Path | StateStore, list[str]]:
    """Where the state lives: `given`, else --state, else the config's `state`, else the default file.
    An S3 state's bucket is checked here (exists, ours to use, in the cluster's region), before any
    write; returns warnings (bucket versioning off)."""
    where = given if given is not None else opts.state if opts.state is not None else settings.state
    if where is None:
        return default_path(opts.state_dir, settings.name, aws.region), []
    if is_s3_url(str(where)):
        store = S3Store(aws.client("s3"), parse_url(str(where), settings.name, aws.region), aws.region)
        return store, store.check()
    return Path(where), []


def open_context(opts: Options, *, mutate: bool, need_azs: bool = True) -> Context:
    settings = load_settings(opts)
    region = resolve_region(settings, opts)
    poll_interval(1.0)  # validate EKSPRIVATE_POLL_INTERVAL before any network use
    aws, poll = connect(opts, region)
    identity = aws.sts.get_caller_identity()  # also proves the credentials work
    account, partition = str(identity["Account"]), caller_partition(str(identity["Arn"]))
    path, state_warnings = state_location(opts, settings, aws)
    if mutate and path == default_path(opts.state_dir, settings.name, region):
        close_folder(opts.state_dir)  # the default folder is ours; a folder named with --state is the user's
    ledger = Ledger.open(path, settings.name, region, account, persist=mutate)
    if opts.sandbox and opts.notify is not None:
        stale = earlier_sandbox_state(opts, ledger)
        if stale:
            opts.notify(f"warning: {stale}")
    settings = replace(settings, warnings=settings.warnings + tuple(state_warnings))
    ctx = Context(aws=aws, settings=settings, ledger=ledger, account=account, azs=[], poll=poll, prune=opts.prune,
                  partition=partition)
    byo = check_vpc(ctx, strict=need_azs)  # a network team's VPC (vpc_id): checked, its subnets' AZs
    if byo is not None:
        ctx.settings = replace(ctx.settings, warnings=ctx.settings.warnings + tuple(byo[1]))
    recorded = ledger.input("availability_zones") or (byo[0] if byo else None)
    if need_azs:
        # Recorded AZs are kept (subnets live there), but checked too: a node group or endpoint added
        # to the config must be offered in them, before anything is created.
        ctx.azs = choose_azs(ctx, list(recorded) if recorded else None)
    elif recorded:
        ctx.azs = list(recorded)
    if need_azs:  # what `up` will create must be what AWS accepts (down/status need none of it)
        checked = (*check_node_names(ctx), *check_instance_types(ctx), *check_kubernetes_version(ctx))
        ctx.settings = replace(ctx.settings, warnings=ctx.settings.warnings + checked)
        given = check_given_roles(ctx)  # an IAM team's roles: exist, trust their service, carry EKS's policies
        ctx.settings = replace(ctx.settings, warnings=ctx.settings.warnings + tuple(given))
        from eksprivate.steps.endpoints import check_perimeter

        check_perimeter(ctx)  # a perimeter that would keep the nodes from their add-on images is refused
        if settings.pull_through_cache:  # a wrong credential ARN is refused before anything is made
            from eksprivate.steps.pull_through import check_credentials

            check_credentials(ctx)
    return ctx


def check_endpoint_services(ctx: Context) -> dict[str, list[str]]:
    """Every wanted endpoint service must exist in the region: resolve each short name to the full name
    the region lists (kept on the Context for the endpoints step); returns the AZs each is offered in."""
    wanted = {svc: "Interface" for svc in ctx.settings.interface_endpoints}
    wanted["s3"] = "Gateway"
    ctx.endpoint_services = endpoint_services.resolve(ctx.aws, ctx.region, wanted)
    return {short: list(svc.azs) for short, svc in ctx.endpoint_services.items()}


def choose_azs(ctx: Context, recorded: list[str] | None = None) -> list[str]:
    """AZs where every node instance type and every endpoint service is offered, and that EKS accepts
    (by zone ID); explicit ones (names or zone IDs) checked; `recorded` (an existing cluster's) kept as
    they are once checked. What is left out, and why, goes to `ctx.skipped_zones`."""
    settings = ctx.settings
    listed = sorted(ctx.aws.ec2.describe_availability_zones()["AvailabilityZones"], key=lambda z: str(z["ZoneName"]))
    zone_ids = ctx.zone_ids = {str(z["ZoneName"]): str(z.get("ZoneId", "")) for z in listed}
    unusable = {str(z["ZoneName"]): why for z in listed if (why := why_unusable(ctx.region, z)) is not None}
    zones = [name for name in zone_ids if name not in unusable]
    types = sorted({t for spec in settings.nodegroups for t in spec.instance_types})
    offerings: dict[str, set[str]] = {}
    for offer in ctx.aws.ec2.paginate("describe_instance_type_offerings", "InstanceTypeOfferings",
                                      LocationType="availability-zone",
                                      Filters=[{"Name": "instance-type", "Values": types}]):
        offerings.setdefault(offer["InstanceType"], set()).add(offer["Location"])
    for t in types:
        if t not in offerings:
            raise UsageError(f"instance type {t} is not offered in {ctx.region}",
                             "pick another instance_types value")
    services = check_endpoint_services(ctx)

    def lacks(zone: str) -> list[str]:
        """What `zone` does not offer: instance types, then endpoint services."""
        return [t for t in types if zone not in offerings[t]] + [
            f"the {svc} endpoint" for svc, azs in sorted(services.items()) if azs and zone not in azs]

    def named(zone: str) -> str:
        return f"{zone} ({zone_ids[zone]})" if zone_ids.get(zone) else zone

    if recorded:
        for zone in recorded:
            if zone in zone_ids and eks_refuses(ctx.region, zone_ids[zone]):
                raise UsageError(f"availability zone {named(zone)} of this cluster (recorded in the state): "
                                 f"{EKS_REFUSES}", "`eksprivate down`, then `up` chooses other zones")
            if lacks(zone):
                raise UsageError(f"availability zone {zone} of this cluster (recorded in the state) does not offer "
                                 f"{', '.join(lacks(zone))}", "the AZs of an existing cluster cannot change: "
                                 "choose instance types and endpoints offered there")
        return recorded
    explicit = settings.availability_zones
    if isinstance(explicit, tuple):
        by_id = {zone_id: name for name, zone_id in zone_ids.items() if zone_id}
        chosen: list[str] = []
        for given in explicit:
            zone = given if given in zone_ids else by_id.get(given, "")  # a zone name, or a zone ID
            if not zone:
                raise UsageError(f"availability zone {given} does not exist in {ctx.region}",
                                 f"available: {', '.join(named(z) for z in zones)}")
            if zone in unusable:
                raise UsageError(f"availability zone {named(zone)}: {unusable[zone]}",
                                 f"choose others: {', '.join(named(z) for z in zones)}")
            if lacks(zone):
                raise UsageError(f"availability zone {zone} does not offer {', '.join(lacks(zone))}",
                                 "choose other zones, instance types or endpoints")
            if zone in chosen:
                raise UsageError(f"availability_zones names {named(zone)} twice (as a name and as a zone ID)")
            chosen.append(zone)
        return chosen
    ctx.skipped_zones = [SkippedZone(z, zone_ids[z], unusable[z]) for z in zone_ids if z in unusable] + [
        SkippedZone(z, zone_ids[z], f"lacks {', '.join(lacks(z))}") for z in zones if lacks(z)]
    candidates = [z for z in zones if not lacks(z)]
    if len(candidates) < settings.az_count:
        skipped = "; ".join(str(s) for s in ctx.skipped_zones)
        raise UsageError(f"{ctx.region} has {len(candidates)} AZ(s) offering every instance type and endpoint "
                         f"service of the config, which asks for {settings.az_count} ({skipped})",
                         "lower availability_zones, or change instance_types or endpoints")
    return candidates[: settings.az_count]


def describe_target(ctx: Context) -> dict[str, Any]:
    return {"name": ctx.name, "region": ctx.region, "account": ctx.account, "state": str(ctx.ledger.path),
            "availability_zones": ctx.azs}


def describe_skipped_zones(ctx: Context) -> list[dict[str, str]]:
    """The zones `choose_azs` left out, and why (for `plan --output json`)."""
    return [{"zone": z.name, "zone_id": z.zone_id, "reason": z.reason} for z in ctx.skipped_zones]


# -- what AWS will accept, checked against the region (pure checks: config.check_accepted) -----------

def check_node_names(ctx: Context) -> list[str]:
    """Node group names `<spec>-<az suffix>` within EKS's 63 characters, with the AZs actually chosen."""
    from eksprivate.steps.nodegroups import planned_nodegroups

    for group in planned_nodegroups(ctx):
        if len(group.name) > NODEGROUP_NAME_MAX:
            raise UsageError(f"node group name {group.name} is {len(group.name)} characters, EKS allows "
                             f"{NODEGROUP_NAME_MAX}", "shorten that [[nodegroups]] name")
    return []


def check_instance_types(ctx: Context) -> list[str]:
    """Each node group's instance types against its ami_type (DescribeInstanceTypes): the CPU architecture
    must match and the NVIDIA/Neuron AMI types need that accelerator, else EKS refuses CreateNodegroup
    ("[t4g.small] is not a valid instance type for requested amiType ...") once the cluster exists.
    Returns warnings (an accelerator the AMI type has no driver for)."""
    types = sorted({t for spec in ctx.settings.nodegroups for t in spec.instance_types})
    info = {str(t["InstanceType"]): t for t in ctx.aws.ec2.paginate(
        "describe_instance_types", "InstanceTypes", InstanceTypes=types)}
    warnings = []
    for spec in ctx.settings.nodegroups:
        for name in spec.instance_types:
            if name in info:
                warnings += _instance_fits(spec, name, info[name])
    return warnings


def _accelerator(instance: dict[str, Any]) -> str | None:
    gpus = instance.get("GpuInfo", {}).get("Gpus", [])
    if any(str(g.get("Manufacturer", "")).upper() == "NVIDIA" for g in gpus):
        return "nvidia"
    return "neuron" if instance.get("NeuronInfo") else None


def _instance_fits(spec: NodeGroupSpec, name: str, instance: dict[str, Any]) -> list[str]:
    ami = spec.ami_type
    archs = list(instance.get("ProcessorInfo", {}).get("SupportedArchitectures", []))
    want = ami_architecture(ami)
    if want not in archs:
        other = ami.replace("_x86_64", "_ARM_64") if want == "x86_64" else ami.replace("_ARM_64", "_x86_64")
        hint = (f"use ami_type {other} for {name}" if other in AMI_TYPES else
                f"no {ami_family(ami)} AMI type of this kind exists for {'/'.join(archs)}: choose other instance_types")
        raise UsageError(f"node group {spec.name}: instance type {name} is {'/'.join(archs)}, but ami_type {ami} "
                         f"is built for {want}", hint)
    needs, has = ami_accelerator(ami), _accelerator(instance)
    kind = {"nvidia": "an NVIDIA GPU", "neuron": "AWS Neuron (Inferentia/Trainium)"}
    if needs is not None and needs != has:
        raise UsageError(f"node group {spec.name}: ami_type {ami} is for instances with {kind[needs]}; "
                         f"{name} has none", "choose matching instance_types, or a STANDARD ami_type")
    if has is not None and needs is None:
        return [f"node group {spec.name}: {name} has {kind[has]}, but ami_type {ami} has no driver for it "
                "(the nodes run, the accelerator is unused)"]
    return []


def check_kubernetes_version(ctx: Context) -> list[str]:
    """`kubernetes_version` against what EKS offers in the region (DescribeClusterVersions), and AL2 node
    groups against the version a cluster made without one gets.

    A version EKS does not offer is refused for an existing cluster too: naive code would upgrade the control
    plane minor by minor (each a one-way change) until EKS refused one. The only exception is the version
    the cluster already runs (past extended support: EKS upgrades it itself), which is warned about.
    Without DescribeClusterVersions (not allowed, or unknown to the installed botocore) nothing can be
    judged: a new cluster's CreateCluster, or a one-minor upgrade, is refused by EKS before it changes
    anything, so both go ahead with a warning; an upgrade of more than one minor is refused (it could stop
    part-way, with no way back)."""
    try:
        offered = read_cluster_versions(ctx.aws)
    except (AwsApiError, AttributeError) as exc:  # AttributeError: a botocore older than the operation
        why = exc.code if isinstance(exc, AwsApiError) else "the installed botocore does not know it"
        ctx.run_cache[CLUSTER_VERSIONS] = {}  # not readable: not asked again this run
        return _unchecked_version(ctx, why)
    ctx.run_cache[CLUSTER_VERSIONS] = offered  # the cluster step picks a new cluster's version from it
    if not offered:  # nothing to judge by (an empty answer): never refuse on it
        return ["kubernetes_version not checked: DescribeClusterVersions listed no versions"]
    exists = bool(ctx.ledger.ids("cluster"))
    wanted = ctx.settings.kubernetes_version
    warnings = []
    if wanted is not None:
        info = offered.get(wanted)
        status = _status(info) if info else "UNKNOWN"
        if status in ("UNKNOWN", "UNSUPPORTED"):
            why = (f"reached end of extended support on {_date(info, 'endOfExtendedSupportDate')}" if info
                   else "is not a Kubernetes version EKS offers")
            message = f"kubernetes_version \"{wanted}\" {why} in {ctx.region}"
            current = _live_cluster_minor(ctx) if exists else None
            if current == wanted:  # EKS upgrades such a cluster itself; refusing would only block other changes
                warnings.append(f"{message}: EKS upgrades the cluster's control plane automatically; raise "
                                "kubernetes_version to a supported version")
            else:
                raise UsageError(message, offered_versions(offered, current))
        elif status == "EXTENDED_SUPPORT":
            since, until = _date(info, "endOfStandardSupportDate"), _date(info, "endOfExtendedSupportDate")
            warnings.append(f"kubernetes_version \"{wanted}\" is in EKS extended support (since {since}, until "
                            f"{until}): the control plane costs the extended-support rate")
    elif not exists and (default := new_cluster_version(offered)) is not None \
            and version_tuple(default) > AL2_LAST_VERSION:
        for spec in ctx.settings.nodegroups:
            if ami_family(spec.ami_type) == "AL2":
                raise UsageError(f"node group {spec.name}: ami_type {spec.ami_type} has no AMIs for Kubernetes "
                                 f"{default}, the version eksprivate gives a new cluster in {ctx.region}",
                                 f"use {AL2_SUCCESSOR[spec.ami_type]}, or set kubernetes_version = \"1.32\"")
    return warnings


def _live_cluster_minor(ctx: Context) -> str | None:
    """The minor the cluster runs now (one DescribeCluster), None when there is no cluster."""
    from eksprivate.errors import NotFound

    try:
        version = ctx.aws.eks.describe_cluster(name=ctx.name)["cluster"].get("version")
    except NotFound:
        return None
    return kubernetes_minor(str(version)) if version else None


def _unchecked_version(ctx: Context, why: str) -> list[str]:
    """No DescribeClusterVersions: what can still be said safely (see check_kubernetes_version)."""
    skipped = f"kubernetes_version not checked: DescribeClusterVersions is not available ({why})"
    wanted = ctx.settings.kubernetes_version
    current = _live_cluster_minor(ctx) if wanted else None
    if not wanted or current is None or version_tuple(wanted) <= version_tuple(current):
        return [skipped]
    steps = version_tuple(wanted)[1] - version_tuple(current)[1]
    if steps > 1:
        raise UsageError(f"kubernetes_version \"{wanted}\" is {steps} minors above the cluster's {current}, and "
                         f"the versions EKS offers cannot be read (DescribeClusterVersions: {why}): the upgrade "
                         "could stop part-way, on a version there is no way back from",
                         "allow eks:DescribeClusterVersions, or raise kubernetes_version one minor at a time (EKS "
                         "refuses a version it does not offer before changing anything)")
    return [f"{skipped}: EKS itself refuses the upgrade to {wanted} before changing anything if it does not offer "
            "it"]


def _date(info: dict[str, Any] | None, key: str) -> str:
    value: Any = (info or {}).get(key)
    return str(value.date().isoformat()) if hasattr(value, "date") else str(value or "?")


def earlier_sandbox_state(opts: Options, ledger: Ledger) -> str | None:
    """The sandbox keeps its AWS in memory: a state file last written before the running sandbox started
    lists ids that sandbox never made. Say so, and how to start clean (None when the state is current)."""
    import datetime

    from eksprivate.sandbox.process import read_running

    info = read_running(opts.state_dir)
    written = ledger.data.get("updated_at") or ledger.data.get("created_at")
    if info is None or not written or not any(ledger.ids(key) for key in ledger.data.get("steps", {})):
        return None
    try:
        stale = datetime.datetime.fromisoformat(str(written)) < datetime.datetime.fromisoformat(info.started_at)
    except ValueError:
        return None
    if not stale:
        return None
    where = ledger.path
    return (f"the state {where} belongs to an earlier sandbox (written {written}, the running sandbox started "
            f"{info.started_at}): the resources it lists are gone with that sandbox. To start clean, delete "
            f"{where} (or pass --state with a new path); `up` otherwise makes everything anew")


ACCOUNT_RE = re.compile(r"^\d{12}$")


def permissions_context(opts: Options, account: str | None) -> tuple[Context, str | None]:
    """A Context to build the graph from, for `eksprivate permissions`: no call but (without `account`)
    sts:GetCallerIdentity, which needs no permission. The state is read when it is a local file (its recorded
    AZs, orphans and turned-off features count); an S3 state is not read (it needs the very permissions being
    asked for). Returns the context and the S3 state URL, if any."""
    settings = load_settings(opts)
    region = resolve_region(settings, opts)
    if account is not None and not ACCOUNT_RE.match(account):
        raise UsageError(f"--account {account!r} is not a 12-digit AWS account id")
    if account is None:
        aws, _ = connect(opts, region)
        confirm_region(aws)  # a misspelt region is named before a policy is written for it
        identity = aws.sts.get_caller_identity()
        account, partition = str(identity["Account"]), caller_partition(str(identity["Arn"]))
    else:  # for an account whose credentials are not at hand: its partition from botocore's region data
        from eksprivate.aws import partition_of_region

        if region not in known_regions():  # AWS is not asked here, so only botocore's list can tell
            raise UsageError(f"unknown region {region!r}: the installed botocore does not know it",
                             _did_you_mean(region, known_regions())
                             or "check the region name; for a region newer than botocore, run without --account "
                                "(AWS is then asked) or upgrade boto3")

        aws, partition = Aws(region), partitions.named(partition_of_region(region))
    where = opts.state if opts.state is not None else settings.state
    s3_url = str(where) if where is not None and is_s3_url(str(where)) else None
    if s3_url is not None:
        parse_url(s3_url, settings.name, region)  # a bad URL is refused here too
        path: Path = opts.state_dir / ".no-state"  # not read: see above
    else:
        path = Path(where) if where is not None else default_path(opts.state_dir, settings.name, region)
    ledger = Ledger.open(path, settings.name, region, account, persist=False)
    ctx = Context(aws=aws, settings=settings, ledger=ledger, account=account, azs=[], poll=0.0, partition=partition)
    recorded = ledger.input("availability_zones")
    named = settings.availability_zones if not isinstance(settings.availability_zones, int) else None
    # Only the number of AZs shapes the graph (a node group per AZ; their grants name the cluster's node groups
    # by pattern, not by zone): recorded or configured zones, else placeholders for the configured count.
    ctx.azs = list(recorded or named or (f"{region}-zone{i + 1}" for i in range(settings.az_count)))
    return ctx, s3_url
