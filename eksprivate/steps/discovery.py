"""Reads that find steps: what eksprivate made that neither the configuration nor the state names.

`build_graph` reads the configuration and the state, nothing else: it makes no AWS call. What only AWS knows
is found by a `Discovery` step's `find`, a read like any other step's, when the engine walks the graph
(`Engine` discovers before anything else): node groups on the cluster tagged as eksprivate's, launch templates
of node group specs the config no longer has, and (for `down` and `status`) repositories tagged for the cluster
that the state does not remember. Each thing found becomes an orphan step in the discovery's place, in the
graph's order, and a need on a discovery is a need on every step it found; a discovery that finds nothing
leaves no step behind.

Orphans the state records (a repository, an add-on) need no discovery: `build_graph` makes their steps.
"""

from __future__ import annotations

from eksprivate.config import NodeGroupSpec
from eksprivate.grants import Grant, reads
from eksprivate.steps.base import Context, Found, Step
from eksprivate.steps.ecr import EcrRepository, other_repositories
from eksprivate.steps.nodegroups import NodeGroup, other_nodegroup_names
from eksprivate.steps.security import LaunchTemplate, other_launch_template_specs


class Discovery(Step):
    """A read whose answer is steps. `find` lists what it found (`{"names": [...]}`), `expand` makes one
    orphan step of each, needing what that step needs and what the discovery was given to need."""

    orphan = True

    def __init__(self, known: set[str]) -> None:
        self.known = set(known)  # what the graph has a step for already: the config's, and the state's

    def expand(self, ctx: Context, found: Found | None) -> list[Step]:
        steps = [self.orphan_step(str(name)) for name in (found or {}).get("names", [])]
        for step in steps:
            step.needs = (*step.needs, *(need for need in self.needs if need not in step.needs))
        return steps

    def orphan_step(self, name: str) -> Step:
        raise NotImplementedError

    def reads(self, ctx: Context) -> list[Grant]:
        """What `find` calls."""
        raise NotImplementedError

    def grants(self, ctx: Context) -> list[Grant]:
        """Its reads, and what the orphans it finds call: their reads and their removal (never a create)."""
        orphan = [g for g in self.orphan_step("*").grants(ctx) if set(g.verbs) & {"find", "remove"}]
        return [*self.reads(ctx), *orphan]

    def describe(self, found: Found) -> str:
        return ", ".join(str(name) for name in found.get("names", []))


class OrphanNodeGroups(Discovery):
    """Node groups on the cluster that eksprivate made (tagged) and the config does not name: ListNodegroups,
    then DescribeNodegroup of each unknown one. Their steps are kept unless `up --prune`, removed by `down`."""

    key = "discover/nodegroups"
    title = "Node groups not in the config"

    def find(self, ctx: Context) -> Found | None:
        return {"names": other_nodegroup_names(ctx, self.known)}

    def reads(self, ctx: Context) -> list[Grant]:
        return [reads("eks:ListNodegroups", on=ctx.arns.eks_cluster(), why="node groups the config no longer names"),
                reads("eks:DescribeNodegroup", on=ctx.arns.eks_nodegroup(), why="whether such a group is eksprivate's")]

    def orphan_step(self, name: str) -> Step:
        return NodeGroup(name, None, None)


class OrphanLaunchTemplates(Discovery):
    """Launch templates eksprivate made (tagged for the cluster) for node group specs the config no longer
    has: one DescribeLaunchTemplates."""

    key = "discover/launch-templates"
    title = "Launch templates not in the config"

    def find(self, ctx: Context) -> Found | None:
        return {"names": [spec.name for spec in other_launch_template_specs(ctx, self.known)]}

    def reads(self, ctx: Context) -> list[Grant]:
        return [reads("ec2:DescribeLaunchTemplates", why="launch templates the config no longer names")]

    def orphan_step(self, name: str) -> Step:
        return LaunchTemplate(NodeGroupSpec(name=name), orphan=True)


class OrphanRepositories(Discovery):
    """ECR repositories tagged for the cluster that neither the config nor the state names (a lost state),
    for `down` and `status`: DescribeRepositories, then each candidate's tags (none without ECR access)."""

    key = "discover/repositories"
    title = "ECR repositories not in the config or the state"

    def find(self, ctx: Context) -> Found | None:
        return {"names": other_repositories(ctx, self.known, scan=True)}

    def reads(self, ctx: Context) -> list[Grant]:
        return [reads("ecr:DescribeRepositories", "ecr:ListTagsForResource", on=ctx.arns.ecr_repository("*"),
                      why="down: repositories tagged for the cluster that neither the config nor the state names")]

    def grants(self, ctx: Context) -> list[Grant]:
        # Their names are unknown: deleting one needs ecr:DeleteRepository on it, which only a policy printed
        # with the config (or the state) that names it grants. Not "repository/*": any repository of the account.
        return self.reads(ctx)

    def orphan_step(self, name: str) -> Step:
        return EcrRepository(name, orphan=True)


def expand_discoveries(ctx: Context, steps: list[Step], found: dict[str, Found | None]) -> list[Step]:
    """`steps` with each discovery whose answer is in `found` replaced by the steps it found, and every need on
    it by needs on those steps. A discovery missing from `found` (plan: its read failed) stays as it is."""
    expanded = {step.key: step.expand(ctx, found[step.key]) for step in steps
                if isinstance(step, Discovery) and step.key in found}
    if not expanded:
        return steps
    out: list[Step] = []
    for step in steps:
        out += expanded.get(step.key, [step])
    for step in out:
        if any(need in expanded for need in step.needs):
            step.needs = tuple(key for need in step.needs
                               for key in ([s.key for s in expanded[need]] if need in expanded else [need]))
    return out
