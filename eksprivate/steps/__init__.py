"""The steps, and the one graph `up`, `down`, `plan` and `status` all walk."""

from __future__ import annotations

from eksprivate.config import NODE_ADDONS
from eksprivate.steps.addons import Addon, EbsCsiRole, addon_steps
from eksprivate.steps.base import Change, Context, Found, Step
from eksprivate.steps.cluster import Cluster, ClusterAdmins
from eksprivate.steps.discovery import Discovery, OrphanLaunchTemplates, OrphanNodeGroups, OrphanRepositories
from eksprivate.steps.ecr import EcrRepository, other_repositories
from eksprivate.steps.endpoints import Endpoints
from eksprivate.steps.foreign_check import with_teardown_steps
from eksprivate.steps.given_roles import use_given_roles
from eksprivate.steps.iam import ClusterRole, FlowLogsRole, NodeRole, flow_log_group_name, role_classes
from eksprivate.steps.network import EndpointSecurityGroup, Subnets, Vpc
from eksprivate.steps.nodegroups import NodeGroup, planned_nodegroups
from eksprivate.steps.policies import WrittenPolicy
from eksprivate.steps.pull_through import PullThroughCache
from eksprivate.steps.security import FlowLogs, KmsKey, LaunchTemplate, LogGroup
from eksprivate.steps.upgrade import Upgrade
from eksprivate.steps.used_network import use_network

__all__ = ["Change", "Context", "Discovery", "Found", "Step", "build_graph", "written_policies"]


def build_graph(ctx: Context, *, everything: bool = False, orphans: bool = False) -> list[Step]:
    """The steps for this configuration, in an order where needs come first. Reads the configuration and the
    state only: no AWS call (tests/test_graph_without_aws.py).

    `orphans` adds what eksprivate made that the config no longer names (`plan` shows them, `up --prune`
    deletes them): the state's repositories and add-ons, and the discoveries of node groups and launch
    templates the engine expands (steps/discovery.py). `everything` (for `down`) adds those and the optional
    steps the config turned off, so teardown removes all it ever made whatever the config says now.
    """
    s = ctx.settings
    steps: list[Step] = [Vpc(), Subnets(), EndpointSecurityGroup(), Endpoints(), ClusterRole(), NodeRole()]
    # The node role too, though the cluster does not use it: `down` then keeps every IAM role until the
    # cluster is gone (EKS still holds the node role's access entry while it deletes). Costs `up` nothing:
    # the role is ready in seconds, long before the subnets.
    cluster_needs = ["subnets", "cluster-role", "node-role"]
    if everything or (s.secrets_encryption and not s.kms_key_arn):
        steps.append(KmsKey())
        cluster_needs.append("kms-key")
    if everything or s.control_plane_logging:
        # EKS writes to /aws/eks/<name>/cluster; made first so its retention is ours, not "never expire".
        steps.append(LogGroup("cluster-log-group", "Control-plane log group", f"/aws/eks/{ctx.name}/cluster"))
        cluster_needs.append("cluster-log-group")
    if everything or s.flow_logs:
        steps += [FlowLogsRole(), LogGroup("flow-log-group", "Flow log group", flow_log_group_name(ctx)), FlowLogs()]
    steps.append(Cluster(tuple(cluster_needs)))
    if s.admins or ctx.ledger.ids("admins").get("admin_arns"):  # recorded ones: removed from the config
        steps.append(ClusterAdmins())

    templates: list[Step] = [LaunchTemplate(spec) for spec in s.nodegroups]
    groups: list[Step] = [*planned_nodegroups(ctx)]
    if everything or orphans:
        # What eksprivate made that the config no longer names: found when the graph is walked (steps/discovery.py).
        templates.append(OrphanLaunchTemplates({spec.name for spec in s.nodegroups}))
        groups.append(OrphanNodeGroups({g.name for g in groups if isinstance(g, NodeGroup)}))
    # The VPC is the first thing `up` creates, alone: when AWS refuses it (the VPCs-per-Region quota, no EC2
    # permissions) the run stops having made nothing, not a KMS key that takes 7 days to go. Costs nothing:
    # the subnets, and so the cluster, wait for the VPC anyway.
    for step in [*steps, *templates]:
        if not step.needs and step.key != "vpc":
            step.needs = ("vpc",)
    lt_keys = tuple(t.key for t in templates)
    for group in groups:
        if group.orphan:  # its template is unknown: delete it before any template
            group.needs = (*group.needs, *lt_keys)
    # Managed add-ons, all made as soon as the cluster is ACTIVE. Node groups start once the networking ones
    # exist (their instances boot with a CNI to run), not once they are ACTIVE; the add-ons whose pods need nodes
    # wait for the node groups only before judging their own readiness (addons.py).
    addons = addon_steps(ctx, tuple(g.key for g in groups if not g.orphan), everything=everything, orphans=orphans)
    node_addons = tuple(a.key for a in addons if isinstance(a, Addon) and a.name in NODE_ADDONS and not a.orphan)
    for group in groups:
        if not group.orphan:
            group.needs_created = (*group.needs_created, *node_addons)
    # A kubernetes_version raise: the upgrade runs before the add-on and node group steps converge the rest.
    # Not in `down`'s graph (nothing to delete).
    upgrade = [] if everything else [Upgrade()]
    for step in [*addons, *groups]:
        if upgrade and not step.orphan and not isinstance(step, EbsCsiRole):
            step.needs = (*step.needs, "upgrade")
    # ECR repositories need only the VPC and nothing needs them. `orphans` adds those the state remembers that
    # the config no longer lists; `everything` also finds, by tag, those a lost state forgot (down removes them,
    # images included).
    repos: list[Step] = [EcrRepository(r, teardown=everything) for r in s.ecr_repositories]
    if everything or orphans:
        recorded = other_repositories(ctx, set(s.ecr_repositories), scan=False)
        repos += [EcrRepository(r, orphan=True) for r in recorded]
        if everything:
            repos.append(OrphanRepositories({*s.ecr_repositories, *recorded}))
    # Pull-through cache rules and the node role's first-pull policy: after the node role (down: before it).
    # Configured or recorded; and for `down` with a lost (empty) state, since its rules are then found from
    # that policy alone (rules take no tags).
    lost_state = everything and not ctx.ledger.snapshot()["steps"]
    cache = ([PullThroughCache()] if s.pull_through_cache or ctx.ledger.ids("pull-through-cache") or lost_state
             else [])
    graph = use_network(ctx, [*steps, *templates, *upgrade, *addons, *groups, *repos, *cache])  # vpc_id: the user's VPC
    graph = use_given_roles(ctx, graph)  # cluster_role_arn, ...: an IAM team's roles, never changed or deleted
    # Teardown only (down, status, plan --destroy): what Kubernetes made, and a first look for resources that
    # are not the cluster's (`down` stops before deleting anything when there are any).
    return with_teardown_steps(graph) if everything else graph


def written_policies(ctx: Context) -> list[WrittenPolicy]:
    """Every policy document eksprivate may write to IAM in this account/partition, each from the step that writes
    it: every role's trust policy and identity (inline) policy, whether or not the configuration uses that role
    (every Role subclass counts, so a role added later is here too), and the node role's pull-through-cache
    policy. tests/steps/test_iam_policies.py lints each of them, and tests/test_iam_propagation.py checks that
    `up` writes no policy that is not here."""
    out: list[WrittenPolicy] = []
    for cls in role_classes():
        out += cls().written(ctx)
    return out + PullThroughCache().written(ctx)
