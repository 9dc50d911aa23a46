"""The ledger in S3, for teams: `--state s3://bucket/key.json` (or `state = "s3://..."` in the config).

The same guarantees as the local file, built from S3 conditional writes (PutObject `If-None-Match` /
`If-Match`, HTTP 412 PreconditionFailed when the condition does not hold):

* every save writes the whole document, conditionally on the ETag this run last read or wrote, so a
  stale writer is refused instead of clobbering a newer state; a state that does not exist yet is
  created with `If-None-Match: *`;
* every object is written with server-side encryption (the bucket's default KMS key when it has one,
  else SSE-S3); the document holds ids and ARNs, never credentials;
* the run lock is a second object, `<key>.lock`, created with `If-None-Match: *` (as Terraform's S3
  backend does with `use_lockfile`), naming user, host, pid, command and start time. A thread renews it
  (conditional on its own ETag) while the run waits on AWS, so `eksprivate unlock` can tell a live
  holder from a gone one; it is deleted conditionally on its ETag, so a run never deletes a lock that
  is not its own. A SIGKILLed run leaves its lock behind: only `eksprivate unlock` breaks it.
* bucket versioning is the backup (the local `.bak`): it is checked, and its absence warned about.

Bad input is found before anything is written: a bucket that does not exist, no permission, a bucket in
another region than the cluster, a key holding something that is not an eksprivate state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from eksprivate.errors import (
    AccessDenied,
    AwsApiError,
    ConditionalConflict,
    NotFound,
    PreconditionFailed,
    StateError,
    UsageError,
)
from eksprivate.grants import Arns, Condition, Grant, grant, reads
from eksprivate.state import check_schema, current_user, parse

if TYPE_CHECKING:
    from eksprivate.aws import Client

SCHEME = "s3://"
LOCK_SUFFIX = ".lock"
RENEW_SECONDS = 60.0  # how often a running command renews its lock object
CONFLICT_RETRIES = 5  # 409 ConditionalRequestConflict: AWS says retry; a retry answers 200 or 412
# S3 general purpose bucket names: 3-63 lowercase letters, digits, dots and hyphens (AWS naming rules).
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# Without s3:ListBucket, S3 answers a missing key with 403, not 404: it is needed to start a new state.
PERMISSIONS = ("s3:ListBucket (HeadBucket), s3:GetBucketVersioning, s3:GetEncryptionConfiguration, "
               "s3:GetObject, s3:PutObject, s3:DeleteObject (plus kms:GenerateDataKey and kms:Decrypt on a "
               "KMS-encrypted bucket)")


def grants(where: S3Location, arns: Arns, dns_suffix: str) -> list[Grant]:
    """What a state in S3 calls: the bucket read (HeadBucket is s3:ListBucket), the state object and its lock
    object only (S3 takes no region or account in its ARNs), and the bucket's KMS key through S3 alone
    (kms:ViaService) when the bucket encrypts with one."""
    bucket = f"arn:{arns.partition}:s3:::{where.bucket}"
    objects = [f"{bucket}/{where.key}", f"{bucket}/{where.lock_key}"]
    return [reads("s3:ListBucket", "s3:GetBucketVersioning", "s3:GetEncryptionConfiguration", on=bucket,
                  why="the state bucket: exists, versioning, default encryption"),
            reads("s3:GetObject", on=objects, why="read the state and its lock"),
            grant(("create", "update", "remove"), "s3:PutObject", "s3:DeleteObject", on=objects,
                  why="write the state; take, renew and release the lock (unlock breaks it; state migrate moves it)"),
            grant(("find", "create", "update", "remove"), "kms:GenerateDataKey", "kms:Decrypt",
                  on=arns.kms_key(),
                  when=[Condition("StringEquals", "kms:ViaService", (f"s3.{arns.region}.{dns_suffix}",))],
                  why="a bucket encrypted with a KMS key: through S3 only")]


def is_s3_url(text: str | None) -> bool:
    return bool(text) and str(text).startswith(SCHEME)


@dataclasses.dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @property
    def url(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"

    @property
    def lock_key(self) -> str:
        return self.key + LOCK_SUFFIX


def parse_url(text: str, name: str, region: str) -> S3Location:
    """`s3://bucket/key.json`; a key that is empty or ends in `/` gets `<name>-<region>.json` appended,
    so one prefix can hold every cluster's state."""
    if not is_s3_url(text):
        raise UsageError(f"state {text!r} is not an s3://bucket/key URL")
    bucket, _, key = text[len(SCHEME):].partition("/")
    if not BUCKET_RE.match(bucket) or ".." in bucket or re.fullmatch(r"[\d.]+", bucket):
        raise UsageError(f"state {text!r}: {bucket!r} is not an S3 bucket name",
                         "use s3://<bucket>/<key>.json with a bucket of 3-63 lowercase letters, digits, '.', '-'")
    if not key or key.endswith("/"):
        key += f"{name}-{region}.json"
    if key.endswith(LOCK_SUFFIX):
        raise UsageError(f"state {text!r}: keys ending in {LOCK_SUFFIX} are eksprivate's lock objects",
                         "name the state object itself, e.g. s3://bucket/eks/prod.json")
    return S3Location(bucket, key)


@dataclasses.dataclass
class LockInfo:
    """What a lock object says about its holder."""

    id: str = ""
    user: str = "?"
    host: str = "?"
    pid: int = 0
    command: str = "?"
    started_at: str = ""
    renewed_at: str = ""
    renewals: int = 0  # changes the object (and its ETag) on every renewal, even within one second

    @classmethod
    def mine(cls, command: str) -> LockInfo:
        now = _now()
        return cls(id=str(uuid.uuid4()), user=current_user(), host=socket.gethostname(), pid=os.getpid(),
                   command=command, started_at=now, renewed_at=now)

    @classmethod
    def from_json(cls, body: bytes) -> LockInfo:
        try:
            raw = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return cls()
        if not isinstance(raw, dict):
            return cls()
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True).encode() + b"\n"

    @property
    def who(self) -> str:
        return f"{self.user}@{self.host}"

    def summary(self) -> str:
        """`locked by alice@laptop since 10:42 UTC (up)`."""
        return f"locked by {self.who} since {_short_time(self.started_at)} ({self.command})"

    def details(self) -> str:
        renewed = _age(self.renewed_at)
        return (f"{self.summary()}: pid {self.pid}, lock id {self.id or '?'}, "
                f"last renewed {renewed + ' ago' if renewed else 'never'}")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _parse_time(text: str) -> dt.datetime | None:
    try:
        stamp = dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.timezone.utc)


def _short_time(text: str) -> str:
    stamp = _parse_time(text)
    if stamp is None:
        return "an unknown time"
    today = dt.datetime.now(dt.timezone.utc).date()
    return stamp.strftime("%H:%M UTC" if stamp.date() == today else "%Y-%m-%d %H:%M UTC")


def _age(text: str) -> str:
    stamp = _parse_time(text)
    if stamp is None:
        return ""
    seconds = max(0, int((dt.datetime.now(dt.timezone.utc) - stamp).total_seconds()))
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def seconds_since(text: str) -> float | None:
    stamp = _parse_time(text)
    return None if stamp is None else (dt.datetime.now(dt.timezone.utc) - stamp).total_seconds()


class _Released(StateError):
    """The lock object vanished between a refused create and reading it: its holder just finished."""


class S3Objects:
    """Object IO on the state's bucket: the checks before anything is written (and the bucket's default
    encryption, which every write then names), GetObject, and conditional PutObject / DeleteObject."""

    def __init__(self, s3: Client, where: S3Location, region: str) -> None:
        self.s3 = s3
        self.where = where
        self.region = region
        self.encryption: dict[str, str] = {"ServerSideEncryption": "AES256"}

    def check(self) -> list[str]:
        """Refuse a bucket that is missing, not ours to use or in another region; returns warnings
        (versioning off). Learns the bucket's default encryption, which every write then names."""
        bucket = self.where.bucket
        try:
            head = self.s3.head_bucket(Bucket=bucket)
        except NotFound:
            raise UsageError(f"state bucket {bucket} does not exist",
                             "create it (with versioning on) or fix the --state URL") from None
        except AccessDenied:
            raise UsageError(f"no permission to use state bucket {bucket}",
                             f"grant {PERMISSIONS} on it and its objects") from None
        located = head.get("BucketRegion") or head.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get(
            "x-amz-bucket-region")
        if located and located != self.region:
            raise UsageError(f"state bucket {bucket} is in {located}, not in {self.region} where the cluster is",
                             f"keep a cluster's state in its own region: use a bucket in {self.region}")
        warnings = []
        try:
            status = self.s3.get_bucket_versioning(Bucket=bucket).get("Status")
            if status != "Enabled":
                warnings.append(f"state bucket {bucket} has versioning {(status or 'off').lower()}: the object "
                                "versions are the state's backup; enable it (aws s3api put-bucket-versioning)")
        except AccessDenied:
            warnings.append(f"cannot check versioning of state bucket {bucket} (s3:GetBucketVersioning denied)")
        try:
            rules = self.s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
            default = rules[0]["ApplyServerSideEncryptionByDefault"] if rules else {}
            if str(default.get("SSEAlgorithm", "")).startswith("aws:kms"):
                # Name the bucket's own KMS key: a bucket policy may require it, and SSE-S3 would bypass it.
                self.encryption = {"ServerSideEncryption": default["SSEAlgorithm"]}
                if default.get("KMSMasterKeyID"):
                    self.encryption["SSEKMSKeyId"] = default["KMSMasterKeyID"]
        except (AwsApiError, KeyError, IndexError):
            pass  # no readable default: SSE-S3, which every bucket accepts
        return warnings

    def get(self, key: str) -> tuple[bytes, str] | None:
        """The object's body and ETag; None when there is none."""
        try:
            answer = self.s3.get_object(Bucket=self.where.bucket, Key=key)
        except NotFound:
            return None
        return answer["Body"].read(), answer["ETag"]

    def put(self, key: str, body: bytes, condition: dict[str, str],
            stale: Callable[[], StateError]) -> dict[str, Any]:
        """A conditional PutObject: 409 retried as AWS advises; 412 (or 404 for If-Match on a deleted
        object) raises `stale()` unless the object already holds exactly `body` (a retried request whose
        first attempt had succeeded)."""
        for attempt in range(CONFLICT_RETRIES):
            try:
                answer: dict[str, Any] = self.s3.put_object(
                    Bucket=self.where.bucket, Key=key, Body=body, ContentType="application/json",
                    **self.encryption, **condition)
                return answer
            except ConditionalConflict:
                time.sleep(0.1 * (attempt + 1))
            except (PreconditionFailed, NotFound):
                current = self.get(key)
                if current is not None and current[0] == body:
                    return {"ETag": current[1]}
                raise stale() from None
            except AccessDenied:
                raise UsageError(f"no permission to write {SCHEME}{self.where.bucket}/{key}",
                                 f"grant {PERMISSIONS} on the bucket and its objects") from None
        raise stale()

    def delete(self, key: str, condition: dict[str, str]) -> None:
        """DeleteObject, conditional when `condition` names an ETag (PreconditionFailed, NotFound raised)."""
        self.s3.delete_object(Bucket=self.where.bucket, Key=key, **condition)


class S3Lock:
    """The run lock: the object `<key>.lock`, created with `If-None-Match: *`, renewed by a thread while the run
    waits on AWS (conditional on its own ETag), deleted conditionally on that ETag (see the module docstring)."""

    renew_every: float = RENEW_SECONDS

    def __init__(self, objects: S3Objects) -> None:
        self.objects = objects
        self.key = objects.where.lock_key
        self.etag: str | None = None
        self.info: LockInfo | None = None
        self.lost: str | None = None  # why this run no longer holds its lock
        self._mutex = threading.Lock()  # the renewal thread and the release never overlap

    @property
    def location(self) -> str:
        return self.objects.where.url

    @contextlib.contextmanager
    def hold(self, command: str) -> Iterator[None]:
        self.acquire(LockInfo.mine(command))
        stop = threading.Event()
        renewer = threading.Thread(target=self.renew_until, args=(stop,), name="eksprivate-lock", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join(timeout=30)
            self.release()

    def acquire(self, info: LockInfo) -> None:
        def held_by_other() -> StateError:
            holder = self.read()
            if holder is None:  # released between our write and our read: try again
                return _Released("released")
            return StateError(f"state {self.location} is {holder[0].summary()}, pid {holder[0].pid}",
                              "wait for that run to finish; if it is gone (killed, machine lost), "
                              f"`eksprivate unlock --state {self.location}` shows the lock and breaks it")

        for _ in range(CONFLICT_RETRIES):
            try:
                answer = self.objects.put(self.key, info.to_json(), {"IfNoneMatch": "*"}, held_by_other)
            except _Released:
                continue
            self.etag, self.info, self.lost = answer["ETag"], info, None
            return
        raise StateError(f"could not take the lock on {self.location}: it keeps changing", "rerun in a moment")

    def renew_until(self, stop: threading.Event) -> None:
        while not stop.wait(self.renew_every):
            if not self.renew():
                return

    def renew(self) -> bool:
        """Rewrite the lock with a fresh `renewed_at`, conditional on its ETag; False once it is lost."""
        with self._mutex:
            if self.info is None or self.etag is None:
                return False
            info = dataclasses.replace(self.info, renewed_at=_now(), renewals=self.info.renewals + 1)
            try:
                answer = self.objects.s3.put_object(
                    Bucket=self.objects.where.bucket, Key=self.key, Body=info.to_json(),
                    ContentType="application/json", IfMatch=self.etag, **self.objects.encryption)
            except (PreconditionFailed, NotFound):
                self.lost = "its lock was broken (eksprivate unlock) while this run held it"
                self.etag = None
                return False
            except AwsApiError:
                return True  # a passing failure (409, network): the next renewal tries again
            self.etag, self.info = answer["ETag"], info
            return True

    def release(self) -> None:
        with self._mutex:
            etag, self.etag, self.info = self.etag, None, None
            if etag is None:
                return  # lost: whatever is there now is not ours to delete
            with contextlib.suppress(NotFound, PreconditionFailed):
                self.objects.delete(self.key, {"IfMatch": etag})

    def read(self) -> tuple[LockInfo, str] | None:
        """The lock object's holder and ETag; None when nobody holds the lock."""
        found = self.objects.get(self.key)
        return None if found is None else (LockInfo.from_json(found[0]), found[1])

    def break_(self, etag: str) -> None:
        """Delete the lock shown to the user, and only that one: a holder that renewed it meanwhile is
        alive, and its lock stays."""
        try:
            self.objects.delete(self.key, {"IfMatch": etag})
        except NotFound:
            return
        except PreconditionFailed:
            raise StateError(f"the lock on {self.location} changed while you looked: its holder renewed it, "
                             "so it is still running", "let it finish") from None


class S3Store:
    """One ledger document in S3 (see the module docstring); a `StateStore`. The document's reads and
    conditional writes are here; the bucket's object IO is `objects` (S3Objects), the run lock `run_lock`
    (S3Lock)."""

    def __init__(self, s3: Client, where: S3Location, region: str) -> None:
        self.where = where
        self.objects = S3Objects(s3, where, region)
        self.run_lock = S3Lock(self.objects)
        self._etag: str | None = None  # of the state as this run last read or wrote it; None: none exists

    @property
    def location(self) -> str:
        return self.where.url

    @property
    def renew_every(self) -> float:
        return self.run_lock.renew_every

    def check(self) -> list[str]:
        """The bucket's checks, before anything is written (`S3Objects.check`)."""
        return self.objects.check()

    # -- the document ------------------------------------------------------------------------------------
    def load(self) -> dict[str, Any] | None:
        try:
            answer = self.objects.s3.get_object(Bucket=self.where.bucket, Key=self.where.key)
        except NotFound:
            self._etag = None
            return None
        except AccessDenied:
            raise UsageError(f"no permission to read {self.location}",
                             f"grant {PERMISSIONS} on the bucket and its objects") from None
        body = answer["Body"].read()
        self._etag = answer["ETag"]
        try:
            data = parse(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise StateError(f"{self.location} holds something that is not an eksprivate state",
                             "point --state at another key: eksprivate never overwrites an object it "
                             "cannot read as its own state") from None
        return check_schema(data, self.location)

    def save(self, data: dict[str, Any]) -> None:
        if self.run_lock.lost:
            raise StateError(f"not saving {self.location}: {self.run_lock.lost}",
                             "another run may own the state now; check with `eksprivate status`, then rerun")
        body = json.dumps(data, indent=2, sort_keys=True).encode() + b"\n"
        condition = {"IfMatch": self._etag} if self._etag else {"IfNoneMatch": "*"}
        answer = self.objects.put(self.where.key, body, condition, stale=self._stale)
        self._etag = answer["ETag"]

    def delete(self) -> None:
        condition = {"IfMatch": self._etag} if self._etag else {}
        try:
            self.objects.delete(self.where.key, condition)
        except NotFound:
            pass
        except PreconditionFailed:
            raise self._stale() from None
        self._etag = None

    def _stale(self) -> StateError:
        return StateError(f"{self.location} changed since this run read it: another run wrote it",
                          "nothing was overwritten; rerun to continue from the saved state")

    def create(self, data: dict[str, Any]) -> None:
        """Write a state where none may exist yet (`state migrate`): refused if one appeared meanwhile."""
        self._etag = None
        self.save(data)

    # -- the lock (S3Lock) -----------------------------------------------------------------------------
    def lock(self, command: str) -> contextlib.AbstractContextManager[None]:
        return self.run_lock.hold(command)

    def renew(self) -> bool:
        return self.run_lock.renew()

    def read_lock(self) -> tuple[LockInfo, str] | None:
        return self.run_lock.read()

    def break_lock(self, etag: str) -> None:
        self.run_lock.break_(etag)
