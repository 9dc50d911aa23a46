"""A sandbox that outlives one CLI command: a detached `python -m eksprivate.sandbox serve`.

State lives in `state_dir`: `sandbox.json` (pid, port, url, time_scale, started_at; mode 0600),
`sandbox.log` (the server's output) and `sandbox.lock` (serialises concurrent starts).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INFO_FILE = "sandbox.json"
LOG_FILE = "sandbox.log"
LOCK_FILE = "sandbox.lock"
HOST = "127.0.0.1"
START_TIMEOUT = 30.0  # importing moto and its first request take a few seconds on a slow machine
STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class SandboxInfo:
    pid: int
    port: int
    url: str
    time_scale: float
    started_at: str  # ISO 8601, UTC

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class SandboxStartError(RuntimeError):
    """The background sandbox did not come up; the message ends with its log."""


# ---------------------------------------------------------------------------------------------------
# Public API


def read_running(state_dir: Path) -> SandboxInfo | None:
    """The recorded sandbox, or None if there is none or its process is dead."""
    info = _read_info(state_dir)
    if info is None or not _alive(info.pid) or not _is_sandbox(info.pid):
        return None
    return info


def ensure_running(state_dir: Path, time_scale: float | None = None,
                   on_start: Callable[[str], None] | None = None) -> SandboxInfo:
    """Return the running, healthy sandbox for `state_dir`, starting one if needed.

    With `time_scale` given, a running sandbox is switched to it (its resources are kept); a new
    one starts with it.  Without, a new sandbox uses the default Timing. `on_start` hears one line
    when (and only when) a new sandbox is started.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    with _locked(state_dir):
        info = read_running(state_dir)
        if info is not None and _healthy(info):
            if time_scale is not None and time_scale != info.time_scale:
                _post_json(f"{info.url}/_sandbox/config", {"time_scale": time_scale})
                info = dataclasses.replace(info, time_scale=time_scale)
                _write_info(state_dir, info)
            return info
        if info is not None:  # alive but not answering: not ours, or wedged
            _terminate(info.pid)
        (state_dir / INFO_FILE).unlink(missing_ok=True)
        info = _start(state_dir, time_scale)
        if on_start is not None:
            on_start(f"started the sandbox in the background at {info.url} (pid {info.pid}, time scale "
                     f"{info.time_scale}); it keeps its AWS resources in memory until `eksprivate sandbox stop`")
        return info


def stop(state_dir: Path) -> bool:
    """Stop the recorded sandbox.  True if a running one was stopped; a stale record is removed."""
    with _locked(state_dir) if state_dir.is_dir() else contextlib.nullcontext():
        info = read_running(state_dir)
        stopped = info is not None and _terminate(info.pid)
        (state_dir / INFO_FILE).unlink(missing_ok=True)
        return stopped


# ---------------------------------------------------------------------------------------------------
# Starting


def _start(state_dir: Path, time_scale: float | None) -> SandboxInfo:
    from eksprivate.sandbox.core.clock import Timing

    scale = Timing().time_scale if time_scale is None else time_scale
    # The port is chosen here and passed down, so there is nothing to read back from the child; if
    # another process grabs it meanwhile the child exits and we try another.
    last_error = ""
    for _attempt in range(3):
        port = _free_port()
        process = _spawn(state_dir, port, scale)
        info = SandboxInfo(
            pid=process.pid,
            port=port,
            url=f"http://{HOST}:{port}",
            time_scale=scale,
            started_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            if _healthy(info):
                _write_info(state_dir, info)
                return info
            time.sleep(0.1)
        if process.poll() is None:  # hung: do not leave it behind
            _terminate(process.pid)
        process.wait()
        last_error = _log_tail(state_dir)
    raise SandboxStartError(f"the sandbox did not start; {state_dir / LOG_FILE} ends with:\n{last_error}")


def _spawn(state_dir: Path, port: int, time_scale: float) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    # The child must import this very package, installed or not.
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    command = [
        sys.executable,
        "-m",
        "eksprivate.sandbox",
        "serve",
        "--host",
        HOST,
        "--port",
        str(port),
        "--time-scale",
        repr(time_scale),
    ]
    with open(state_dir / LOG_FILE, "ab") as log:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=state_dir,
            start_new_session=True,  # survives the CLI command and its terminal's Ctrl-C
            close_fds=True,
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _log_tail(state_dir: Path, lines: int = 20) -> str:
    try:
        text = (state_dir / LOG_FILE).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


# ---------------------------------------------------------------------------------------------------
# Health, liveness, stopping


@functools.cache
def _opener() -> Any:
    """An HTTP opener ignoring HTTP(S)_PROXY: loopback calls must not go through a proxy.
    (urllib.request is imported here: it is slow to import and `eksprivate --help` must be fast.)"""
    import urllib.request

    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _healthy(info: SandboxInfo) -> bool:
    """The sandbox answers on its port, and it is the recorded process (not a reused port)."""
    try:
        with _opener().open(f"{info.url}/_sandbox/health", timeout=2) as response:
            health = json.load(response)
    except (OSError, ValueError):
        return False
    return bool(health.get("ok")) and health.get("pid") == info.pid


def _post_json(url: str, payload: dict[str, Any]) -> Any:
    import urllib.request

    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with _opener().open(request, timeout=5) as response:
        return json.load(response)


def _alive(pid: int) -> bool:
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:  # a zombie answers signal 0 but is dead
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _is_sandbox(pid: int) -> bool:
    """Whether `pid` runs a sandbox, so a pid reused by another program is never signalled.
    Without /proc (not Linux) there is no cheap way to tell: trust the record."""
    try:
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()
    except OSError:
        return True
    return b"eksprivate.sandbox" in command_line


def _reap(pid: int) -> None:
    """Collect the exit status if `pid` is our own child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _terminate(pid: int, timeout: float = STOP_TIMEOUT) -> bool:
    """SIGTERM, then SIGKILL after `timeout`.  True if the process was alive."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    while _alive(pid):
        time.sleep(0.05)
    return True


# ---------------------------------------------------------------------------------------------------
# State files


def _read_info(state_dir: Path) -> SandboxInfo | None:
    try:
        data = json.loads((state_dir / INFO_FILE).read_text())
        return SandboxInfo(
            pid=int(data["pid"]),
            port=int(data["port"]),
            url=str(data["url"]),
            time_scale=float(data["time_scale"]),
            started_at=str(data["started_at"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing or corrupt: as good as no sandbox


def _write_info(state_dir: Path, info: SandboxInfo) -> None:
    """Write sandbox.json atomically, readable by the owner only."""
    path = state_dir / INFO_FILE
    temporary = path.with_suffix(".json.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(info.as_dict(), handle, indent=2)
        handle.write("\n")
    os.chmod(temporary, 0o600)  # O_CREAT's mode does not apply to an existing file
    os.replace(temporary, path)


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """Serialise starts and stops across processes (two CLI commands at once)."""
    fd = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
