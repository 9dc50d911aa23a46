"""VPC endpoint policies as AWS keeps them.

moto stores an endpoint's PolicyDocument as the caller sent it and ignores `ModifyVpcEndpoint(ResetPolicy=True)`
(the old policy stays). AWS:
- restores the full-access policy on ResetPolicy=True (EC2 API reference, ModifyVpcEndpoint: "ResetPolicy:
  (Gateway endpoint) Specify true to reset the policy document to the default policy. The default policy allows
  full access to the service"; the same holds for interface endpoints, whose default is full access too);
- gives an endpoint created without a policy that default (interface endpoints' without a Version, gateway
  endpoints' with "2008-10-17", as DescribeVpcEndpoints shows them);
- answers a policy reformatted, not byte for byte as sent: keys reordered and white space changed
  (hashicorp/terraform#3519, "the AWS API will actually reorder the contents of a policy"; the ACK EC2
  controller compares the field as a policy for that reason, aws-controllers-k8s/ec2-controller#343). The
  exact layout AWS chooses is not documented; this module answers sorted keys and four-space indents, so code
  that compares policy text (instead of documents) sees a difference on every run, as it would on AWS;
- refuses text that is not a policy: "InvalidPolicyDocument: The Policy Document is not valid. Syntax error at
  position (1,75)" (hashicorp/terraform-provider-aws#42291), and one longer than 20,480 characters (AWS
  PrivateLink guide: the maximum size of an endpoint policy).

moto is imported only inside `install()`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eksprivate.sandbox.core.patching import Patcher

MAX_CHARS = 20480
_FULL_ACCESS = [{"Action": "*", "Effect": "Allow", "Principal": "*", "Resource": "*"}]


def default_policy(endpoint_type: str | None) -> str:
    """The policy AWS gives an endpoint created without one (and restores on ResetPolicy)."""
    if str(endpoint_type or "").lower() == "gateway":
        return json.dumps({"Version": "2008-10-17", "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}]})
    return json.dumps({"Statement": _FULL_ACCESS}, indent=2)


def as_aws_keeps_it(policy: str) -> str:
    """`policy` checked as AWS checks it and reformatted as AWS answers it; raises EC2's InvalidPolicyDocument."""
    from moto.ec2.exceptions import EC2ClientError

    if len(policy) > MAX_CHARS:
        raise EC2ClientError("InvalidPolicyDocument", f"The Policy Document is not valid. It is {len(policy)} "
                             f"characters long; the maximum is {MAX_CHARS}")
    try:
        document = json.loads(policy)
    except json.JSONDecodeError as exc:
        raise EC2ClientError("InvalidPolicyDocument", "The Policy Document is not valid. Syntax error at position "
                             f"({exc.lineno},{exc.colno})") from None
    if not isinstance(document, dict) or "Statement" not in document:
        raise EC2ClientError("InvalidPolicyDocument", "The Policy Document is not valid. It has no Statement")
    return json.dumps(document, indent=4, sort_keys=True)


def install(patcher: Patcher) -> None:
    from moto.ec2.models import EC2Backend
    from moto.ec2.responses.vpcs import VPCs

    create_vpc_endpoint = EC2Backend.create_vpc_endpoint  # whatever is current (endpoint_dns', ...): wrapped
    modify_vpc_endpoint = EC2Backend.modify_vpc_endpoint
    modify_response = VPCs.modify_vpc_endpoint

    def create_with_policy(self: Any, *args: Any, **kwargs: Any) -> Any:
        policy = kwargs.get("policy_document")
        kwargs["policy_document"] = as_aws_keeps_it(policy) if policy else default_policy(kwargs.get("endpoint_type"))
        return create_vpc_endpoint(self, *args, **kwargs)

    def modify_with_policy(self: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("policy_doc"):
            kwargs["policy_doc"] = as_aws_keeps_it(kwargs["policy_doc"])
        return modify_vpc_endpoint(self, *args, **kwargs)

    def modify_response_with_reset(self: Any) -> Any:
        result = modify_response(self)
        if self._get_bool_param("ResetPolicy", if_none=False):
            endpoint = self.ec2_backend.describe_vpc_endpoints(vpc_end_point_ids=[self._get_param("VpcEndpointId")])[0]
            endpoint.policy_document = default_policy(endpoint.vpc_endpoint_type)
        return result

    patcher.set_attr(EC2Backend, "create_vpc_endpoint", create_with_policy)
    patcher.set_attr(EC2Backend, "modify_vpc_endpoint", modify_with_policy)
    patcher.set_attr(VPCs, "modify_vpc_endpoint", modify_response_with_reset)
