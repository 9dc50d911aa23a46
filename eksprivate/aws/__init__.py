"""The AWS boundary: the only package that imports boto3/botocore. Everything above it sees `AwsApiError` (with
the AWS error code) and the project's other errors, never botocore's exceptions.

One module per concern:

* `sessions`: `Aws` (one account and region; its clients, made once), botocore's bundled region and partition
  data, the profile's region;
* `errors`: error translation (`translate`, `typed_error`) and `Client`, whose calls raise the project's errors;
* `retries`: botocore's retry policy, `retry_transient` for what AWS makes transient, the pace of polls;
* `waiting`: waiters and EKS updates, paced;
* `calls`: the count of every call (`CallLog`) and the statuses the answers carry.
"""

from eksprivate.aws.calls import READ_PREFIXES, CallLog, StatusListener, is_mutating
from eksprivate.aws.errors import (
    Client,
    error_class,
    is_not_found,
    one_line,
    translate,
    typed_error,
    update_errors,
)
from eksprivate.aws.retries import (
    EXPECTED,
    NEAR_END_FACTOR,
    POLL_ENV,
    REAL_POLL_SECONDS,
    RETRY_CONFIG,
    expected_for,
    paced,
    poll_interval,
    retry_transient,
)
from eksprivate.aws.sessions import (
    Aws,
    _share_loader,
    home_region,
    known_regions,
    partition_dns_suffix,
    partition_of_region,
    profile_region,
    same_partition,
)

__all__ = [
    "EXPECTED",
    "NEAR_END_FACTOR",
    "POLL_ENV",
    "READ_PREFIXES",
    "REAL_POLL_SECONDS",
    "RETRY_CONFIG",
    "Aws",
    "CallLog",
    "Client",
    "StatusListener",
    "_share_loader",
    "error_class",
    "expected_for",
    "home_region",
    "is_mutating",
    "is_not_found",
    "known_regions",
    "one_line",
    "paced",
    "partition_dns_suffix",
    "partition_of_region",
    "poll_interval",
    "profile_region",
    "retry_transient",
    "same_partition",
    "translate",
    "typed_error",
    "update_errors",
]
