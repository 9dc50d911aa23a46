"""One private-DNS interface endpoint per service per VPC, as AWS enforces it.

Private DNS makes a VPC resolve the service's public name (sts.<region>.amazonaws.com) to the endpoint's
addresses through a private hosted zone; AWS therefore refuses a second interface endpoint with private
DNS for the same service in the same VPC:

    InvalidParameter: private-dns-enabled cannot be set because there is already a conflicting DNS domain
    for sts.eu-central-1.amazonaws.com in the VPC vpc-...

(wording from hashicorp/terraform-provider-aws#17535). moto creates the second endpoint. This module
makes CreateVpcEndpoint refuse it, so a tool building into a network team's VPC (where such endpoints
already exist) meets the refusal it would meet on AWS. An endpoint without private DNS, or of another
service, or in another VPC, is not refused.

moto is imported only inside `install()`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eksprivate.sandbox.core.patching import Patcher

GONE = ("deleted", "Deleted", "deleting", "Deleting", "failed", "Failed")


def _conflict(backend: Any, kwargs: dict[str, Any]) -> str | None:
    """The DNS name a new endpoint's private DNS would clash with, or None."""
    if str(kwargs.get("endpoint_type") or "").lower() != "interface" or not kwargs.get("private_dns_enabled"):
        return None
    token = kwargs.get("client_token")
    if token and any(getattr(e, "client_token", None) == token for e in backend.vpc_end_points.values()):
        return None  # a retried request: AWS answers it from the token (endpoint_lifecycle), never as a second endpoint
    for endpoint in list(backend.vpc_end_points.values()):
        if (endpoint.vpc_id == kwargs["vpc_id"] and endpoint.service_name == kwargs["service_name"]
                and str(endpoint.vpc_endpoint_type).lower() == "interface" and endpoint.private_dns_enabled
                and str(endpoint.state) not in GONE):
            # com.amazonaws.<region>.<service> -> <service>.<region>.amazonaws.com
            parts = str(kwargs["service_name"]).split(".")
            region, service = parts[2], ".".join(parts[3:])
            return f"{service}.{region}.amazonaws.com"
    return None


def install(patcher: Patcher) -> None:
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models import EC2Backend

    create_vpc_endpoint = EC2Backend.create_vpc_endpoint  # whatever is current (endpoint_lifecycle's, ...): wrapped

    def create_vpc_endpoint_one_private_dns(self: Any, *args: Any, **kwargs: Any) -> Any:
        domain = _conflict(self, kwargs)
        if domain is not None:
            raise EC2ClientError("InvalidParameter", "private-dns-enabled cannot be set because there is already a "
                                 f"conflicting DNS domain for {domain} in the VPC {kwargs['vpc_id']}")
        return create_vpc_endpoint(self, *args, **kwargs)

    patcher.set_attr(EC2Backend, "create_vpc_endpoint", create_vpc_endpoint_one_private_dns)
