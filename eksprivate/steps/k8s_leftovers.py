"""What Kubernetes made in AWS for the cluster, removed by `down` through the AWS API.

A `Service` of type LoadBalancer or an `Ingress` makes load balancers, target groups and security groups in
the cluster's subnets (the AWS Load Balancer Controller, or the in-tree cloud provider); the EBS CSI driver
makes volumes; an EFS file system gets mount targets in the subnets. Nothing of it is in the state file and
kubectl cannot help (the API is private and may be gone already): everything is found by the tags Kubernetes
puts on it (`vpc_contents`).

The step exists only in `down`'s graph (and in `status` / `plan --destroy`, which show what it would
remove): `up` never makes any of it. It runs after the cluster is gone, so that no controller (the Load
Balancer Controller on the nodes, the in-tree one in the control plane, which recreates a network load
balancer it finds missing) makes them again, and before the subnets and the VPC, which these resources
block. Volumes and file systems hold data: kept unless `down --delete-volumes`, and listed at the end.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from eksprivate.errors import InUse, NotFound, WaitTimeout
from eksprivate.grants import Grant, ec2_write, grant
from eksprivate.steps.base import Context, Found, Step, tags_of
from eksprivate.steps.network import delete_retrying, group_blockers, revoke_group_rules, sweep_grants
from eksprivate.steps.vpc_contents import (
    eni_line,
    file_system_line,
    file_systems,
    load_balancers,
    made_by_eks,
    made_by_eksprivate,
    made_by_kubernetes,
    target_groups,
    volume_line,
    volumes,
    vpc_ids,
)

KEY = "k8s-leftovers"


class K8sLeftovers(Step):
    key = KEY
    title = "Kubernetes-made resources"
    needs = ("subnets", "endpoint-sg")

    def grants(self, ctx: Context) -> list[Grant]:
        # Found by the tags Kubernetes puts on them (no ARN is known before): resource "*".
        a = ctx.arns
        file_systems = a.arn("elasticfilesystem", "file-system/*")
        return [*sweep_grants(a),
                grant("remove", "elasticloadbalancing:DeleteLoadBalancer",
                      on=a.arn("elasticloadbalancing", "loadbalancer/*"),
                      why="load balancers Kubernetes made for the cluster (v2 and classic)"),
                grant("remove", "elasticloadbalancing:DeleteTargetGroup",
                      on=a.arn("elasticloadbalancing", "targetgroup/*"),
                      why="target groups Kubernetes made for the cluster"),
                ec2_write(a, "remove", "ec2:RevokeSecurityGroupIngress", "ec2:RevokeSecurityGroupEgress",
                          "ec2:DeleteSecurityGroup", why="security groups Kubernetes made (rules naming them first)"),
                grant("remove", "elasticfilesystem:DeleteMountTarget", on=file_systems,
                      why="EFS mount targets in the subnets (the data stays)"),
                ec2_write(a, "remove", "ec2:DeleteVolume",
                          why="only `down --delete-volumes`: volumes of the cluster's claims"),
                grant("remove", "elasticfilesystem:DeleteFileSystem", on=file_systems,
                      why="only `down --delete-volumes`: file systems tagged for the cluster")]

    def find(self, ctx: Context) -> Found | None:
        vpcs = vpc_ids(ctx)
        # In a network team's VPC (`vpc_id`: used, never deleted) the cluster's load balancers are still its
        # own and still bill: removed the same way, recognised by a tag naming this cluster only.
        shared = _used_vpc(ctx)
        if not vpcs and shared:
            vpcs = [shared]
        ours = partial(made_by_kubernetes, name=ctx.name, shared_vpc=bool(shared) and vpcs == [shared])
        in_vpc = [{"Name": "vpc-id", "Values": vpcs}]
        reads: dict[str, Callable[[], Any]] = {
            "lbs": partial(load_balancers, ctx, vpcs),
            "tgs": partial(target_groups, ctx, vpcs),
            "groups": lambda: list(ctx.aws.ec2.paginate("describe_security_groups", "SecurityGroups",
                                                        Filters=in_vpc)) if vpcs else [],
            "fs": partial(file_systems, ctx),
            "volumes": partial(volumes, ctx),
        }
        with ThreadPoolExecutor(max_workers=len(reads), thread_name_prefix=self.key) as pool:
            futures = {k: pool.submit(f) for k, f in reads.items()}
        got = {k: f.result() for k, f in futures.items()}
        name = ctx.name
        lbs = [{"kind": lb.kind, "ident": lb.ident, "name": lb.name, "eni_description": lb.eni_description}
               for lb in got["lbs"] if ours(lb.tags)]
        tgs = [{"arn": g["TargetGroupArn"], "name": g["TargetGroupName"]}
               for g in got["tgs"] if ours(g["TagMap"])]
        # EKS's own cluster group carries kubernetes.io/cluster/<name>=owned too: the VPC step removes it.
        groups = [{"group_id": g["GroupId"], "name": g.get("GroupName", "")} for g in got["groups"]
                  if g.get("GroupName") != "default" and ours(tags_of(g))
                  and not made_by_eks(tags_of(g), name) and not made_by_eksprivate(tags_of(g), name)]
        fs = [{"fs_id": f["FileSystemId"], "line": file_system_line(f),
               "mount_targets": [m["MountTargetId"] for m in f["MountTargets"] if m.get("VpcId") in vpcs
                                 and m.get("LifeCycleState") not in ("deleted",)],
               "elsewhere": len([m for m in f["MountTargets"] if m.get("VpcId") not in vpcs])}
              for f in got["fs"]]
        vols = [{"volume_id": v["VolumeId"], "line": volume_line(v)} for v in got["volumes"]]
        if not (lbs or tgs or groups or fs or vols):
            return None
        return {"vpc_ids": vpcs, "load_balancers": lbs, "target_groups": tgs, "security_groups": groups,
                "file_systems": fs, "volumes": vols, "status": "made by Kubernetes"}

    def ids(self, found: Found) -> dict[str, Any]:
        return {}  # found by tag every time; nothing of it belongs in the state file

    def create(self, ctx: Context) -> Found:
        raise NotImplementedError("Kubernetes makes these; `up` never does")  # the step is not in up's graph

    def describe(self, found: Found) -> str:
        parts = []
        if found["load_balancers"]:
            parts.append("load balancers " + ", ".join(f"{lb['name']} ({lb['kind']})"
                                                       for lb in found["load_balancers"]))
        if found["target_groups"]:
            parts.append("target groups " + ", ".join(t["name"] for t in found["target_groups"]))
        if found["security_groups"]:
            parts.append("security groups " + ", ".join(f"{g['group_id']} ({g['name']})"
                                                         for g in found["security_groups"]))
        mount_targets = [m for f in found["file_systems"] for m in f["mount_targets"]]
        if mount_targets:
            parts.append("EFS mount targets " + ", ".join(mount_targets))
        kept = [v["line"] for v in found["volumes"]] + [f["line"] for f in found["file_systems"]]
        if kept:
            parts.append("data: " + ", ".join(kept))
        return "; ".join(parts)

    def destroy_details(self, ctx: Context, found: Found) -> list[str]:
        if ctx.delete_volumes:
            return []
        return [f"keep {line} (`down --delete-volumes` deletes it)"
                for line in [v["line"] for v in found["volumes"]] + [f["line"] for f in found["file_systems"]]]

    # -- down --------------------------------------------------------------------------------------------
    def remove(self, ctx: Context, found: Found) -> None:
        self._delete_load_balancers(ctx, found)
        self._delete_target_groups(ctx, found)
        self._delete_security_groups(ctx, found)
        self._delete_mount_targets(ctx, found)
        if ctx.delete_volumes:
            self._delete_data(ctx, found)

    def _delete_load_balancers(self, ctx: Context, found: Found) -> None:
        lbs = found["load_balancers"]
        if not lbs:
            return
        elbv2, elb = ctx.aws.client("elbv2"), ctx.aws.client("elb")
        for lb in lbs:
            ctx.say(self.key, f"deleting load balancer {lb['name']} ({lb['kind']})")
            try:
                if lb["kind"] == "classic":
                    elb.delete_load_balancer(LoadBalancerName=lb["ident"])
                else:  # its listeners go with it
                    elbv2.delete_load_balancer(LoadBalancerArn=lb["ident"])
            except NotFound:
                pass
        for lb in lbs:
            if lb["kind"] != "classic":  # one at a time: a list with one gone answers LoadBalancerNotFound
                ctx.aws.wait("elbv2", "load_balancers_deleted", delay=ctx.poll, timeout=ctx.timeouts.endpoint_delete,
                             what=f"deleting load balancer {lb['name']}", LoadBalancerArns=[lb["ident"]])
        # A deleted load balancer's interfaces stay a while: AWS releases them by itself. They keep the
        # subnets and the load balancers' security groups from going, so wait here, saying for what.
        self._wait_released(ctx, found["vpc_ids"], [lb["eni_description"] for lb in lbs])

    def _wait_released(self, ctx: Context, vpcs: list[str], descriptions: list[str]) -> None:
        if not vpcs:
            return
        end = time.monotonic() + ctx.timeouts.dependency_violation
        filters = [{"Name": "vpc-id", "Values": vpcs}, {"Name": "description", "Values": descriptions}]
        while True:
            left = list(ctx.aws.ec2.paginate("describe_network_interfaces", "NetworkInterfaces", Filters=filters))
            if not left:
                return
            lines = [eni_line(e) for e in left]
            if time.monotonic() + ctx.poll > end:
                raise WaitTimeout(f"AWS still holds {len(left)} interface(s) of deleted load balancers after "
                                  f"{ctx.timeouts.dependency_violation / 60:.0f} min: {', '.join(lines)}",
                                  "AWS releases them by itself: rerun `eksprivate down` later")
            ctx.say(self.key, f"waiting for AWS to release {len(left)} load balancer interface(s): "
                              f"{', '.join(lines[:3])}" + (" ..." if len(lines) > 3 else ""))
            ctx.check_cancel()
            time.sleep(max(ctx.poll, 0.05))

    def _delete_target_groups(self, ctx: Context, found: Found) -> None:
        elbv2 = ctx.aws.client("elbv2")
        for group in found["target_groups"]:
            ctx.say(self.key, f"deleting target group {group['name']}")
            # In use while a listener still forwards to it: the listeners went with their load balancer,
            # and ELBv2 may take a moment to notice.
            _retry_in_use(ctx, partial(elbv2.delete_target_group, TargetGroupArn=group["arn"]),
                          f"target group {group['name']}")

    def _delete_security_groups(self, ctx: Context, found: Found) -> None:
        doomed = {g["group_id"] for g in found["security_groups"]}
        if not doomed:
            return
        # Rules naming these groups (the controller adds one to the cluster's node group, so that the load
        # balancer reaches the pods) keep them from going: drop those rules, in the cluster's groups only.
        groups = list(ctx.aws.ec2.paginate("describe_security_groups", "SecurityGroups",
                                           Filters=[{"Name": "vpc-id", "Values": found["vpc_ids"]}]))
        mine = [g for g in groups if g.get("GroupName") != "default"
                and (g["GroupId"] in doomed or made_by_eks(tags_of(g), ctx.name)
                     or made_by_eksprivate(tags_of(g), ctx.name))]
        revoke_group_rules(ctx, mine, only_naming=doomed)
        for group in found["security_groups"]:
            gid = group["group_id"]
            ctx.say(self.key, f"deleting security group {gid} ({group['name']})")
            delete_retrying(ctx, ctx.aws.ec2.delete_security_group, sweep=[{"Name": "group-id", "Values": [gid]}],
                            key=self.key, what=f"deleting security group {gid}",
                            explain=partial(group_blockers, ctx, gid), GroupId=gid)

    def _delete_mount_targets(self, ctx: Context, found: Found) -> None:
        """Mount targets are only the file system's doors into the subnets (the data stays in the file
        system): they go always, since they block the subnets."""
        efs = ctx.aws.client("efs")
        for fs in found["file_systems"]:
            for target in fs["mount_targets"]:
                ctx.say(self.key, f"deleting EFS mount target {target} of {fs['fs_id']}")
                with contextlib.suppress(NotFound):
                    efs.delete_mount_target(MountTargetId=target)
        for fs in found["file_systems"]:
            if fs["mount_targets"]:
                self._wait_mount_targets(ctx, fs["fs_id"], set(fs["mount_targets"]))

    def _wait_mount_targets(self, ctx: Context, fs_id: str, targets: set[str]) -> None:
        efs = ctx.aws.client("efs")
        end = time.monotonic() + ctx.timeouts.dependency_violation
        while True:
            try:
                left = [m["MountTargetId"] for m in efs.paginate("describe_mount_targets", "MountTargets",
                                                                 FileSystemId=fs_id)
                        if m["MountTargetId"] in targets and m.get("LifeCycleState") != "deleted"]
            except NotFound:
                return
            if not left:
                return
            if time.monotonic() + ctx.poll > end:
                raise WaitTimeout(f"EFS mount targets {', '.join(left)} still deleting after "
                                  f"{ctx.timeouts.dependency_violation / 60:.0f} min", "rerun `eksprivate down` later")
            ctx.say(self.key, f"waiting for EFS mount targets {', '.join(left)} to be deleted")
            ctx.check_cancel()
            time.sleep(max(ctx.poll, 0.05))

    def _delete_data(self, ctx: Context, found: Found) -> None:
        """Only with `down --delete-volumes`: the claims' volumes and the cluster's file systems."""
        for vol in found["volumes"]:
            ctx.say(self.key, f"deleting {vol['line']}")
            # In use until the instance it was attached to has terminated (the node groups are gone by now,
            # but EC2 may still be detaching it).
            _retry_in_use(ctx, partial(ctx.aws.ec2.delete_volume, VolumeId=vol["volume_id"]),
                          f"volume {vol['volume_id']}")
        efs = ctx.aws.client("efs")
        for fs in found["file_systems"]:
            if fs["elsewhere"]:
                ctx.say(self.key, f"keeping {fs['line']}: it has mount targets in other VPCs")
                continue
            ctx.say(self.key, f"deleting {fs['line']}")
            _retry_in_use(ctx, partial(efs.delete_file_system, FileSystemId=fs["fs_id"]),
                          f"file system {fs['fs_id']}")


def _used_vpc(ctx: Context) -> str | None:
    """The VPC the cluster uses but eksprivate did not make (config `vpc_id`, or as recorded), if any."""
    recorded = ctx.ledger.ids("vpc")
    if recorded.get("uses"):
        return str(recorded["vpc_id"])
    return ctx.settings.vpc_id


def _retry_in_use(ctx: Context, call: Callable[[], Any], what: str) -> None:
    """Run `call`; NotFound is done; InUse is retried at the poll pace for a while (it ends by itself)."""
    end = time.monotonic() + ctx.timeouts.dependency_violation
    while True:
        try:
            call()
            return
        except NotFound:
            return
        except InUse as exc:
            if time.monotonic() + ctx.poll > end:
                raise InUse(exc.service, exc.operation, exc.code,
                                  f"{what} still in use after {ctx.timeouts.dependency_violation / 60:.0f} min: "
                                  f"{exc.aws_message}") from exc
            ctx.check_cancel()
            time.sleep(max(ctx.poll, 0.05))


def kept_lines(found: Found) -> list[str]:
    """What the step's `find` saw of volumes and file systems, one line each (what `down` keeps unless
    --delete-volumes): read once by the step, not again by the command."""
    return [v["line"] for v in found.get("volumes", [])] + [f["line"] for f in found.get("file_systems", [])]


def kept_data(ctx: Context) -> list[str]:
    """The volumes and file systems Kubernetes made for the cluster that still exist (after `down` without
    `--delete-volumes`): one line each, with size and claim. Two read calls."""
    return [volume_line(v) for v in volumes(ctx)] + [file_system_line(f) for f in file_systems(ctx)]
