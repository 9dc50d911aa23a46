"""Kubernetes version upgrades: one minor version at a time (EKS allows no skip), each minor in three phases.

For each minor from the cluster's version up to `kubernetes_version`:
1. the control plane (UpdateClusterVersion, about 8-10 min), judged by DescribeUpdate;
2. side by side, once it runs the new minor: the managed add-ons that follow EKS's default version, to the
   default for the new minor, and every node group (UpdateNodegroupVersion, latest AMI release for the minor;
   each group's update_config max unavailable applies). EKS documents both as what follows the control plane
   (eksctl: control plane, node groups, add-ons; the EKS User Guide's update-cluster: nodes and add-ons after
   it), and neither waits on the other: add-on versions for a minor run on the nodes of the minor before it
   (Kubernetes' skew policy lets kube-proxy be three minors from its kubelet), and a node roll replaces nodes,
   whose DaemonSet pods come up with whatever add-on version is current. The next control-plane upgrade waits
   for both: EKS refuses it while a managed node group runs an older version.

Every phase is derived from what AWS says now (versions of the cluster, node groups and add-ons), and each
update's id is in the state the moment EKS returns it: a run killed at any instant resumes the update in
flight and never starts a second one on top (EKS would answer ResourceInUseException). Before each control
plane upgrade the EKS upgrade insights for that version are read: one in ERROR stops the upgrade naming
it, unless the config lists it in `upgrade_accept_insights`. A downgrade is refused.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from eksprivate.config import kubernetes_minor, version_tuple
from eksprivate.errors import AwsApiError, EksPrivateError, NotFound, ResourceFailed
from eksprivate.grants import Grant, grant, reads
from eksprivate.steps.addons import default_addon_version
from eksprivate.steps.base import CLUSTER_MINOR, Context, Found, Step
from eksprivate.steps.nodegroups import planned_nodegroups
from eksprivate.steps.updates import apply_update, recorded_updates, wait_recorded

PREFIX = "upgrade"  # ledger keys upgrade/cluster, upgrade/nodegroup/<name>, upgrade/addon/<name>


def next_minor(version: str) -> str:
    major, minor_ = version_tuple(version)
    return f"{major}.{minor_ + 1}"


def path(current: str, wanted: str) -> list[str]:
    """The minors to pass through, one at a time: 1.31 -> 1.33 is [1.32, 1.33]."""
    out, at = [], kubernetes_minor(current)
    while version_tuple(at) < version_tuple(wanted):
        at = next_minor(at)
        out.append(at)
    return out


class Upgrade(Step):
    key = "upgrade"
    title = "Kubernetes upgrade"
    needs: tuple[str, ...] = ("cluster",)

    def grants(self, ctx: Context) -> list[Grant]:
        a = ctx.arns
        return [reads("eks:DescribeCluster", "eks:ListInsights", on=a.eks_cluster(),
                      why="the cluster's version; EKS upgrade insights"),
                reads("eks:DescribeNodegroup", on=a.eks_nodegroup(), why="the node groups' versions"),
                reads("eks:DescribeAddon", on=a.eks_addon(), why="the add-ons' versions"),
                reads("eks:DescribeClusterVersions", "eks:DescribeAddonVersions",
                      why="versions EKS offers (no resource ARN)"),
                grant("update", "eks:UpdateClusterVersion", "eks:DescribeUpdate", on=a.eks_cluster(),
                      why="a kubernetes_version raise: the control plane"),
                grant("update", "eks:UpdateAddon", "eks:DescribeUpdate", on=a.eks_addon(),
                      why="a kubernetes_version raise: the add-ons"),
                grant("update", "eks:UpdateNodegroupVersion", "eks:DescribeUpdate", on=a.eks_nodegroup(),
                      why="a kubernetes_version raise: the node groups")]

    def find(self, ctx: Context) -> Found | None:
        """Always found (nothing to create): the cluster's version (None without a cluster). The node groups'
        and add-ons' versions are read only when an upgrade is due (`_live`)."""
        if ctx.run_cache.get(CLUSTER_MINOR):  # read by the cluster step's find this run
            return {"version": ctx.run_cache[CLUSTER_MINOR]}
        try:
            cluster = ctx.aws.eks.describe_cluster(name=ctx.name)["cluster"]
        except NotFound:
            return {"version": None}
        version = kubernetes_minor(cluster.get("version", ""))
        ctx.run_cache[CLUSTER_MINOR] = version  # the add-on and node group steps read it from here
        return {"version": version}

    def _fresh(self, ctx: Context) -> Found:
        """`find` after an update of ours changed the version (the run's cached minor is stale)."""
        ctx.run_cache.pop(CLUSTER_MINOR, None)
        return self.find(ctx) or {"version": None}

    def _live(self, ctx: Context, found: Found) -> Found:
        """`found` with the versions of the configured node groups and of the add-ons following EKS's default."""
        groups: dict[str, str] = {}
        for group in planned_nodegroups(ctx):
            try:
                ng = ctx.aws.eks.describe_nodegroup(clusterName=ctx.name, nodegroupName=group.name)["nodegroup"]
            except NotFound:
                continue
            groups[group.name] = kubernetes_minor(ng.get("version") or found["version"])
        addons: dict[str, str] = {}
        for spec in ctx.settings.addons:
            if spec.version != "default":
                continue  # pinned: the add-on step keeps the config's version (EKS refuses it if incompatible)
            try:
                addons[spec.name] = ctx.aws.eks.describe_addon(clusterName=ctx.name, addonName=spec.name)[
                    "addon"].get("addonVersion", "")
            except NotFound:
                continue
        return {**found, "nodegroups": groups, "addons": addons}

    def ids(self, found: Found) -> dict[str, Any]:
        return {}

    def describe(self, found: Found) -> str:
        return f"Kubernetes {found.get('version') or '-'}"

    def status(self, found: Found) -> str:
        return "exists"

    # -- the plan -------------------------------------------------------------------------------------
    def changes(self, ctx: Context, found: Found) -> list[str]:
        out = recorded_updates(ctx, PREFIX)
        current, wanted = found.get("version"), ctx.settings.kubernetes_version
        if not current or not wanted or wanted == current:
            return out  # node groups and add-ons behind the control plane: their own steps catch them up
        if version_tuple(wanted) < version_tuple(current):
            return [*out, f"! kubernetes_version {wanted} is older than the cluster's {current}: EKS cannot downgrade "
                          f"a cluster; set kubernetes_version = \"{current}\""]
        found = self._live(ctx, found)
        groups = ", ".join(sorted(found["nodegroups"])) or "none"
        addons = ", ".join(sorted(found["addons"])) or "none"
        steps = path(current, wanted)
        for number, step in enumerate(steps, 1):  # one line per minor: `up` says them before it starts
            out.append(f"upgrade {_before(step)} -> {step} ({number}/{len(steps)}, one-way): "
                       f"control plane (~8-10 min), then side by side add-ons ({addons}) to EKS's default for {step} "
                       f"and node groups ({groups}) to the latest AMI release for {step}")
        first = path(current, wanted)[0]
        out += [f"! upgrade to {first} blocked by EKS upgrade insight \"{name}\": {reason}. Fix it, or accept it "
                f"with upgrade_accept_insights = [\"{name}\"]" for name, reason in self._blocking(ctx, first)]
        return out

    def _blocking(self, ctx: Context, version: str) -> list[tuple[str, str]]:
        """Upgrade-readiness insights in ERROR for `version` that the config does not accept."""
        accepted = set(ctx.settings.upgrade_accept_insights)
        found = ctx.aws.eks.paginate("list_insights", "insights", clusterName=ctx.name,
                                     filter={"categories": ["UPGRADE_READINESS"], "kubernetesVersions": [version],
                                             "statuses": ["ERROR"]})
        return [(str(i.get("name")), str((i.get("insightStatus") or {}).get("reason", "")))
                for i in found if i.get("name") not in accepted]

    # -- the run --------------------------------------------------------------------------------------
    def update(self, ctx: Context, found: Found) -> list[str]:
        done = self._resume(ctx)
        if done:
            found.update(self._fresh(ctx))
        current, wanted = found.get("version"), ctx.settings.kubernetes_version
        if not current:
            return done
        if wanted and version_tuple(wanted) < version_tuple(current):
            raise EksPrivateError(f"kubernetes_version {wanted} is older than the cluster's {current}: EKS cannot "
                                  "downgrade a cluster", f"set kubernetes_version = \"{current}\"")
        if not wanted or wanted == current:
            # Node groups and add-ons behind the control plane: their own steps catch them up. An intent a killed
            # run left without an update id is theirs to judge now (they wait while such an update runs).
            for key, entry in ctx.ledger.snapshot()["steps"].items():
                if key.startswith(PREFIX + "/") and not (entry.get("ids") or {}).get("update_id"):
                    ctx.ledger.forget(key)
            return done
        found.update(self._live(ctx, found))  # in place: the engine describes this `found` once done
        while True:
            done += self._catch_up(ctx, found)
            current = found["version"]
            if not wanted or version_tuple(current) >= version_tuple(wanted):
                return done
            target = next_minor(current)
            blocking = self._blocking(ctx, target)
            if blocking:
                names = "; ".join(f"\"{name}\" ({reason})" for name, reason in blocking)
                raise ResourceFailed(f"upgrade to Kubernetes {target} stopped before it began: EKS upgrade insight "
                                     f"in ERROR: {names}",
                                     "fix what it names (`aws eks describe-insight`), or accept it with "
                                     "upgrade_accept_insights = [\"<name>\"]; then rerun")
            ctx.say(self.key, f"control plane {current} -> {target} (~8-10 min)")
            force = bool(ctx.settings.upgrade_accept_insights)  # only ever accepted, named insights
            apply_update(ctx, self.key, f"{PREFIX}/cluster", what=f"EKS cluster {ctx.name} upgrade to {target}",
                         timeout=ctx.timeouts.cluster_upgrade, expected="cluster_version_update",
                         call=lambda token: ctx.aws.eks.update_cluster_version(
                             name=ctx.name, version=target, clientRequestToken=token, force=force))  # noqa: B023
            done.append(f"control plane upgraded to {target}")
            found.update(self._live(ctx, self._fresh(ctx)))

    def _catch_up(self, ctx: Context, found: Found) -> list[str]:
        """Add-ons to the default for the control plane's version and node groups behind it, all side by side:
        the phase lasts as long as its slowest update (a node roll), not the sum of add-ons then nodes."""
        current = found["version"]
        wanted = {name: default_addon_version(ctx, name, current) for name in sorted(found["addons"])}
        stale = {name: want for name, want in wanted.items() if want and found["addons"][name] != want}
        behind = sorted(n for n, v in found["nodegroups"].items() if version_tuple(v) < version_tuple(current))
        if not stale and not behind:
            return []
        ctx.say(self.key, " and ".join(
            ([f"add-ons {', '.join(stale)} -> EKS's default for {current}"] if stale else [])
            + ([f"node groups {', '.join(behind)} -> {current}"] if behind else [])) + ", side by side")
        _parallel([*(lambda n=name, v=want: apply_update(  # type: ignore[misc]
            ctx, self.key, f"{PREFIX}/addon/{n}", what=f"add-on {n}", addon=n, timeout=ctx.timeouts.addon,
            expected="addon", call=lambda token: ctx.aws.eks.update_addon(
                clusterName=ctx.name, addonName=n, addonVersion=v, resolveConflicts="OVERWRITE",
                clientRequestToken=token)) for name, want in stale.items()),
            *(lambda n=name: apply_update(  # type: ignore[misc]
                ctx, self.key, f"{PREFIX}/nodegroup/{n}", what=f"node group {n} upgrade to {current}", nodegroup=n,
                timeout=ctx.timeouts.nodegroup_upgrade, expected="nodegroup_version_update",
                call=lambda token: ctx.aws.eks.update_nodegroup_version(
                    clusterName=ctx.name, nodegroupName=n, version=current, clientRequestToken=token))
                for name in behind)])
        done = [f"add-on {name} {found['addons'][name]} -> {want}" for name, want in stale.items()]
        done += [f"node group {name} upgraded to {current}" for name in behind]
        found.update(self._live(ctx, self._fresh(ctx)))
        return done

    def _resume(self, ctx: Context) -> list[str]:
        """The updates a killed run started (ids in the state): wait on them, in parallel, never start another."""
        waits: list[Callable[[], Any]] = []
        for key, entry in sorted(ctx.ledger.snapshot()["steps"].items()):
            if not key.startswith(PREFIX + "/") or not (entry.get("ids") or {}).get("update_id"):
                continue
            kind, _, name = key.removeprefix(PREFIX + "/").partition("/")
            waits.append(lambda key=key, kind=kind, name=name: wait_recorded(  # type: ignore[misc]
                ctx, self.key, key, what=f"{kind} {name or ctx.name} upgrade", timeout=ctx.timeouts.nodegroup_upgrade,
                nodegroup=name if kind == "nodegroup" else None, addon=name if kind == "addon" else None))
        if not waits:
            return []
        _parallel(waits)
        return [f"finished {len(waits)} upgrade update(s) started by an earlier run"]


def _before(version: str) -> str:
    major, minor_ = version_tuple(version)
    return f"{major}.{minor_ - 1}"


def _parallel(calls: list[Callable[[], Any]]) -> None:
    """Run `calls` in threads; raise the first failure once all ended (each records its own update)."""
    errors: list[BaseException] = []

    def run(call: Callable[[], Any]) -> None:
        try:
            call()
        except BaseException as exc:  # re-raised below, once the others ended
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,), daemon=True) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def kubernetes_support(ctx: Context) -> tuple[str, str] | None:
    """(PASS | WARN, text) on the cluster's Kubernetes version support, for `status`; None when there is no
    cluster or EKS does not say (no eks:DescribeClusterVersions)."""
    from eksprivate.verify.checks import support_judgement
    from eksprivate.verify.discover import utc_today

    try:
        cluster = ctx.aws.eks.describe_cluster(name=ctx.name)["cluster"]
        version = kubernetes_minor(cluster.get("version", ""))
        infos = list(ctx.aws.eks.paginate("describe_cluster_versions", "clusterVersions", clusterVersions=[version],
                                          includeAll=True))
    except AwsApiError:
        return None
    info = next((i for i in infos if i.get("clusterVersion") == version), None)
    support_type = (cluster.get("upgradePolicy") or {}).get("supportType")
    return support_judgement(version, info, utc_today(), support_type) if info else None
