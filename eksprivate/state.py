"""The JSON ledger of what eksprivate made: atomic saves, a backup, and a one-run-at-a-time lock.

No AWS here. The file is written only once there is something to record (an intent or an id), so a
run that fails validation leaves an existing file byte-for-byte untouched and creates none.

Where the document lives is a `StateStore`: a local file (`LocalStore`: atomic rename, `.bak`, flock) or
an S3 object (`eksprivate.state_s3.S3Store`: conditional writes and a lock object). The Ledger's API is
the same for both.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import fcntl
import json
import os
import socket
import stat
import tempfile
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from eksprivate.errors import StateError

SCHEMA_VERSION = 1


def default_path(state_dir: Path, name: str, region: str) -> Path:
    return state_dir / f"{name}-{region}.json"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@runtime_checkable
class StateStore(Protocol):
    """Where one ledger document lives. Every save writes the whole document; `lock` keeps other
    mutating runs out for the duration of a command."""

    @property
    def location(self) -> Path | str:
        """The file, or the `s3://bucket/key` URL (for messages and `describe_target`)."""

    def load(self) -> dict[str, Any] | None:
        """The document (checked to be an eksprivate state), None when there is none."""

    def save(self, data: dict[str, Any]) -> None: ...

    def delete(self) -> None:
        """After a complete `down`: nothing is left to remember."""

    def lock(self, command: str) -> AbstractContextManager[None]:
        """Hold the one-run-at-a-time lock; StateError naming the holder when another run has it."""


class LocalStore:
    """A state file on this machine: temp file + fsync + rename, `.bak`, flock run lock."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def location(self) -> Path:
        return self.path

    def load(self) -> dict[str, Any] | None:
        return read(self.path)

    def save(self, data: dict[str, Any]) -> None:
        write_atomic(self.path, data)

    def delete(self) -> None:
        for p in (self.path, backup_path(self.path)):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()

    def lock(self, command: str) -> AbstractContextManager[None]:
        return run_lock(self.path, command)


class Ledger:
    """What one cluster's state file says, kept in memory and saved after every change."""

    def __init__(self, path: Path | StateStore, name: str, region: str, account: str,
                 data: dict[str, Any] | None = None, persist: bool = True) -> None:
        self.store: StateStore = path if isinstance(path, StateStore) else LocalStore(Path(path))
        # A local state's Path (as always); an S3 state's `s3://bucket/key` URL.
        self.path: Path | str = self.store.location
        self.persist = persist
        self._lock = threading.RLock()
        self.data: dict[str, Any] = data or {
            "schema": SCHEMA_VERSION, "name": name, "region": region, "account": account,
            "created_at": _now(), "updated_at": None, "inputs": {}, "steps": {},
        }

    # -- reading --------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path | StateStore, name: str, region: str, account: str, persist: bool = True) -> Ledger:
        """Load and check the state file, or start an empty ledger if there is none."""
        store = path if isinstance(path, StateStore) else LocalStore(Path(path))
        data = store.load()
        if data is None:
            return cls(store, name, region, account, persist=persist)
        check_owner(data, store.location, name, region, account)
        return cls(store, name, region, account, data, persist=persist)

    @contextlib.contextmanager
    def lock(self, command: str) -> Iterator[None]:
        """Hold the run lock for `command` (up, down, ...), then work on the latest saved document: another
        run may have saved between this one's read and its lock."""
        with self.store.lock(command):
            latest = self.store.load()
            with self._lock:
                if latest is not None:
                    check_owner(latest, self.store.location, self.data["name"], self.data["region"],
                                 self.data["account"])
                    self.data = latest
                elif self.data.get("updated_at"):  # removed meanwhile (a `down` elsewhere): start afresh
                    self.data = {**self.data, "updated_at": None, "inputs": {}, "steps": {}}
            yield

    def ids(self, key: str) -> dict[str, Any]:
        with self._lock:
            return dict(self.data["steps"].get(key, {}).get("ids", {}))

    def token(self, key: str) -> str | None:
        with self._lock:
            token = self.data["steps"].get(key, {}).get("token")
            return str(token) if token else None

    def input(self, key: str) -> Any:
        with self._lock:
            return copy.deepcopy(self.data["inputs"].get(key))

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self.data)

    # -- writing (each one saves) ----------------------------------------------------------------
    def begin(self, key: str, token: str) -> None:
        """Record the intent to create, with the idempotency token, *before* the create call. Ids of an
        earlier create under `key` are dropped: that resource is gone, or there would be no new create."""
        with self._lock:
            entry = self.data["steps"].setdefault(key, {})
            entry["token"] = token
            entry["ids"] = {}
            entry["started_at"] = _now()
            self.save()

    def record(self, key: str, **ids: Any) -> None:
        """Record resource ids the moment the create call returns, before any waiting."""
        with self._lock:
            entry = self.data["steps"].setdefault(key, {"ids": {}})
            entry.setdefault("ids", {}).update(ids)
            self.save()

    def set_input(self, key: str, value: Any) -> None:
        with self._lock:
            self.data["inputs"][key] = value
            self.save()

    def forget(self, key: str) -> None:
        """Drop a step and its sub-entries (`key/...`) once its resources are gone."""
        with self._lock:
            doomed = [k for k in self.data["steps"] if k == key or k.startswith(key + "/")]
            for k in doomed:
                del self.data["steps"][k]
            if doomed:
                self.save()

    def sync(self, key: str, ids: dict[str, Any]) -> None:
        """Remember ids `find` discovered (adopted after a crash or lost state); no write if known."""
        with self._lock:
            current = self.data["steps"].get(key, {}).get("ids", {})
            if any(current.get(k) != v for k, v in ids.items()):
                self.record(key, **ids)

    def save(self) -> None:
        if not self.persist:
            return
        with self._lock:
            self.data["updated_at"] = _now()
            self.store.save(self.data)

    def remove_file(self) -> None:
        """After a complete `down`: nothing is left to remember."""
        if not self.persist:
            return
        self.store.delete()


def check_owner(data: dict[str, Any], where: Path | str, name: str, region: str, account: str) -> None:
    for key, want in (("name", name), ("region", region), ("account", account)):
        if data.get(key) != want:
            raise StateError(
                f"state file {where} belongs to {key} {data.get(key)!r}, not {want!r}",
                "pass the matching --name/--region/--profile, or a different --state path")


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + ".bak")


def read(path: Path) -> dict[str, Any] | None:
    """The state file's content, None when there is none; StateError when it cannot be trusted."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise StateError(f"cannot read state file {path}: {exc}") from None
    try:
        data = parse(text)
    except ValueError as exc:
        bak = backup_path(path)
        hint = (f"the previous version is {bak}: inspect it and copy it over {path.name}"
                if bak.exists() else "no backup exists")
        raise StateError(f"state file {path} is corrupt ({exc})",
                         f"{hint}; or move the file away and rerun: eksprivate finds its resources by tag") from None
    return check_schema(data, path)


def parse(text: str) -> dict[str, Any]:
    """A state document from its JSON text; ValueError when it is not one."""
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("steps"), dict):
        raise ValueError("not an eksprivate state document")
    return data


def check_schema(data: dict[str, Any], where: Path | str) -> dict[str, Any]:
    if data.get("schema") != SCHEMA_VERSION:
        raise StateError(f"state file {where} has schema {data.get('schema')!r}; this eksprivate reads "
                         f"{SCHEMA_VERSION}", "use the eksprivate version that wrote it")
    data.setdefault("inputs", {})
    return data


def close_folder(folder: Path) -> None:
    """Make eksprivate's own state folder 0700 when it is open to others (a git checkout leaves the
    repository's `state/` 0755). Only our own real folder: never a symlink or another user's folder."""
    try:
        info = folder.lstat()
    except FileNotFoundError:
        return  # write_atomic creates it 0700
    if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(folder, 0o700)


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    """Temp file + fsync + rename, keeping the previous version as `.bak`; 0600 in a 0700 folder."""
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    payload = json.dumps(data, indent=2, sort_keys=True) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():
            # A hard link makes the backup atomically too: the old inode just gains a name.
            bak = backup_path(path)
            with contextlib.suppress(FileNotFoundError):
                bak.unlink()
            os.link(path, bak)
        os.replace(tmp, path)
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def run_lock(state_path: Path, command: str | None = None) -> Iterator[None]:
    """One mutating run per state file. flock is released by the kernel when a run dies, even by
    SIGKILL, so a stale lock never blocks; the file's content only names the holder for the message."""
    lock_path = state_path.with_name(state_path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace")
            try:
                info = json.loads(holder)
                who = f"pid {info['pid']} on {info['host']}, started {info['started_at']}"
                if info.get("command"):
                    who += f", {info['command']}"
            except (ValueError, KeyError, TypeError):
                who = "another process"
            raise StateError(f"another eksprivate run holds {state_path} ({who})",
                             "wait for it to finish, or stop it; then rerun") from None
        info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "user": current_user(),
                           "started_at": _now(), "command": command})
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode(), 0)
        yield
        if not state_path.exists():  # after a complete `down`: leave nothing behind
            with contextlib.suppress(FileNotFoundError):
                lock_path.unlink()
    finally:
        os.close(fd)  # closing drops the flock


def current_user() -> str:
    """Who runs this command, for lock messages (no credentials: the login name only)."""
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        return f"uid {os.getuid()}"


def local_lock_holder(state_path: Path) -> dict[str, Any] | None:
    """Who holds the flock on a local state right now (None: nobody). A dead holder holds nothing: the
    kernel dropped its lock, so a local lock never needs breaking."""
    lock_path = state_path.with_name(state_path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                info = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
            except ValueError:
                info = None
            return info if isinstance(info, dict) else {}
        return None
    finally:
        os.close(fd)
