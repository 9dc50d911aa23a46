"""Error translation: every botocore exception and AWS error code becomes one of the project's typed errors
(`AwsApiError` and its kinds, `UsageError`) with a hint a human can act on; `Client` makes every call of a boto3
client raise those instead of botocore's."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import botocore.exceptions as bx

from eksprivate.errors import (
    AccessDenied,
    AlreadyExists,
    AwsApiError,
    ConditionalConflict,
    DependencyViolation,
    EksPrivateError,
    InUse,
    InvalidParameter,
    InvalidState,
    NotFound,
    PreconditionFailed,
    StillPropagating,
    UsageError,
)
from eksprivate.grants import iam_action
from eksprivate.propagation import is_propagating

# Error codes that mean "a service quota was hit", so we can say which.
QUOTA_CODES = {
    "VpcLimitExceeded",
    "SubnetLimitExceeded",
    "RouteTableLimitExceeded",
    "SecurityGroupLimitExceeded",
    "VpcEndpointLimitExceeded",
    "AddressLimitExceeded",
    "ResourceLimitExceededException",
    "LimitExceeded",
    "LimitExceededException",
    "ServiceQuotaExceededException",
}
# The Service Quotas entry behind an EC2 limit code, so the message can say which quota to raise
# (EKS, IAM and KMS name the quota in their error message already).
QUOTA_NAMES = {
    "VpcLimitExceeded": "VPCs per Region (vpc L-F678F1CE)",
    "SubnetLimitExceeded": "Subnets per VPC (vpc L-407747CB)",
    "RouteTableLimitExceeded": "Route tables per VPC (vpc L-589F43AA)",
    "SecurityGroupLimitExceeded": "VPC security groups per Region (vpc L-E79EC296)",
    "VpcEndpointLimitExceeded": "Interface VPC endpoints per VPC (vpc L-29B6F2EB)",
    "NetworkInterfaceLimitExceeded": "Network interfaces per Region (vpc L-DF5E4CA3)",
}
DENIED_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess"}
EXPIRED_CODES = {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}
BAD_CREDENTIAL_CODES = {"InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch",
                        "AuthFailure", "InvalidAccessKeyId"}


ALREADY_EXISTS_CODES = {"EntityAlreadyExists", "ResourceAlreadyExistsException", "AlreadyExistsException",
                        "RepositoryAlreadyExistsException", "InvalidLaunchTemplateName.AlreadyExistsException",
                        "PullThroughCacheRuleAlreadyExistsException"}
INVALID_PARAMETER_CODES = {"InvalidParameterException", "InvalidParameter", "InvalidParameterValue",
                           "InvalidParameterCombination", "InvalidRequestException", "ValidationError",
                           "MalformedPolicyDocument", "InvalidLaunchTemplateId.Malformed",
                           "InvalidLaunchTemplateName.MalformedException"}
INVALID_STATE_CODES = {"KMSInvalidStateException", "IncorrectState", "InvalidStateException"}


def is_not_found(code: str) -> bool:
    """Every service spells "no such resource" its own way (InvalidVpcID.NotFound, NoSuchEntity, ...)."""
    return code.endswith(("NotFound", "NotFoundException", ".NotFound", "NotFoundFault")) or code in {
        "NoSuchEntity", "ResourceNotFoundException", "InvalidServiceName", "InvalidVpcID.NotFound",
        "LoadBalancerNotFound",
        "InvalidLaunchTemplateName.NotFoundException", "InvalidLaunchTemplateId.NotFound",
        "NoSuchBucket", "NoSuchKey", "404"}  # S3; HEAD requests have no body, so only the status: "404"


def error_class(code: str) -> type[AwsApiError]:
    """The typed error for an AWS error code (AwsApiError itself when none fits)."""
    if is_not_found(code):
        return NotFound
    if code in ALREADY_EXISTS_CODES or code.endswith("AlreadyExists"):
        return AlreadyExists
    # EKS's ResourceInUseException; ELBv2's ResourceInUse (a target group a listener uses); EC2's
    # InvalidNetworkInterface.InUse, VolumeInUse; EFS's FileSystemInUse (mount targets left).
    if code in ("ResourceInUseException", "ResourceInUse", "VolumeInUse", "FileSystemInUse") or code.endswith(".InUse"):
        return InUse
    if code == "DependencyViolation":
        return DependencyViolation
    if code in DENIED_CODES or code == "403":  # "403": S3's HEAD requests answer with the status only
        return AccessDenied
    if code == "PreconditionFailed":
        return PreconditionFailed
    if code == "ConditionalRequestConflict":
        return ConditionalConflict
    if code in INVALID_STATE_CODES:
        return InvalidState
    if code in INVALID_PARAMETER_CODES:
        return InvalidParameter
    return AwsApiError


def typed_error(service: str, operation: str, code: str, message: str, hint: str | None = None, *,
                in_body: bool = False) -> AwsApiError:
    """The typed error for an AWS refusal, also for one reported in a response body (`in_body`: EC2's
    `Unsuccessful` items, judged by message alone): a refusal `propagation` lists for this call is
    `StillPropagating`, so callers can retry it."""
    cls = error_class(code)
    if (issubclass(cls, InvalidParameter) or in_body) and is_propagating(service, operation, code, message,
                                                                         any_code=in_body):
        cls = StillPropagating
    return cls(service, operation, code, message, hint)


# AWS's access-denied messages, in the form the IAM User Guide documents ("Access denied error messages"):
# "User: <principal> is not authorized to perform: <action> on resource: <arn> because <why>" (or "with an
# explicit deny in <policy type>"); S3 quotes the resource; EC2 appends "Encoded authorization failure message:".
DENIAL = re.compile(r"is not authorized to perform: (?P<action>[A-Za-z0-9-]+:[A-Za-z0-9*]+)"
                    r"(?: on resource: \"?(?P<resource>[^\s\"]+)\"?)?"
                    r"(?: (?P<reason>(?:because|with) [^.]*))?")
ENCODED = re.compile(r"Encoded authorization failure message: (?P<encoded>\S+)")


def access_denied(service: str, operation: str, code: str, message: str, *, prefix: str = "",
                  action_of: str = "") -> AccessDenied:
    """The typed refusal of a call the caller may not make, saying in one line what to grant: the action AWS
    refused (the one its message names, e.g. iam:PassRole refused on CreateCluster, else the call's own), the
    resource when AWS names it, and AWS's reason. `action_of` is the API operation the action comes from (a
    waiter's is its underlying Describe call, not the waiter's name)."""
    said = DENIAL.search(message)
    action = said["action"] if said else iam_action(prefix or service, action_of or operation)  # grants.py
    resource = said["resource"] if said else None
    reason = said["reason"].strip() if said and said["reason"] else None
    encoded = ENCODED.search(message)
    text = f"not allowed to call {action}" + (f" on {resource}" if resource else "") + (
        f" ({reason})" if reason else "")
    if reason and "explicit deny" in reason:
        hint = ("an explicit deny wins over any allow: whoever owns that policy must lift it; "
                "`eksprivate permissions` prints the whole policy eksprivate needs")
    else:
        hint = f"grant {action}, then rerun: `eksprivate permissions` prints the whole policy eksprivate needs"
    if encoded:
        hint += "; EC2 encoded why in its answer (`aws sts decode-authorization-message` decodes it)"
    error = AccessDenied(service, operation, code, text, hint)
    error.aws_message = message
    error.action, error.resource, error.reason = action, resource, reason
    error.encoded = encoded["encoded"] if encoded else None
    return error


def translate(exc: Exception, service: str = "", operation: str = "", prefix: str = "") -> EksPrivateError:
    """Turn a botocore exception into the project's error with a hint a human can act on. `prefix`: the
    service's IAM action prefix (its signing name), when the caller knows it."""
    if isinstance(exc, EksPrivateError):
        return exc
    if isinstance(exc, bx.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", "Unknown"))
        op = operation or exc.operation_name
        if error_class(code) is AccessDenied:
            return access_denied(service, op, code, str(err.get("Message", "")), prefix=prefix,
                                 action_of=exc.operation_name)
        message = one_line(str(err.get("Message", "")) or str(exc))
        hint: str | None = None
        if code in EXPIRED_CODES:
            hint = "your AWS credentials have expired; refresh them (e.g. `aws sso login`) and rerun"
        elif code in BAD_CREDENTIAL_CODES:
            hint = "the AWS credentials are not valid for this account/region; check your profile"
        elif code in QUOTA_CODES or code in QUOTA_NAMES:
            quota = f"the {service} quota {QUOTA_NAMES[code]}" if code in QUOTA_NAMES else f"a {service} quota"
            hint = f"{quota} is used up; raise it in Service Quotas or free some, then rerun"
        elif code == "UnsupportedAvailabilityZoneException":  # a zone EKS refuses that eksprivate.zones lacks
            hint = ("the AZs of a cluster cannot change: `eksprivate down`, then `up` with availability_zones "
                    "set to zones EKS lists as valid (and please report the zone ID)")
        return typed_error(service, op, code, message, hint)
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return UsageError("no AWS credentials found",
                          "set --profile or AWS_PROFILE, run `aws sso login`, or try --sandbox")
    if isinstance(exc, bx.ProfileNotFound):
        return UsageError(str(exc), "list profiles with `aws configure list-profiles`")
    if isinstance(exc, bx.NoRegionError):
        return UsageError("no AWS region given", "pass --region, set AWS_REGION, or set one in the profile")
    if isinstance(exc, bx.SSOError | bx.TokenRetrievalError | bx.UnauthorizedSSOTokenError
                  | bx.SSOTokenLoadError):
        return UsageError(f"AWS SSO login needed: {exc}", "run `aws sso login` and rerun")
    if isinstance(exc, bx.EndpointConnectionError | bx.ConnectTimeoutError | bx.ReadTimeoutError):
        return EksPrivateError(f"cannot reach AWS: {exc}", "check the network (or the sandbox) and rerun")
    if isinstance(exc, bx.ParamValidationError):
        return UsageError(f"invalid request to {service} {operation}: {exc}")
    if isinstance(exc, bx.BotoCoreError):
        return EksPrivateError(f"AWS SDK error in {service} {operation}: {exc}")
    raise exc


class Client:
    """A boto3 client whose calls raise the project's errors instead of botocore's."""

    def __init__(self, service: str, raw: Any) -> None:
        self.service = service
        self.raw = raw
        # The IAM action prefix of the service (elbv2 -> elasticloadbalancing): its signing name, from the model.
        self.prefix = str(getattr(getattr(getattr(raw, "meta", None), "service_model", None), "signing_name", "")
                          or service)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.raw, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except (bx.ClientError, bx.BotoCoreError) as exc:
                raise translate(exc, self.service, operation_name(name), self.prefix) from exc

        return call

    def paginate(self, operation: str, key: str, **kwargs: Any) -> Iterator[Any]:
        """Yield every item under `key` across all pages."""
        try:
            for page in self.raw.get_paginator(operation).paginate(**kwargs):
                yield from page.get(key, [])
        except (bx.ClientError, bx.BotoCoreError) as exc:
            raise translate(exc, self.service, operation_name(operation), self.prefix) from exc


def one_line(text: str, limit: int = 300) -> str:
    """AWS (and proxies in front of it) sometimes answer with HTML or multi-line text."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def operation_name(method: str) -> str:
    return "".join(part.capitalize() for part in method.split("_"))


def update_errors(update: dict[str, Any]) -> str:
    """EKS's ErrorDetail list of a failed update, as one line (or the cancellation reason)."""
    parts = []
    for err in update.get("errors") or []:
        ids = ", ".join(err.get("resourceIds") or [])
        parts.append(f"{err.get('errorCode', 'Unknown')}: {one_line(str(err.get('errorMessage', '')))}"
                     + (f" ({ids})" if ids else ""))
    reason = (update.get("cancellation") or {}).get("reason")
    if reason:
        parts.append(f"cancelled: {one_line(str(reason))}")
    return "; ".join(parts) or "AWS gave no error details"


def failure_detail(response: dict[str, Any]) -> str:
    """Pull the useful part out of a failed resource (EKS health issues, endpoint state)."""
    for key in ("cluster", "nodegroup", "addon"):
        res = response.get(key)
        if isinstance(res, dict):
            issues = res.get("health", {}).get("issues", [])
            text = "; ".join(f"{i.get('code')}: {i.get('message')}" for i in issues)
            return f"status {res.get('status')}" + (f" ({text})" if text else "")
    eps = response.get("VpcEndpoints")
    if isinstance(eps, list):
        return ", ".join(f"{e.get('VpcEndpointId')} {e.get('State')}" for e in eps)
    return ""
