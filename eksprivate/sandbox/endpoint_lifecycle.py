"""VPC endpoints that take real time, and the deletes they block.

moto makes endpoints `available` and deletes them at once, and lets their subnets, security groups and VPC
go while they exist. With this family:

* VPC endpoints are `pending`, then `available`; `deleting`, then gone (`Timing.interface_endpoint_create`,
  ..., scaled); their interfaces and routes stay until they are gone;
* EC2 refuses to delete subnets, security groups and VPCs that endpoints still use (DependencyViolation), and a
  deleted subnet takes its route table and network ACL associations with it;
* CreateVpcEndpoint honours ClientToken (IdempotentParameterMismatch for a token reused differently);
* endpoint deletions that are due finish on the `EC2_DELETIONS_DUE` event (lb_dependents emits it).

moto is imported inside functions only: importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from typing import Any

from eksprivate.sandbox.core.clock import Kind, Phase, attach_life, life_of, phase_of, state_property
from eksprivate.sandbox.core.patching import EC2_DELETIONS_DUE, Patcher, calling_first

_ENDPOINT_STATES: Mapping[Phase, str] = {
    "creating": "pending",
    "ready": "available",
    "deleting": "deleting",
    "gone": "deleted",
}
INTERFACE_ENDPOINT = Kind(
    lambda t: t.interface_endpoint_create, lambda t: t.interface_endpoint_delete, _ENDPOINT_STATES
)
GATEWAY_ENDPOINT = Kind(lambda t: t.gateway_endpoint, lambda t: t.gateway_endpoint, _ENDPOINT_STATES)

# moto runs requests on server threads; reaping pops from dicts other requests iterate.
_lock = threading.RLock()
_originals: dict[str, Callable[..., Any]] = {}  # the patcher's: moto's own methods, by "Class.method"


def _orig(qualified: str) -> Callable[..., Any]:
    return _originals[qualified]


def _is_interface(endpoint: Any) -> bool:
    return str(endpoint.vpc_endpoint_type or "Gateway").lower() in ("interface", "gatewayloadbalancer")


def reap_endpoints(backend: Any) -> None:
    """Finish deletions that are due: moto's own cleanup (ENIs, routes), then drop the endpoint."""
    from moto.ec2.exceptions import EC2ClientError

    with _lock:
        for endpoint_id, endpoint in list(backend.vpc_end_points.items()):
            if phase_of(endpoint) != "gone":
                continue
            # A gateway endpoint's route table may be gone already: then nothing is left to clean.
            with contextlib.suppress(EC2ClientError):
                _orig("EC2Backend.delete_vpc_endpoints")(backend, vpce_ids=[endpoint_id])
            backend.vpc_end_points.pop(endpoint_id, None)


def _live_endpoints(backend: Any) -> list[Any]:
    # moto leaves endpoints deleted before install() behind in state "deleted".
    return [e for e in backend.vpc_end_points.values() if e.state != "deleted"]


def install(patcher: Patcher) -> None:
    """Patch moto's EC2 backend (before the families that wrap its VPC endpoint calls)."""
    global _originals
    from moto.ec2.models import EC2Backend
    from moto.ec2.models.vpcs import VPCEndPoint

    _originals = patcher.originals

    patcher.on(EC2_DELETIONS_DUE, lambda backend: reap_endpoints(backend))

    patcher.set_attr(VPCEndPoint, "state", state_property("state"))

    patcher.replace_method(EC2Backend, "create_vpc_endpoint", _ec2_create_vpc_endpoint)
    patcher.replace_method(EC2Backend, "delete_vpc_endpoints", _ec2_delete_vpc_endpoints)
    patcher.replace_method(EC2Backend, "delete_subnet", _ec2_delete_subnet)
    patcher.replace_method(EC2Backend, "delete_security_group", _ec2_delete_security_group)
    patcher.replace_method(EC2Backend, "delete_vpc", _ec2_delete_vpc)
    for name in (
        "describe_vpc_endpoints",
        "modify_vpc_endpoint",
        "describe_network_interfaces",
        "describe_route_tables",
    ):
        patcher.replace_method(EC2Backend, name, calling_first(reap_endpoints, getattr(EC2Backend, name)))


def _endpoint_request(
    vpc_id: str,
    service_name: str,
    endpoint_type: str | None,
    subnet_ids: list[str] | None,
    security_group_ids: list[str] | None,
    route_table_ids: list[str] | None,
) -> tuple[object, ...]:
    """What makes two CreateVpcEndpoint requests "the same" for ClientToken idempotency."""
    return (
        vpc_id,
        service_name,
        (endpoint_type or "Gateway").lower(),
        sorted(subnet_ids or []),
        sorted(security_group_ids or []),
        sorted(route_table_ids or []),
    )


def _ec2_create_vpc_endpoint(self: Any, **kwargs: Any) -> Any:
    from moto.ec2.exceptions import EC2ClientError

    reap_endpoints(self)
    token = kwargs.get("client_token")
    if token:
        request = _endpoint_request(
            kwargs["vpc_id"],
            kwargs["service_name"],
            kwargs.get("endpoint_type"),
            kwargs.get("subnet_ids"),
            kwargs.get("security_group_ids"),
            kwargs.get("route_table_ids"),
        )
        for endpoint in self.vpc_end_points.values():
            if endpoint.client_token != token:
                continue
            earlier = _endpoint_request(
                endpoint.vpc_id,
                endpoint.service_name,
                endpoint.vpc_endpoint_type,
                endpoint.subnet_ids,
                endpoint.security_group_ids,
                endpoint.route_table_ids,
            )
            if earlier == request:
                return endpoint  # a retry: AWS answers with the endpoint it already made
            raise EC2ClientError(
                "IdempotentParameterMismatch",
                f"The client token {token} has already been used with different parameters.",
            )
    endpoint = _orig("EC2Backend.create_vpc_endpoint")(self, **kwargs)
    attach_life(endpoint, INTERFACE_ENDPOINT if _is_interface(endpoint) else GATEWAY_ENDPOINT)
    return endpoint


def _ec2_delete_vpc_endpoints(self: Any, vpce_ids: list[str] | None = None) -> None:
    reap_endpoints(self)
    for endpoint_id in vpce_ids or []:
        endpoint = self.vpc_end_points.get(endpoint_id)
        life = life_of(endpoint) if endpoint is not None else None
        if life is None:
            _orig("EC2Backend.delete_vpc_endpoints")(self, vpce_ids=[endpoint_id])
        else:
            # ENIs and routes stay until the endpoint is gone, as in AWS.
            life.start_deleting()


def _ec2_delete_subnet(self: Any, subnet_id: str) -> Any:
    from moto.ec2.exceptions import DependencyViolationError

    reap_endpoints(self)
    if any(subnet_id in (e.subnet_ids or []) for e in _live_endpoints(self)):
        raise DependencyViolationError(f"The subnet '{subnet_id}' has dependencies and cannot be deleted.")
    subnet = _orig("EC2Backend.delete_subnet")(self, subnet_id)
    # AWS drops a deleted subnet's route table and network ACL associations with it; moto keeps
    # them, and the route table (or ACL) could then never be deleted.
    for table in self.route_tables.values():
        for association_id, target in list(table._associations.items()):
            if target == subnet_id:
                table._associations.pop(association_id, None)
    for acl in self.network_acls.values():
        for association_id, association in list(acl._associations.items()):
            if association.subnet_id == subnet_id:
                acl._associations.pop(association_id, None)
    return subnet


def _ec2_delete_security_group(self: Any, name: str | None = None, group_id: str | None = None) -> Any:
    from moto.ec2.exceptions import DependencyViolationError

    reap_endpoints(self)
    if group_id is None and name is not None:
        group = self.get_security_group_by_name_or_id(name)
        group_id = group.id if group is not None else None
    if group_id and any(group_id in e.security_group_ids for e in _live_endpoints(self)):
        raise DependencyViolationError(f"resource {group_id} has a dependent object")
    return _orig("EC2Backend.delete_security_group")(self, name=name, group_id=group_id)


def _ec2_delete_vpc(self: Any, vpc_id: str) -> Any:
    from moto.ec2.exceptions import DependencyViolationError

    reap_endpoints(self)
    if any(e.vpc_id == vpc_id for e in _live_endpoints(self)):
        raise DependencyViolationError(f"The vpc '{vpc_id}' has dependencies and cannot be deleted.")
    return _orig("EC2Backend.delete_vpc")(self, vpc_id)
