"""The data perimeter on the VPC endpoints: the policies eksprivate writes, and how a live policy is judged.

Pure (no AWS calls). With no internet gateway and no NAT, the endpoints are the network's only way out, so
their policies decide which identities may use them and which resources they may reach. AWS's default policy
allows everything to everyone. The perimeter (`endpoint_policies = "perimeter"`, the default) allows:

- on every endpoint, principals of this account, the `trusted_accounts` and the `trusted_org_id`
  (`aws:PrincipalAccount`, `aws:PrincipalOrgID`);
- on the S3 gateway, only the buckets of those accounts / that organisation (`aws:ResourceAccount`,
  `aws:ResourceOrgID`), plus object reads from the AWS-owned buckets the nodes need: ECR's image layers
  (`prod-<region>-starport-layer-bucket`) and the Amazon Linux package repositories.
  Those reads are made with ECR's pre-signed URLs or anonymously, not by a principal of this account, so they
  cannot be tied to the identity perimeter;
- on ECR (api and dkr), the registries of the trusted accounts (pull-through cache repositories are this
  account's), `ecr:GetAuthorizationToken`, and pulls from the account EKS publishes its add-on images from in
  this region (`data/eks_image_registries.json`, AWS's table);
- on STS, `AssumeRoleWithWebIdentity` (IAM roles for service accounts), which carries no caller account (the
  call is not signed), into the trusted accounts' roles only.

docs/security.md explains each exception, with AWS's references, and what the perimeter does not cover.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from eksprivate.partitions import Partition
from eksprivate.policy_eval import Request, Unjudged, allows, glob_match, statements

MODES = ("perimeter", "open")
# AWS: "The maximum size of an endpoint policy is 20,480 characters, including white space" (AWS PrivateLink
# guide, "Control access to VPC endpoints using endpoint policies").
MAX_POLICY_CHARS = 20480
VERSION = "2012-10-17"
# The policy AWS gives an endpoint created without one, and restores with ModifyVpcEndpoint(ResetPolicy=True).
FULL_ACCESS: dict[str, Any] = {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}]}

ECR_PULL = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability")
ECR_SERVICES = ("ecr.api", "ecr.dkr")
# Calls AWS documents as made without the caller's credentials: the request carries no principal account.
# STS AssumeRoleWithWebIdentity ("does not require ... AWS security credentials", STS API reference) is what
# IRSA's pods make. EKS Auth AssumeRoleForPodIdentity is NOT one: the Pod Identity agent signs it with the node
# role (AmazonEKSWorkerNodePolicy grants eks-auth:AssumeRoleForPodIdentity), so the principal rule covers it.
UNSIGNED_STS_ACTIONS = ("sts:AssumeRoleWithWebIdentity",)


@cache
def _registries() -> dict[str, Any]:
    text = resources.files("eksprivate").joinpath("data/eks_image_registries.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def eks_image_registry(region: str) -> str | None:
    """The account EKS publishes its add-on images from in `region` (AWS's table), or None when the table
    does not list the region."""
    account = _registries()["accounts"].get(region)
    return None if account is None else str(account)


def layer_bucket(region: str) -> str:
    """ECR keeps image layers in this AWS-owned bucket; the node downloads them through the S3 gateway with a
    URL ECR pre-signed (ECR user guide, "Amazon ECR interface VPC endpoints": "Minimum Amazon S3 bucket
    permissions for Amazon ECR")."""
    return f"prod-{region}-starport-layer-bucket"


def linux_repo_buckets(region: str) -> list[str]:
    """The AWS-owned buckets dnf/yum read the Amazon Linux package repositories from: AL2023's, then AL2's.

    Both, whatever the node groups' AMI types: an `ami_type` cannot change in place (the old node group keeps
    running until it is pruned), so a policy following the config's AMI type would cut running nodes off their
    packages. They hold AWS's public packages; Bottlerocket and Windows nodes never read them."""
    return [f"al2023-repos-{region}-de612dc2", f"amazonlinux.{region}.amazonaws.com", f"amazonlinux-2-repos-{region}"]


@dataclass(frozen=True)
class Perimeter:
    """Who and what the endpoints admit: this account, the trusted accounts and organisation."""

    partition: Partition
    region: str
    account: str
    trusted_accounts: tuple[str, ...] = ()
    trusted_org_id: str | None = None

    @property
    def accounts(self) -> list[str]:
        return [self.account, *(a for a in self.trusted_accounts if a != self.account)]

    # -- the conditions ---------------------------------------------------------------------------
    def _principals(self) -> list[dict[str, Any]]:
        """One condition block per way a principal is trusted (IAM ORs statements, ANDs keys)."""
        out: list[dict[str, Any]] = [{"aws:PrincipalAccount": self.accounts}]
        if self.trusted_org_id:
            out.append({"aws:PrincipalOrgID": self.trusted_org_id})
        return out

    def _resources(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [{"aws:ResourceAccount": self.accounts}]
        if self.trusted_org_id:
            out.append({"aws:ResourceOrgID": self.trusted_org_id})
        return out

    def _trusted(self, sid: str, action: str | list[str], resource: str | list[str],
                 resource_conditions: bool = False) -> list[dict[str, Any]]:
        """Statements allowing `action` on `resource` to trusted principals (and, with `resource_conditions`,
        only on trusted accounts' resources)."""
        out = []
        for i, who in enumerate(self._principals()):
            for j, what in enumerate(self._resources() if resource_conditions else [{}]):
                suffix = ("" if i == 0 else "ByOrg") + ("" if j == 0 else "InOrg")
                out.append({"Sid": sid + suffix, "Effect": "Allow", "Principal": "*", "Action": action,
                            "Resource": resource, "Condition": {"StringEquals": {**who, **what}}})
        return out

    # -- the policies --------------------------------------------------------------------------------
    def policy(self, service: str) -> dict[str, Any]:
        """The perimeter policy for the endpoint of `service` (short name: s3, ecr.api, sts, ...)."""
        if service == "s3":
            body = self._s3()
        elif service in ECR_SERVICES:
            body = self._ecr()
        else:
            body = self._trusted("TrustedPrincipals", "*", "*")
            if service == "sts":
                body += self._web_identity()
        return {"Version": VERSION, "Statement": body}

    def _s3(self) -> list[dict[str, Any]]:
        p = self.partition.name
        body = self._trusted("TrustedAccountsBuckets", "s3:*", "*", resource_conditions=True)
        # Pre-signed by ECR for the node: the request's principal is ECR's, not this account's.
        body.append({"Sid": "EcrImageLayers", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                     "Resource": f"arn:{p}:s3:::{layer_bucket(self.region)}/*"})
        # Read anonymously by dnf/yum on the node.
        body.append({"Sid": "AmazonLinuxRepositories", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                     "Resource": [f"arn:{p}:s3:::{b}/*" for b in linux_repo_buckets(self.region)]})
        return body

    def _ecr(self) -> list[dict[str, Any]]:
        p = self.partition.name
        # Resource "*" under aws:ResourceAccount / aws:ResourceOrgID, as for S3: ARNs could not name the
        # registry-level actions (their resource is "*"), and the organisation has no ARN.
        body = self._trusted("TrustedRegistries", "ecr:*", "*", resource_conditions=True)
        # Its resource is "*" and it names no registry: tied to the trusted principals only.
        body += self._trusted("AuthorizationToken", "ecr:GetAuthorizationToken", "*")
        registry = eks_image_registry(self.region)
        if registry is not None and registry not in self.accounts:
            body += self._trusted("EksAddonImages", list(ECR_PULL),
                                  f"arn:{p}:ecr:{self.region}:{registry}:repository/*")
        return body

    def _web_identity(self) -> list[dict[str, Any]]:
        p = self.partition.name
        body: list[dict[str, Any]] = [{
            "Sid": "WebIdentityIntoTrustedRoles", "Effect": "Allow", "Principal": "*",
            "Action": list(UNSIGNED_STS_ACTIONS), "Resource": [f"arn:{p}:iam::{a}:role/*" for a in self.accounts]}]
        if self.trusted_org_id:
            body.append({"Sid": "WebIdentityIntoOrgRoles", "Effect": "Allow", "Principal": "*",
                         "Action": list(UNSIGNED_STS_ACTIONS), "Resource": "*",
                         "Condition": {"StringEquals": {"aws:ResourceOrgID": self.trusted_org_id}}})
        return body

    # -- the requests the cluster makes ----------------------------------------------------------------
    def node_needs(self, service: str) -> list[tuple[str, Request]]:
        """What nodes and pods must be able to do through the endpoint of `service`, where a naive perimeter
        breaks the cluster: (what, request). The calls every principal of this account makes are not listed."""
        p, region, own = self.partition.name, self.region, self.account
        node = f"arn:{p}:sts::{own}:assumed-role/node-role/i-0123456789abcdef0"
        signed = {"aws:PrincipalAccount": own}
        if service == "s3":
            ecr_principal = "000000000001"  # ECR pre-signs the layer URL: the request is ECR's, not the node's
            # The Amazon Linux repositories are not listed: an EKS AMI joins without them (they serve dnf/yum
            # installs on the node, which the perimeter allows but a cluster does not need).
            return [("download image layers (ECR pre-signed URLs)",
                     Request("s3:GetObject", f"arn:{p}:s3:::{layer_bucket(region)}/layers/sha256",
                             principal_account=ecr_principal, context={"aws:PrincipalAccount": ecr_principal}))]
        if service in ECR_SERVICES:
            needs = [("get an ECR authorization token",
                      Request("ecr:GetAuthorizationToken", "*", own, node, context=signed))]
            registry = eks_image_registry(region)
            if registry is not None:
                needs += [(f"pull EKS add-on images from {registry} ({action})",
                           Request(action, f"arn:{p}:ecr:{region}:{registry}:repository/amazon-k8s-cni", own, node,
                                   context={**signed, "aws:ResourceAccount": registry}))
                          for action in ECR_PULL]
            return needs
        if service == "sts":
            return [("IRSA: AssumeRoleWithWebIdentity (unsigned) into this account's roles",
                     Request("sts:AssumeRoleWithWebIdentity", f"arn:{p}:iam::{own}:role/pod-role",
                             context={"aws:ResourceAccount": own}))]
        if service == "eks-auth":
            return [("Pod Identity: AssumeRoleForPodIdentity, signed by the node role",
                     Request("eks-auth:AssumeRoleForPodIdentity", f"arn:{p}:eks:{region}:{own}:cluster/cluster",
                             own, node, context={**signed, "aws:ResourceAccount": own}))]
        return []


def _action_prefix(service: str) -> str:
    """The IAM action prefix of an endpoint service: ecr.api -> ecr, eks-auth -> eks-auth, ssmmessages -> ..."""
    return service.split(".", 1)[0]


# -- judging a live policy ------------------------------------------------------------------------------


def _foreign(policy_text: str, start: int = 999999999999) -> str:
    """An account id the policy does not name: the intruder's."""
    account = start
    while str(account) in policy_text:
        account -= 1
    return str(account)


@dataclass(frozen=True)
class Opening:
    """One way an endpoint policy is open: to principals of any account, or to other accounts' resources."""

    kind: str  # "principal" | "resource"
    text: str


def openings(policy: str | None, service: str, account: str, partition: Partition, region: str) -> list[Opening]:
    """What the endpoint policy of `service` leaves open to an intruder ([] for a perimeter). Raises Unjudged
    when the policy uses what the evaluator does not model."""
    text = policy or json.dumps(FULL_ACCESS)
    statements(text)  # malformed → Unjudged/ValueError before any probe
    p = partition.name
    intruder = _foreign(text)
    stolen = f"arn:{p}:sts::{intruder}:assumed-role/intruder/session"
    node = f"arn:{p}:sts::{account}:assumed-role/node-role/i-0123456789abcdef0"
    own = {"aws:PrincipalAccount": account}
    foreign_ctx = {"aws:PrincipalAccount": intruder, "aws:PrincipalOrgID": "o-intruder000"}
    found: list[Opening] = []

    def probe(what: str, request: Request) -> bool:
        kind = "principal" if request.principal_account == intruder else "resource"
        if allows(text, request) and all(o.text != what for o in found):
            found.append(Opening(kind, what))
            return True
        return False

    prefix = _action_prefix(service)
    for action, resource in _probe_targets(text, prefix, partition, account, region):
        if probe(f"accepts principals of any account (account {intruder} may call {action} on {resource})",
                 Request(action, resource, intruder, stolen,
                         context={**foreign_ctx, "aws:ResourceAccount": account})):
            break  # one example says it
    if service == "s3":
        for action, verb in (("s3:PutObject", "writes to"), ("s3:GetObject", "reads from")):
            probe(f"{verb} other accounts' buckets", Request(action, f"arn:{p}:s3:::exfiltration-bucket/data", account,
                                                            node, context={**own, "aws:ResourceAccount": intruder}))
    elif service in ECR_SERVICES:
        repo = f"arn:{p}:ecr:{region}:{intruder}:repository/exfiltration"
        for action, verb in (("ecr:PutImage", "pushes to"), ("ecr:InitiateLayerUpload", "pushes to"),
                             ("ecr:BatchGetImage", "pulls from")):
            probe(f"{verb} other accounts' repositories",
                  Request(action, repo, account, node, context={**own, "aws:ResourceAccount": intruder}))
    elif service == "sts":
        probe("lets anyone assume other accounts' roles with a web identity",
              Request("sts:AssumeRoleWithWebIdentity", f"arn:{p}:iam::{intruder}:role/any",
                      context={"aws:ResourceAccount": intruder}))
    return found


def _probe_targets(text: str, prefix: str, partition: Partition, account: str,
                   region: str) -> list[tuple[str, str]]:
    """Actions and resources an intruder would try: a made-up action of the service and every action the
    policy names (wildcards filled in), on "*" and on this account's resources; not the AWS-owned resources
    the perimeter lets anyone read (layers, packages, add-on images), which hold nothing of this account."""
    actions = [f"{prefix}:AnyAction"]
    resources = ["*"]
    for statement in statements(text):
        if statement.get("Effect") != "Allow":
            continue
        for action in _values(statement.get("Action")):
            concrete = action.replace("*", "Get").replace("?", "x")
            if ":" not in concrete:
                concrete = f"{prefix}:{concrete}"
            if concrete.split(":", 1)[0].lower() == prefix.lower() and concrete not in actions \
                    and concrete not in UNSIGNED_STS_ACTIONS:
                actions.append(concrete)
        for resource in _values(statement.get("Resource")):
            concrete = resource.replace("*", "x").replace("?", "x")
            if concrete not in resources and not _aws_owned(concrete, partition, region):
                resources.append(concrete)
    resources.append(f"arn:{partition.name}:{prefix}:{region}:{account}:thing/x")
    return [(a, r) for a in actions for r in resources]


def _values(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _aws_owned(resource: str, partition: Partition, region: str) -> bool:
    """The AWS-owned resources a perimeter opens to any principal on purpose (`Perimeter` for why)."""
    p = partition.name
    owned = [f"arn:{p}:s3:::{b}/*" for b in (layer_bucket(region), *linux_repo_buckets(region))]
    registry = eks_image_registry(region)
    if registry is not None:
        owned.append(f"arn:{p}:ecr:{region}:{registry}:repository/*")
    return any(glob_match(o, resource) for o in owned)


def blocked_needs(policy: str | None, service: str, perimeter: Perimeter) -> list[str]:
    """What nodes and pods need that the endpoint policy of `service` refuses ([] when it allows them all)."""
    text = policy or json.dumps(FULL_ACCESS)
    return [what for what, request in perimeter.node_needs(service) if not allows(text, request)]


# -- the text of a policy ------------------------------------------------------------------------------


def canonical(policy: str | dict[str, Any] | None) -> str:
    """A policy as comparable text: AWS answers a policy reformatted (keys reordered, white space changed),
    and an endpoint created without one with its full-access default."""
    document = json.loads(policy) if isinstance(policy, str) else (policy or FULL_ACCESS)
    return json.dumps(document, indent=2, sort_keys=True)


def is_full_access(policy: str | dict[str, Any] | None) -> bool:
    """AWS's default policy (any version), which `"open"` keeps."""
    document = json.loads(policy) if isinstance(policy, str) else (policy or FULL_ACCESS)
    return bool(document.get("Statement") == FULL_ACCESS["Statement"] or
                document.get("Statement") == FULL_ACCESS["Statement"][0])


def diff_lines(current: str | None, wanted: str | dict[str, Any] | None) -> list[str]:
    """The unified diff of two policies' canonical text, without the file header."""
    lines = difflib.unified_diff(canonical(current).splitlines(), canonical(wanted).splitlines(), lineterm="", n=1)
    return [line for line in lines if not line.startswith(("---", "+++"))]


def summary(policy: dict[str, Any]) -> list[str]:
    """One line per statement, for `plan`: Sid, what it allows, on what, for whom."""
    out = []
    for statement in policy.get("Statement", []):
        actions = ", ".join(_values(statement.get("Action"))) or "?"
        resources = ", ".join(_values(statement.get("Resource"))) or "?"
        words = {"StringEquals": "in", "StringLike": "like", "ArnLike": "like", "ArnEquals": "in"}
        conditions = " and ".join(f"{key} {words.get(op, op)} {','.join(_values(value)) or value}"
                                  for op, keys in (statement.get("Condition") or {}).items()
                                  for key, value in keys.items())
        out.append(f"{statement.get('Sid', statement.get('Effect', ''))}: {actions} on {resources}"
                   + (f" if {conditions}" if conditions else " for anyone"))
    return out


def check_document(text: str, where: str) -> dict[str, Any]:
    """A user's endpoint policy: JSON with statements AWS would accept, else ValueError naming the problem."""
    if len(text) > MAX_POLICY_CHARS:
        raise ValueError(f"{where} is {len(text)} characters; AWS allows {MAX_POLICY_CHARS} for an endpoint policy")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where} is not valid JSON ({exc})") from None
    if not isinstance(document, dict) or "Statement" not in document:
        raise ValueError(f"{where} has no Statement")
    try:
        listed = statements(document)
    except Unjudged as exc:
        raise ValueError(f"{where}: {exc}") from None
    for i, statement in enumerate(listed):
        if statement.get("Effect") not in ("Allow", "Deny"):
            raise ValueError(f"{where}: statement {i} has no Effect Allow or Deny")
        if "Principal" not in statement and "NotPrincipal" not in statement:
            raise ValueError(f"{where}: statement {i} has no Principal (an endpoint policy needs one, e.g. \"*\")")
        if "Action" not in statement and "NotAction" not in statement:
            raise ValueError(f"{where}: statement {i} has no Action")
    return document
