"""From flags to a ready Context: settings, region, credentials, state, AZs — all checked before the
first mutating call, so bad input creates nothing and leaves the state file untouched."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eksprivate.aws import Aws, known_regions, poll_interval
from eksprivate.config import Settings, build_settings, load_file
from eksprivate.errors import AwsApiError, EksPrivateError, UsageError
from eksprivate.state import Ledger, close_folder, default_path
from eksprivate.steps.base import Context
from eksprivate.steps.endpoints import service_name

REAL_POLL_SECONDS = 15.0
SANDBOX_POLL_SECONDS = 0.25
SANDBOX_REGION = "eu-central-1"
SANDBOX_CREDENTIALS = {"aws_access_key_id": "sandbox", "aws_secret_access_key": "sandbox"}


@dataclass
class Options:
    """What the command line said (None: not given)."""

    name: str | None = None
    region: str | None = None
    profile: str | None = None
    config: Path | None = None
    state: Path | None = None
    state_dir: Path = Path("state")
    sandbox: bool = False
    time_scale: float | None = None
    prune: bool = False


def load_settings(opts: Options) -> Settings:
    values = load_file(opts.config) if opts.config else {}
    return build_settings(values, name=opts.name, region=opts.region)


def resolve_region(settings: Settings, opts: Options) -> str:
    region = settings.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        # The sandbox needs no profile; it plays eu-central-1 unless told otherwise.
        region = SANDBOX_REGION if opts.sandbox else _profile_region(opts.profile)
    if not region:
        raise UsageError("no AWS region given", "pass --region, set AWS_REGION, or set a region in the profile")
    regions = known_regions()
    if region not in regions:
        raise UsageError(f"unknown region {region!r}", "use an EKS region such as eu-central-1 or us-east-1")
    return region


def _profile_region(profile: str | None) -> str | None:
    import boto3
    import botocore.exceptions

    try:
        return boto3.session.Session(profile_name=profile).region_name  # type: ignore[no-any-return]
    except botocore.exceptions.ProfileNotFound as exc:
        raise UsageError(str(exc), "list profiles with `aws configure list-profiles`") from None


def connect(opts: Options, region: str) -> tuple[Aws, float]:
    """The AWS connection (real, or the sandbox on loopback) and the poll interval that suits it."""
    if opts.sandbox:
        import importlib.util

        from eksprivate.sandbox.process import SandboxStartError, ensure_running

        if importlib.util.find_spec("moto") is None:
            raise UsageError("the sandbox needs moto, which is not installed",
                             "pip install 'eksprivate[sandbox]'")
        try:
            info = ensure_running(opts.state_dir, opts.time_scale)
        except SandboxStartError as exc:
            first = str(exc).splitlines()[0]
            raise EksPrivateError(first, f"see {opts.state_dir / 'sandbox.log'}") from exc
        return (Aws(region, endpoint_url=info.url, credentials=SANDBOX_CREDENTIALS),
                poll_interval(SANDBOX_POLL_SECONDS))
    return Aws(region, profile=opts.profile), poll_interval(REAL_POLL_SECONDS)


def open_context(opts: Options, *, mutate: bool, need_azs: bool = True) -> Context:
    settings = load_settings(opts)
    region = resolve_region(settings, opts)
    poll_interval(1.0)  # validate EKSPRIVATE_POLL_INTERVAL before any network use
    aws, poll = connect(opts, region)
    account = aws.account_id()  # also proves the credentials work
    path = opts.state or default_path(opts.state_dir, settings.name, region)
    if mutate and opts.state is None:
        close_folder(opts.state_dir)  # the default folder is ours; a folder named with --state is the user's
    ledger = Ledger.open(path, settings.name, region, account, persist=mutate)
    ctx = Context(aws=aws, settings=settings, ledger=ledger, account=account, azs=[], poll=poll, prune=opts.prune)
    recorded = ledger.input("availability_zones")
    if need_azs:
        # Recorded AZs are kept (subnets live there), but checked too: a node group or endpoint added
        # to the config must be offered in them, before anything is created.
        ctx.azs = choose_azs(ctx, list(recorded) if recorded else None)
    elif recorded:
        ctx.azs = list(recorded)
    return ctx


def check_endpoint_services(ctx: Context) -> dict[str, list[str]]:
    """Every wanted endpoint service must exist in the region; returns the AZs each is offered in."""
    wanted = {service_name(ctx.region, s): s for s in (*ctx.settings.interface_endpoints, "s3")}
    try:
        details = ctx.aws.ec2.describe_vpc_endpoint_services(ServiceNames=sorted(wanted)).get("ServiceDetails", [])
    except AwsApiError as exc:
        if exc.code != "InvalidServiceName":
            raise
        details = []
        for name in sorted(wanted):  # find which one is unknown, to name it
            try:
                details += ctx.aws.ec2.describe_vpc_endpoint_services(ServiceNames=[name]).get("ServiceDetails", [])
            except AwsApiError as inner:
                if inner.code != "InvalidServiceName":
                    raise
    offered = {d["ServiceName"]: list(d.get("AvailabilityZones", [])) for d in details}
    missing = [short for full, short in wanted.items() if full not in offered]
    if missing:
        raise UsageError(f"endpoints: {', '.join(missing)} is not a VPC endpoint service in {ctx.region}",
                         "check the short names with `aws ec2 describe-vpc-endpoint-services`")
    return {wanted[full]: azs for full, azs in offered.items() if full in wanted}


def choose_azs(ctx: Context, recorded: list[str] | None = None) -> list[str]:
    """AZs where every node instance type and every endpoint service is offered; explicit ones checked;
    `recorded` (an existing cluster's) kept as they are once checked."""
    settings = ctx.settings
    zones = sorted(z["ZoneName"] for z in ctx.aws.ec2.describe_availability_zones(
        Filters=[{"Name": "state", "Values": ["available"]},
                 {"Name": "zone-type", "Values": ["availability-zone"]}])["AvailabilityZones"])
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

    if recorded:
        for zone in recorded:
            if lacks(zone):
                raise UsageError(f"availability zone {zone} of this cluster (recorded in the state) does not offer "
                                 f"{', '.join(lacks(zone))}", "the AZs of an existing cluster cannot change: "
                                 "choose instance types and endpoints offered there")
        return recorded
    explicit = settings.availability_zones
    if isinstance(explicit, tuple):
        for zone in explicit:
            if zone not in zones:
                raise UsageError(f"availability zone {zone} does not exist in {ctx.region}",
                                 f"available: {', '.join(zones)}")
            if lacks(zone):
                raise UsageError(f"availability zone {zone} does not offer {', '.join(lacks(zone))}",
                                 "choose other zones, instance types or endpoints")
        return list(explicit)
    candidates = [z for z in zones if not lacks(z)]
    if len(candidates) < settings.az_count:
        skipped = "; ".join(f"{z} lacks {', '.join(lacks(z))}" for z in zones if lacks(z))
        raise UsageError(f"{ctx.region} has {len(candidates)} AZ(s) offering every instance type and endpoint "
                         f"service of the config, which asks for {settings.az_count} ({skipped})",
                         "lower availability_zones, or change instance_types or endpoints")
    return candidates[: settings.az_count]


def describe_target(ctx: Context) -> dict[str, Any]:
    return {"name": ctx.name, "region": ctx.region, "account": ctx.account, "state": str(ctx.ledger.path),
            "availability_zones": ctx.azs}
