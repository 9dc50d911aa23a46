"""The state ledger: atomic saves with a backup, private file modes, refusing what is not ours, and the
one-run-at-a-time lock (including a lock whose holder was killed)."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from eksprivate.errors import StateError
from eksprivate.state import (
    SCHEMA_VERSION,
    Ledger,
    backup_path,
    close_folder,
    default_path,
    read,
    run_lock,
    write_atomic,
)

NAME, REGION, ACCOUNT = "prod", "eu-central-1", "123456789012"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# -- atomic writes ---------------------------------------------------------------------------------------


def test_write_is_private_in_a_private_folder(tmp_path: Path) -> None:
    path = tmp_path / "new" / "state" / "prod-eu-central-1.json"
    write_atomic(path, {"steps": {}, "v": 1})
    assert json.loads(path.read_text()) == {"steps": {}, "v": 1}
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert leftovers(path.parent) == []


def test_each_write_keeps_the_previous_version_as_backup(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    write_atomic(path, {"steps": {}, "v": 1})
    assert not backup_path(path).exists()  # nothing to back up yet
    write_atomic(path, {"steps": {}, "v": 2})
    assert json.loads(backup_path(path).read_text())["v"] == 1
    write_atomic(path, {"steps": {}, "v": 3})
    assert json.loads(backup_path(path).read_text())["v"] == 2
    assert json.loads(path.read_text())["v"] == 3
    assert mode(backup_path(path)) == 0o600
    assert leftovers(tmp_path) == []


def test_a_failed_write_leaves_the_old_file_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.json"
    write_atomic(path, {"steps": {}, "v": 1})
    before = path.read_bytes()

    def crash(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, {"steps": {}, "v": 2})
    assert path.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_the_repository_state_folder_is_closed_to_others(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    close_folder(folder)
    assert mode(folder) == 0o700
    target = tmp_path / "elsewhere"
    target.mkdir()
    os.chmod(target, 0o755)
    link = tmp_path / "link"
    link.symlink_to(target)
    close_folder(link)  # never follows a symlink
    assert mode(target) == 0o755


# -- reading -----------------------------------------------------------------------------------------------


def test_missing_file_reads_as_none(tmp_path: Path) -> None:
    assert read(tmp_path / "none.json") is None


@pytest.mark.parametrize("content", ["{not json", "[]", '{"schema": 1}', ""])
def test_corrupt_file_names_its_backup(tmp_path: Path, content: str) -> None:
    path = tmp_path / "s.json"
    path.write_text(content)
    with pytest.raises(StateError) as info:
        read(path)
    assert "is corrupt" in info.value.message and "no backup exists" in str(info.value)
    assert info.value.exit_code == 2

    backup_path(path).write_text(json.dumps({"schema": SCHEMA_VERSION, "steps": {}}))
    with pytest.raises(StateError) as info:
        read(path)
    assert str(backup_path(path)) in str(info.value)


def test_file_of_another_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"schema": 99, "steps": {}}))
    with pytest.raises(StateError, match="schema 99"):
        read(path)


@pytest.mark.parametrize(("field", "value"), [("name", "other"), ("region", "us-east-1"),
                                              ("account", "999999999999")])
def test_state_of_another_cluster_region_or_account_is_refused(tmp_path: Path, field: str, value: str) -> None:
    path = tmp_path / "s.json"
    ledger = Ledger.open(path, NAME, REGION, ACCOUNT)
    ledger.record("vpc", vpc_id="vpc-1")
    want = {"name": NAME, "region": REGION, "account": ACCOUNT, field: value}
    with pytest.raises(StateError) as info:
        Ledger.open(path, want["name"], want["region"], want["account"])
    assert f"belongs to {field} {ledger.data[field]!r}, not {value!r}" in info.value.message
    assert Ledger.open(path, NAME, REGION, ACCOUNT).ids("vpc") == {"vpc_id": "vpc-1"}


# -- the ledger ----------------------------------------------------------------------------------------------


def test_nothing_is_written_until_there_is_something_to_record(tmp_path: Path) -> None:
    path = tmp_path / "state" / "s.json"
    ledger = Ledger.open(path, NAME, REGION, ACCOUNT)
    assert not path.exists() and not path.parent.exists()
    ledger.begin("vpc", "token-1")  # the intent, before the create call
    on_disk = json.loads(path.read_text())
    assert on_disk["steps"]["vpc"]["token"] == "token-1" and on_disk["steps"]["vpc"]["ids"] == {}
    assert (on_disk["schema"], on_disk["name"], on_disk["region"], on_disk["account"]) == (
        SCHEMA_VERSION, NAME, REGION, ACCOUNT)
    ledger.record("vpc", vpc_id="vpc-1")  # the id, the moment the create returns
    again = Ledger.open(path, NAME, REGION, ACCOUNT)
    assert again.ids("vpc") == {"vpc_id": "vpc-1"} and again.token("vpc") == "token-1"


def test_sync_writes_only_what_is_new(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    ledger = Ledger.open(path, NAME, REGION, ACCOUNT)
    ledger.record("vpc", vpc_id="vpc-1")
    inode = path.stat().st_ino
    ledger.sync("vpc", {"vpc_id": "vpc-1"})
    assert path.stat().st_ino == inode  # not rewritten
    ledger.sync("vpc", {"vpc_id": "vpc-2"})
    assert path.stat().st_ino != inode and Ledger.open(path, NAME, REGION, ACCOUNT).ids("vpc") == {"vpc_id": "vpc-2"}


def test_forget_drops_a_step_and_its_parts(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path / "s.json", NAME, REGION, ACCOUNT)
    for key in ("endpoints", "endpoints/ec2", "endpoints/sts", "endpoint-sg"):
        ledger.record(key, thing_id=key)
    ledger.forget("endpoints")
    assert sorted(ledger.snapshot()["steps"]) == ["endpoint-sg"]
    assert sorted(json.loads((tmp_path / "s.json").read_text())["steps"]) == ["endpoint-sg"]


def test_a_read_only_ledger_never_writes(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    ledger = Ledger.open(path, NAME, REGION, ACCOUNT, persist=False)
    ledger.begin("vpc", "t")
    ledger.record("vpc", vpc_id="vpc-1")
    ledger.set_input("availability_zones", ["a", "b"])
    assert ledger.ids("vpc") == {"vpc_id": "vpc-1"} and not path.exists()


def test_records_from_many_threads_all_land(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    ledger = Ledger.open(path, NAME, REGION, ACCOUNT)

    def worker(n: int) -> None:
        for i in range(10):
            ledger.record(f"step-{n}", **{f"thing{i}_id": f"id-{n}-{i}"})

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    on_disk = json.loads(path.read_text())["steps"]
    assert len(on_disk) == 8 and all(len(on_disk[f"step-{n}"]["ids"]) == 10 for n in range(8))
    assert leftovers(tmp_path) == []


def test_remove_file_after_a_complete_down(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    ledger = Ledger.open(path, NAME, REGION, ACCOUNT)
    ledger.record("vpc", vpc_id="vpc-1")
    ledger.record("vpc", vpc_id="vpc-2")
    assert backup_path(path).exists()
    ledger.remove_file()
    assert not path.exists() and not backup_path(path).exists()


def test_default_path() -> None:
    assert default_path(Path("state"), NAME, REGION) == Path("state/prod-eu-central-1.json")


# -- the run lock --------------------------------------------------------------------------------------------


def test_a_second_holder_is_refused_with_who_holds_it(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    with run_lock(path):
        lock = path.with_name(path.name + ".lock")
        assert mode(lock) == 0o600
        with pytest.raises(StateError) as info, run_lock(path):
            pass
        text = str(info.value)
        assert f"another eksprivate run holds {path}" in text
        assert f"pid {os.getpid()} on {socket.gethostname()}, started 20" in text
        assert info.value.exit_code == 2
    with run_lock(path):  # released when the first run ended
        pass


def test_the_lock_file_goes_with_the_state_file(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    lock = path.with_name(path.name + ".lock")
    path.write_text("{}")
    with run_lock(path):
        pass
    assert lock.exists()  # the state still exists: keep it
    with run_lock(path):
        path.unlink()  # as a complete `down` does
    assert not lock.exists()


HOLD = """
import sys, time
from pathlib import Path
from eksprivate.state import run_lock
with run_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StateError, match=f"pid {holder.pid} on "), run_lock(path):
            pass
        holder.send_signal(signal.SIGKILL)
        assert holder.wait() == -signal.SIGKILL
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    lock = path.with_name(path.name + ".lock")
    assert f'"pid": {holder.pid}' in lock.read_text()  # its note is still there...
    with run_lock(path):  # ...but the kernel dropped its lock with the process
        assert json.loads(lock.read_text())["pid"] == os.getpid()
