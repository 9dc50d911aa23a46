"""CreateNodegroup refuses instance types whose CPU architecture is not the AMI type's, as EKS does.

moto 5.2 accepts any `instanceTypes` with any `amiType`. EKS answers `InvalidParameterException: [t4g.small]
is not a valid instance type for requested amiType AL2_x86_64` (quoted in terraform-aws-modules/terraform-aws-eks
#1494, eksctl-io/eksctl#4973 and #7754; docs/aws-fidelity.md, config-checks). The architectures come from
moto's own instance-type data (DescribeInstanceTypes' `ProcessorInfo.SupportedArchitectures`); types it does
not know are left to moto. The list format for several bad types ("[a, b]") is an assumption.

Not modelled: GPU AMI types on instances without a GPU (whether EKS refuses them is not confirmed), AL2 AMI
types on Kubernetes 1.33+ (EKS's message is not known).

moto is imported only inside functions: importing this module stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eksprivate.sandbox.core.patching import Patcher

INVALID_INSTANCE_TYPE_MSG = "[{types}] is not a valid instance type for requested amiType {ami}"


def architecture(ami_type: str) -> str:
    return "arm64" if "_ARM_64" in ami_type else "x86_64"


def wrong_architecture(ami_type: str, instance_types: list[str]) -> list[str]:
    """The instance types (known to moto) that cannot run `ami_type`'s architecture."""
    from moto.ec2.models.instance_types import INSTANCE_TYPES

    want = architecture(ami_type)
    return [t for t in instance_types if t in INSTANCE_TYPES
            and want not in INSTANCE_TYPES[t].get("ProcessorInfo", {}).get("SupportedArchitectures", [want])]


def install(patcher: Patcher) -> None:
    """Wrap moto's (and eks_lifecycle's) CreateNodegroup with the check (listed in `families.FAMILIES`)."""
    from moto.eks.models import EKSBackend

    create = EKSBackend.create_nodegroup

    def create_nodegroup(self: Any, **kwargs: Any) -> Any:
        from moto.eks.exceptions import InvalidParameterException

        ami = kwargs.get("ami_type")
        bad = wrong_architecture(ami, list(kwargs.get("instance_types") or [])) if ami and ami != "CUSTOM" else []
        if bad:
            raise InvalidParameterException(
                clusterName=kwargs.get("cluster_name"), nodegroupName=kwargs.get("nodegroup_name"), addonName=None,
                message=INVALID_INSTANCE_TYPE_MSG.format(types=", ".join(bad), ami=ami))
        return create(self, **kwargs)

    patcher.set_attr(EKSBackend, "create_nodegroup", create_nodegroup)
