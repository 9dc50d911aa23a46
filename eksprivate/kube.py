"""kubeconfig: find the file, read the cluster's endpoint and CA, merge one context in safely.

Writes what `aws eks update-kubeconfig` writes (entries named by the cluster ARN, exec credentials
through `aws eks get-token`) without running the AWS CLI, and never disturbs other entries: the file
is parsed, only this cluster's `clusters`/`users`/`contexts` entries are added or replaced, and the
result replaces the old file atomically with mode 0600.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from eksprivate.errors import NotFound, UsageError
from eksprivate.grants import Arns, Grant, reads

if TYPE_CHECKING:  # keep `import eksprivate.kube/tunnel` free of boto3
    from eksprivate.aws import Aws

EXEC_API_VERSION = "client.authentication.k8s.io/v1beta1"
# EKS serves the Kubernetes API while a cluster is being updated (version, logging, access changes).
USABLE_STATUSES = ("ACTIVE", "UPDATING")
ENTRY_SECTIONS = ("clusters", "users", "contexts")


@dataclass(frozen=True)
class ClusterAccess:
    """What a kubeconfig needs to reach one cluster (from DescribeCluster)."""

    name: str
    arn: str
    endpoint: str  # https://XXXX.gr7.<region>.eks.amazonaws.com
    ca_data: str  # base64 PEM, as EKS returns it
    region: str
    vpc_id: str = ""
    subnet_ids: tuple[str, ...] = ()

    @property
    def host(self) -> str:
        """The API server's DNS name (what its certificate is issued for)."""
        netloc = urlparse(self.endpoint).netloc.rsplit("@", 1)[-1]  # keeps EKS's upper-case letters
        return netloc.split(":", 1)[0] or self.endpoint


def kubeconfig_path(explicit: Path | None) -> Path:
    """`--kubeconfig` if given, else the first entry of $KUBECONFIG, else ~/.kube/config (like kubectl)."""
    if explicit is not None:
        return explicit.expanduser()
    for entry in os.environ.get("KUBECONFIG", "").split(os.pathsep):
        if entry.strip():
            return Path(entry.strip()).expanduser()
    return Path.home() / ".kube" / "config"


def cluster_entry(aws: Aws, cluster_name: str) -> ClusterAccess:
    """Describe the cluster; UsageError if it does not exist or its API is not serving yet."""
    try:
        cluster: dict[str, Any] = aws.eks.describe_cluster(name=cluster_name)["cluster"]
    except NotFound:
        raise UsageError(
            f"there is no EKS cluster named {cluster_name!r} in {aws.region}",
            "check --name, --region and --profile (`aws eks list-clusters` lists them)") from None
    status = str(cluster.get("status", "UNKNOWN"))
    if status not in USABLE_STATUSES:
        hint = ("wait until it is ACTIVE (creation takes 10-15 minutes), then rerun" if status == "CREATING"
                else "it cannot be reached in this state")
        raise UsageError(f"EKS cluster {cluster_name!r} is {status}, not ACTIVE", hint)
    endpoint = str(cluster.get("endpoint") or "").rstrip("/")
    ca_data = str((cluster.get("certificateAuthority") or {}).get("data") or "")
    if not endpoint or not ca_data:
        raise UsageError(f"EKS cluster {cluster_name!r} has no API endpoint or certificate yet",
                         "wait a minute and rerun")
    vpc_config: dict[str, Any] = cluster.get("resourcesVpcConfig") or {}
    return ClusterAccess(
        name=str(cluster.get("name", cluster_name)),
        arn=str(cluster["arn"]),
        endpoint=endpoint,
        ca_data=ca_data,
        region=aws.region,
        vpc_id=str(vpc_config.get("vpcId") or ""),
        subnet_ids=tuple(str(s) for s in vpc_config.get("subnetIds") or ()),
    )


def user_exec(access: ClusterAccess, profile: str | None) -> dict[str, Any]:
    """The exec credential plugin entry `aws eks update-kubeconfig` writes."""
    exec_: dict[str, Any] = {
        "apiVersion": EXEC_API_VERSION,
        "command": "aws",
        "args": ["--region", access.region, "eks", "get-token", "--cluster-name", access.name,
                 "--output", "json"],
    }
    if profile:
        exec_["env"] = [{"name": "AWS_PROFILE", "value": profile}]
    return exec_


def merge_context(
    path: Path,
    access: ClusterAccess,
    *,
    profile: str | None,
    context_name: str | None = None,
    server: str | None = None,
    tls_server_name: str | None = None,
    set_current: bool = True,
) -> str:
    """Add or replace this cluster's entries in the kubeconfig at `path`; returns the context name.

    The cluster, user and context entries are all named `context_name` (default: the cluster ARN, as
    `aws eks update-kubeconfig` does). `server` and `tls_server_name` point the entry somewhere else
    (the tunnel's https://127.0.0.1:PORT) while the certificate is still checked for the real host.
    """
    name = context_name or access.arn
    doc = _read(path)
    cluster: dict[str, Any] = {"server": server or access.endpoint, "certificate-authority-data": access.ca_data}
    if tls_server_name:
        cluster["tls-server-name"] = tls_server_name
    _upsert(doc, "clusters", {"name": name, "cluster": cluster})
    _upsert(doc, "users", {"name": name, "user": {"exec": user_exec(access, profile)}})
    _upsert(doc, "contexts", {"name": name, "context": {"cluster": name, "user": name}})
    if set_current:
        doc["current-context"] = name
    else:
        doc.setdefault("current-context", "")
    _write(path, doc)
    return name


def current_context(path: Path) -> str:
    """The kubeconfig's current context ("" when none, or no file yet)."""
    return str(_read(path).get("current-context") or "")


# -- reading and writing ---------------------------------------------------------------------------

def _new_doc() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Config", "preferences": {}, "clusters": [], "users": [],
            "contexts": [], "current-context": ""}


def _read(path: Path) -> dict[str, Any]:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return _new_doc()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read kubeconfig {path}: {exc}") from None
    fix = "fix or move it, or pass --kubeconfig with another path"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"kubeconfig {path} is not valid YAML ({detail})", fix) from None
    if data is None:  # an empty file: kubectl treats it as an empty config too
        return _new_doc()
    if not isinstance(data, dict):
        raise UsageError(f"kubeconfig {path} is not a kubeconfig (its top level is not a mapping)", fix)
    kind = data.get("kind")
    if kind not in (None, "Config"):
        raise UsageError(f"kubeconfig {path} has kind {kind!r}, not 'Config'", fix)
    for section in ENTRY_SECTIONS:
        entries = data.get(section)
        if entries is None:
            data[section] = []
        elif not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise UsageError(f"kubeconfig {path}: '{section}' is not a list of named entries", fix)
    data.setdefault("apiVersion", "v1")
    data.setdefault("kind", "Config")
    return data


def _upsert(doc: dict[str, Any], section: str, entry: dict[str, Any]) -> None:
    """Replace the entry with the same name in place (dropping duplicates), or append it."""
    out: list[Any] = []
    placed = False
    for existing in doc[section]:
        if existing.get("name") == entry["name"]:
            if not placed:
                out.append(entry)
                placed = True
            continue
        out.append(existing)
    if not placed:
        out.append(entry)
    doc[section] = out


def _write(path: Path, doc: dict[str, Any]) -> None:
    """Atomic replace: temp file beside the target, fsync, rename; 0600, parent created 0700."""
    import yaml

    # Write through a symlinked kubeconfig (dotfile setups) instead of replacing the link.
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    parent = target.parent
    if not parent.exists():
        try:
            parent.mkdir(mode=0o700, parents=True)
            os.chmod(parent, 0o700)  # mkdir's mode is filtered by the umask
        except FileExistsError:
            pass
        except OSError as exc:
            raise UsageError(f"cannot create directory {parent} for the kubeconfig: {exc}") from None
    text = yaml.safe_dump(doc, default_flow_style=False, sort_keys=False, width=1 << 30)
    try:
        fd, tmp_name = tempfile.mkstemp(dir=parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise UsageError(f"cannot write kubeconfig {target}: {exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise UsageError(f"cannot write kubeconfig {target}: {exc}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(parent)


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (best effort: not every filesystem allows opening a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def grants(arns: Arns) -> list[Grant]:
    """What `eksprivate kubeconfig` calls: the cluster's endpoint and certificate."""
    return [reads("eks:DescribeCluster", on=arns.eks_cluster(), why="kubeconfig: the endpoint and certificate")]
