"""EKS managed add-ons (vpc-cni, kube-proxy, coredns, eks-pod-identity-agent, optional others), one step each.

Order on a private cluster created without the self-managed bootstrap (`bootstrapSelfManagedAddons` false), as
eksctl does: every add-on is created the moment the cluster is ACTIVE. The node groups start as soon as the
networking add-ons (vpc-cni, kube-proxy, eks-pod-identity-agent: DaemonSets) *exist*, not once they are ACTIVE:
their DaemonSets are in the cluster long before an instance has booted, and nodes become Ready only with the
CNI (and kube-proxy, through which it reaches the API). coredns and the CSI drivers (Deployments) are made at
the same time; they read DEGRADED until nodes can run their pods, which is expected, so their wait for ACTIVE
begins once the node groups are ready (`ready_needs`). Every add-on's wait runs beside the node groups:
none lengthens `up` (docs/architecture.md, "The graph"). Images come from the regional EKS ECR account through
the ecr.api/ecr.dkr endpoints; the Pod Identity agent needs the eks-auth endpoint (`Settings.interface_endpoints`
adds it).

Each change's text and its apply function sit side by side (`_changes`), so they move as one when the Step
contract becomes typed change lists.
"""

from __future__ import annotations

import contextlib
import json
from functools import partial
from typing import Any

from eksprivate.config import NODE_ADDONS, AddonSpec, kubernetes_minor
from eksprivate.errors import NotFound, ResourceFailed, WaitTimeout
from eksprivate.grants import Grant, grant, pass_role, reads
from eksprivate.steps.base import CLUSTER_MINOR, CLUSTER_TAG, Change, Context, Found, Step
from eksprivate.steps.iam import Role
from eksprivate.steps.policies import managed_policy
from eksprivate.steps.updates import apply_update, recorded_updates, resume_updates

EBS_CSI = "aws-ebs-csi-driver"
POD_IDENTITY_AGENT = "eks-pod-identity-agent"
EBS_CSI_ROLE_KEY = "ebs-csi-role"
EBS_CSI_SERVICE_ACCOUNT = "ebs-csi-controller-sa"  # the driver's controller, in kube-system
FAILED = ("CREATE_FAILED", "UPDATE_FAILED", "DELETE_FAILED")


def addon_key(name: str) -> str:
    return f"addon/{name}"


def cluster_minor(ctx: Context) -> str:
    """The cluster's Kubernetes minor, read once per run (the Upgrade step updates it as it upgrades)."""
    return str(ctx.once(CLUSTER_MINOR, lambda: kubernetes_minor(
        str(ctx.aws.eks.describe_cluster(name=ctx.name)["cluster"].get("version", "")))))


def default_addon_version(ctx: Context, name: str, minor: str) -> str | None:
    """EKS's default version of add-on `name` for Kubernetes `minor` (DescribeAddonVersions'
    `compatibilities[].defaultVersion`); None when EKS names none. Read once per run."""
    def read() -> str | None:
        default = None
        for addon in ctx.aws.eks.paginate("describe_addon_versions", "addons", kubernetesVersion=minor,
                                          addonName=name):
            for info in addon.get("addonVersions") or []:
                for compat in info.get("compatibilities") or []:
                    if compat.get("clusterVersion") == minor and compat.get("defaultVersion"):
                        default = str(info["addonVersion"])
        return default

    found: str | None = ctx.once(f"addon-default/{name}/{minor}", read)
    return found


class EbsCsiRole(Role):
    """The EBS CSI driver controller's role, given to it by an EKS Pod Identity association made with the
    add-on (no OIDC provider, no IRSA annotation): trusts pods.eks.amazonaws.com with sts:AssumeRole and
    sts:TagSession, as Pod Identity requires; AmazonEBSCSIDriverPolicy."""

    key = EBS_CSI_ROLE_KEY
    title = "EBS CSI driver IAM role"
    service = "pods.eks"
    suffix = "ebs-csi"
    given_by = "ebs_csi_role_arn"
    description = "eksprivate: the EBS CSI driver controller (EKS Pod Identity)"
    trust_actions = ("sts:AssumeRole", "sts:TagSession")
    needs: tuple[str, ...] = ("vpc",)

    def policies(self, ctx: Context) -> list[str]:
        return [managed_policy(ctx.partition, "service-role/AmazonEBSCSIDriverPolicy")]

    def trust_conditions(self, ctx: Context) -> dict[str, Any] | None:
        # Pod Identity passes these as session tags (EKS User Guide, pod-id-role / pod-id-abac): only this
        # cluster's driver controller may assume the role, not any Pod Identity association in the account.
        return {"StringEquals": {"aws:RequestTag/eks-cluster-name": ctx.name,
                                 "aws:RequestTag/kubernetes-namespace": "kube-system",
                                 "aws:RequestTag/kubernetes-service-account": EBS_CSI_SERVICE_ACCOUNT}}


def _same_values(live: str, wanted: str) -> bool:
    def parsed(text: str) -> Any:
        try:
            return json.loads(text) if text.strip() else {}
        except ValueError:
            return text
    return bool(parsed(live) == parsed(wanted))


class Addon(Step):
    """`spec` None: an orphan (recorded in the state, no longer in the config): only removed, with --prune.
    `teardown`: in `down`'s graph, where deleting the cluster deletes its add-ons (no call of our own).
    `ready_needs`: for an add-on whose pods need nodes, the node groups (its wait for ACTIVE starts once they are
    ready; without any, DEGRADED is what it can be and is accepted)."""

    def __init__(self, spec: AddonSpec | None, name: str, needs: tuple[str, ...], *, teardown: bool = False,
                 ready_needs: tuple[str, ...] = ()) -> None:
        self.spec = spec
        self.name = name
        self.key = addon_key(name)
        self.title = f"Add-on {name}"
        self.needs = needs
        self.ready_needs = ready_needs
        self.orphan = spec is None
        self.teardown = teardown
        if teardown:
            self.deleted_as = "deleted with the cluster"

    def preview(self, ctx: Context) -> list[str]:
        spec = self.spec
        if spec is None:
            return []
        when = ("as soon as the cluster is ACTIVE; the node groups start once it exists" if self.name in NODE_ADDONS
                else "as soon as the cluster is ACTIVE, beside the node groups; ACTIVE once their nodes are Ready")
        return [f"EKS managed add-on, version {spec.version}"
                + (" (EKS's default for the Kubernetes version)" if spec.version == "default" else ""), when]

    def grants(self, ctx: Context) -> list[Grant]:
        addons, cluster = ctx.arns.eks_addon(), ctx.arns.eks_cluster()
        out = [reads("eks:DescribeAddon", "eks:DescribeUpdate", on=addons, why="find the add-on; follow its updates"),
               reads("eks:DescribeCluster", on=cluster, why="the cluster's Kubernetes version"),
               reads("eks:DescribeAddonVersions", why="EKS's default add-on version (no resource ARN)"),
               grant("create", "eks:CreateAddon", on=cluster, why=f"the {self.name} add-on"),
               grant("create", "eks:TagResource", on=addons, why="tags given to CreateAddon"),
               grant("update", "eks:UpdateAddon", on=addons, why="its version and configuration"),
               grant("remove", "eks:DeleteAddon", on=addons, why="an add-on removed from the config (--prune)")]
        if self.name == EBS_CSI and not self.orphan:
            # CreateAddon with podIdentityAssociations: EKS makes the association for the caller, who must be
            # allowed to, and to hand the role over.
            out += [grant("create", "eks:CreatePodIdentityAssociation", on=cluster,
                          why="the EBS CSI driver's Pod Identity association, made with the add-on"),
                    pass_role(EbsCsiRole().arn(ctx), "pods.eks.amazonaws.com", verbs="create",
                              why="the EBS CSI driver's role, handed to EKS Pod Identity")]
        return out

    def find(self, ctx: Context) -> Found | None:
        try:
            a = ctx.aws.eks.describe_addon(clusterName=ctx.name, addonName=self.name)["addon"]
        except NotFound:  # no add-on, or no cluster
            return None
        return self._found(ctx, a)

    def _found(self, ctx: Context, a: dict[str, Any]) -> Found:
        """What DescribeAddon (or CreateAddon, which answers the same shape) says of it."""
        return {"addon_name": self.name, "addon_arn": a.get("addonArn", ""), "status": a.get("status", ""),
                "version": a.get("addonVersion", ""), "configuration_values": a.get("configurationValues") or "",
                "ours": (a.get("tags") or {}).get(CLUSTER_TAG) == ctx.name,
                "health": [f"{i.get('code')}: {i.get('message')}" for i in (a.get("health") or {}).get("issues") or []]}

    def wanted_version(self, ctx: Context, minor: str | None = None) -> str:
        assert self.spec is not None
        if self.spec.version != "default":
            return self.spec.version
        minor = minor or cluster_minor(ctx)
        version = default_addon_version(ctx, self.name, minor)
        if version is None:
            raise ResourceFailed(f"EKS names no default version of add-on {self.name} for Kubernetes {minor}",
                                 f"pin one in [addons] ({self.name} = \"v...\"); `aws eks describe-addon-versions "
                                 f"--addon-name {self.name} --kubernetes-version {minor}` lists them")
        return version

    def create(self, ctx: Context) -> Found:
        assert self.spec is not None, "orphan add-ons are never created"
        token = ctx.intent(self.key)
        args: dict[str, Any] = {
            "clusterName": ctx.name, "addonName": self.name, "addonVersion": self.wanted_version(ctx),
            # The add-on owns its settings: a self-managed copy (none on a cluster made without the bootstrap) is
            # replaced, not merged.
            "resolveConflicts": "OVERWRITE",
            "tags": ctx.tags(ctx.resource_name(self.name)), "clientRequestToken": token,
        }
        if self.spec.configuration_values:
            args["configurationValues"] = self.spec.configuration_values
        if self.name == EBS_CSI:  # its controller calls EC2 (CreateVolume, AttachVolume) with its own role
            args["podIdentityAssociations"] = [{"serviceAccount": EBS_CSI_SERVICE_ACCOUNT,
                                                "roleArn": ctx.ledger.ids(EBS_CSI_ROLE_KEY)["role_arn"]}]
        a = ctx.aws.eks.create_addon(**args)["addon"]
        ctx.ledger.record(self.key, addon_name=self.name, addon_arn=a.get("addonArn", ""))
        # CreateAddon answers the add-on itself: no DescribeAddon between it and the node groups that wait for it.
        return self._found(ctx, a)

    @property
    def _nodeless(self) -> bool:
        """Its pods need nodes and there is no node group to wait for: DEGRADED is all it can be."""
        return self.name not in NODE_ADDONS and not self.ready_needs

    def ready(self, ctx: Context, found: Found) -> None:
        """ACTIVE, or a failure naming EKS's health issues. DEGRADED right after nodes joined is waited through
        for `Timeouts.addon_settle` (pods still starting); still DEGRADED then, it is usable with problems (a
        warning, as for a DEGRADED node group)."""
        if found.get("status") == "ACTIVE" or not found.get("ours", True):
            return
        if self.ready_needs:  # it was made before what it waited for since: `found` is that old
            found.update(self.find(ctx) or {})
            if found.get("status") == "ACTIVE":
                return
        if found.get("status") in FAILED:
            raise ResourceFailed(f"add-on {self.name} is {found['status']}: {'; '.join(found.get('health', []))}",
                                 "fix what EKS names (`aws eks describe-addon`), then rerun")
        if found.get("status") != "DEGRADED":
            ctx.say(self.key, f"{found.get('status')}: EKS takes about a minute")
            # ACTIVE or DEGRADED ends it; CREATE_FAILED fails it, naming the health issues (aws._failure_detail).
            ctx.aws.wait("eks", "AddonUsable", delay=ctx.poll, timeout=ctx.timeouts.addon, expected="addon",
                         seen_now=True, what=f"add-on {self.name}", clusterName=ctx.name, addonName=self.name)
            found.update(self.find(ctx) or {})
        if found.get("status") != "DEGRADED" or self._nodeless:
            return
        ctx.say(self.key, f"DEGRADED ({'; '.join(found.get('health') or [])}): waiting for ACTIVE")
        with contextlib.suppress(WaitTimeout):  # still DEGRADED: `health` says so
            ctx.aws.wait("eks", "AddonActiveAfterDegraded", delay=ctx.poll, timeout=ctx.timeouts.addon_settle,
                         what=f"add-on {self.name}", clusterName=ctx.name, addonName=self.name)
        found.update(self.find(ctx) or {})

    def health(self, found: Found) -> list[str]:
        if found.get("status") != "DEGRADED":
            return []
        issues = "; ".join(found.get("health") or []) or "EKS lists no health issue"
        if self._nodeless:
            return [f"add-on {self.name} is DEGRADED (expected: no node group to run its pods; it turns ACTIVE "
                    f"once nodes are Ready): {issues}"]
        return [f"add-on {self.name} is DEGRADED with nodes Ready: {issues}. Fix what EKS names "
                "(`aws eks describe-addon`), then rerun"]

    # -- changes -----------------------------------------------------------------------------------------
    def diff(self, ctx: Context, found: Found) -> list[Change]:
        # The updates a killed run started come first: `resume` waits on them, never starts them again.
        out = [Change(text) for text in recorded_updates(ctx, f"{self.key}/update")]
        if self.spec is None:  # deleted by `up --prune` (the engine removes an orphan as `down` does)
            return [*out, Change(f"delete add-on {self.name} (not in the config)") if ctx.prune else
                    Change(f"add-on {self.name} is not in the config", blocked="kept (`up --prune` deletes it)")]
        if not found.get("ours", True):
            return [*out, Change(f"add-on {self.name} exists but was not made by eksprivate",
                                 blocked="left as it is")]
        args: dict[str, Any] = {}
        lines = []
        want = self.wanted_version(ctx)
        if found.get("version") != want:
            args["addonVersion"] = want
            lines.append(f"update add-on {self.name} {found.get('version')} -> {want}")
        if not _same_values(str(found.get("configuration_values", "")), self.spec.configuration_values):
            args["configurationValues"] = self.spec.configuration_values or "{}"
            lines.append(f"set add-on {self.name} configuration values")
        if lines:  # one UpdateAddon carries every change: the first line makes it, the others say so
            out.append(Change(lines[0], partial(self._update, ctx, found, args, lines[0])))
            out += [Change(line, partial(str, line)) for line in lines[1:]]
        return out

    def resume(self, ctx: Context, found: Found) -> list[str]:
        done = resume_updates(ctx, self.key, f"{self.key}/update", what=f"add-on {self.name}",
                              timeout=ctx.timeouts.addon, addon=self.name)
        if done:
            found.update(self.find(ctx) or {})
        return done

    def _update(self, ctx: Context, found: Found, args: dict[str, Any], text: str) -> str:
        apply_update(ctx, self.key, f"{self.key}/update", what=f"add-on {self.name}", timeout=ctx.timeouts.addon,
                     addon=self.name, call=lambda token: ctx.aws.eks.update_addon(
                         clusterName=ctx.name, addonName=self.name, resolveConflicts="OVERWRITE",
                         clientRequestToken=token, **args))
        found.update(self.find(ctx) or {})
        return text

    def destroy_details(self, ctx: Context, found: Found) -> list[str]:
        return ["deleted with the cluster"] if self.teardown else []

    def remove(self, ctx: Context, found: Found) -> None:
        if self.teardown or not found.get("ours", True) or found.get("status") == "DELETING":
            return  # down: the cluster's deletion removes its add-ons; never one eksprivate did not make
        with contextlib.suppress(NotFound):  # already gone
            ctx.aws.eks.delete_addon(clusterName=ctx.name, addonName=self.name)

    def gone(self, ctx: Context, found: Found) -> None:
        if self.teardown or not found.get("ours", True):
            return
        ctx.aws.wait("eks", "addon_deleted", delay=ctx.poll, timeout=ctx.timeouts.addon, expected="addon",
                     what=f"deleting add-on {self.name}", clusterName=ctx.name, addonName=self.name)

    def describe(self, found: Found) -> str:
        return f"{self.name} {found.get('version', '')}".strip()


def addon_steps(ctx: Context, nodegroup_keys: tuple[str, ...], *, everything: bool, orphans: bool) -> list[Step]:
    """The configured add-ons with their order, plus (for `plan`/`up --prune`, and `down`) those the state
    records that the config no longer names, and the EBS CSI driver's role when configured or recorded. No
    AWS call."""
    configured = {spec.name for spec in ctx.settings.addons}

    def needs(name: str) -> tuple[str, ...]:
        role = (EBS_CSI_ROLE_KEY,) if name == EBS_CSI else ()
        return ("cluster", "endpoints", *role)

    def ready_needs(name: str) -> tuple[str, ...]:
        """Pods that need nodes are judged once the node groups are ready; the EBS CSI controller's credentials
        come through the Pod Identity agent."""
        if name in NODE_ADDONS:
            return ()
        agent = (addon_key(POD_IDENTITY_AGENT),) if name == EBS_CSI and POD_IDENTITY_AGENT in configured else ()
        return (*nodegroup_keys, *agent)

    steps: list[Step] = [Addon(spec, spec.name, needs(spec.name), teardown=everything,
                               ready_needs=ready_needs(spec.name)) for spec in ctx.settings.addons]
    if everything or orphans:
        known = {spec.name for spec in ctx.settings.addons}
        recorded = sorted(key.split("/", 1)[1] for key in ctx.ledger.snapshot()["steps"]
                          if key.startswith("addon/") and key.count("/") == 1)
        steps += [Addon(None, name, ("cluster",), teardown=everything) for name in recorded if name not in known]
    if any(spec.name == EBS_CSI for spec in ctx.settings.addons) or ctx.ledger.ids(EBS_CSI_ROLE_KEY):
        role = EbsCsiRole()
        if not any(spec.name == EBS_CSI for spec in ctx.settings.addons):
            role.orphan = True  # made for a driver the config no longer lists: removed with --prune, and by down
        steps.append(role)
    return steps
