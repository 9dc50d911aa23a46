"""Managed node groups: by default one per AZ, each in that AZ's private subnet."""

from __future__ import annotations

from contextlib import suppress
from functools import partial
from typing import Any

from eksprivate.aws import retry_transient
from eksprivate.config import NodeGroupSpec, kubernetes_minor, version_tuple
from eksprivate.errors import AccessDenied, InUse, NotFound, ResourceFailed
from eksprivate.grants import Grant, grant, pass_role, reads
from eksprivate.propagation import retry_while_propagating
from eksprivate.steps.addons import cluster_minor
from eksprivate.steps.base import CLUSTER_TAG, Change, Context, Found, Step
from eksprivate.steps.cluster import service_linked_role
from eksprivate.steps.iam import NodeRole
from eksprivate.steps.network import subnet_ids
from eksprivate.steps.security import launch_template_key
from eksprivate.steps.updates import apply_update, recorded_updates, resume_updates

FAILED = ("CREATE_FAILED", "DELETE_FAILED")
# DEGRADED: the group exists and its running nodes serve, but EKS lists health issues (a failed scale-out,
# a missing launch template, ...): a warning, not a failure (EKS model: NodegroupStatus, NodegroupHealth).
USABLE = ("ACTIVE", "DEGRADED")


def nodegroup_key(name: str) -> str:
    return f"nodegroup/{name}"


def az_suffix(az: str, region: str) -> str:
    return az.removeprefix(region) or az


class NodeGroup(Step):
    """`spec` None means an orphan: a group eksprivate made that the config no longer names."""

    title = "Node group"

    def __init__(self, name: str, spec: NodeGroupSpec | None, azs: list[str] | None) -> None:
        self.name = name
        self.spec = spec
        self.azs = azs  # None: every AZ
        self.key = nodegroup_key(name)
        self.title = f"Node group {name}"
        self.orphan = spec is None
        lt = (launch_template_key(spec),) if spec else ()
        self.needs = ("cluster", "endpoints", "node-role", *lt)

    def preview(self, ctx: Context) -> list[str]:
        spec = self.spec
        if spec is None:
            return []
        return [f"{', '.join(spec.instance_types)} {spec.capacity_type}, {spec.disk_size} GiB",
                f"min {spec.min_size} / desired {spec.desired_size} / max {spec.max_size}",
                f"in {', '.join(self.azs or ctx.azs)}"]

    def grants(self, ctx: Context) -> list[Grant]:
        groups, cluster = ctx.arns.eks_nodegroup(), ctx.arns.eks_cluster()
        return [reads("eks:DescribeNodegroup", "eks:DescribeUpdate", on=groups,
                      why="find the node group; follow its updates"),
                reads("eks:ListNodegroups", on=cluster, why="node groups eksprivate made that the config dropped"),
                reads("ssm:GetParameter",
                      on=f"arn:{ctx.arns.partition}:ssm:{ctx.region}:*:parameter/aws/service/eks/optimized-ami/*",
                      why="the newest EKS-optimized AMI release (AWS's public parameters)"),
                grant("create", "eks:CreateNodegroup", on=cluster, why="the node group"),
                grant("create", "eks:TagResource", on=groups, why="tags given to CreateNodegroup"),
                pass_role(NodeRole().arn(ctx), "eks.amazonaws.com", verbs="create",
                          why="CreateNodegroup hands the node role to EKS"),
                # A given node role: the service-linked role is the IAM team's (steps/given_roles.py).
                *([] if NodeRole().given(ctx) else [service_linked_role(
                    ctx, "eks-nodegroup.amazonaws.com", "AWSServiceRoleForAmazonEKSNodegroup")]),
                grant("update", "eks:UpdateNodegroupConfig", "eks:UpdateNodegroupVersion", on=groups,
                      why="sizes, labels, taints; the node AMI release"),
                grant("remove", "eks:DeleteNodegroup", on=groups, why="the node group")]

    def find(self, ctx: Context) -> Found | None:
        try:
            ng = ctx.aws.eks.describe_nodegroup(clusterName=ctx.name, nodegroupName=self.name)["nodegroup"]
        except NotFound:
            return None
        scaling = ng.get("scalingConfig", {})
        return {
            "nodegroup_name": self.name, "status": ng.get("status", ""),
            "min": scaling.get("minSize"), "desired": scaling.get("desiredSize"), "max": scaling.get("maxSize"),
            "instance_types": ng.get("instanceTypes") or [], "labels": ng.get("labels") or {},
            "taints": sorted((t["key"], t.get("value", ""), t["effect"]) for t in ng.get("taints") or []),
            "capacity_type": ng.get("capacityType"), "subnets": sorted(ng.get("subnets", [])),
            "ami_type": ng.get("amiType"), "version": ng.get("version"), "release_version": ng.get("releaseVersion"),
            "health": [f"{i.get('code')}: {i.get('message')}" for i in ng.get("health", {}).get("issues", [])],
        }

    def create(self, ctx: Context) -> Found:
        assert self.spec is not None, "orphan node groups are never created"
        spec = self.spec
        token = ctx.intent(self.key)
        all_subnets = dict(zip(ctx.azs, subnet_ids(ctx), strict=True))
        subnets = [all_subnets[az] for az in (self.azs or ctx.azs)]
        lt = ctx.ledger.ids(launch_template_key(spec))
        args: dict[str, Any] = {
            "clusterName": ctx.name, "nodegroupName": self.name, "nodeRole": ctx.ledger.ids("node-role")["role_arn"],
            "subnets": subnets, "instanceTypes": list(spec.instance_types), "amiType": spec.ami_type,
            "capacityType": spec.capacity_type,
            "scalingConfig": {"minSize": spec.min_size, "desiredSize": spec.desired_size, "maxSize": spec.max_size},
            "labels": dict(spec.labels),
            "launchTemplate": {"id": lt["launch_template_id"], "version": "1"},
            "updateConfig": {"maxUnavailable": 1},
            "tags": ctx.tags(ctx.resource_name(self.name)), "clientRequestToken": token,
        }
        if spec.taints:
            args["taints"] = [{"key": t.key, "value": t.value, "effect": t.effect} for t in spec.taints]
        # Refused while the fresh node role propagates ("...were not found in the trust relationships of nodeRole").
        ng = retry_while_propagating(ctx, lambda: retry_transient(
            lambda: ctx.aws.eks.create_nodegroup(**args), InUse,
            timeout=ctx.timeouts.nodegroup_update, delay=ctx.poll, message_contains=("update", "in progress")),
            role=ctx.ledger.ids("node-role")["role_name"])
        ng = ng["nodegroup"]
        ctx.ledger.record(self.key, nodegroup_name=ng["nodegroupName"], nodegroup_arn=ng.get("nodegroupArn", ""))
        return self.find(ctx) or {"nodegroup_name": self.name, "status": ng.get("status", "CREATING")}

    def ready(self, ctx: Context, found: Found) -> None:
        if found.get("status") in USABLE:
            return
        if found.get("status") in FAILED:
            raise ResourceFailed(f"node group {self.name} is {found['status']}: {'; '.join(found.get('health', []))}",
                                 "nodes that cannot join usually miss an endpoint: run `eksprivate verify`")
        ctx.say(self.key, f"{found.get('status')}: EKS takes ~3 min")
        # Not botocore's NodegroupActive: it would poll a DEGRADED group until the timeout.
        ctx.aws.wait("eks", "NodegroupUsable", delay=ctx.poll, timeout=ctx.timeouts.nodegroup_create,
                     expected="nodegroup_create", seen_now=True,
                     what=f"node group {self.name}", clusterName=ctx.name, nodegroupName=self.name)
        found.update(self.find(ctx) or {"status": "ACTIVE"})  # ACTIVE, or DEGRADED with its health issues

    def health(self, found: Found) -> list[str]:
        if found.get("status") != "DEGRADED":
            return []
        issues = "; ".join(found.get("health") or []) or "EKS lists no health issue"
        return [f"node group {self.name} is DEGRADED: {issues}. Its nodes that run keep running; see "
                "`aws eks describe-nodegroup` and the Auto Scaling group's activity, fix the cause, then rerun"]

    def _update_args(self, found: Found) -> dict[str, Any]:
        if self.spec is None:
            return {}
        spec = self.spec
        args: dict[str, Any] = {}
        if (found["min"], found["max"]) != (spec.min_size, spec.max_size):
            scaling: dict[str, int] = {"minSize": spec.min_size, "maxSize": spec.max_size}
            # Never reset a desired size changed outside the tool (autoscaler, console) unless the new
            # bounds exclude it.
            live = found["desired"] if found["desired"] is not None else spec.desired_size
            if not spec.min_size <= live <= spec.max_size:
                scaling["desiredSize"] = min(max(live, spec.min_size), spec.max_size)
            args["scalingConfig"] = scaling
        want_labels = dict(spec.labels)
        if found["labels"] != want_labels:
            labels: dict[str, Any] = {}
            if want_labels:
                labels["addOrUpdateLabels"] = want_labels
            removed = sorted(set(found["labels"]) - set(want_labels))
            if removed:
                labels["removeLabels"] = removed
            args["labels"] = labels
        want_taints = sorted((t.key, t.value, t.effect) for t in spec.taints)
        if found["taints"] != want_taints:
            taints: dict[str, Any] = {}
            if want_taints:
                taints["addOrUpdateTaints"] = [{"key": k, "value": v, "effect": e} for k, v, e in want_taints]
            gone = [t for t in found["taints"] if (t[0], t[2]) not in {(k, e) for k, _, e in want_taints}]
            if gone:
                taints["removeTaints"] = [{"key": k, "value": v, "effect": e} for k, v, e in gone]
            args["taints"] = taints
        return args

    def diff(self, ctx: Context, found: Found) -> list[Change]:
        if self.spec is None:  # deleted by `up --prune` (the engine removes an orphan as `down` does)
            return [Change(f"delete node group {self.name} (not in the config)") if ctx.prune else
                    Change(f"node group {self.name} is not in the config", blocked="kept (`up --prune` deletes it)")]
        # In the order `up` applies them: the updates a killed run started (`resume` waits on them), the
        # Kubernetes version and AMI release, then the configuration (one UpdateNodegroupConfig for all of it).
        out = [Change(text) for text in recorded_updates(ctx, f"{self.key}/update")]
        out += self._version_changes(ctx, found)
        args = self._update_args(found)
        lines = [f"update {k}: {v}" for k, v in args.items()]
        if lines:
            out += [Change(lines[0], partial(self._update_config, ctx, found, args)),
                    *(Change(line) for line in lines[1:])]
        fix = "then remove this one from the config and run `up --prune`"
        desired = args.get("scalingConfig", {}).get("desiredSize", found["desired"])
        if desired is not None and desired != self.spec.desired_size:
            out.append(Change(f"desired_size: {desired} nodes (live), {self.spec.desired_size} in the config",
                              blocked="`up` keeps the live size (set by an autoscaler or a person) unless "
                                      "min_size/max_size exclude it; set it with "
                                      f"`aws eks update-nodegroup-config --cluster-name {ctx.name} --nodegroup-name "
                                      f"{self.name} --scaling-config desiredSize={self.spec.desired_size}`"))
        if sorted(found["instance_types"]) != sorted(self.spec.instance_types):
            out.append(Change(f"instance types {found['instance_types']} cannot change in place",
                              blocked=f"add a node group with the new types, {fix}"))
        if found.get("capacity_type") and found["capacity_type"] != self.spec.capacity_type:
            out.append(Change(f"capacity_type {found['capacity_type']} cannot change in place",
                              blocked=f"add a node group with {self.spec.capacity_type}, {fix}"))
        if found.get("ami_type") and found["ami_type"] != self.spec.ami_type:
            out.append(Change(f"ami_type {found['ami_type']} cannot change in place",
                              blocked=f"add a node group with {self.spec.ami_type}, {fix}"))
        return out

    def resume(self, ctx: Context, found: Found) -> list[str]:
        # Updates a killed run started (their ids are in the ledger): wait on them, never start them again.
        done = resume_updates(ctx, self.key, f"{self.key}/version", what=f"node group {self.name} upgrade",
                              timeout=ctx.timeouts.nodegroup_upgrade, nodegroup=self.name,
                              expected="nodegroup_version_update")
        done += resume_updates(ctx, self.key, f"{self.key}/update", what=f"node group {self.name}",
                               timeout=ctx.timeouts.nodegroup_update, nodegroup=self.name,
                               still_wanted=lambda _: bool(self._update_args(found)))
        if done:
            found.update(self.find(ctx) or {})
        return done

    # -- the Kubernetes version and AMI release ---------------------------------------------------------
    def _version_changes(self, ctx: Context, found: Found) -> list[Change]:
        """A group behind the control plane (a run stopped between the upgrade's phases, or a group made
        meanwhile) is brought to the cluster's version, on the latest AMI release for it."""
        if self.spec is None or not found.get("version"):
            return []
        cluster = cluster_minor(ctx)
        live = kubernetes_minor(str(found["version"]))
        if not cluster or version_tuple(live) > version_tuple(cluster):
            return []
        if live == cluster:
            return self._ami_refresh(ctx, found)
        text = f"upgrade to Kubernetes {cluster} (the control plane's; it runs {live}), latest AMI release"
        return [Change(text, partial(self._update_version, ctx, found, text, what=f"upgrade to {cluster}",
                                     version=cluster))]

    def _ami_refresh(self, ctx: Context, found: Found) -> list[Change]:
        """A newer AMI release for the group's version (EKS publishes one every few weeks: patches, security
        fixes): said by `plan`, rolled (UpdateNodegroupVersion with that releaseVersion, the group's max
        unavailable at a time) only with refresh_node_amis."""
        live, version = str(found.get("release_version") or ""), str(found["version"])
        latest = latest_ami_release(ctx, version, str(found.get("ami_type") or ""))
        if not latest or not live or not newer_release(latest, live):
            return []
        if not ctx.settings.refresh_node_amis:
            return [Change(f"newer AMI release {latest} for Kubernetes {version} (the nodes run {live})",
                           blocked="refresh_node_amis = true rolls them on the next `up`")]
        text = f"roll the nodes to AMI release {latest} (they run {live})"
        return [Change(text, partial(self._update_version, ctx, found, text, what="AMI refresh", version=version,
                                     releaseVersion=latest))]

    def _update_version(self, ctx: Context, found: Found, text: str, *, what: str, **version: str) -> str:
        apply_update(ctx, self.key, f"{self.key}/version", what=f"node group {self.name} {what}",
                     timeout=ctx.timeouts.nodegroup_upgrade, nodegroup=self.name, expected="nodegroup_version_update",
                     call=lambda token: ctx.aws.eks.update_nodegroup_version(
                         clusterName=ctx.name, nodegroupName=self.name, clientRequestToken=token, **version))
        found.update(self.find(ctx) or {})
        return text

    def _update_config(self, ctx: Context, found: Found, args: dict[str, Any]) -> str:
        # Judged by DescribeUpdate: the group reads ACTIVE again after a failed update too.
        apply_update(ctx, self.key, f"{self.key}/update", what=f"node group {self.name}",
                     timeout=ctx.timeouts.nodegroup_update, nodegroup=self.name,
                     call=lambda token: ctx.aws.eks.update_nodegroup_config(
                         clusterName=ctx.name, nodegroupName=self.name, clientRequestToken=token, **args))
        found.update(self.find(ctx) or {})
        return f"updated {', '.join(args)}"

    def remove(self, ctx: Context, found: Found) -> None:
        if found.get("status") == "DELETING":
            return
        with suppress(NotFound):
            retry_transient(lambda: ctx.aws.eks.delete_nodegroup(clusterName=ctx.name, nodegroupName=self.name),
                            InUse, timeout=ctx.timeouts.nodegroup_update, delay=ctx.poll)

    def gone(self, ctx: Context, found: Found) -> None:
        ctx.say(self.key, "DELETING: EKS takes ~4-8 min")
        ctx.aws.wait("eks", "nodegroup_deleted", delay=ctx.poll, timeout=ctx.timeouts.nodegroup_delete,
                     expected="nodegroup_delete",
                     what=f"deleting node group {self.name}", clusterName=ctx.name, nodegroupName=self.name)

    def describe(self, found: Found) -> str:
        return f"{self.name} ({found.get('min')}/{found.get('desired')}/{found.get('max')})"


# AMI type -> the SSM public parameter family EKS publishes its optimized AMIs under (EKS User Guide,
# "Retrieve recommended Amazon Linux AMI IDs"). Bottlerocket and Windows publish elsewhere: not refreshed here.
AMI_PARAMETER_FAMILY = {
    "AL2023_x86_64_STANDARD": "amazon-linux-2023/x86_64/standard",
    "AL2023_ARM_64_STANDARD": "amazon-linux-2023/arm64/standard",
    "AL2023_x86_64_NVIDIA": "amazon-linux-2023/x86_64/nvidia",
    "AL2023_ARM_64_NVIDIA": "amazon-linux-2023/arm64/nvidia",
    "AL2023_x86_64_NEURON": "amazon-linux-2023/x86_64/neuron",
    "AL2_x86_64": "amazon-linux-2",
    "AL2_ARM_64": "amazon-linux-2-arm64",
    "AL2_x86_64_GPU": "amazon-linux-2-gpu",
}


def latest_ami_release(ctx: Context, version: str, ami_type: str) -> str | None:
    """The latest EKS-optimized AMI release for `version` and `ami_type` (SSM public parameter
    `.../recommended/release_version`), read once per run; None when unknown (no such family, or no
    ssm:GetParameter: the refresh is then not offered)."""
    family = AMI_PARAMETER_FAMILY.get(ami_type)
    if family is None:
        return None
    name = f"/aws/service/eks/optimized-ami/{version}/{family}/recommended/release_version"

    def read() -> str | None:
        try:
            return str(ctx.aws.client("ssm").get_parameter(Name=name)["Parameter"]["Value"])
        except (NotFound, AccessDenied):  # ParameterNotFound; no ssm:GetParameter
            return None

    found: str | None = ctx.once(name, read)  # node groups are found side by side: one call for all
    return found


def newer_release(candidate: str, live: str) -> bool:
    """Release versions read `<kubernetes patch>-<yyyymmdd>`: newer by date, then by patch."""
    def key(release: str) -> tuple[str, tuple[int, ...]]:
        patch, _, day = release.rpartition("-")
        return day, tuple(int(p) for p in patch.split(".") if p.isdigit())
    return key(candidate) > key(live)


def planned_nodegroups(ctx: Context) -> list[NodeGroup]:
    """The configured groups, expanded per AZ where `per_az`."""
    groups = []
    for spec in ctx.settings.nodegroups:
        if spec.per_az:
            groups += [NodeGroup(f"{spec.name}-{az_suffix(az, ctx.region)}", spec, [az]) for az in ctx.azs]
        else:
            groups.append(NodeGroup(spec.name, spec, None))
    return groups


def other_nodegroup_names(ctx: Context, known: set[str]) -> list[str]:
    """Node groups on the cluster that eksprivate made but `known` does not name (for prune, plan, and
    `down` whatever the config says). One List call when there are none."""
    try:
        names = list(ctx.aws.eks.paginate("list_nodegroups", "nodegroups", clusterName=ctx.name))
    except NotFound:
        return []
    ours = []
    for name in names:
        if name in known:
            continue
        try:
            ng = ctx.aws.eks.describe_nodegroup(clusterName=ctx.name, nodegroupName=name)["nodegroup"]
        except NotFound:
            continue
        if ng.get("tags", {}).get(CLUSTER_TAG) == ctx.name:
            ours.append(name)
    return ours
