"""What a step (or a command) is allowed to call: IAM actions, on which resources, under which conditions.

A leaf module: plain values and the ARNs they name, nothing of AWS or of the steps. Each step declares its
grants beside its code (`Step.grants`), each command that is not a step beside its own (`permissions.py`
collects them), and `eksprivate permissions` prints their union for a configuration. Nothing here is kept
by hand in a second place: the sandbox's call log checks every call a full life makes against them
(tests/test_permissions.py).

A grant also holds what AWS checks *beside* the call it is for, as AWS documents it: `iam:PassRole` on a
role handed to a service (`pass_role`), `ec2:CreateTags` for tags given at creation (`ec2_tag_on_create`),
`kms:CreateGrant`/`kms:DescribeKey` for EKS secrets encryption. Sources: docs/permissions.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

# When a step makes the call: `find` covers every read of the graph's walk (find, ready, gone, status; plan
# and status call nothing else), `create` the create verb, `update` what `up` applies to an existing resource
# (diff, resume), `remove` what `down` (and `up --prune`) calls (remove, gone).
Verb = Literal["find", "create", "update", "remove"]
VERBS: tuple[Verb, ...] = ("find", "create", "update", "remove")
WRITES: tuple[Verb, ...] = ("create", "update", "remove")


@dataclass(frozen=True, order=True)
class Condition:
    """One IAM condition: `{operator: {key: values}}` ("StringEquals", "iam:PassedToService", (...))."""

    operator: str
    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Grant:
    """IAM `actions` on `resources` (ARNs, `*` where the action takes no resource ARN), allowed only under
    `conditions`, called by the `verbs` named; `why` says what for (the text output and the docs)."""

    actions: tuple[str, ...]
    resources: tuple[str, ...] = ("*",)
    verbs: tuple[Verb, ...] = VERBS
    conditions: tuple[Condition, ...] = ()
    why: str = ""

    def __post_init__(self) -> None:
        for action in self.actions:
            service, _, name = action.partition(":")
            if not service or not name:
                raise ValueError(f"not an IAM action: {action!r}")
            if "*" in name and not name.startswith(("Describe", "List", "Get")):
                raise ValueError(f"{action}: an action wildcard is only for read verbs")
        unknown = set(self.verbs) - set(VERBS)
        if unknown:
            raise ValueError(f"unknown verb(s) {sorted(unknown)}")

    @property
    def services(self) -> set[str]:
        return {action.split(":", 1)[0] for action in self.actions}


def grant(verbs: Verb | Sequence[Verb], *actions: str, on: str | Sequence[str] = "*",
          when: Sequence[Condition] = (), why: str = "") -> Grant:
    """`grant("remove", "ec2:DeleteVpc", on=..., why=...)`: the usual way a step writes one."""
    return Grant(tuple(actions), (on,) if isinstance(on, str) else tuple(on),
                 (verbs,) if isinstance(verbs, str) else tuple(verbs), tuple(when), why)


def reads(*actions: str, on: str | Sequence[str] = "*", why: str = "") -> Grant:
    """Read-only calls; every verb may make them (find before create, describe while waiting)."""
    return grant(VERBS, *actions, on=on, why=why)


def equals(key: str, *values: str) -> Condition:
    return Condition("StringEquals", key, tuple(values))


def pass_role(role_arn: str, service: str | None, verbs: Verb | Sequence[Verb] = ("create", "update"),
              why: str = "") -> Grant:
    """`iam:PassRole` on one role, only to the service principal (`iam:PassedToService`) it is handed to. AWS
    checks it on the call that hands the role over (CreateCluster roleArn, CreateNodegroup nodeRole,
    CreateFlowLogs DeliverLogsPermissionArn, a Pod Identity association's roleArn). `service` None: AWS documents
    no service for the call (flow logs): the grant is limited to the one role only."""
    when = [equals("iam:PassedToService", service)] if service else []
    return grant(verbs, "iam:PassRole", on=role_arn, when=when, why=why or f"hand the role to {service}")


def ec2_write(arns: Arns, verbs: Verb | Sequence[Verb], *actions: str, extra: Sequence[str] = (),
              why: str = "") -> Grant:
    """EC2 writes: on this account's resources in this region (their ids are unknown before they exist; what
    the steps delete they found by the cluster's tag). `extra`: resources of other owners the call also
    names (an AWS endpoint service)."""
    return grant(verbs, *actions, on=[arns.ec2("*"), *extra], why=why)


def ec2_tag_on_create(arns: Arns, *create_actions: str, verbs: Verb | Sequence[Verb] = "create") -> Grant:
    """`ec2:CreateTags` for tags given at creation (TagSpecifications): EC2 authorises CreateTags too, and
    `ec2:CreateAction` limits it to those creating calls, so it tags nothing that exists."""
    names = tuple(action.split(":", 1)[1] for action in create_actions)
    return grant(verbs, "ec2:CreateTags", on=arns.ec2("*/*"), when=[equals("ec2:CreateAction", *names)],
                 why="tags given at creation (TagSpecifications), only on " + ", ".join(names))


@dataclass(frozen=True)
class Arns:
    """ARNs of this cluster's resources in its partition, region and account (`account` may be `*` when
    the policy is printed for an account not yet known)."""

    partition: str
    region: str
    account: str
    cluster: str

    def arn(self, service: str, resource: str, *, regional: bool = True) -> str:
        return f"arn:{self.partition}:{service}:{self.region if regional else ''}:{self.account}:{resource}"

    def ec2(self, resource: str) -> str:
        return self.arn("ec2", resource)

    def role(self, name: str) -> str:
        return self.arn("iam", f"role/{name}", regional=False)

    def eks_cluster(self) -> str:
        return self.arn("eks", f"cluster/{self.cluster}")

    def eks_nodegroup(self, group: str = "*") -> str:
        # nodegroup/<cluster>/<group>/<uuid>
        return self.arn("eks", f"nodegroup/{self.cluster}/{group}/*")

    def eks_addon(self, addon: str = "*") -> str:
        return self.arn("eks", f"addon/{self.cluster}/{addon}/*")

    def eks_access_entry(self) -> str:
        return self.arn("eks", f"access-entry/{self.cluster}/*")

    def eks_access_policy(self) -> str:
        return f"arn:{self.partition}:eks::aws:cluster-access-policy/*"

    def log_group(self, name: str) -> tuple[str, str]:
        """A log group's ARN as CloudWatch Logs authorises it: the group, and its `:*` form (streams)."""
        base = self.arn("logs", f"log-group:{name}")
        return base, f"{base}:*"

    def kms_key(self, key: str = "*") -> str:
        return self.arn("kms", f"key/{key}")

    def kms_alias(self, alias: str) -> str:
        return self.arn("kms", alias)

    def ecr_repository(self, name: str) -> str:
        return self.arn("ecr", f"repository/{name}")


# The IAM action an API operation is authorised as, where it is not `<signing name>:<operation>` (S3's bucket
# and object operations: Service Authorization Reference for Amazon S3, "Actions" table).
S3_ACTIONS = {"HeadBucket": "s3:ListBucket", "ListObjectsV2": "s3:ListBucket", "ListObjects": "s3:ListBucket",
              "HeadObject": "s3:GetObject", "GetBucketEncryption": "s3:GetEncryptionConfiguration",
              "DeleteObjects": "s3:DeleteObject"}
# Operations AWS authorises for every caller, whatever its policies say (sts:GetCallerIdentity: "No permissions
# are required to perform this operation", STS API Reference).
ALWAYS_ALLOWED = frozenset({"sts:GetCallerIdentity"})


def iam_action(service: str, operation: str) -> str:
    """The IAM action of an API call: `service` is its SigV4 signing name (ec2, eks, elasticloadbalancing, ...)."""
    if service == "s3":
        return S3_ACTIONS.get(operation, f"s3:{operation}")
    return f"{service}:{operation}"
