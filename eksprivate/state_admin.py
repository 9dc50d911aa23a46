"""`eksprivate unlock` and `eksprivate state migrate`: the two commands that act on a state itself.

No AWS calls of their own beyond the state store's; the CLI supplies the context, the confirmation and
the output.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable
from pathlib import Path

from eksprivate.errors import StateError, UsageError
from eksprivate.state import LocalStore, StateStore, backup_path, check_owner, local_lock_holder
from eksprivate.state_s3 import S3Store, seconds_since


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return pid > 0


def unlock(store: StateStore, *, confirm: Callable[[str], bool], say: Callable[[str], None],
           warn: Callable[[str], None]) -> bool:
    """Show the lock on `store` and break it once confirmed; True when a lock was broken."""
    if not isinstance(store, S3Store):
        path = Path(store.location)
        holder = local_lock_holder(path)
        if holder is None:
            say(f"no run holds {path}: a local lock ends with the process that held it, so there is nothing to break")
            return False
        who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"
        raise UsageError(f"{path} is held by a running eksprivate ({who}, {holder.get('command') or 'a run'})",
                         "stop that run (Ctrl-C): its lock goes with it")
    held = store.read_lock()
    if held is None:
        say(f"no lock on {store.location}: nothing to break")
        return False
    info, etag = held
    say(f"{store.location} is {info.details()}")
    if info.host == socket.gethostname() and _alive(info.pid):
        raise UsageError(f"the lock's holder, pid {info.pid}, is still running on this host",
                         "stop it (Ctrl-C): it releases the lock itself")
    age = seconds_since(info.renewed_at)
    if age is not None and age < 2 * store.renew_every:
        warn(f"the lock was renewed {int(age)} s ago: its holder looks alive (a run renews it every "
             f"{int(store.renew_every)} s). Break it only if you know that run is gone.")
    if not confirm(f"Break the lock of {info.who} ({info.command}) on {store.location}?"):
        raise UsageError("lock kept")
    store.break_lock(etag)
    say(f"lock broken. A rerun of `{info.command}` resumes from the state; if the old run was in fact alive, "
        "its next save is refused (it can no longer renew its lock)")
    return True


def _same(one: StateStore, other: StateStore) -> bool:
    if isinstance(one, LocalStore) and isinstance(other, LocalStore):
        return one.path.resolve() == other.path.resolve()
    return str(one.location) == str(other.location)


def migrate(source: StateStore, dest: StateStore, *, name: str, region: str, account: str) -> str:
    """Copy the state at `source` to `dest` (which must hold none), check the copy, then retire the source.
    Both are locked meanwhile. Returns what became of the source, for the message."""
    if _same(source, dest):
        raise UsageError(f"--to {dest.location} is where the state already is")
    with source.lock("state migrate"):
        data = source.load()
        if data is None:
            raise UsageError(f"no state at {source.location} to migrate",
                             "pass the --name/--region (or --state) of an existing cluster")
        check_owner(data, source.location, name, region, account)
        with dest.lock("state migrate"):
            if dest.load() is not None:
                raise StateError(f"{dest.location} already holds a state; nothing was moved",
                                 "choose another --to, or remove that state if it is really unused")
            dest.save(data)  # on S3: If-None-Match, so a state created there meanwhile is not overwritten
            if dest.load() != data:
                raise StateError(f"the copy at {dest.location} does not read back as written; the source "
                                 f"{source.location} is kept as it was")
        if isinstance(source, LocalStore):
            # Kept under a name eksprivate never reads, so nothing runs on a stale copy by mistake.
            kept = source.path.with_name(source.path.name + ".migrated")
            os.replace(source.path, kept)
            with contextlib.suppress(FileNotFoundError):
                backup_path(source.path).unlink()
            return f"the old file is kept as {kept}"
        source.delete()
        return ("the old object is deleted (its earlier versions stay while the bucket keeps versions)"
                if isinstance(source, S3Store) else "the old copy is deleted")
