"""ECR pull-through cache: the upstream registries eksprivate knows, and image reference rewriting.

Pure (no AWS calls): `config.py` validates `pull_through_cache` with it, `steps/pull_through.py` creates the
rules from it, and `eksprivate image` rewrites a reference with it.

Facts (botocore's ECR model, `CreatePullThroughCacheRuleRequest.upstreamRegistryUrl` and the `UpstreamRegistry`
enum; the ECR user guide "Creating a pull through cache rule"): each upstream has one registry URL; Docker
Hub, GitHub, GitLab and Azure need credentials in a Secrets Manager secret whose name begins with
`ecr-pullthroughcache/`, in the account and Region of the rule; a rule's prefix is 2-30 characters and
always ends in an implied `/`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Upstream:
    short: str  # the name users write in `pull_through_cache`, also the default ECR prefix
    registry: str  # ECR's `upstreamRegistry` enum value
    url: str  # `upstreamRegistryUrl` exactly as AWS documents it
    hosts: tuple[str, ...]  # how image references name the registry
    needs_credentials: bool


UPSTREAMS: dict[str, Upstream] = {u.short: u for u in (
    Upstream("ecr-public", "ecr-public", "public.ecr.aws", ("public.ecr.aws",), False),
    Upstream("k8s", "k8s", "registry.k8s.io", ("registry.k8s.io", "k8s.gcr.io"), False),
    Upstream("quay", "quay", "quay.io", ("quay.io",), False),
    Upstream("docker-hub", "docker-hub", "registry-1.docker.io",
             ("docker.io", "registry-1.docker.io", "index.docker.io"), True),
    Upstream("ghcr", "github-container-registry", "ghcr.io", ("ghcr.io",), True),
    Upstream("gitlab", "gitlab-container-registry", "registry.gitlab.com", ("registry.gitlab.com",), True),
)}

# The CredentialArn pattern of botocore's ECR model, with the secret-name rule AWS requires.
CREDENTIAL_ARN_RE = re.compile(
    r"^arn:(?P<partition>aws(?:-[a-z]+)*):secretsmanager:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"secret:ecr-pullthroughcache/[A-Za-z0-9/_+=.@-]+$")
SECRET_PREFIX = "ecr-pullthroughcache/"


@dataclass(frozen=True)
class PullThroughRule:
    upstream: str  # short name, a key of UPSTREAMS
    credential_arn: str | None = None

    @property
    def spec(self) -> Upstream:
        return UPSTREAMS[self.upstream]

    @property
    def prefix(self) -> str:
        """The ECR repository prefix: images are cached as `<prefix>/<upstream repository>`."""
        return self.upstream


def credential_problem(arn: str, region: str | None = None, account: str | None = None) -> str | None:
    """Why AWS would refuse `arn` as a pull-through credential, or None."""
    match = CREDENTIAL_ARN_RE.match(arn)
    if match is None:
        if ":secretsmanager:" in arn and SECRET_PREFIX not in arn:
            return f"the secret's name must begin with {SECRET_PREFIX} (an ECR rule)"
        return "not a Secrets Manager secret ARN like arn:aws:secretsmanager:<region>:<account>:secret:" \
               f"{SECRET_PREFIX}<name>"
    if region is not None and match["region"] != region:
        return f"the secret is in {match['region']}; ECR needs it in the cluster's region {region}"
    if account is not None and match["account"] != account:
        return f"the secret is in account {match['account']}; ECR needs it in account {account}"
    return None


@dataclass(frozen=True)
class ImageRef:
    registry: str  # "" for Docker Hub's implicit registry
    repository: str
    tag: str | None
    digest: str | None


def parse_image(reference: str) -> ImageRef:
    """Split an image reference the way container runtimes do (distribution/reference)."""
    ref = reference.strip()
    if not ref or any(c.isspace() for c in ref):
        raise ValueError(f"{reference!r} is not an image reference")
    digest = None
    if "@" in ref:
        ref, digest = ref.split("@", 1)
        if not re.fullmatch(r"[a-z0-9]+:[A-Fa-f0-9]{32,}", digest):
            raise ValueError(f"{reference!r}: {digest!r} is not a digest like sha256:<hex>")
    first, _, rest = ref.partition("/")
    # The first part is a registry host when it has a dot or a port, or is localhost (the runtime's rule).
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
    else:
        registry, path = "", ref
    tag = None
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path, tag = path.rsplit(":", 1)
        if not re.fullmatch(r"[\w][\w.-]{0,127}", tag):
            raise ValueError(f"{reference!r}: {tag!r} is not a valid tag")
    if not re.fullmatch(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*", path):
        raise ValueError(f"{reference!r}: {path!r} is not a valid repository name")
    return ImageRef(registry, path, tag, digest)


def upstream_for(registry: str) -> Upstream | None:
    host = registry or "docker.io"
    return next((u for u in UPSTREAMS.values() if host in u.hosts), None)


def cached_reference(reference: str, account: str, region: str, dns_suffix: str = "amazonaws.com") -> str:
    """The reference a pod uses to pull `reference` through the cache, e.g. registry.k8s.io/pause:3.10 →
    <account>.dkr.ecr.<region>.amazonaws.com/k8s/pause:3.10. Raises ValueError for an upstream ECR cannot
    cache for eksprivate."""
    image = parse_image(reference)
    upstream = upstream_for(image.registry)
    if upstream is None:
        known = ", ".join(sorted({h for u in UPSTREAMS.values() for h in u.hosts}))
        raise ValueError(f"{image.registry} has no pull-through cache upstream in eksprivate (known: {known})")
    path = image.repository
    if upstream.short == "docker-hub" and "/" not in path:
        path = f"library/{path}"  # Docker Hub's official images live under library/
    suffix = (f":{image.tag}" if image.tag else "") + (f"@{image.digest}" if image.digest else "")
    if not suffix:
        suffix = ":latest"
    return f"{account}.dkr.ecr.{region}.{dns_suffix}/{upstream.short}/{path}{suffix}"
