"""The ledger in S3: conditional writes (a stale writer is refused), the lock object (a second holder is
refused naming the first; only its holder or an explicit break removes it; renewal notices a broken lock),
encryption, and the bad-input checks on the bucket — against the sandbox's S3 (moto + s3_state)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from eksprivate.aws import Aws
from eksprivate.errors import StateError, UsageError
from eksprivate.sandbox import SandboxServer
from eksprivate.sandbox import s3_state as sandbox_s3
from eksprivate.state import Ledger
from eksprivate.state_s3 import LockInfo, S3Location, S3Store, parse_url

REGION = "eu-central-1"
ACCOUNT = "123456789012"
NAME = "prod"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture
def s3(stand_in: SandboxServer) -> Any:
    return boto3.client("s3", endpoint_url=stand_in.url, region_name=REGION, **CREDENTIALS)


@pytest.fixture
def bucket(s3: Any) -> Iterator[str]:
    name = f"state-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    yield name


def store(stand_in: SandboxServer, bucket: str, key: str = "eks/prod.json") -> S3Store:
    aws = Aws(REGION, endpoint_url=stand_in.url, credentials=CREDENTIALS)
    return S3Store(aws.client("s3"), S3Location(bucket, key), REGION)


# -- URLs ---------------------------------------------------------------------------------------------


def test_urls_name_the_object_and_a_prefix_gets_the_default_name() -> None:
    assert parse_url("s3://team-state/eks/prod.json", NAME, REGION) == S3Location("team-state", "eks/prod.json")
    assert parse_url("s3://team-state/eks/", NAME, REGION).key == f"eks/{NAME}-{REGION}.json"
    assert parse_url("s3://team-state", NAME, REGION).key == f"{NAME}-{REGION}.json"
    for bad in ("s3://Team_State/x.json", "s3://ab/x.json", "s3://team-state/x.json.lock", "s3://1.2.3.4/x"):
        with pytest.raises(UsageError):
            parse_url(bad, NAME, REGION)


# -- the document -------------------------------------------------------------------------------------


def test_saves_are_whole_encrypted_objects_and_a_ledger_reads_them_back(
        stand_in: SandboxServer, bucket: str, s3: Any) -> None:
    first = store(stand_in, bucket)
    assert first.check() == []  # versioning on: no warning
    ledger = Ledger.open(first, NAME, REGION, ACCOUNT)
    assert ledger.path == f"s3://{bucket}/eks/prod.json"
    ledger.record("vpc", vpc_id="vpc-1")
    ledger.record("subnets", parts={"a": {"subnet_id": "subnet-1"}})
    head = s3.head_object(Bucket=bucket, Key="eks/prod.json")
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ContentType"] == "application/json"
    again = Ledger.open(store(stand_in, bucket), NAME, REGION, ACCOUNT)
    assert again.ids("vpc") == {"vpc_id": "vpc-1"} and again.ids("subnets")["parts"]["a"]["subnet_id"] == "subnet-1"
    versions = s3.list_object_versions(Bucket=bucket, Prefix="eks/prod.json")["Versions"]
    assert len(versions) == 2  # one per save: bucket versioning is the backup


def test_a_stale_writer_is_refused_and_overwrites_nothing(stand_in: SandboxServer, bucket: str, s3: Any) -> None:
    """Naive code (a plain PutObject) would let the second writer clobber the first one's ids."""
    alice = Ledger.open(store(stand_in, bucket), NAME, REGION, ACCOUNT)
    alice.record("vpc", vpc_id="vpc-1")
    bob = Ledger.open(store(stand_in, bucket), NAME, REGION, ACCOUNT)  # reads alice's version
    alice.record("cluster", cluster_name=NAME)  # alice moves on: bob's copy is now stale
    with pytest.raises(StateError, match="changed since this run read it"):
        bob.record("kms-key", key_id="k-1")
    saved = json.loads(s3.get_object(Bucket=bucket, Key="eks/prod.json")["Body"].read())
    assert set(saved["steps"]) == {"vpc", "cluster"}


def test_a_first_save_does_not_overwrite_a_state_created_meanwhile(stand_in: SandboxServer, bucket: str) -> None:
    """Both start from "no state": only the first create wins (If-None-Match: *)."""
    one = Ledger.open(store(stand_in, bucket), NAME, REGION, ACCOUNT)
    two = Ledger.open(store(stand_in, bucket), NAME, REGION, ACCOUNT)
    one.record("vpc", vpc_id="vpc-1")
    with pytest.raises(StateError, match="changed since this run read it"):
        two.record("vpc", vpc_id="vpc-2")


def test_a_retried_write_that_had_landed_is_not_taken_for_a_stale_one(stand_in: SandboxServer, bucket: str) -> None:
    """A PUT whose answer was lost is retried by the SDK and then meets its own ETag change (412): the
    object holds exactly what was sent, so it counts as saved."""
    one = store(stand_in, bucket)
    doc: dict[str, Any] = {"schema": 1, "name": NAME, "region": REGION, "account": ACCOUNT, "steps": {}}
    one.save(doc)
    before = one._etag
    doc["steps"]["vpc"] = {"ids": {"vpc_id": "vpc-1"}}
    one.save(doc)  # lands...
    one._etag = before  # ...but its answer was lost: the retry carries the ETag it read
    one.save(doc)  # 412, yet the object is exactly this document: saved, not stale
    doc["steps"]["vpc"]["ids"]["cidr"] = "10.0.0.0/16"
    one._etag = before
    with pytest.raises(StateError, match="changed since this run read it"):
        one.save(doc)  # a different document over a newer one: stale


def test_a_key_holding_something_else_is_refused_and_left_alone(stand_in: SandboxServer, bucket: str, s3: Any) -> None:
    s3.put_object(Bucket=bucket, Key="eks/prod.json", Body=b'{"version": 4, "resources": []}')
    with pytest.raises(StateError, match="not an eksprivate state"):
        Ledger.open(store(stand_in, bucket), NAME, REGION, ACCOUNT)
    assert s3.get_object(Bucket=bucket, Key="eks/prod.json")["Body"].read() == b'{"version": 4, "resources": []}'


# -- the bucket --------------------------------------------------------------------------------------


def test_a_missing_bucket_is_one_clear_error(stand_in: SandboxServer) -> None:
    with pytest.raises(UsageError, match="state bucket no-such-bucket-h8 does not exist"):
        store(stand_in, "no-such-bucket-h8").check()


def test_a_bucket_in_another_region_is_refused(stand_in: SandboxServer) -> None:
    other = boto3.client("s3", endpoint_url=stand_in.url, region_name="us-west-2", **CREDENTIALS)
    name = f"state-{uuid.uuid4().hex[:12]}"
    other.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    with pytest.raises(UsageError, match=f"state bucket {name} is in us-west-2, not in {REGION}"):
        store(stand_in, name).check()


def test_versioning_off_is_warned_about(stand_in: SandboxServer, s3: Any) -> None:
    name = f"state-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    (warning,) = store(stand_in, name).check()
    assert "versioning off" in warning and "backup" in warning


def test_a_bucket_with_a_kms_default_gets_its_key_named(stand_in: SandboxServer, bucket: str, s3: Any) -> None:
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "alias/state"}}]})
    one = store(stand_in, bucket)
    one.check()
    Ledger.open(one, NAME, REGION, ACCOUNT).record("vpc", vpc_id="vpc-1")
    head = s3.head_object(Bucket=bucket, Key="eks/prod.json")
    assert head["ServerSideEncryption"] == "aws:kms"


# -- the lock -----------------------------------------------------------------------------------------


def test_a_second_holder_is_refused_naming_the_first(stand_in: SandboxServer, bucket: str, s3: Any) -> None:
    first, second = store(stand_in, bucket), store(stand_in, bucket)
    with first.lock("up"):
        holder = json.loads(s3.get_object(Bucket=bucket, Key="eks/prod.json.lock")["Body"].read())
        assert holder["command"] == "up" and holder["pid"] > 0 and holder["host"] and holder["user"]
        with pytest.raises(StateError) as refused, second.lock("down"):
            pass
        text = str(refused.value)
        assert f"locked by {holder['user']}@{holder['host']} since " in text and "(up)" in text
        assert "eksprivate unlock" in text
    with second.lock("down"):  # released when the first run ended
        pass
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="eks/prod.json.lock")


def test_concurrent_lock_attempts_have_exactly_one_winner(
        stand_in: SandboxServer, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS: of concurrent `If-None-Match: *` writes the first to finish wins, the rest get 412. moto checks
    the precondition and stores the object in two steps on server threads: slowed down here so that every
    attempt passes the check first, plain moto lets several "win"; the sandbox makes it atomic."""
    from moto.s3.models import S3Backend

    original = S3Backend.put_object

    def slow_put(self: Any, *args: Any, **kwargs: Any) -> Any:
        time.sleep(0.05)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(S3Backend, "put_object", slow_put)
    stores = [store(stand_in, bucket) for _ in range(6)]
    barrier = threading.Barrier(len(stores))
    outcomes: list[str] = []

    def attempt(one: S3Store) -> None:
        barrier.wait()
        try:
            one.run_lock.acquire(LockInfo.mine("up"))
            outcomes.append("won")
        except StateError:
            outcomes.append("refused")

    threads = [threading.Thread(target=attempt, args=(one,)) for one in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["refused"] * 5 + ["won"]


def test_a_conflict_answer_is_retried(stand_in: SandboxServer, bucket: str) -> None:
    """AWS answers 409 ConditionalRequestConflict when a delete races a conditional write, and says to retry;
    naive code would fail the run on it."""
    sandbox_s3.inject_conflicts(2)
    try:
        one = store(stand_in, bucket)
        with one.lock("up"):
            Ledger.open(one, NAME, REGION, ACCOUNT).record("vpc", vpc_id="vpc-1")
    finally:
        sandbox_s3.inject_conflicts(0)


def test_renewal_keeps_the_lock_and_notices_when_it_was_broken(stand_in: SandboxServer, bucket: str, s3: Any) -> None:
    one = store(stand_in, bucket)
    ledger = Ledger.open(one, NAME, REGION, ACCOUNT)
    with ledger.lock("up"):
        before = LockInfo.from_json(s3.get_object(Bucket=bucket, Key="eks/prod.json.lock")["Body"].read())
        assert one.renew()
        info, etag = store(stand_in, bucket).read_lock() or (None, "")
        assert info is not None and info.id == before.id and info.renewed_at >= before.renewed_at
        store(stand_in, bucket).break_lock(etag)  # `eksprivate unlock` elsewhere
        assert not one.renew()
        with pytest.raises(StateError, match="lock was broken"):
            ledger.record("vpc", vpc_id="vpc-1")
        taker = store(stand_in, bucket)
        taker.run_lock.acquire(LockInfo.mine("up"))  # someone else's lock now: the first run's exit must keep it
    held = store(stand_in, bucket).read_lock()
    assert held is not None and held[0].id == taker.run_lock.info.id  # type: ignore[union-attr]
    taker.run_lock.release()


def test_breaking_a_lock_renewed_meanwhile_is_refused(stand_in: SandboxServer, bucket: str) -> None:
    """`unlock` deletes the lock it showed (If-Match): a holder that renewed it since is alive."""
    one = store(stand_in, bucket)
    with one.lock("up"):
        shown = store(stand_in, bucket).read_lock()
        assert shown is not None
        assert one.renew()
        with pytest.raises(StateError, match="still running"):
            store(stand_in, bucket).break_lock(shown[1])


def test_unlock_of_a_local_state_has_nothing_to_break(tmp_path: Any) -> None:
    """A local lock is a flock: it dies with its process, so `unlock` never deletes anything there; while a
    live run holds it, `unlock` names it and refuses."""
    from eksprivate.state import LocalStore
    from eksprivate.state_admin import unlock

    said: list[str] = []
    local = LocalStore(tmp_path / "prod-eu-central-1.json")
    assert unlock(local, confirm=lambda _: True, say=said.append, warn=said.append) is False
    assert "nothing to break" in said[-1]
    held = pytest.raises(UsageError, match=r"held by a running eksprivate \(pid \d+ on .*, up\)")
    with local.lock("up"), held:
        unlock(local, confirm=lambda _: True, say=said.append, warn=said.append)


class _Ticks:
    """Stands in for the renewal thread's stop event: `n` renewal periods pass, then it is told to stop."""

    def __init__(self, n: int) -> None:
        self.n = n

    def wait(self, timeout: float) -> bool:
        self.n -= 1
        return self.n < 0


def test_the_lock_is_renewed_each_period_while_the_run_waits(stand_in: SandboxServer, bucket: str) -> None:
    """Naive code writes the lock once: a long run would then look exactly like a dead one to `unlock`."""
    one = store(stand_in, bucket)
    with one.lock("up"):
        one.run_lock.renew_until(_Ticks(3))  # type: ignore[arg-type]
        held = store(stand_in, bucket).read_lock()
        assert held is not None and held[0].renewals == 3
