"""The EKS control plane (private API from the first second) and its admin access entries."""

from __future__ import annotations

from contextlib import suppress
from functools import partial
from typing import Any

from eksprivate.aws import retry_transient
from eksprivate.config import kubernetes_minor
from eksprivate.errors import EksPrivateError, InUse, NotFound, ResourceFailed
from eksprivate.grants import Condition, Grant, Verb, equals, grant, pass_role, reads
from eksprivate.kube_versions import cluster_versions, new_cluster_version
from eksprivate.propagation import retry_while_propagating
from eksprivate.steps.base import CLUSTER_MINOR, CLUSTER_TAG, Change, Context, Found, Step
from eksprivate.steps.iam import ClusterRole
from eksprivate.steps.network import subnet_ids
from eksprivate.steps.updates import apply_update, recorded_updates, resume_updates

LOG_TYPES = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
CLUSTER_ADMIN_POLICY = "AmazonEKSClusterAdminPolicy"


def kms_key_arn(ctx: Context) -> str | None:
    if not ctx.settings.secrets_encryption:
        return None
    return ctx.settings.kms_key_arn or ctx.ledger.ids("kms-key").get("key_arn")


def service_linked_role(ctx: Context, service: str, name: str, verbs: tuple[Verb, ...] = ("create",)) -> Grant:
    """iam:CreateServiceLinkedRole for one AWS service's role, only for that service (iam:AWSServiceName): EKS
    makes its service-linked role on the caller's behalf the first time it is needed in an account (EKS User
    Guide, "Using service-linked roles for Amazon EKS")."""
    return grant(verbs, "iam:CreateServiceLinkedRole",
                 on=ctx.arns.arn("iam", f"role/aws-service-role/{service}/{name}", regional=False),
                 when=[equals("iam:AWSServiceName", service)], why=f"{name}, made by EKS on first use in the account")


def secrets_key_grants(ctx: Context, verbs: tuple[Verb, ...] = ("create",)) -> list[Grant]:
    """What CreateCluster with encryptionConfig checks beside it: the caller may describe the key and create a
    grant on it for EKS (EKS User Guide, envelope encryption: the principal needs kms:DescribeKey and
    kms:CreateGrant on the key), a grant only for an AWS resource (kms:GrantIsForAWSResource)."""
    key = ctx.settings.kms_key_arn or ctx.arns.kms_key()
    return [grant(verbs, "kms:DescribeKey", on=key, why="EKS secrets encryption: the key the cluster uses"),
            grant(verbs, "kms:CreateGrant", on=key,
                  when=[Condition("Bool", "kms:GrantIsForAWSResource", ("true",))],
                  why="EKS secrets encryption: the grant EKS keeps on the key, for an AWS resource only")]


UPDATE_KEY = "cluster/update"  # ledger sub-keys cluster/update/<field>: an update's token, then its id


def new_cluster_kubernetes(ctx: Context) -> str | None:
    """The version a new cluster is created with: the config's, else the one in standard support EKS
    offers (`kube_versions.new_cluster_version`; EKS's own default may be in extended support already)."""
    if ctx.settings.kubernetes_version:
        return ctx.settings.kubernetes_version
    return new_cluster_version(cluster_versions(ctx))


def _version_text(ctx: Context) -> str:
    version = new_cluster_kubernetes(ctx)
    if not version:
        return "(EKS's default version)"
    return version if ctx.settings.kubernetes_version else f"{version} (in standard support)"


class Cluster(Step):
    key = "cluster"
    title = "EKS cluster"

    def __init__(self, needs: tuple[str, ...]) -> None:
        self.needs = needs

    def preview(self, ctx: Context) -> list[str]:
        s = ctx.settings
        public = ", ".join(s.public_access_cidrs)
        return [f"Kubernetes {_version_text(ctx)}",
                f"API endpoint private{', public to ' + public if public else ' only'}",
                "API authentication, you as cluster admin",
                "secrets encrypted with KMS" if s.secrets_encryption else "secrets NOT envelope-encrypted",
                f"control-plane logs: {', '.join(LOG_TYPES)}" if s.control_plane_logging else "no control-plane logs",
                f"support type {s.support_type}" + (": billed at the extended-support rate once the version leaves "
                                                    "standard support" if s.support_type == "EXTENDED" else
                                                    " (upgraded by AWS at the end of standard support)")]

    def grants(self, ctx: Context) -> list[Grant]:
        cluster = ctx.arns.eks_cluster()
        out = [reads("eks:DescribeCluster", on=cluster, why="find the cluster; wait for ACTIVE"),
               grant("create", "eks:CreateCluster", why="the cluster (EKS takes no resource ARN for it)"),
               grant("create", "eks:TagResource", on=cluster, why="tags given to CreateCluster"),
               pass_role(ClusterRole().arn(ctx), "eks.amazonaws.com", verbs="create",
                         why="CreateCluster hands the cluster role to EKS"),
               # With an IAM team's cluster role, EKS's service-linked role is the team's to make too: checked to
               # exist before the run (steps/given_roles.py), never made through the operator.
               *([] if ClusterRole().given(ctx) else [
                   service_linked_role(ctx, "eks.amazonaws.com", "AWSServiceRoleForAmazonEKS")]),
               grant("update", "eks:UpdateClusterConfig", on=cluster, why="API access, logging, support type"),
               reads("eks:DescribeUpdate", on=cluster, why="follow an update to its end"),
               grant("remove", "eks:DeleteCluster", on=cluster, why="the cluster")]
        if kms_key_arn(ctx) is not None or ctx.settings.secrets_encryption:
            out += secrets_key_grants(ctx)
        return out

    def vpc_config(self, ctx: Context, subnets: list[str] | None) -> dict[str, Any]:
        public = list(ctx.settings.public_access_cidrs)
        config: dict[str, Any] = {"endpointPrivateAccess": True, "endpointPublicAccess": bool(public)}
        if subnets is not None:
            config["subnetIds"] = subnets
        if public:
            config["publicAccessCidrs"] = public
        return config

    def logging(self, ctx: Context) -> dict[str, Any]:
        on = ctx.settings.control_plane_logging
        return {"clusterLogging": [{"types": LOG_TYPES, "enabled": on}]}

    def find(self, ctx: Context) -> Found | None:
        try:
            c = ctx.aws.eks.describe_cluster(name=ctx.name)["cluster"]
        except NotFound:
            return None
        if c.get("tags", {}).get(CLUSTER_TAG) != ctx.name:
            raise EksPrivateError(f"EKS cluster {ctx.name} exists in {ctx.region} but was not made by eksprivate",
                                  "choose another --name; `eksprivate verify` can still audit it")
        vpc = c.get("resourcesVpcConfig", {})
        # The Kubernetes minor, for the upgrade, add-on and node group steps of this run (one read for all).
        ctx.run_cache[CLUSTER_MINOR] = kubernetes_minor(str(c.get("version") or ""))
        enabled = sorted(t for entry in c.get("logging", {}).get("clusterLogging", []) if entry.get("enabled")
                         for t in entry.get("types", []))
        return {
            "cluster_name": c["name"], "cluster_arn": c["arn"], "status": c.get("status", ""),
            "version": c.get("version"), "endpoint": c.get("endpoint"),
            "private": vpc.get("endpointPrivateAccess", False), "public": vpc.get("endpointPublicAccess", False),
            "public_cidrs": sorted(vpc.get("publicAccessCidrs", []) if vpc.get("endpointPublicAccess") else []),
            "logging": enabled, "encrypted": bool(c.get("encryptionConfig")),
            # None when EKS does not say (older API answers): then it is left alone.
            "support_type": (c.get("upgradePolicy") or {}).get("supportType"),
        }

    def create(self, ctx: Context) -> Found:
        token = ctx.intent(self.key)
        args: dict[str, Any] = {
            "name": ctx.name, "roleArn": ctx.ledger.ids("cluster-role")["role_arn"],
            "resourcesVpcConfig": self.vpc_config(ctx, subnet_ids(ctx)),
            "logging": self.logging(ctx),
            # API authentication with the creator as admin: nothing has to reach the private API from
            # outside the VPC to finish the setup (no aws-auth ConfigMap edits).
            "accessConfig": {"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": True},
            # Always sent: without it EKS picks EXTENDED, billed about 6x once the version leaves standard support.
            "upgradePolicy": {"supportType": ctx.settings.support_type},
            "tags": ctx.tags(ctx.name), "clientRequestToken": token,
        }
        version = new_cluster_kubernetes(ctx)
        if version:  # None: DescribeClusterVersions could not be read; EKS picks its default
            args["version"] = version
        # The networking add-ons are EKS managed add-ons (steps/addons.py), existing before the node groups: no
        # self-managed copies for them to take over (kept when the config leaves one out).
        managed = {a.name for a in ctx.settings.addons}
        if {"vpc-cni", "kube-proxy", "coredns"} <= managed:
            args["bootstrapSelfManagedAddons"] = False
        key_arn = kms_key_arn(ctx)
        if key_arn:
            args["encryptionConfig"] = [{"resources": ["secrets"], "provider": {"keyArn": key_arn}}]
        # Refused while the fresh cluster role, or its AmazonEKSClusterPolicy attachment, propagates.
        c = retry_while_propagating(ctx, lambda: ctx.aws.eks.create_cluster(**args),
                                    role=ctx.ledger.ids("cluster-role")["role_name"])["cluster"]
        ctx.ledger.record(self.key, cluster_name=c["name"], cluster_arn=c["arn"])
        found = self.find(ctx)
        return found or {"cluster_name": c["name"], "cluster_arn": c["arn"], "status": c.get("status", "CREATING")}

    def ready(self, ctx: Context, found: Found) -> None:
        status = found.get("status")
        if status == "ACTIVE":
            return
        if status == "FAILED":
            raise ResourceFailed(f"EKS cluster {ctx.name} is FAILED", "run `eksprivate down`, then `up` again")
        ctx.say(self.key, f"{status}: EKS takes ~9 min (up to 30)")
        ctx.aws.wait("eks", "cluster_active", delay=ctx.poll, timeout=ctx.timeouts.cluster_create,
                     expected="cluster_create", seen_now=True,
                     what=f"EKS cluster {ctx.name}", name=ctx.name)
        found["status"] = "ACTIVE"

    def _diff(self, ctx: Context, found: Found) -> dict[str, Any]:
        want_public = sorted(ctx.settings.public_access_cidrs)
        diff: dict[str, Any] = {}
        if not found.get("private", True) or found.get("public") != bool(want_public) or (
                want_public and found.get("public_cidrs") != want_public):
            diff["resourcesVpcConfig"] = self.vpc_config(ctx, None)
        want_logs = sorted(LOG_TYPES) if ctx.settings.control_plane_logging else []
        if found.get("logging", []) != want_logs:
            diff["logging"] = self.logging(ctx)
        if found.get("support_type") not in (None, ctx.settings.support_type):
            diff["upgradePolicy"] = {"supportType": ctx.settings.support_type}
        return diff

    def diff(self, ctx: Context, found: Found) -> list[Change]:
        # The updates a killed run started come first: `resume` waits on them, never starts them again.
        out = [Change(text) for text in recorded_updates(ctx, UPDATE_KEY)]
        diff = self._diff(ctx, found)
        cidrs = ctx.settings.public_access_cidrs
        texts = {"resourcesVpcConfig": "set API access: private on, public " + (
                     f"limited to {', '.join(cidrs)}" if cidrs else "off"),
                 "logging": "set control-plane logging " + ("on (all 5 types)" if ctx.settings.control_plane_logging
                                                            else "off"),
                 "upgradePolicy": f"set support type {ctx.settings.support_type} (the cluster has "
                                  f"{found.get('support_type')})"}
        # EKS takes one kind of change per call and one update at a time: each is its own update.
        out += [Change(texts[field_name], partial(self._update_config, ctx, found, field_name, value,
                                                  last=field_name == list(diff)[-1]))
                for field_name, value in diff.items()]
        # A kubernetes_version change is the Upgrade step's (steps/upgrade.py).
        if kms_key_arn(ctx) and not found.get("encrypted"):
            out.append(Change("secrets encryption is off on the live cluster",
                              blocked="enable it with `aws eks associate-encryption-config`"))
        return out

    def resume(self, ctx: Context, found: Found) -> list[str]:
        # The updates a killed run started (their ids are in the ledger): wait, never start them again.
        done = resume_updates(ctx, self.key, UPDATE_KEY, what=f"EKS cluster {ctx.name}",
                              timeout=ctx.timeouts.cluster_update,
                              still_wanted=lambda key: key.rsplit("/", 1)[-1] in self._diff(ctx, found))
        if done:
            found.update(self.find(ctx) or {})
        return done

    def _update_config(self, ctx: Context, found: Found, field_name: str, value: Any, *, last: bool) -> str:
        ctx.say(self.key, f"updating {field_name}")
        # Judged by DescribeUpdate: the cluster reads ACTIVE again after a failed update too.
        update = apply_update(ctx, self.key, f"{UPDATE_KEY}/{field_name}", what=f"EKS cluster {ctx.name}",
                              timeout=ctx.timeouts.cluster_update,
                              call=lambda token: ctx.aws.eks.update_cluster_config(
                                  name=ctx.name, clientRequestToken=token, **{field_name: value}))
        ctx.say(self.key, f"update {update['id']} ({update.get('type', '')}) Successful")
        if last:  # once, after the last one: what the cluster is now
            found.update(self.find(ctx) or {})
        return f"updated {field_name}"

    def remove(self, ctx: Context, found: Found) -> None:
        if found.get("status") == "DELETING":
            return
        # In use while node groups are still deleting or an update runs: those end by themselves, so poll at
        # the status-poll pace (no backoff: `down` waits on this).
        with suppress(NotFound):
            retry_transient(lambda: ctx.aws.eks.delete_cluster(name=ctx.name), InUse,
                            timeout=ctx.timeouts.nodegroup_delete, delay=ctx.poll, backoff=1.0)

    def gone(self, ctx: Context, found: Found) -> None:
        ctx.say(self.key, "DELETING: EKS takes ~4 min")
        ctx.aws.wait("eks", "cluster_deleted", delay=ctx.poll, timeout=ctx.timeouts.cluster_delete,
                     expected="cluster_delete",
                     what=f"deleting EKS cluster {ctx.name}", name=ctx.name)

    def describe(self, found: Found) -> str:
        return str(found.get("cluster_name", ""))


class ClusterAdmins(Step):
    """Cluster-admin access entries for the principals in `admins` (besides the creator)."""

    key = "admins"
    title = "Cluster admins"
    needs = ("cluster",)

    def preview(self, ctx: Context) -> list[str]:
        return [f"cluster admin: {arn}" for arn in ctx.settings.admins]

    def policy_arn(self, ctx: Context) -> str:
        return ctx.partition.arn("eks", "", "aws", f"cluster-access-policy/{CLUSTER_ADMIN_POLICY}")

    def grants(self, ctx: Context) -> list[Grant]:
        entries = ctx.arns.eks_access_entry()
        return [reads("eks:ListAccessEntries", on=ctx.arns.eks_cluster(), why="the cluster's access entries"),
                reads("eks:DescribeAccessEntry", on=entries, why="whether an entry is eksprivate's"),
                grant("create", "eks:CreateAccessEntry", on=ctx.arns.eks_cluster(), why="an admin's access entry"),
                grant("create", "eks:TagResource", on=entries, why="tags given to CreateAccessEntry"),
                grant("create", "eks:AssociateAccessPolicy", on=entries,
                      when=[Condition("ArnEquals", "eks:policyArn", (self.policy_arn(ctx),))],
                      why="the cluster-admin access policy, only that one"),
                grant(("update", "remove"), "eks:DeleteAccessEntry", on=entries,
                      why="entries of admins removed from the config")]

    def find(self, ctx: Context) -> Found | None:
        try:
            entries = set(ctx.aws.eks.paginate("list_access_entries", "accessEntries", clusterName=ctx.name))
            # An entry without the policy is unfinished (a run died between the two calls).
            with_policy = set(ctx.aws.eks.paginate("list_access_entries", "accessEntries", clusterName=ctx.name,
                                                   associatedPolicyArn=self.policy_arn(ctx)))
        except NotFound:
            return None
        want = ctx.settings.admins
        present = [a for a in want if a in entries]
        recorded = ctx.ledger.ids(self.key).get("admin_arns", [])
        # Admins removed from the config lose access, but only entries eksprivate tagged: never the creator's.
        extra = [a for a in recorded if a not in want and a in entries and self._ours(ctx, a)]
        if want and not present and not extra:
            return None
        done = [a for a in present if a in with_policy]
        return {"admins": done, "entries": present, "extra": extra, "incomplete": len(done) < len(want),
                "status": "exists"}

    def _ours(self, ctx: Context, arn: str) -> bool:
        try:
            entry = ctx.aws.eks.describe_access_entry(clusterName=ctx.name, principalArn=arn)["accessEntry"]
        except NotFound:
            return False
        return bool((entry.get("tags") or {}).get(CLUSTER_TAG) == ctx.name)

    def create(self, ctx: Context) -> Found:
        found = self.find(ctx) or {"admins": [], "entries": [], "extra": []}
        for arn in ctx.settings.admins:
            if arn in found["admins"]:
                continue
            if arn not in found["entries"]:
                token = ctx.intent(f"{self.key}/{arn}")
                with suppress(InUse):  # already there (EKS says ResourceInUseException): a crashed run made it
                    ctx.aws.eks.create_access_entry(clusterName=ctx.name, principalArn=arn, type="STANDARD",
                                                    clientRequestToken=token, tags=ctx.tags(ctx.name))
            ctx.aws.eks.associate_access_policy(clusterName=ctx.name, principalArn=arn,
                                                policyArn=self.policy_arn(ctx), accessScope={"type": "cluster"})
            found["admins"].append(arn)
            ctx.ledger.record(self.key, admin_arns=[*found["admins"], *found["extra"]])
        self.update(ctx, found)
        found.update(incomplete=False, status="exists")
        return found

    def diff(self, ctx: Context, found: Found) -> list[Change]:
        return [Change(f"remove the cluster-admin access entry of {arn} (no longer in admins)",
                       partial(self._remove_extra, ctx, found, arn)) for arn in found["extra"]]

    def _remove_extra(self, ctx: Context, found: Found, arn: str) -> str:
        self._delete(ctx, arn)
        found["extra"] = [a for a in found["extra"] if a != arn]
        ctx.ledger.record(self.key, **self.ids(found))
        return f"removed the access entry of {arn}"

    def ids(self, found: Found) -> dict[str, Any]:
        # An admin dropped from the config stays recorded until its entry is gone: a run killed before the
        # delete still removes it next time (`find` only calls recorded entries "extra").
        return {"admin_arns": [*found.get("admins", []), *found.get("extra", [])]}

    def remove(self, ctx: Context, found: Found) -> None:
        entries = list(found.get("entries") or found["admins"])
        for arn in [*entries, *found.get("extra", [])]:
            self._delete(ctx, arn)

    def _delete(self, ctx: Context, arn: str) -> None:
        with suppress(NotFound):
            ctx.aws.eks.delete_access_entry(clusterName=ctx.name, principalArn=arn)

    def describe(self, found: Found) -> str:
        return ", ".join(found["admins"])
