"""The sandbox's behaviour families, in the one list that installs them (`FAMILIES`), and `install()`.

Each family is one module that models one AWS behaviour moto lacks or gets wrong, and has one entry point,
`install(patcher)`, that patches moto through the core's `Patcher` (moto's `backends.py` and botocore's
`BUILTIN_HANDLERS` are wired the same way: a table in one place, and modules that know nothing of each other).
A family imports the core (`sandbox.core`) and leaves (`sandbox.errors`, `eksprivate.zones`), never another
family: state two families share lives in the core (`core.updates`, `core.versions`), and when one family's
call must let another act, the first emits a core event and the second handles it (`core.patching`).
`tests/test_imports.py` fails when a family imports another.

To add a family: write `sandbox/<family>.py` with `install(patcher: Patcher) -> None`, import it here and put
it in `FAMILIES`. The order is the order of installation, and it matters where two families wrap the same
moto method: a later family wraps what the earlier ones put in place (the comments say who wraps whom).
"""

from __future__ import annotations

import os
import threading
from typing import Protocol

from eksprivate.sandbox import (
    access_entries,
    ecr_pull_through,
    eks_addons,
    eks_lifecycle,
    eks_updates,
    eks_upgrades,
    eks_versions,
    endpoint_dns,
    endpoint_lifecycle,
    endpoint_policies,
    iam_propagation,
    lb_dependents,
    nodegroup_ami,
    pricing,
    s3_state,
    zones,
)
from eksprivate.sandbox.core.clock import Timing, set_timing
from eksprivate.sandbox.core.patching import Patcher


class Family(Protocol):
    """A behaviour family: a module with `install(patcher)`."""

    def install(self, patcher: Patcher) -> None: ...


FAMILIES: tuple[Family, ...] = (
    eks_lifecycle,  # clusters and node groups take time; EKS's delete order; emits the EKS events
    endpoint_lifecycle,  # VPC endpoints take time and block deletes; handles EC2_DELETIONS_DUE
    access_entries,  # accessConfig, access entries (wraps EKSResponse.create_cluster); node role entry
    iam_propagation,  # young roles refused (EKS events, CreateFlowLogs)
    zones,  # AZs EKS refuses; wraps eks_lifecycle's create_cluster
    eks_updates,  # asynchronous updates (wraps access_entries' create_cluster response), DescribeUpdate
    s3_state,  # S3 conditional writes for the state lock
    endpoint_dns,  # private DNS names of interface endpoints; wraps endpoint_lifecycle's create_vpc_endpoint
    endpoint_policies,  # policies kept as AWS does (ResetPolicy, reformatted answers); wraps endpoint_dns' create
    ecr_pull_through,  # ECR pull-through cache rules
    pricing,  # the Pricing API and spot price history
    eks_versions,  # DescribeClusterVersions; wraps CreateCluster with the version calendar
    nodegroup_ami,  # instance type / AMI type checks on CreateNodegroup
    lb_dependents,  # load balancer interfaces and the deletes they block; emits EC2_DELETIONS_DUE
    eks_addons,  # managed add-ons; extends eks_updates' DescribeUpdate; nodes join only with the CNI (wraps the
    # access entries' and updates' CreateCluster response, the CreateNodegroup and node group status before it)
    eks_upgrades,  # Kubernetes version upgrades, insights, AMI releases (after eks_updates and nodegroup_ami)
)

_patcher: Patcher | None = None
_install_lock = threading.Lock()


def installed() -> bool:
    return _patcher is not None


def install(timing: Timing | None = None) -> None:
    """Patch moto with every family (first call only) and make `timing` current (every call that passes one).

    The patches are process-wide: every moto user in this process (mock_aws included) sees them until
    `uninstall()`.
    """
    global _patcher
    if timing is not None:
        set_timing(timing)
    with _install_lock:
        if _patcher is not None:
            return
        _patcher = Patcher()
        # Read when moto's IAM backend is created (so before the first IAM call or after a reset):
        # AWS managed policies (AmazonEKSClusterPolicy, ...) must exist as in every real account.
        _patcher.set_item(os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
        for family in FAMILIES:
            family.install(_patcher)


def uninstall() -> None:
    """Give moto back its own behaviour (resources made meanwhile keep moto's plain states)."""
    global _patcher
    with _install_lock:
        if _patcher is not None:
            _patcher.undo()
            _patcher = None
