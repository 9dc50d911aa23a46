"""AWS partitions (aws, aws-cn, aws-us-gov, ...): the ARN prefix, the DNS suffix, and the service
principals IAM expects in trust policies.

The partition is never guessed from the region name: `target.open_context` takes it from the caller's
ARN (`sts:GetCallerIdentity`), which is the partition the account really lives in. The DNS suffix comes
from botocore's own partition data (`partitions.json`), so a partition botocore knows works without a
table here. Sources for every fact: docs/aws-fidelity.md, section "Zones, partitions, endpoint services".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from eksprivate.aws import partition_dns_suffix

_ARN = re.compile(r"^arn:(?P<partition>[a-z][a-z0-9-]*):")

# Service principals that differ from "<service>.amazonaws.com" in a partition. Only what is stated
# somewhere we can point at: EC2's principal in aws-cn is "ec2.amazonaws.com.cn" (eksctl's
# ServicePrincipalPartitionMap for node roles; IAM in cn-north-1 refused "ec2.amazonaws.com" as an
# invalid principal, kubernetes/kops#27). eks and vpc-flow-logs keep ".amazonaws.com" everywhere
# (eksctl's map for eks; nothing says otherwise for vpc-flow-logs, see docs/aws-fidelity.md).
PRINCIPAL_EXCEPTIONS: dict[tuple[str, str], str] = {
    ("aws-cn", "ec2"): "ec2.amazonaws.com.cn",
}


@dataclass(frozen=True)
class Partition:
    """One AWS partition: builds ARNs and service principals for it."""

    name: str = "aws"
    dns_suffix: str = "amazonaws.com"

    def arn(self, service: str, region: str, account: str, resource: str) -> str:
        """`arn:<partition>:<service>:<region>:<account>:<resource>` (region/account may be empty)."""
        return f"arn:{self.name}:{service}:{region}:{account}:{resource}"

    def managed_policy(self, name: str) -> str:
        """An AWS managed IAM policy, e.g. AmazonEKSClusterPolicy."""
        return self.arn("iam", "", "aws", f"policy/{name}")

    def principal(self, service: str) -> str:
        """The service principal for `service` (e.g. "ec2") in this partition's trust policies."""
        return PRINCIPAL_EXCEPTIONS.get((self.name, service), f"{service}.amazonaws.com")


AWS = Partition()


def named(name: str) -> Partition:
    """The partition called `name`, with its DNS suffix from botocore's partition data."""
    return Partition(name, partition_dns_suffix(name))


def of_arn(arn: str) -> Partition:
    """The partition an ARN belongs to (the caller identity's, for the account in use)."""
    match = _ARN.match(arn)
    if match is None:
        raise ValueError(f"not an ARN: {arn!r}")
    return named(match["partition"])
