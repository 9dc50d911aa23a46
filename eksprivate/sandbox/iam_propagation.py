"""IAM propagation in the sandbox: services refuse a role (or policy attachment) that is too young.

moto makes a role and attaches a policy at once, and every service may use them the next millisecond.
In AWS, IAM is eventually consistent: for seconds (rarely a minute) after CreateRole / AttachRolePolicy
the services that use the role cannot see it, and refuse the call, each in its own words:

* EKS CreateCluster: "Role with arn: <arn>, could not be assumed ..." while the role is young (or missing,
  or not trusting eks.amazonaws.com), then "The provided role doesn't have the Amazon EKS Managed Policies
  associated with it ..." while the AmazonEKSClusterPolicy attachment is young (or absent);
* EKS CreateNodegroup: "Following required service principals [ec2.amazonaws.com] were not found in the
  trust relationships of nodeRole <arn>" while the node role is young (or not trusting EC2);
* EC2 CreateFlowLogs: "Unable to assume given IAM role: '<arn>'" while the delivery role is young (or
  missing, or its trust policy - conditions included - does not let this account's flow logs assume it).
  AWS has been seen answering with an error (terraform-provider-aws #29323); its model also lets it report
  the refusal as an `Unsuccessful` item of a 200 answer. `set_flow_logs_refusal` picks the form, so the
  code path for each can be tested.

"Young" means younger than `Timing.iam_role_delay` (scaled) on the sandbox's monotonic clock. The messages
are the ones `eksprivate.propagation` retries; the sources are in docs/aws-fidelity.md (iam-propagation).

moto is imported inside functions only: importing this module stays cheap.
"""

from __future__ import annotations

import fnmatch
import json
import re
import threading
from typing import TYPE_CHECKING, Any, Literal

from eksprivate.sandbox.core import clock
from eksprivate.sandbox.core.patching import EKS_CLUSTER_CREATING, EKS_NODEGROUP_CREATING

if TYPE_CHECKING:
    from eksprivate.sandbox.core.patching import Patcher

FlowLogsRefusal = Literal["error", "unsuccessful"]

_BORN = "_sandbox_born"  # on a moto Role: when CreateRole returned (sandbox clock)
_ATTACHED = "_sandbox_attached"  # on a moto Role: {policy arn: when AttachRolePolicy returned}
_ROLE_ARN = re.compile(r"^arn:(?P<partition>[^:]+):iam::(?P<account>\d{12}):role/(?:.*/)?(?P<name>[^/]+)$")
CLUSTER_POLICY = "AmazonEKSClusterPolicy"

_settings_lock = threading.Lock()
_flow_logs_refusal: FlowLogsRefusal = "error"


def set_flow_logs_refusal(form: FlowLogsRefusal) -> FlowLogsRefusal:
    """How CreateFlowLogs refuses a role it cannot assume: "error" (an InvalidParameter error, what AWS
    was seen doing) or "unsuccessful" (an `Unsuccessful` item in a 200 answer). Returns the previous form."""
    global _flow_logs_refusal
    if form not in ("error", "unsuccessful"):
        raise ValueError(f"flow logs refusal must be 'error' or 'unsuccessful', not {form!r}")
    with _settings_lock:
        previous, _flow_logs_refusal = _flow_logs_refusal, form
    return previous


def flow_logs_refusal() -> FlowLogsRefusal:
    return _flow_logs_refusal


def install(patcher: Patcher) -> None:
    """Remember when roles are made and policies attached; refuse CreateFlowLogs while its role is young
    and EKS's CreateCluster/CreateNodegroup (the events eks_lifecycle emits before it makes one)."""
    from moto.ec2.models import EC2Backend
    from moto.iam.models import IAMBackend

    original_create_role = IAMBackend.create_role
    original_attach = IAMBackend.attach_role_policy
    original_flow_logs = EC2Backend.create_flow_logs

    def create_role(self: Any, *args: Any, **kwargs: Any) -> Any:
        role = original_create_role(self, *args, **kwargs)
        # Our own clock, not role.create_date: the delay must follow the (monotonic, scaled) sandbox time.
        vars(role)[_BORN] = clock.now()
        return role

    def attach_role_policy(self: Any, policy_arn: str, role_name: str) -> None:
        original_attach(self, policy_arn, role_name)
        # Models AWS: an attachment propagates like a role; EKS checks AmazonEKSClusterPolicy's.
        vars(self.get_role(role_name)).setdefault(_ATTACHED, {})[policy_arn] = clock.now()

    def create_flow_logs(self: Any, **kwargs: Any) -> Any:
        role_arn = kwargs.get("deliver_logs_permission_arn")
        if (kwargs.get("log_destination_type") or "cloud-watch-logs") == "cloud-watch-logs" and role_arn:
            refusal = _flow_logs_role_refusal(role_arn, self.account_id, self.region_name)
            if refusal is not None:
                if flow_logs_refusal() == "unsuccessful":
                    return [], [(rid, "InvalidParameter", refusal) for rid in kwargs.get("resource_ids") or []]
                from moto.ec2.exceptions import EC2ClientError

                raise EC2ClientError("InvalidParameter", refusal)
        return original_flow_logs(self, **kwargs)

    patcher.replace_method(IAMBackend, "create_role", create_role)
    patcher.replace_method(IAMBackend, "attach_role_policy", attach_role_policy)
    patcher.replace_method(EC2Backend, "create_flow_logs", create_flow_logs)
    patcher.on(EKS_CLUSTER_CREATING, lambda role_arn: require_cluster_role(role_arn))
    patcher.on(EKS_NODEGROUP_CREATING, lambda node_role: require_node_role(node_role))


# ---------------------------------------------------------------------------------------------------
# What a service sees of a role


def _young(stamp: float | None) -> bool:
    """Made (or attached) less than the propagation delay ago. No stamp: made before install(), old."""
    timing = clock.current_timing()
    return stamp is not None and clock.now() - stamp < timing.scaled(timing.iam_role_delay)


def _role(role_arn: str | None) -> Any:
    """moto's Role for an ARN, or None when it does not exist (or the ARN names another path)."""
    from moto.iam.exceptions import NotFoundException
    from moto.iam.models import iam_backends

    match = _ROLE_ARN.match(role_arn or "")
    if match is None:
        return None
    try:
        role = iam_backends[match["account"]][match["partition"]].get_role(match["name"])
    except NotFoundException:
        return None
    return role if role.arn == role_arn else None


def _condition_holds(condition: Any, context: dict[str, str]) -> bool:
    """A trust statement's Condition against the request context (the operators trust policies of service
    roles use; any other is not understood and so not met, as a refusal is the safe answer)."""
    if not isinstance(condition, dict):
        return False
    keys = {k.lower(): v for k, v in context.items()}
    for operator, tests in condition.items():
        if operator not in ("StringEquals", "StringLike", "ArnEquals", "ArnLike") or not isinstance(tests, dict):
            return False
        for key, wanted in tests.items():
            actual = keys.get(key.lower())
            values = [wanted] if isinstance(wanted, str) else list(wanted)
            if actual is None:
                return False
            if operator == "StringEquals":
                matched = actual in values
            else:  # the *Like and Arn* operators take * and ? wildcards
                matched = any(fnmatch.fnmatchcase(actual, v) for v in values)
            if not matched:
                return False
    return True


def trusts(role: Any, services: tuple[str, ...], context: dict[str, str] | None = None) -> bool:
    """Whether the role's trust policy lets one of `services` assume it. With a request `context`, the
    statement's conditions must hold too (without one they are not checked)."""
    try:
        document = json.loads(role.assume_role_policy_document)
    except (TypeError, ValueError):
        return False
    statements = document.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal", {})
        allowed = principal.get("Service", []) if isinstance(principal, dict) else []
        actions = statement.get("Action", [])
        allowed = [allowed] if isinstance(allowed, str) else allowed
        actions = [actions] if isinstance(actions, str) else actions
        if not set(services) & set(allowed) or not {"sts:AssumeRole", "sts:*", "*"} & set(actions):
            continue
        if context is not None and "Condition" in statement and not _condition_holds(statement["Condition"], context):
            continue
        return True
    return False


def _principals(service: str, partition: str) -> tuple[str, ...]:
    # China regions also name service principals with a .com.cn suffix; accept either spelling there.
    return (service, f"{service}.cn") if partition == "aws-cn" else (service,)


def require_assumable_role(role_arn: str | None, service: str) -> None:
    """Raise EKS's InvalidParameterException unless the role exists, trusts `service` and has propagated.
    Malformed ARNs are left to moto's own validation ("Invalid Role Arn")."""
    from moto.eks.exceptions import InvalidParameterException

    match = _ROLE_ARN.match(role_arn or "")
    if match is None:
        return
    role = _role(role_arn)
    if role is None or not trusts(role, _principals(service, match["partition"])) or _young(vars(role).get(_BORN)):
        raise InvalidParameterException(
            message=f"Role with arn: {role_arn}, could not be assumed because it does not exist "
            "or the trusted entity is not correct"
        )


def require_cluster_role(role_arn: str | None) -> None:
    """CreateCluster's checks: the role is assumable by EKS, then AmazonEKSClusterPolicy is attached and
    that attachment has propagated."""
    from moto.eks.exceptions import InvalidParameterException

    require_assumable_role(role_arn, "eks.amazonaws.com")
    match = _ROLE_ARN.match(role_arn or "")
    role = _role(role_arn)
    if match is None or role is None:
        return
    policy_arn = f"arn:{match['partition']}:iam::aws:policy/{CLUSTER_POLICY}"
    attached_at: float | None = vars(role).get(_ATTACHED, {}).get(policy_arn)
    if policy_arn not in role.managed_policies or _young(attached_at):
        raise InvalidParameterException(
            message="The provided role doesn't have the Amazon EKS Managed Policies associated with it. "
            f"Please ensure the following policy is attached: {policy_arn}"
        )


def require_node_role(role_arn: str | None) -> None:
    """CreateNodegroup's check: the node role trusts EC2, as far as EKS can see yet."""
    from moto.eks.exceptions import InvalidParameterException

    match = _ROLE_ARN.match(role_arn or "")
    if match is None:
        return
    role = _role(role_arn)
    if role is None or not trusts(role, _principals("ec2.amazonaws.com", match["partition"])) or _young(
        vars(role).get(_BORN)
    ):
        raise InvalidParameterException(
            message="Following required service principals [ec2.amazonaws.com] were not found in the trust "
            f"relationships of nodeRole {role_arn}"
        )


def _flow_logs_role_refusal(role_arn: str, account: str, region: str) -> str | None:
    """CreateFlowLogs' answer to a delivery role it cannot assume, or None when it can."""
    match = _ROLE_ARN.match(role_arn)
    role = _role(role_arn)
    # The request context the flow logs service assumes the role in (its confused-deputy keys).
    partition = match["partition"] if match else "aws"
    context = {"aws:SourceAccount": account,
               "aws:SourceArn": f"arn:{partition}:ec2:{region}:{account}:vpc-flow-log/fl-0sandbox"}
    if (role is None or not trusts(role, _principals("vpc-flow-logs.amazonaws.com", partition), context)
            or _young(vars(role).get(_BORN))):
        return f"Unable to assume given IAM role: '{role_arn}'"
    return None
