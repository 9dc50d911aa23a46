"""`eksprivate verify`: audit any live EKS cluster for what a node with no internet access needs.

Read-only. `run_checks` discovers the cluster, its node groups, VPC, route tables, endpoints, security
groups and launch templates in a handful of batched Describe calls, then runs pure checks over that
inventory. docs/verify.md explains every check id.
"""

from __future__ import annotations

from collections.abc import Sequence

from eksprivate.aws import Aws
from eksprivate.verify.checks import all_checks
from eksprivate.verify.discover import Inventory, discover
from eksprivate.verify.model import Check, Report, Status
from eksprivate.verify.render import render

__all__ = ["Check", "Inventory", "Report", "Status", "check_inventory", "render", "run_checks"]


def check_inventory(inv: Inventory) -> Report:
    """Run every check over an already-read inventory (no AWS calls)."""
    return Report(cluster=inv.cluster_name, region=inv.region, checks=all_checks(inv))


def run_checks(aws: Aws, cluster_name: str, extra_endpoints: Sequence[str] = ()) -> Report:
    """Audit the live cluster `cluster_name`. Raises UsageError when it does not exist."""
    return check_inventory(discover(aws, cluster_name, extra_endpoints))
