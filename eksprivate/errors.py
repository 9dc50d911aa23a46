"""The project's own errors: every failure a user can see is one of these.

Each carries a one-line message (what, why) and an optional hint (what to do). The CLI turns them
into a red line and an exit code; nothing below the CLI prints or exits.
"""

from __future__ import annotations


class EksPrivateError(Exception):
    """A failure the user should read as one clear line. Exit code 1."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} — {self.hint}"


class UsageError(EksPrivateError):
    """Bad flags, bad configuration, a state file that does not fit: nothing was changed. Exit code 2."""

    exit_code = 2


class StateError(UsageError):
    """The state file is unreadable, belongs to something else, or is locked by another run."""


class AwsApiError(EksPrivateError):
    """An AWS call failed. Domain code reads `.code`; users read the message."""

    def __init__(self, service: str, operation: str, code: str, message: str, hint: str | None = None):
        super().__init__(f"{service} {operation} failed: {code}: {message}", hint)
        self.service = service
        self.operation = operation
        self.code = code
        self.aws_message = message


class WaitTimeout(EksPrivateError):
    """A resource did not reach the wanted status in time."""


class ResourceFailed(EksPrivateError):
    """A resource reached a terminal failed status (CREATE_FAILED, failed, ...)."""


class Interrupted(EksPrivateError):
    """The run was stopped by the user (Ctrl-C) or a signal; the state is saved."""

    exit_code = 130


# -- typed AWS errors ---------------------------------------------------------------------------
# The boundary (`aws.translate`) picks one of these from AWS's error code, so callers catch a *type*
# (`except NotFound:`) instead of comparing code strings. Each keeps `.code` and `.aws_message`.


class NotFound(AwsApiError):
    """The resource does not exist (any service's *NotFound* code, NoSuchEntity, ...)."""


class AlreadyExists(AwsApiError):
    """A create found the name taken (EntityAlreadyExists, ResourceAlreadyExistsException, ...)."""


class InUse(AwsApiError):
    """EKS's ResourceInUseException: another operation on the resource is still running, or it has
    dependents (node groups on a cluster); usually ends by itself. Also ELBv2's ResourceInUse, EC2's
    *.InUse and VolumeInUse, EFS's FileSystemInUse: something still uses the resource."""


class DependencyViolation(AwsApiError):
    """EC2 refuses a delete while something still uses the resource (ENIs, load balancers, ...)."""


class AccessDenied(AwsApiError):
    """The caller lacks a permission (EC2 UnauthorizedOperation, IAM/STS/S3 AccessDenied, the JSON services'
    AccessDeniedException, S3's bare 403). `action` is the IAM action refused (`iam:PassRole` when AWS names
    one other than the call's own), `resource` what it was refused on when AWS says, `reason` AWS's why
    ("no identity-based policy allows ...", "an explicit deny in a service control policy"), `encoded` EC2's
    encoded authorization message (decoded only by sts:DecodeAuthorizationMessage)."""

    action: str = ""
    resource: str | None = None
    reason: str | None = None
    encoded: str | None = None


class InvalidParameter(AwsApiError):
    """AWS refused a parameter (InvalidParameterException, InvalidParameterValue, ...)."""


class StillPropagating(InvalidParameter):
    """AWS refused a fresh IAM role or policy attachment it has not propagated yet; retrying succeeds
    within seconds to a minute (see `eksprivate.propagation`)."""


class InvalidState(AwsApiError):
    """The resource is in a state that does not allow the call (KMSInvalidStateException, ...)."""


class PreconditionFailed(AwsApiError):
    """S3 refused a conditional write (HTTP 412): `If-None-Match: *` found the key taken, or `If-Match`
    found another ETag, i.e. someone else wrote the object since it was read."""


class ConditionalConflict(AwsApiError):
    """S3's 409 ConditionalRequestConflict: another operation on the key raced this conditional write;
    AWS says to retry (a retry then answers 200 or 412)."""
