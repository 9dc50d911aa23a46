"""What a private cluster costs: an estimate per hour and per month (730 h) from a price source.

Pure estimation: `estimate(footprint, prices, spot)` turns what exists (or would) into priced lines. The
price sources are the AWS Price List API (`pricing:GetProducts`, through `aws.py`) and the table shipped in
`eksprivate/data/prices.json` (with its `as_of` date); every line names its source. Nothing is invented:
a region or instance type without a price is a line saying "unknown", and usage-based charges (log
ingestion, endpoint and NAT data processing) are named, never guessed. See docs/cost.md.
"""

from __future__ import annotations

import json
import statistics
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol

from eksprivate.errors import AccessDenied, EksPrivateError, InvalidParameter, NotFound
from eksprivate.grants import Grant, reads
from eksprivate.kube_versions import version_info, version_status

if TYPE_CHECKING:
    from eksprivate.aws import Aws, Client
    from eksprivate.engine import PlanItem
    from eksprivate.steps.base import Context

HOURS_PER_MONTH = 730.0  # AWS's own monthly figure for hourly prices
CURRENCY = "USD"
# Where the Price List Query API answers (botocore's endpoints.json, "api.pricing"): one per partition.
PRICE_LIST_REGIONS = {"aws": ("us-east-1", "eu-central-1", "ap-south-1"), "aws-cn": ("cn-northwest-1",)}
SPOT_WINDOW = timedelta(days=1)
# Plan actions after which a step's resource exists (`delete` and `absent` do not count).
PLANNED_ACTIONS = ("create", "update", "none", "keep")
SPOT_PRODUCTS = ["Linux/UNIX", "Linux/UNIX (Amazon VPC)"]  # EC2 RIProductDescription values for Linux

# The priced kinds: (per, unit) — "per" is the period the price is quoted for.
KINDS: dict[str, tuple[str, str]] = {
    "eks_cluster_hour": ("hour", "cluster-hour"),
    "eks_extended_cluster_hour": ("hour", "cluster-hour"),
    "interface_endpoint_az_hour": ("hour", "endpoint-AZ-hour"),
    "nat_gateway_hour": ("hour", "NAT-gateway-hour"),
    "kms_key_month": ("month", "key-month"),
    "ebs_gp3_gib_month": ("month", "GiB-month"),
    "instance_hour": ("hour", "instance-hour"),
}


@dataclass(frozen=True)
class Price:
    amount: float  # CURRENCY per one unit of its kind
    source: str  # "price-list", "table" or "spot-history"
    as_of: str
    variable: bool = False


class PriceSource(Protocol):
    name: str

    def lookup(self, kind: str, region: str, detail: str = "") -> Price | None: ...

    def sources(self) -> list[dict[str, str]]: ...


class TablePrices:
    """The price table shipped with the package (data/prices.json)."""

    name = "table"

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        if data is None:
            data = json.loads(resources.files("eksprivate").joinpath("data/prices.json").read_text())
        self.data = data
        self.as_of = str(data["as_of"])

    def lookup(self, kind: str, region: str, detail: str = "") -> Price | None:
        table = self.data["regions"].get(region)
        if table is None:
            return None
        value = table.get(kind)
        if isinstance(value, dict):
            value = value.get(detail)
        return None if value is None else Price(float(value), "table", self.as_of)

    def sources(self) -> list[dict[str, str]]:
        return [{"source": "table", "as_of": self.as_of,
                 "detail": "price table shipped with eksprivate (data/prices.json)"}]


# What to ask the Price List for each kind: service code, TERM_MATCH filters, and the usagetype the price has.
def _query(kind: str, region: str, detail: str) -> tuple[str, dict[str, str], Callable[[str], bool]]:
    if kind == "eks_cluster_hour":
        return "AmazonEKS", {}, lambda u: u.endswith("AmazonEKS-Hours:perCluster")
    if kind == "eks_extended_cluster_hour":
        return "AmazonEKS", {}, lambda u: u.endswith("AmazonEKS-Hours:extendedSupport")
    if kind == "interface_endpoint_az_hour":
        return "AmazonVPC", {"productFamily": "VpcEndpoint"}, lambda u: u.endswith("VpcEndpoint-Hours")
    if kind == "nat_gateway_hour":
        return "AmazonEC2", {"productFamily": "NAT Gateway"}, lambda u: u.endswith("NatGateway-Hours")
    if kind == "ebs_gp3_gib_month":
        return ("AmazonEC2", {"productFamily": "Storage", "volumeApiName": "gp3"},
                lambda u: u.endswith("VolumeUsage.gp3"))
    if kind == "kms_key_month":
        return "awskms", {}, lambda u: u.endswith("KMS-Keys")
    if kind == "instance_hour":
        return ("AmazonEC2", {"productFamily": "Compute Instance", "instanceType": detail, "operatingSystem": "Linux",
                              "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used",
                              "licenseModel": "No License required"},
                lambda u: u.endswith(f"BoxUsage:{detail}"))
    raise ValueError(f"unknown price kind {kind}")


def on_demand_price(item: str, matches: Callable[[str], bool]) -> tuple[float, str] | None:
    """The on-demand USD price of one Price List item (a JSON string) whose usagetype `matches`."""
    product = json.loads(item)
    usage = str(product.get("product", {}).get("attributes", {}).get("usagetype", ""))
    if not matches(usage):
        return None
    for term in product.get("terms", {}).get("OnDemand", {}).values():
        for dimension in term.get("priceDimensions", {}).values():
            usd = dimension.get("pricePerUnit", {}).get(CURRENCY)
            if usd is not None and float(usd) > 0:
                return float(usd), str(product.get("publicationDate", ""))[:10]
    return None


class PriceListPrices:
    """The AWS Price List API, falling back to the shipped table when it cannot be reached (no permission,
    no network, a partition without it) or has no product for a line."""

    name = "price-list"

    def __init__(self, client: Callable[[], Client] | None, fallback: TablePrices) -> None:
        self._client = client
        self.fallback = fallback
        self.unreachable: str | None = None if client is not None else "no Price List endpoint for this partition"
        self._cache: dict[tuple[str, str, str], Price | None] = {}
        self._lock = threading.Lock()
        self.used_price_list = False
        self.used_table = False
        self.published = ""  # the newest publicationDate among the products used

    def prefetch(self, wanted: Iterable[tuple[str, str, str]]) -> None:
        """Ask for several prices at once (one GetProducts each, in parallel: they are independent)."""
        todo = sorted(set(wanted) - set(self._cache))
        if not todo:
            return
        with ThreadPoolExecutor(max_workers=min(8, len(todo))) as pool:
            list(pool.map(lambda k: self.lookup(*k), todo))

    def lookup(self, kind: str, region: str, detail: str = "") -> Price | None:
        key = (kind, region, detail)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        price = self._ask(kind, region, detail) if self.unreachable is None else None
        if price is None:
            price = self.fallback.lookup(kind, region, detail)
            self.used_table = self.used_table or price is not None
        with self._lock:
            self._cache[key] = price
        return price

    def _ask(self, kind: str, region: str, detail: str) -> Price | None:
        assert self._client is not None
        service, attributes, matches = _query(kind, region, detail)
        filters = [{"Type": "TERM_MATCH", "Field": f, "Value": v} for f, v in {"regionCode": region, **attributes}
                   .items()]
        try:
            for item in self._client().paginate("get_products", "PriceList", ServiceCode=service, Filters=filters,
                                                FormatVersion="aws_v1"):
                found = on_demand_price(item, matches)
                if found is not None:
                    with self._lock:
                        self.used_price_list = True
                        self.published = max(self.published, found[1])
                    return Price(found[0], "price-list", found[1])
        except (AccessDenied, NotFound, InvalidParameter) as exc:
            self.unreachable = f"{exc.code}: {exc.aws_message}"
        except EksPrivateError as exc:  # no network to the pricing endpoint, throttled past retries, ...
            self.unreachable = exc.message
        return None

    def sources(self) -> list[dict[str, str]]:
        out = []
        if self.used_price_list:
            out.append({"source": "price-list", "as_of": self.published,
                        "detail": "AWS Price List API (pricing:GetProducts)"})
        if self.used_table or self.unreachable or not out:
            table = self.fallback.sources()[0]
            if self.unreachable:
                table["detail"] += f"; the Price List API was not used: {self.unreachable}"
            elif self.used_price_list:
                table["detail"] += " for what the Price List did not answer"
            out.append(table)
        return out


SpotLookup = Callable[[str, str, tuple[str, ...]], Price | None]  # (instance type, region, AZs)


def spot_prices(aws: Aws) -> SpotLookup:
    """Spot prices from DescribeSpotPriceHistory over the last day: the median of each AZ's prices, then the
    median across the node group's AZs. Marked variable: Spot prices move."""
    cache: dict[tuple[str, tuple[str, ...]], Price | None] = {}

    def lookup(instance_type: str, region: str, azs: tuple[str, ...]) -> Price | None:
        if (instance_type, azs) in cache:
            return cache[(instance_type, azs)]
        now = datetime.now(timezone.utc)
        kwargs: dict[str, Any] = {"InstanceTypes": [instance_type], "ProductDescriptions": SPOT_PRODUCTS,
                                  "StartTime": now - SPOT_WINDOW, "EndTime": now}
        if azs:
            kwargs["Filters"] = [{"Name": "availability-zone", "Values": list(azs)}]
        try:
            history = list(aws.ec2.paginate("describe_spot_price_history", "SpotPriceHistory", **kwargs))
        except (AccessDenied, InvalidParameter):
            history = []
        price = spot_median(history, now.date().isoformat())
        cache[(instance_type, azs)] = price
        return price

    return lookup


def spot_median(history: list[dict[str, Any]], as_of: str) -> Price | None:
    per_az: dict[str, list[float]] = {}
    for entry in history:
        per_az.setdefault(str(entry.get("AvailabilityZone", "")), []).append(float(entry["SpotPrice"]))
    if not per_az:
        return None
    return Price(statistics.median(statistics.median(v) for v in per_az.values()), "spot-history", as_of,
                 variable=True)


# -- what is priced -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeGroupUse:
    name: str
    instance_type: str
    capacity_type: str  # ON_DEMAND | SPOT
    count: int
    disk_gib: int
    azs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Footprint:
    region: str
    cluster: bool = True
    support_type: str = "STANDARD"
    # The control plane's Kubernetes version and its support status today (DescribeClusterVersions'
    # versionStatus; "" when not known): an EXTENDED cluster on a version in extended support pays that rate now.
    kubernetes_version: str = ""
    version_status: str = ""
    interface_endpoints: tuple[str, ...] = ()
    az_count: int = 3
    nodegroups: tuple[NodeGroupUse, ...] = ()
    kms_key: bool = False
    control_plane_logs: bool = False
    flow_logs: bool = False


@dataclass
class CostLine:
    item: str
    quantity: float
    unit: str
    unit_price: float | None  # None: unknown (said in `note`) or usage-based
    hours: float  # hours a month the quantity runs (730), 0 for monthly-priced items
    hourly: float | None
    monthly: float | None
    currency: str = CURRENCY
    source: str = ""
    as_of: str = ""
    variable: bool = False
    usage_based: bool = False
    note: str = ""


@dataclass
class Estimate:
    region: str
    lines: list[CostLine]
    nat_alternative: list[CostLine]  # the same cluster with a NAT gateway per AZ instead of interface endpoints
    sources: list[dict[str, str]] = field(default_factory=list)

    @staticmethod
    def _total(lines: list[CostLine], attr: str) -> float:
        return round(sum(getattr(line, attr) or 0.0 for line in lines), 4)

    @property
    def hourly(self) -> float:
        return self._total(self.lines, "hourly")

    @property
    def monthly(self) -> float:
        return self._total(self.lines, "monthly")

    @property
    def unknown(self) -> list[CostLine]:
        return [line for line in self.lines if line.unit_price is None and not line.usage_based]

    def with_nat(self) -> list[CostLine]:
        """The lines of the NAT variant: the endpoint lines replaced by the NAT gateway lines."""
        return [line for line in self.lines if not line.item.startswith("interface endpoint ")] + self.nat_alternative

    def to_dict(self) -> dict[str, Any]:
        nat = self.with_nat()
        return {
            "currency": CURRENCY, "hours_per_month": HOURS_PER_MONTH, "region": self.region,
            "lines": [asdict(line) for line in self.lines],
            "total": {"hourly": self.hourly, "monthly": self.monthly, "unknown_lines": len(self.unknown),
                      "variable": any(line.variable for line in self.lines)},
            "with_nat_gateways": {"lines": [asdict(line) for line in self.nat_alternative],
                                  "hourly": self._total(nat, "hourly"), "monthly": self._total(nat, "monthly")},
            "sources": self.sources,
        }


# Where a price eksprivate does not know is published (an unknown line says where to look).
PRICING_PAGES = {
    "eks_cluster_hour": "https://aws.amazon.com/eks/pricing/",
    "eks_extended_cluster_hour": "https://aws.amazon.com/eks/pricing/",
    "interface_endpoint_az_hour": "https://aws.amazon.com/privatelink/pricing/",
    "nat_gateway_hour": "https://aws.amazon.com/vpc/pricing/",
    "kms_key_month": "https://aws.amazon.com/kms/pricing/",
    "ebs_gp3_gib_month": "https://aws.amazon.com/ebs/pricing/",
    "instance_hour": "https://aws.amazon.com/ec2/pricing/on-demand/",
    "spot": "https://aws.amazon.com/ec2/spot/pricing/",
}


def _line(item: str, quantity: float, kind: str, price: Price | None, *, unknown: str, note: str = "",
          pricing: str | None = None) -> CostLine:
    per, unit = KINDS[kind]
    hours = HOURS_PER_MONTH if per == "hour" else 0.0
    if price is None:
        where = pricing or PRICING_PAGES[kind]
        return CostLine(item, quantity, unit, None, hours, None, None, note=f"unknown: {unknown}; see {where}")
    if per == "hour":
        hourly = quantity * price.amount
        monthly = hourly * HOURS_PER_MONTH
    else:
        monthly = quantity * price.amount
        hourly = monthly / HOURS_PER_MONTH
    return CostLine(item, quantity, unit, price.amount, hours, round(hourly, 6), round(monthly, 4),
                    source=price.source, as_of=price.as_of, variable=price.variable, note=note)


def _usage(item: str, unit: str, note: str) -> CostLine:
    return CostLine(item, 0, unit, None, 0.0, None, None, usage_based=True, note=note)


def _control_plane(fp: Footprint, price: Callable[[str], Price | None], missing: str) -> CostLine:
    """The control plane at the rate its version's support status means today: extended support is billed at
    the extended rate (support type EXTENDED); with STANDARD, EKS upgrades such a cluster instead."""
    version = f"Kubernetes {fp.kubernetes_version}" if fp.kubernetes_version else "the version"
    extended = price("eks_extended_cluster_hour")
    past_standard = fp.version_status in ("EXTENDED_SUPPORT", "UNSUPPORTED")
    if fp.support_type == "EXTENDED" and past_standard:
        return _line("EKS control plane", 1, "eks_extended_cluster_hour", extended, unknown=missing,
                     note=f"EXTENDED support: {version} is past standard support, billed at the extended-support "
                          "rate until upgraded")
    if fp.support_type == "EXTENDED":
        then = f"${extended.amount:.2f}/h" if extended else "the extended-support price"
        note = (f"EXTENDED support: this price applies until {version} leaves standard support, then {then}"
                if fp.version_status else f"EXTENDED support: {then} once {version} leaves standard support "
                "(its support status could not be read)")
    elif past_standard:
        note = f"standard support ended for {version}: EKS upgrades the control plane automatically"
    else:
        note = "standard support"
    return _line("EKS control plane", 1, "eks_cluster_hour", price("eks_cluster_hour"), unknown=missing, note=note)


def wanted_prices(fp: Footprint) -> list[tuple[str, str, str]]:
    """Every (kind, region, detail) `estimate` will look up: for prefetching them together."""
    out = [("eks_cluster_hour", fp.region, ""), ("eks_extended_cluster_hour", fp.region, ""),
           ("interface_endpoint_az_hour", fp.region, ""), ("nat_gateway_hour", fp.region, ""),
           ("kms_key_month", fp.region, ""), ("ebs_gp3_gib_month", fp.region, "")]
    out += [("instance_hour", fp.region, g.instance_type) for g in fp.nodegroups if g.capacity_type != "SPOT"]
    return out


def estimate(fp: Footprint, prices: PriceSource, spot: SpotLookup | None = None) -> Estimate:
    region = fp.region
    missing = f"no price for {region}"

    def price(kind: str, detail: str = "") -> Price | None:
        return prices.lookup(kind, region, detail)

    lines: list[CostLine] = []
    if fp.cluster:
        lines.append(_control_plane(fp, price, missing))
    endpoint_price = price("interface_endpoint_az_hour")
    for service in fp.interface_endpoints:
        lines.append(_line(f"interface endpoint {service} x {fp.az_count} AZ", fp.az_count,
                           "interface_endpoint_az_hour", endpoint_price, unknown=missing))
    gp3 = price("ebs_gp3_gib_month")
    for group in fp.nodegroups:
        kind_word = "spot" if group.capacity_type == "SPOT" else "on demand"
        label = f"node group {group.name}: {group.count} x {group.instance_type} ({kind_word})"
        if group.capacity_type == "SPOT":
            spot_price = spot(group.instance_type, region, group.azs) if spot else None
            lines.append(_line(label, group.count, "instance_hour", spot_price,
                               unknown=f"no Spot price history for {group.instance_type} in {region}",
                               note="Spot: median of the last day's prices, varies", pricing=PRICING_PAGES["spot"]))
        else:
            lines.append(_line(label, group.count, "instance_hour", price("instance_hour", group.instance_type),
                               unknown=f"no price for {group.instance_type} in {region}"))
        lines.append(_line(f"node group {group.name}: {group.count} x {group.disk_gib} GiB gp3 root volume",
                           group.count * group.disk_gib, "ebs_gp3_gib_month", gp3, unknown=missing))
    if fp.kms_key:
        lines.append(_line("KMS key (secrets encryption)", 1, "kms_key_month", price("kms_key_month"),
                           unknown=missing, note="requests: usage-based, not counted"))
    if fp.control_plane_logs or fp.flow_logs:
        which = " and ".join(n for n, on in (("control-plane logs", fp.control_plane_logs),
                                              ("VPC flow logs", fp.flow_logs)) if on)
        lines.append(_usage(f"CloudWatch Logs ingestion and storage ({which})", "GB",
                            "usage-based: not estimated"))
    if fp.interface_endpoints:
        lines.append(_usage("interface endpoint data processing", "GB",
                            "usage-based (per GB): not estimated"))
    nat_price = price("nat_gateway_hour")
    nat = [_line(f"NAT gateway x {fp.az_count} AZ", fp.az_count, "nat_gateway_hour", nat_price, unknown=missing,
                 note="one per AZ, as AWS recommends for availability"),
           _usage("NAT gateway data processing", "GB", "usage-based (per GB): not estimated")]
    return Estimate(region, lines, nat, prices.sources())


# -- from a plan or a status -----------------------------------------------------------------------------


def footprint(ctx: Context, items: list[PlanItem], counted: tuple[str, ...]) -> Footprint:
    """What the cluster runs, from the plan/status items whose action is in `counted` (plan: what exists
    after `up`; status: what exists now). Node group sizes are the config's desired sizes. No AWS call."""
    from eksprivate.steps.nodegroups import nodegroup_key, planned_nodegroups

    present = {item.key for item in items if item.action in counted}
    settings = ctx.settings
    az_count = len(ctx.azs) or settings.az_count
    groups = []
    for group in planned_nodegroups(ctx):
        if group.spec is None or nodegroup_key(group.name) not in present:
            continue
        spec = group.spec
        groups.append(NodeGroupUse(group.name, spec.instance_types[0], spec.capacity_type, spec.desired_size,
                                   spec.disk_size, tuple(group.azs or ctx.azs)))
    version = _control_plane_version(ctx)
    info = version_info(ctx, version) or {}
    return Footprint(
        region=ctx.region, cluster="cluster" in present,
        support_type=str(getattr(settings, "support_type", "STANDARD") or "STANDARD"),
        kubernetes_version=version or "", version_status=version_status(info) if info else "",
        interface_endpoints=settings.interface_endpoints if "endpoints" in present else (),
        az_count=az_count, nodegroups=tuple(groups), kms_key="kms-key" in present,
        control_plane_logs="cluster-log-group" in present, flow_logs="flow-logs" in present)


def _control_plane_version(ctx: Context) -> str | None:
    """The version the control plane runs after `up`: the config's, else the cluster's (read by its step's
    find this run), else what a new cluster gets."""
    from eksprivate.steps.base import CLUSTER_MINOR
    from eksprivate.steps.cluster import new_cluster_kubernetes

    return ctx.settings.kubernetes_version or ctx.run_cache.get(CLUSTER_MINOR) or new_cluster_kubernetes(ctx)


def price_source(aws: Aws | None, partition: str) -> PriceSource:
    """The Price List API when there is one for the partition (else, or without AWS, the shipped table)."""
    table = TablePrices()
    regions = PRICE_LIST_REGIONS.get(partition)
    if aws is None or not regions:
        return table
    endpoint_region = aws.region if aws.region in regions else regions[0]
    return PriceListPrices(lambda: aws.regional_client("pricing", endpoint_region), table)


def cost_of(ctx: Context, items: list[PlanItem], counted: tuple[str, ...], *, use_price_list: bool = True) -> Estimate:
    """The estimate for a plan or status: Price List (else table) prices, Spot from the price history."""
    fp = footprint(ctx, items, counted)
    prices = price_source(ctx.aws if use_price_list else None, ctx.partition.name)
    if isinstance(prices, PriceListPrices):
        prices.prefetch(wanted_prices(fp))
    spot = spot_prices(ctx.aws) if any(g.capacity_type == "SPOT" for g in fp.nodegroups) else None
    return estimate(fp, prices, spot)


def grants() -> list[Grant]:
    """What the cost estimate of `plan` and `status` reads (optional: without it the shipped table is used)."""
    return [reads("pricing:GetProducts", "ec2:DescribeSpotPriceHistory",
                  why="plan/status: prices (optional; the shipped table otherwise)")]
