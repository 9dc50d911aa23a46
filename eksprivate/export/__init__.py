"""`eksprivate export`: hand a cluster over to CloudFormation or Terraform (docs/export.md).

inventory.py finds and describes what exists (plan's walk plus read calls), cloudformation.py and terraform.py
render it, and `write_dir` puts the files in place whole or not at all.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from eksprivate.errors import UsageError
from eksprivate.export.inventory import Inventory, read_inventory
from eksprivate.steps import Context

FORMATS = ("cloudformation", "terraform")

__all__ = ["FORMATS", "Exported", "check_output", "export", "write_dir"]


@dataclass
class Exported:
    files: dict[str, str]
    inventory: Inventory


def check_output(path: Path, force: bool) -> None:
    """Refuse, before any AWS call, an output that is a file or a folder with something in it (unless --force)."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"--output {path} is a file, not a folder")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise UsageError(f"--output {path} is not empty", "choose a new folder, or pass --force to replace it")
    if not path.parent.exists():
        raise UsageError(f"--output {path}: its parent folder {path.parent} does not exist")


def export(ctx: Context, fmt: str) -> Exported:
    """Read the cluster and render it; writes nothing."""
    from eksprivate.export import cloudformation, terraform

    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: use cloudformation or terraform")
    inventory = read_inventory(ctx)
    if fmt == "cloudformation":
        files = cloudformation.render(inventory, _readme_cloudformation(inventory))
    else:
        files = terraform.render(inventory, _readme_terraform(inventory))
    return Exported(files, inventory)


def write_dir(path: Path, files: dict[str, str], force: bool) -> None:
    """Write `files` into `path` whole or not at all: a temporary folder beside it, then one rename. With
    `force`, what was there is moved aside first and deleted only once the new folder is in place."""
    check_output(path, force)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        for name, text in files.items():
            target = staging / name
            with open(target, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
        staging.chmod(0o755)
        old = None
        if path.exists():
            if any(path.iterdir()):
                old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
                os.rename(path, old / "previous")
            else:
                path.rmdir()
        os.rename(staging, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _differences(inv: Inventory) -> str:
    if not inv.differences:
        return "Everything exported is what the eksprivate config would make.\n"
    lines = "".join(f"- {line}\n" for line in inv.differences)
    return ("These resources differ from what the eksprivate config would make (changed by hand since `up`, or "
            "the config changed since). The export carries them **as they are in AWS now**:\n\n" + lines)


def _common(inv: Inventory) -> str:
    used = "".join(f"- {line}\n" for line in inv.used)
    return (
        f"Exported by `eksprivate export` from cluster `{inv.cluster}` in `{inv.region}` (account "
        f"`{inv.account}`): {len(inv.resources)} resources, read live from AWS at export time.\n\n"
        "## Differences from the eksprivate config\n\n" + _differences(inv) + "\n"
        + ("## Not exported: used, not made by eksprivate\n\n" + used + "\n" if used else "")
        + "## Not in the export (made by AWS, not by eksprivate)\n\n"
        "- the cluster security group EKS creates (`eks-cluster-sg-*`), the node groups' Auto Scaling groups, "
        "instances and network interfaces, the endpoints' interfaces and the S3 gateway's routes: owned by EKS, "
        "EC2 and the endpoints, they follow their owners;\n"
        "- the access entry EKS made for the identity that created the cluster "
        "(`bootstrapClusterCreatorAdminPermissions`) and the node role's entry EKS adds for the node groups;\n"
        "- load balancers, volumes and other resources Kubernetes creates.\n\n"
        "After the import, stop running `eksprivate up`/`down` on this cluster (two tools would fight over it). "
        "`eksprivate down` finds these resources by their `eksprivate:cluster` tag even without the state file: "
        "remove that tag in the IaC once the import is done. `eksprivate verify` stays useful (read-only). The "
        "full recipe: docs/export.md in eksprivate.\n")


def _readme_cloudformation(inv: Inventory) -> str:
    from eksprivate.export.cloudformation import LEFT_OUT, NOT_IMPORTABLE, TYPES

    types = sorted({TYPES[r.kind][0] for r in inv.resources if r.kind in TYPES})
    left_out = "".join(f"- {LEFT_OUT[r.kind]} (`{r.id}`)\n" for r in inv.resources if r.kind in LEFT_OUT)
    blocked = [t for t in types if t in NOT_IMPORTABLE]
    return (
        f"# CloudFormation import of EKS cluster {inv.cluster}\n\n" + _common(inv) + "\n"
        "## Files\n\n"
        "- `template.yaml`: one resource per AWS resource, `DeletionPolicy: Retain` and `UpdateReplacePolicy: "
        "Retain` on each, references (`!Ref`, `!GetAtt`) between them.\n"
        "- `import.json`: the `ResourcesToImport` of an IMPORT change set, with the live identifiers.\n\n"
        "## Import\n\n"
        "```\n"
        f"aws cloudformation create-change-set --region {inv.region} --stack-name {inv.cluster}-eks "
        "--change-set-name import --change-set-type IMPORT \\\n"
        "  --template-body file://template.yaml --resources-to-import file://import.json "
        "--capabilities CAPABILITY_NAMED_IAM\n"
        f"aws cloudformation describe-change-set --region {inv.region} --stack-name {inv.cluster}-eks "
        "--change-set-name import\n"
        f"aws cloudformation execute-change-set --region {inv.region} --stack-name {inv.cluster}-eks "
        "--change-set-name import\n"
        f"aws cloudformation detect-stack-drift --region {inv.region} --stack-name {inv.cluster}-eks\n"
        "```\n\n"
        "## Types CloudFormation cannot import\n\n"
        + ("".join(f"- `{t}`: create it anew in the stack after the import, or keep it outside the stack\n"
                   for t in blocked) if blocked else
           "None: every type in this template (" + ", ".join(f"`{t}`" for t in types) + ") supports resource "
           "import (CloudFormation's \"Resource type support\" list).\n")
        + ("\n## Not in the template\n\n" + left_out if left_out else "")
        + "\nReview `template.yaml` first: it is what CloudFormation will hold from now on.\n")


def _readme_terraform(inv: Inventory) -> str:
    return (
        f"# Terraform import of EKS cluster {inv.cluster}\n\n" + _common(inv) + "\n"
        "## Files\n\n"
        "- `versions.tf`: the AWS provider, its region and the account it may touch.\n"
        "- `network.tf`, `iam.tf`, `security.tf`, `eks.tf`, `ecr.tf`: a resource block per resource, "
        "references between them.\n"
        "- `imports.tf`: an `import` block per resource, with the id format each resource type documents.\n\n"
        "## Import\n\n"
        "```\nterraform init\nterraform plan      # shows N to import; ideally 0 to add, 0 to change, 0 to destroy\n"
        "terraform apply     # records the imports in the state; changes nothing in AWS\n```\n\n"
        "Then delete `imports.tf` (import blocks are done once they are in the state). Every resource type here "
        "can be imported.\n")
