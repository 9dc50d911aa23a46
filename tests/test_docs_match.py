"""Where a doc states a number or a list the code also knows, the code's answer is what the doc says:
docs/cost.md's example figures and endpoint list, the shipped price table's instance types, the README's
endpoint list (issue 21: the docs showed five endpoints and $263.67/month; the product six and $289.95)."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import pytest

from eksprivate.config import build_settings
from eksprivate.cost import Estimate, Footprint, NodeGroupUse, TablePrices, estimate

ROOT = Path(__file__).resolve().parents[1]
COST = (ROOT / "docs" / "cost.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")
NUMBERS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def default_estimate() -> tuple[Estimate, tuple[str, ...]]:
    """The default configuration in eu-central-1 with the shipped prices (the doc's example)."""
    settings = build_settings({})
    spec = settings.nodegroups[0]
    zones = ("a", "b", "c")[:settings.az_count]
    groups = tuple(NodeGroupUse(f"{spec.name}-{z}", spec.instance_types[0], spec.capacity_type, spec.desired_size,
                                spec.disk_size) for z in zones)
    fp = Footprint(region="eu-central-1", interface_endpoints=settings.interface_endpoints,
                   az_count=settings.az_count, nodegroups=groups, kms_key=True, control_plane_logs=True,
                   flow_logs=True)
    return estimate(fp, TablePrices()), settings.interface_endpoints


def _money(text: str) -> float:
    return float(text.replace(",", ""))


def test_cost_example_totals_are_what_the_code_computes() -> None:
    est, _ = default_estimate()
    total = re.search(r"total: \$([\d.,]+)/hour, \$([\d.,]+)/month", COST)
    assert total is not None
    assert (_money(total[1]), _money(total[2])) == (pytest.approx(est.hourly, abs=5e-5),
                                                  pytest.approx(est.monthly, abs=5e-3))
    nat = re.search(r"with NAT gateways instead of interface endpoints: \$([\d.,]+)/month \(endpoints \$([\d.,]+) "
                    r"→ NAT gateways \$([\d.,]+)", COST)
    assert nat is not None
    data = est.to_dict()
    endpoints = sum(line.monthly or 0 for line in est.lines if line.item.startswith("interface endpoint "))
    gateways = sum(line.monthly or 0 for line in est.nat_alternative)
    assert [_money(x) for x in nat.groups()] == [pytest.approx(data["with_nat_gateways"]["monthly"], abs=5e-3),
                                                 pytest.approx(endpoints, abs=5e-3), pytest.approx(gateways, abs=5e-3)]


def test_cost_example_lists_the_default_endpoints() -> None:
    _, wanted = default_estimate()
    alike = re.search(r"\(([a-z0-9., -]+) alike\)", COST)
    assert alike is not None and re.search(rf"interface endpoint {wanted[0]} x", COST)
    assert (wanted[0], *alike[1].split(", ")) == wanted
    assert f"{NUMBERS[len(wanted) - 1]} interface endpoints" in COST
    counted = re.search(r"\| each interface endpoint \(([^|]*)\) \|", COST)
    assert counted is not None
    assert tuple(re.findall(r"`([a-z0-9.-]+)`", counted[1])[:len(wanted)]) == wanted


def test_cost_doc_names_every_instance_type_of_the_shipped_table() -> None:
    table = json.loads(resources.files("eksprivate").joinpath("data/prices.json").read_text())
    for region, prices in table["regions"].items():
        listed = re.search(r"Linux: ((?:`[a-z0-9.]+`,?\s*)+)\)", COST)
        assert listed is not None
        assert set(re.findall(r"`([a-z0-9.]+)`", listed[1])) == set(prices["instance_hour"]), region


def test_readme_lists_the_default_endpoints() -> None:
    _, wanted = default_estimate()
    sentence = re.search(r"interface endpoints with private DNS for (.*?)\(", README, re.DOTALL)
    assert sentence is not None
    assert tuple(re.findall(r"`([a-z0-9.-]+)`", sentence[1])) == wanted
