"""Prices for the sandbox: the Price List API (GetProducts), which moto lacks, and a Spot price history.

* `AWSPriceListService.GetProducts`: moto has no `pricing` backend, so its server cannot route the call.
  `install()` wraps moto's request dispatcher so that this one JSON target is answered here, in the Price
  List's real format: `PriceList` is a list of JSON *strings*, each a product with `product.attributes`
  (`regionCode`, `usagetype`, `instanceType`, ...) and `terms.OnDemand.<sku>.priceDimensions.<id>` with
  `unit` and `pricePerUnit.USD` as a decimal string; filters are TERM_MATCH on `ServiceCode`,
  `productFamily` or any attribute (botocore's pricing model). Only the few products eksprivate prices exist,
  in eu-central-1 and us-east-1, at public list prices.
* `DescribeSpotPriceHistory`: moto answers 0.00001 for every type and AZ with a 2006 timestamp; AWS answers
  each price change in the asked window (plus the one in effect at its start), different per AZ. The sandbox
  answers three changes in the last day per offered type and AZ, around 30% of the on-demand price.

`set_price_list_reachable(False)` makes GetProducts answer AccessDeniedException, as AWS does for a
caller without `pricing:GetProducts` (tests use it to see the shipped table taking over).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eksprivate.sandbox.core.patching import Patcher

PUBLICATION = "2026-11-01T00:00:00Z"


def _instance_prices() -> dict[str, dict[str, str]]:
    """On-demand Linux prices per instance type and region: the public list prices eksprivate ships
    (data/prices.json), so the sandbox's Price List knows the instance types a new user picks."""
    from importlib import resources

    data = json.loads(resources.files("eksprivate").joinpath("data/prices.json").read_text())
    out: dict[str, dict[str, str]] = {}
    for region in _LOCATIONS:
        for itype, amount in data["regions"].get(region, {}).get("instance_hour", {}).items():
            out.setdefault(itype, {})[region] = f"{amount:.10f}"
    return out

_LOCATIONS = {"eu-central-1": ("EU (Frankfurt)", "EUC1-", "EUC1-"), "us-east-1": ("US East (N. Virginia)", "", "USE1-")}
# (service code, product family, usagetype suffix, unit, extra attributes, {region: USD})
_CATALOGUE: list[tuple[str, str, str, str, dict[str, str], dict[str, str]]] = [
    ("AmazonEKS", "Compute", "AmazonEKS-Hours:perCluster", "Hours", {"operation": "CreateOperation"},
     {"eu-central-1": "0.1000000000", "us-east-1": "0.1000000000"}),
    ("AmazonEKS", "Compute", "AmazonEKS-Hours:extendedSupport", "Hours", {"operation": "ExtendedSupport"},
     {"eu-central-1": "0.6000000000", "us-east-1": "0.6000000000"}),
    ("AmazonVPC", "VpcEndpoint", "VpcEndpoint-Hours", "Hrs", {"group": "VpcEndpoint", "endpointType": "PrivateLink"},
     {"eu-central-1": "0.0120000000", "us-east-1": "0.0100000000"}),
    ("AmazonVPC", "VpcEndpoint", "VpcEndpoint-Bytes", "GB", {"group": "VpcEndpoint", "endpointType": "PrivateLink"},
     {"eu-central-1": "0.0100000000", "us-east-1": "0.0100000000"}),
    ("AmazonEC2", "NAT Gateway", "NatGateway-Hours", "Hrs", {"group": "NGW:NatGateway"},
     {"eu-central-1": "0.0520000000", "us-east-1": "0.0450000000"}),
    ("AmazonEC2", "NAT Gateway", "NatGateway-Bytes", "GB", {"group": "NGW:NatGateway"},
     {"eu-central-1": "0.0520000000", "us-east-1": "0.0450000000"}),
    ("AmazonEC2", "Storage", "EBS:VolumeUsage.gp3", "GB-Mo", {"volumeApiName": "gp3", "volumeType": "General Purpose"},
     {"eu-central-1": "0.0952000000", "us-east-1": "0.0800000000"}),
    ("awskms", "Encryption Key", "KMS-Keys", "Keys", {},
     {"eu-central-1": "1.0000000000", "us-east-1": "1.0000000000"}),
    *[("AmazonEC2", "Compute Instance", f"BoxUsage:{itype}", "Hrs",
       {"instanceType": itype, "operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA",
        "capacitystatus": "Used", "licenseModel": "No License required", "operation": "RunInstances"}, prices)
      for itype, prices in _instance_prices().items()],
]
_reachable = True


def set_price_list_reachable(reachable: bool) -> None:
    global _reachable
    _reachable = reachable


def _products(service: str) -> Iterable[tuple[str, dict[str, Any]]]:
    for code, family, usage, unit, extra, prices in _CATALOGUE:
        if code != service:
            continue
        for region, amount in prices.items():
            location, ec2_prefix, eks_prefix = _LOCATIONS[region]
            prefix = eks_prefix if code == "AmazonEKS" else (f"{region}-" if code == "awskms" else ec2_prefix)
            sku = f"SKU{zlib.crc32(f'{code}/{usage}/{region}'.encode()):010d}"
            attributes = {"servicecode": code, "regionCode": region, "location": location,
                          "locationType": "AWS Region", "usagetype": f"{prefix}{usage}", **extra}
            term = f"{sku}.JRTCKXETXF"
            product = {
                "product": {"productFamily": family, "attributes": attributes, "sku": sku},
                "serviceCode": code,
                "terms": {"OnDemand": {term: {
                    "priceDimensions": {f"{term}.6YS6EN2CT7": {
                        "unit": unit, "endRange": "Inf", "beginRange": "0", "appliesTo": [],
                        "rateCode": f"{term}.6YS6EN2CT7", "description": f"${amount} per {unit} ({usage})",
                        "pricePerUnit": {"USD": amount}}},
                    "sku": sku, "effectiveDate": PUBLICATION, "offerTermCode": "JRTCKXETXF",
                    "termAttributes": {}}}},
                "version": "20261101000000", "publicationDate": PUBLICATION,
            }
            yield family, product


def get_products(request: dict[str, Any]) -> dict[str, Any]:
    service = request.get("ServiceCode", "")
    filters = request.get("Filters") or []
    items = []
    for family, product in _products(service):
        attributes = product["product"]["attributes"]
        fields = {**attributes, "productFamily": family, "ServiceCode": service}
        if all(str(fields.get(f["Field"], "")) == str(f["Value"]) for f in filters if f.get("Type") == "TERM_MATCH"):
            items.append(json.dumps(product))
    return {"FormatVersion": request.get("FormatVersion", "aws_v1"), "PriceList": items}


def _answer(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(length) if length else b"{}"
    if not _reachable:
        status, payload = "400 Bad Request", {"__type": "AccessDeniedException",
                                              "message": "User is not authorized to perform: pricing:GetProducts"}
    elif environ.get("HTTP_X_AMZ_TARGET", "").endswith(".GetProducts"):
        status, payload = "200 OK", get_products(json.loads(body or b"{}"))
    else:
        status, payload = "400 Bad Request", {"__type": "InvalidParameterException",
                                              "message": "The sandbox answers GetProducts only"}
    data = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(data)))])
    return [data]


def _spot_history(self: Any) -> Any:
    from moto.core.responses import ActionResult

    types = self._get_param("InstanceTypes", [])
    prices = self.ec2_backend.describe_spot_price_history(types, self._filters_from_querystring())
    on_demand = {(usage.split(":", 1)[1]): float(p[self.region]) for code, fam, usage, _u, _e, p in _CATALOGUE
                 if fam == "Compute Instance" and self.region in p}
    now = datetime.now(timezone.utc)
    history = []
    for offer in prices:
        itype, zone = offer["InstanceType"], offer["Location"]
        base = on_demand.get(itype, 0.05) * 0.3 * (1 + 0.05 * (ord(zone[-1]) - ord("a")))
        for hours, factor in ((20, 0.96), (8, 1.0), (1, 1.08)):
            history.append({"InstanceType": itype, "ProductDescription": "Linux/UNIX",
                            "SpotPrice": f"{base * factor:.6f}", "AvailabilityZone": zone,
                            "Timestamp": now - timedelta(hours=hours)})
    return ActionResult({"SpotPriceHistory": history})


def install(patcher: Patcher) -> None:
    """Route GetProducts to `_answer` ahead of moto's dispatcher, and answer a Spot price history."""
    from moto.ec2.responses.spot_instances import SpotInstances
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    dispatch = DomainDispatcherApplication.__call__

    def call(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        # moto has no Price List backend: answer its one JSON target here, everything else goes to moto.
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("AWSPriceListService."):
            return _answer(environ, start_response)
        return dispatch(self, environ, start_response)

    patcher.set_attr(DomainDispatcherApplication, "__call__", call)
    patcher.set_attr(SpotInstances, "describe_spot_price_history", _spot_history)
