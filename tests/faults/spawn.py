"""Child processes of `eksprivate` for the crash tests, forked from a pre-imported server (forkserver.py).

`start(argv, env, cwd)` returns an object with the part of `subprocess.Popen` the tests use (pid, stdout,
stderr, poll, wait, send_signal, kill, returncode). The child is a real process: SIGKILL kills it, its exit
status is the real one. Set EKSPRIVATE_TESTS_FORKSERVER=0 to start every child with `subprocess.Popen`
instead (the same command line), e.g. to rule the server out when a test misbehaves.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

FORKSERVER = Path(__file__).with_name("forkserver.py")


class ForkedProcess:
    """A child of the fork server, as far as the tests look at a `subprocess.Popen`."""

    def __init__(self, server: ForkServer, argv: list[str], pid: int, stdout: IO[str], stderr: IO[str]) -> None:
        self.args = argv
        self.pid = pid
        self.stdout = stdout
        self.stderr = stderr
        self._server = server

    @property
    def returncode(self) -> int | None:
        return self._server.returncode(self.pid)

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        code = self._server.wait(self.pid, timeout)
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        return code

    def send_signal(self, sig: int) -> None:
        # As Popen: nothing once the child is known to have ended (its pid may be reused).
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class ForkServer:
    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # The server's own environment holds no AWS settings: each child gets the test's environment.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EKSPRIVATE_"))}
        self._proc = subprocess.Popen([sys.executable, str(FORKSERVER), str(theirs.fileno())],
                                      pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, env=env)
        theirs.close()
        self._sock = ours
        self._cond = threading.Condition()
        self._pids: list[int] = []
        self._codes: dict[int, int] = {}
        self._closed = False
        self._spawning = threading.Lock()
        self.children_cpu = 0.0  # CPU seconds of the children that ended (docs/benchmarks.md "Suite speed")
        threading.Thread(target=self._read, name="forkserver-reader", daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                message = self._sock.recv(65536)
            except OSError:
                message = b""
            with self._cond:
                if not message:
                    self._closed = True
                    self._cond.notify_all()
                    return
                data: dict[str, Any] = json.loads(message)
                if "pid" in data:
                    self._pids.append(int(data["pid"]))
                else:
                    self._codes[int(data["exit"])] = int(data["code"])
                    self.children_cpu += float(data["cpu"])
                self._cond.notify_all()

    def start(self, argv: list[str], env: dict[str, str], cwd: Path) -> ForkedProcess:
        """`argv` as given to Popen: [sys.executable, "-m", "eksprivate", ...] or [sys.executable, script, ...]."""
        if argv[1:3] == ["-m", "eksprivate"]:
            script, args = None, argv[3:]
        else:
            script, args = argv[1], argv[2:]
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        request = json.dumps({"args": args, "env": env, "cwd": str(cwd), "script": script}).encode()
        try:
            with self._spawning:
                socket.send_fds(self._sock, [request], [out_w, err_w])
                with self._cond:
                    while not self._pids and not self._closed:
                        self._cond.wait()
                    if not self._pids:
                        raise RuntimeError("the test fork server has ended")
                    pid = self._pids.pop(0)
        finally:
            os.close(out_w)
            os.close(err_w)
        return ForkedProcess(self, argv, pid, open(out_r, encoding="utf-8"), open(err_r, encoding="utf-8"))

    def returncode(self, pid: int) -> int | None:
        with self._cond:
            return self._codes.get(pid)

    def wait(self, pid: int, timeout: float | None) -> int | None:
        with self._cond:
            self._cond.wait_for(lambda: pid in self._codes or self._closed, timeout)
            if pid not in self._codes and self._closed:
                raise RuntimeError(f"the test fork server ended before child {pid}")
            return self._codes.get(pid)

    def close(self) -> None:
        # shutdown, not only close: the reader thread is blocked in recv on this socket, and a close alone
        # neither wakes it nor lets the server see end of file while that call holds the socket (measured:
        # every test process then waited out the 10 s timeout below at exit).
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


_server: ForkServer | None = None
_server_lock = threading.Lock()


def _enabled() -> bool:
    return hasattr(os, "pidfd_open") and hasattr(socket, "send_fds") and \
        os.environ.get("EKSPRIVATE_TESTS_FORKSERVER", "1") != "0"


def start(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str] | ForkedProcess:
    """Start `argv` (a Python command line) with `env` in `cwd`: stdin empty, stdout and stderr piped, text."""
    global _server
    if not _enabled():
        return subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    with _server_lock:
        if _server is None:
            _server = ForkServer()
            atexit.register(_server.close)
    return _server.start(argv, env, cwd)
