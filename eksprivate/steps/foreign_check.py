"""`down`'s first step: is anything in the cluster's VPC that is not the cluster's?

A user's security group, instance, endpoint, Resolver endpoint, peering connection... would make the subnet,
group or VPC deletes fail with DependencyViolation after everything else is gone. eksprivate never deletes
what it did not make, and waiting would not help: so `down` looks first, and when it finds any, stops
before deleting anything (exit 1), naming each and what to do. `plan --destroy` and `status` show the same.

In the graph this step needs every other step, so reversed (`down`) every other step waits for it, and
the engine skips them all when it fails. It exists only in the teardown graph: `up` pays nothing for it.
"""

from __future__ import annotations

from typing import Any

from eksprivate.grants import Grant
from eksprivate.steps.base import Context, Found, Step
from eksprivate.steps.k8s_leftovers import K8sLeftovers
from eksprivate.steps.vpc_contents import Blocker, blocked_error, contents_reads, foreign_in, vpc_ids

KEY = "foreign-check"
TEARDOWN_ONLY = (KEY, K8sLeftovers.key)


class ForeignCheck(Step):
    key = KEY
    title = "Foreign resources in the VPC"

    def __init__(self, needs: tuple[str, ...]) -> None:
        self.needs = needs

    def grants(self, ctx: Context) -> list[Grant]:
        return contents_reads(ctx.arns)

    def find(self, ctx: Context) -> Found | None:
        vpcs = vpc_ids(ctx)
        blockers = foreign_in(ctx, vpcs)
        if not blockers:
            return None
        return {"vpc_ids": vpcs, "blockers": [b.__dict__ for b in blockers], "status": "blocked"}

    def create(self, ctx: Context) -> Found:
        raise NotImplementedError("not in up's graph")

    def remove(self, ctx: Context, found: Found) -> None:
        raise blocked_error(f"nothing deleted: VPC {', '.join(found['vpc_ids'])}", self._blockers(found))

    def _blockers(self, found: Found) -> list[Blocker]:
        return [Blocker(**b) for b in found["blockers"]]

    def describe(self, found: Found) -> str:
        return "; ".join(str(b) for b in self._blockers(found))

    def destroy_action(self, found: Found) -> str:
        return "blocked"

    def destroy_details(self, ctx: Context, found: Found) -> list[str]:
        return [*(str(b) for b in self._blockers(found)),
                "down stops before deleting anything until these are gone (eksprivate never deletes them)"]

    def ids(self, found: Found) -> dict[str, Any]:
        return {}


def with_teardown_steps(steps: list[Step]) -> list[Step]:
    """Add the Kubernetes-leftovers step and the foreign-resources check to a teardown graph.

    Edges (up order; `down` walks them reversed): the leftovers need the subnets and the endpoint group, and
    the cluster needs the leftovers, so in `down` they go after the cluster (and so every node group) is
    gone and before the subnets, the groups and the VPC. The check needs every step: it runs first.
    """
    leftovers = K8sLeftovers()
    for step in steps:
        if step.key == "cluster":
            step.needs = (*step.needs, leftovers.key)
    out = [*steps, leftovers]
    return [*out, ForeignCheck(tuple(s.key for s in out))]
