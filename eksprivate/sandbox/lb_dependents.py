"""What keeps EC2 from deleting a subnet, a security group or a VPC: load balancers, network interfaces, EFS
mount targets, rules of other groups, instances. AWS refuses those deletes with DependencyViolation; moto
lets them all through (it only refuses a VPC with subnets), and makes no network interfaces for load
balancers. Without this, `down` on a used cluster passes in the tests and fails on AWS.

Models, each for a reason stated by AWS (docs/aws-fidelity.md, section teardown):

* ELBv2 and classic load balancers get one requester-managed interface per subnet ("ELB app/<name>/<id>",
  "ELB <name>"), in use, in the load balancer's security groups. Deleting the load balancer returns at once
  but AWS releases the interfaces only later (`Timing.lb_eni_release`, scaled).
* Interface endpoints' and EFS mount targets' interfaces look as on AWS: requester-managed, in use,
  described "VPC Endpoint Interface vpce-..." / "EFS mount target for fs-... (fsmt-...)".
* DeleteNetworkInterface refuses an interface in use or managed by a service ("is currently in use").
* DeleteSubnet refuses while a load balancer or any interface is in the subnet; DeleteSecurityGroup while a
  load balancer or interface uses the group or another group's rule names it; DeleteVpc while a subnet, a
  non-default group or an instance that is not terminated remains.

moto is imported inside functions only; `install(patcher)` runs after endpoint_lifecycle (`families.FAMILIES`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from eksprivate.sandbox.core.clock import current_timing, now
from eksprivate.sandbox.core.patching import EC2_DELETIONS_DUE, Patcher, calling_first, emit

_LB_ENIS = "_sandbox_enis"
_lock = threading.RLock()
# interface id -> (region backend, when its load balancer was deleted); released against the *current* Timing,
# like every lifecycle, so changing the timing also speeds up releases already in flight
_releasing: dict[str, tuple[Any, float]] = {}


def _wrap(patcher: Patcher, cls: Any, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """Put `make(current)` in place of `cls.name`, on top of whatever an earlier family put there."""
    patcher.set_attr(cls, name, make(getattr(cls, name)))


def _ec2(account_id: str, region: str) -> Any:
    from moto.ec2.models import ec2_backends

    return ec2_backends[account_id][region]


def _service_eni(eni: Any, description: str, interface_type: str = "interface",
                 requester: str = "amazon-elb") -> None:
    """Make a moto interface look like one an AWS service made for its resource."""
    eni.description = description
    eni.requester_managed = True
    eni.requester_id = requester
    eni.status = "in-use"
    eni.interface_type = interface_type


def release_due(backend: Any | None = None) -> None:
    """Drop the interfaces of deleted load balancers whose release time has come (and, first, finish the
    endpoint deletions that are due, whose interfaces go with them)."""
    if backend is not None:
        emit(EC2_DELETIONS_DUE, backend=backend)
    timing = current_timing()
    due = now() - timing.scaled(timing.lb_eni_release)
    with _lock:
        for eni_id, (owner, deleted) in list(_releasing.items()):
            if deleted <= due and (backend is None or owner is backend):
                owner.enis.pop(eni_id, None)
                _releasing.pop(eni_id, None)


def _lb_enis(account_id: str, region: str, subnets: list[Any], groups: list[str], description: str,
             interface_type: str) -> list[str]:
    from moto.ec2.utils import random_private_ip

    ec2 = _ec2(account_id, region)
    ids = []
    for subnet in subnets:
        subnet = ec2.get_subnet(subnet) if isinstance(subnet, str) else subnet
        eni = ec2.create_network_interface(subnet, random_private_ip(subnet.cidr_block), group_ids=groups or None)
        _service_eni(eni, description, interface_type)
        ids.append(eni.id)
    return ids


def _schedule_release(account_id: str, region: str, eni_ids: list[str]) -> None:
    when = now()
    ec2 = _ec2(account_id, region)
    with _lock:
        for eni_id in eni_ids:
            eni = ec2.enis.get(eni_id)
            if eni is not None:
                eni.status = "available"  # detached, still in the subnet and its groups until released
                _releasing[eni_id] = (ec2, when)


# -- load balancers ----------------------------------------------------------------------------------------


def _lb_created(describe: Callable[[Any], tuple[list[Any], str, str]]) -> Callable[..., Callable[..., Any]]:
    """CreateLoadBalancer (either API) also makes the load balancer's interfaces. `describe(lb)`: its
    subnets, the description AWS gives its interfaces and their InterfaceType."""

    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        def create_load_balancer(self: Any, *args: Any, **kwargs: Any) -> Any:
            lb = original(self, *args, **kwargs)
            subnets, description, interface_type = describe(lb)
            if _LB_ENIS not in vars(lb) and subnets:
                vars(lb)[_LB_ENIS] = _lb_enis(self.account_id, self.region_name, subnets,
                                              list(lb.security_groups or []), description, interface_type)
            return lb

        return create_load_balancer

    return wrap


def _lb_deleted(original: Callable[..., Any]) -> Callable[..., Any]:
    """DeleteLoadBalancer (either API; both take the key as their one argument) returns at once, the
    interfaces stay until AWS releases them."""

    def delete_load_balancer(self: Any, key: str) -> Any:
        lb = self.load_balancers.get(key)
        result = original(self, key)
        if lb is not None:
            _schedule_release(self.account_id, self.region_name, vars(lb).get(_LB_ENIS, []))
        return result

    return delete_load_balancer


def _elbv2_shape(lb: Any) -> tuple[list[Any], str, str]:
    path = lb.arn.split(":loadbalancer/", 1)[-1]
    network = path.startswith("net/") or getattr(lb, "type", "") == "network"
    return list(lb.subnets), f"ELB {path}", "network_load_balancer" if network else "interface"


def _classic_shape(lb: Any) -> tuple[list[Any], str, str]:
    return list(lb.subnets or []), f"ELB {lb.name}", "interface"


def _load_balancers(account_id: str, region: str) -> list[tuple[list[str], list[str]]]:
    """(subnet ids, security group ids) of every live load balancer, both APIs."""
    from moto.elb.models import elb_backends
    from moto.elbv2.models import elbv2_backends

    out: list[tuple[list[str], list[str]]] = []
    if account_id in elbv2_backends and region in elbv2_backends[account_id]:
        for v2 in list(elbv2_backends[account_id][region].load_balancers.values()):
            out.append(([s.id for s in v2.subnets], list(v2.security_groups or [])))
    if account_id in elb_backends and region in elb_backends[account_id]:
        for classic in list(elb_backends[account_id][region].load_balancers.values()):
            out.append((list(classic.subnets or []), list(classic.security_groups or [])))
    return out


# -- EC2 refusals -------------------------------------------------------------------------------------------


def _refuse(message: str) -> Exception:
    from moto.ec2.exceptions import DependencyViolationError

    return DependencyViolationError(message)


def _live(eni: Any) -> bool:
    """moto keeps a terminated instance's interfaces; AWS deletes them with the instance."""
    return eni.instance is None or eni.instance.state != "terminated"


def _group_ids(eni: Any) -> set[str]:
    return {g.id for g in eni.group_set}


def _delete_subnet(original: Callable[..., Any]) -> Callable[..., Any]:
    def delete_subnet(self: Any, subnet_id: str) -> Any:
        release_due(self)
        in_use = any(subnet_id in subnets for subnets, _ in _load_balancers(self.account_id, self.region_name)) or \
            any(eni.subnet.id == subnet_id and _live(eni) for eni in list(self.enis.values()))
        if in_use:
            raise _refuse(f"The subnet '{subnet_id}' has dependencies and cannot be deleted.")
        return original(self, subnet_id)

    return delete_subnet


def _delete_security_group(original: Callable[..., Any]) -> Callable[..., Any]:
    def delete_security_group(self: Any, name: str | None = None, group_id: str | None = None) -> Any:
        release_due(self)
        gid = group_id
        if gid is None and name is not None:
            group = self.get_security_group_by_name_or_id(name)
            gid = group.id if group is not None else None
        if gid:
            used = any(gid in groups for _, groups in _load_balancers(self.account_id, self.region_name)) or \
                any(gid in _group_ids(eni) and _live(eni) for eni in list(self.enis.values()))
            named = any(rule.source_group.get("GroupId") == gid
                        for vpc_groups in list(self.groups.values()) for other in list(vpc_groups.values())
                        if other.id != gid
                        for rule in [*other.ingress_rules, *other.egress_rules])
            if used or named:
                raise _refuse(f"resource {gid} has a dependent object")
        return original(self, name=name, group_id=group_id)

    return delete_security_group


def _delete_vpc(original: Callable[..., Any]) -> Callable[..., Any]:
    def delete_vpc(self: Any, vpc_id: str) -> Any:
        release_due(self)
        groups = [g for g in self.groups.get(vpc_id, {}).values() if g.name != "default"]
        instances = [i for r in list(self.reservations.values()) for i in r.instances
                     if i.vpc_id == vpc_id and i.state not in ("terminated",)]
        if groups or instances:
            raise _refuse(f"The vpc '{vpc_id}' has dependencies and cannot be deleted.")
        return original(self, vpc_id)

    return delete_vpc


def _delete_network_interface(original: Callable[..., Any]) -> Callable[..., Any]:
    def delete_network_interface(self: Any, eni_id: str) -> Any:
        from moto.ec2.exceptions import EC2ClientError

        release_due(self)
        eni = self.enis.get(eni_id)
        if eni is not None and (eni.requester_managed or eni.status == "in-use" or eni.instance is not None):
            raise EC2ClientError("InvalidParameterValue", f"Network interface '{eni_id}' is currently in use.")
        return original(self, eni_id)

    return delete_network_interface


def _terminate_instances(original: Callable[..., Any]) -> Callable[..., Any]:
    def terminate_instances(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        # AWS deletes a terminated instance's primary interface (DeleteOnTermination); moto keeps it attached.
        for eni in list(self.enis.values()):
            if eni.instance is not None and eni.instance.state == "terminated" and \
                    (eni.device_index == 0 or eni.delete_on_termination):
                self.enis.pop(eni.id, None)
        return result

    return terminate_instances


def _endpoint_enis(original: Callable[..., Any]) -> Callable[..., Any]:
    def create_vpc_endpoint(self: Any, *args: Any, **kwargs: Any) -> Any:
        endpoint = original(self, *args, **kwargs)
        for eni_id in endpoint.network_interface_ids or []:
            eni = self.enis.get(eni_id)
            if eni is not None:
                _service_eni(eni, f"VPC Endpoint Interface {endpoint.id}", "vpc_endpoint", "AROAVPCENDPOINT")
        return endpoint

    return create_vpc_endpoint


# -- EFS -----------------------------------------------------------------------------------------------------


def _efs_create_mount_target(original: Callable[..., Any]) -> Callable[..., Any]:
    def create_mount_target(self: Any, *args: Any, **kwargs: Any) -> Any:
        target = original(self, *args, **kwargs)
        eni = self.ec2_backend.enis.get(target.network_interface_id)
        if eni is not None:
            _service_eni(eni, f"EFS mount target for {target.file_system_id} ({target.mount_target_id})",
                         requester="AROAEFSMOUNTTARGET")
        return target

    return create_mount_target


def _efs_delete_mount_target(original: Callable[..., Any]) -> Callable[..., Any]:
    def delete_mount_target(self: Any, mount_target_id: str) -> Any:
        target = self.mount_targets_by_id.get(mount_target_id)
        eni = self.ec2_backend.enis.get(target.network_interface_id) if target is not None else None
        if eni is not None:  # EFS deletes its own interface (moto does it through DeleteNetworkInterface)
            eni.requester_managed, eni.status = False, "available"
        return original(self, mount_target_id)

    return delete_mount_target


def install(patcher: Patcher) -> None:
    from moto.ec2.models import EC2Backend
    from moto.efs.models import EFSBackend
    from moto.elb.models import ELBBackend
    from moto.elbv2.models import ELBv2Backend

    _wrap(patcher, ELBv2Backend, "create_load_balancer", _lb_created(_elbv2_shape))
    _wrap(patcher, ELBv2Backend, "delete_load_balancer", _lb_deleted)
    _wrap(patcher, ELBBackend, "create_load_balancer", _lb_created(_classic_shape))
    _wrap(patcher, ELBBackend, "delete_load_balancer", _lb_deleted)
    _wrap(patcher, EC2Backend, "create_vpc_endpoint", _endpoint_enis)
    _wrap(patcher, EC2Backend, "delete_subnet", _delete_subnet)
    _wrap(patcher, EC2Backend, "delete_security_group", _delete_security_group)
    _wrap(patcher, EC2Backend, "delete_vpc", _delete_vpc)
    _wrap(patcher, EC2Backend, "delete_network_interface", _delete_network_interface)
    _wrap(patcher, EC2Backend, "terminate_instances", _terminate_instances)
    # DescribeNetworkInterfaces is answered through get_all_network_interfaces.
    patcher.set_attr(EC2Backend, "get_all_network_interfaces",
                     calling_first(release_due, EC2Backend.get_all_network_interfaces))
    _wrap(patcher, EFSBackend, "create_mount_target", _efs_create_mount_target)
    _wrap(patcher, EFSBackend, "delete_mount_target", _efs_delete_mount_target)
