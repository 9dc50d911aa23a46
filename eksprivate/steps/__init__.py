"""The steps, and the one graph `up`, `down`, `plan` and `status` all walk."""

from __future__ import annotations

from eksprivate.steps.base import Context, Found, Step
from eksprivate.steps.cluster import Cluster, ClusterAdmins
from eksprivate.steps.endpoints import Endpoints
from eksprivate.steps.iam import ClusterRole, FlowLogsRole, NodeRole, flow_log_group_name
from eksprivate.steps.network import EndpointSecurityGroup, Subnets, Vpc
from eksprivate.steps.nodegroups import NodeGroup, other_nodegroup_names, planned_nodegroups
from eksprivate.steps.security import FlowLogs, KmsKey, LaunchTemplate, LogGroup, other_launch_template_specs

__all__ = ["Context", "Found", "Step", "build_graph"]


def build_graph(ctx: Context, *, everything: bool = False, orphans: bool = False) -> list[Step]:
    """The steps for this configuration, in an order where needs come first.

    `orphans` adds the node groups / launch templates eksprivate made that the config no longer names
    (`plan` shows them, `up --prune` deletes them). `everything` (for `down`) adds those and the optional
    steps the config turned off, so teardown removes all it ever made whatever the config says now.
    """
    s = ctx.settings
    steps: list[Step] = [Vpc(), Subnets(), EndpointSecurityGroup(), Endpoints(), ClusterRole(), NodeRole()]
    cluster_needs = ["subnets", "cluster-role"]
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
    if s.admins:
        steps.append(ClusterAdmins())

    templates = [LaunchTemplate(spec) for spec in s.nodegroups]
    groups = planned_nodegroups(ctx)
    if everything or orphans:
        known_specs = {spec.name for spec in s.nodegroups}
        templates += [LaunchTemplate(spec, orphan=True) for spec in other_launch_template_specs(ctx, known_specs)]
        groups += [NodeGroup(name, None, None) for name in other_nodegroup_names(ctx, {g.name for g in groups})]
    lt_keys = tuple(t.key for t in templates)
    for group in groups:
        if group.orphan:  # its template is unknown: delete it before any template
            group.needs = (*group.needs, *lt_keys)
    return [*steps, *templates, *groups]
