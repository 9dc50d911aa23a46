"""ECR repositories for mirrored images: a private cluster can pull only from ECR (docs/mirroring-images.md).

One step per repository in `ecr_repositories`, key `ecr/<name>`. Created tagged, with immutable tags,
scan on push and AES256 encryption; found by name. `down` deletes them *with their images*
(DeleteRepository force): eksprivate removes everything it made. A repository of that name that
eksprivate did not make for this cluster is used as it is and never changed or deleted.
"""

from __future__ import annotations

from contextlib import suppress
from functools import partial
from typing import Any

from eksprivate.errors import AccessDenied, AlreadyExists, NotFound
from eksprivate.grants import Grant, grant, reads
from eksprivate.steps.base import CLUSTER_TAG, Change, Context, Found, Step

TAG_MUTABILITY = "IMMUTABLE"
ENCRYPTION = {"encryptionType": "AES256"}
IMAGE_COUNT_LIMIT = 1000  # one ListImages page: enough to say "1000+ images"


def repository_key(name: str) -> str:
    return f"ecr/{name}"


def _describe(ctx: Context, name: str) -> dict[str, Any] | None:
    try:
        repos = ctx.aws.ecr.describe_repositories(repositoryNames=[name]).get("repositories", [])
    except NotFound:
        return None
    return repos[0] if repos else None


def _owner(ctx: Context, arn: str) -> str | None:
    """The cluster an eksprivate repository was made for (None: not made by eksprivate)."""
    try:
        tags = ctx.aws.ecr.list_tags_for_resource(resourceArn=arn).get("tags", [])
    except NotFound:
        return None
    return next((str(t["Value"]) for t in tags if t.get("Key") == CLUSTER_TAG), None)


class EcrRepository(Step):
    """`orphan`: made for this cluster, no longer in the config. `teardown` (down, status): only ever
    see repositories this cluster made, so a same-named foreign repository is never touched."""

    title = "ECR repository"
    # Like every step, after the VPC: a run that AWS refuses at its first create has made nothing.
    needs = ("vpc",)

    def __init__(self, name: str, *, orphan: bool = False, teardown: bool = False) -> None:
        self.name = name
        self.key = repository_key(name)
        self.title = f"ECR repository {name}"
        self.orphan = orphan
        self.teardown = teardown

    def preview(self, ctx: Context) -> list[str]:
        return [f"{self.name}: tags {TAG_MUTABILITY.lower()}, scan on push, {ENCRYPTION['encryptionType']}"]

    def grants(self, ctx: Context) -> list[Grant]:
        repo = ctx.arns.ecr_repository(self.name)
        out = [reads("ecr:DescribeRepositories", "ecr:ListTagsForResource", "ecr:ListImages", on=repo,
                     why=f"find {self.name}; whether it holds images"),
               grant("create", "ecr:CreateRepository", "ecr:TagResource", on=repo, why=f"{self.name}, with its tags"),
               grant(("create", "update"), "ecr:PutImageTagMutability", "ecr:PutImageScanningConfiguration", on=repo,
                     why="immutable tags, scan on push"),
               grant("remove", "ecr:DeleteRepository", on=repo, why=f"{self.name}, images included")]
        if self.teardown:  # down finds, by tag, repositories the config no longer lists: it lists them all
            out.append(reads("ecr:DescribeRepositories", on=ctx.arns.ecr_repository("*"),
                             why="repositories tagged for the cluster that the config no longer lists"))
        return out

    def find(self, ctx: Context) -> Found | None:
        repo = _describe(ctx, self.name)
        if repo is None:
            return None
        external = _owner(ctx, repo["repositoryArn"]) != ctx.name
        if external and (self.orphan or self.teardown):
            return None  # not ours: nothing of this cluster to delete
        try:
            images = len(ctx.aws.ecr.list_images(repositoryName=self.name, maxResults=IMAGE_COUNT_LIMIT)
                         .get("imageIds", []))
        except NotFound:
            images = 0
        return {
            "repository_name": self.name, "repository_arn": repo["repositoryArn"],
            "uri": repo.get("repositoryUri", ""), "status": "external" if external else "exists",
            "external": external, "mutability": repo.get("imageTagMutability", "MUTABLE"),
            "scan_on_push": bool(repo.get("imageScanningConfiguration", {}).get("scanOnPush")),
            "encryption": repo.get("encryptionConfiguration", {}).get("encryptionType", "AES256"),
            "images": images,
        }

    def create(self, ctx: Context) -> Found:
        ctx.intent(self.key)  # CreateRepository takes no token; the name is unique in the registry
        try:
            repo = ctx.aws.ecr.create_repository(
                repositoryName=self.name, imageTagMutability=TAG_MUTABILITY,
                imageScanningConfiguration={"scanOnPush": True}, encryptionConfiguration=dict(ENCRYPTION),
                tags=ctx.tag_list(self.name))["repository"]
        except AlreadyExists:
            adopted = self.find(ctx)  # made between our find and create (a crashed run, a race)
            if adopted is None:
                raise
            return adopted
        ctx.ledger.record(self.key, repository_name=self.name, repository_arn=repo["repositoryArn"])
        return {"repository_name": self.name, "repository_arn": repo["repositoryArn"],
                "uri": repo.get("repositoryUri", ""), "status": "exists", "external": False,
                "mutability": TAG_MUTABILITY, "scan_on_push": True, "encryption": ENCRYPTION["encryptionType"],
                "images": 0}

    def diff(self, ctx: Context, found: Found) -> list[Change]:
        if self.orphan:  # deleted by `up --prune` (the engine removes an orphan as `down` does)
            images = f" and its {found['images']} image(s)" if found.get("images") else ""
            return [Change(f"delete repository {self.name}{images} (not in the config)") if ctx.prune else
                    Change(f"repository {self.name} is not in ecr_repositories",
                           blocked=f"kept (`up --prune` deletes it{images})")]
        if found.get("external"):
            return [Change(f"repository {self.name} exists but eksprivate did not make it for {ctx.name}",
                           blocked="used as it is, never changed or deleted (to have eksprivate manage one, pick "
                                   "another name)")]
        out = []
        if found["mutability"] != TAG_MUTABILITY:
            out.append(Change(f"make image tags immutable (now {found['mutability']})",
                              partial(self._immutable_tags, ctx, found)))
        if not found["scan_on_push"]:
            out.append(Change("turn on scan on push", partial(self._scan_on_push, ctx, found)))
        return out

    def _immutable_tags(self, ctx: Context, found: Found) -> str:
        ctx.aws.ecr.put_image_tag_mutability(repositoryName=self.name, imageTagMutability=TAG_MUTABILITY)
        found["mutability"] = TAG_MUTABILITY
        return "made image tags immutable"

    def _scan_on_push(self, ctx: Context, found: Found) -> str:
        ctx.aws.ecr.put_image_scanning_configuration(repositoryName=self.name,
                                                     imageScanningConfiguration={"scanOnPush": True})
        found["scan_on_push"] = True
        return "turned on scan on push"

    def remove(self, ctx: Context, found: Found) -> None:
        if found.get("external"):
            return  # never reached: `find` hides foreign repositories from down and prune
        with suppress(NotFound):
            ctx.aws.ecr.delete_repository(repositoryName=self.name, force=True)

    def describe(self, found: Found) -> str:
        images = found.get("images", 0)
        count = f"{images}+" if images >= IMAGE_COUNT_LIMIT else str(images)
        return f"{found.get('uri') or found['repository_name']} ({count} image{'' if images == 1 else 's'})"


def other_repositories(ctx: Context, known: set[str], *, scan: bool) -> list[str]:
    """Repositories eksprivate made for this cluster that `known` (the config) does not name: those the
    state file remembers, and with `scan` (down, status) every repository tagged for the cluster, so
    teardown finds them even without the state file."""
    names = {key.removeprefix("ecr/") for key in ctx.ledger.snapshot()["steps"] if key.startswith("ecr/")}
    if scan:
        try:
            for repo in ctx.aws.ecr.paginate("describe_repositories", "repositories"):
                name = repo["repositoryName"]
                if name not in known and name not in names and _owner(ctx, repo["repositoryArn"]) == ctx.name:
                    names.add(name)
        except AccessDenied:
            pass  # a caller without ECR permissions never made repositories with eksprivate: nothing to find
    return sorted(names - known)
