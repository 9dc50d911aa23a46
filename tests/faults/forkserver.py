"""Start `eksprivate` child processes by forking a Python that has already imported it.

A child started with `python -m eksprivate` spends ~1 CPU second before its first AWS call: the
interpreter, boto3, rich, typer and eksprivate imports, and botocore parsing the service models of every
client it makes. This server pays that once per test process; each child is then a fork of it that runs
exactly what `python -m eksprivate ARGS` (or `python crashpoint.py ARGS`) runs, with the test's
environment, folder and pipes. The child is a real process of its own: a test kills it with a real
SIGKILL and reads its real exit status.

Run as `python forkserver.py FD`, FD one end of a SOCK_SEQPACKET socket pair. Messages are JSON:
  test -> server: {"args": [...], "env": {...}, "cwd": "...", "script": path | null} + the child's
                  stdout and stderr (write ends, sent as SCM_RIGHTS); the server answers {"pid": N}
  server -> test: {"exit": pid, "code": returncode, "cpu": seconds} when a child ends (returncode as
                  subprocess's: -N for death by signal N; the CPU time it used, for measuring the suite)
The server is single-threaded (children fork from it) and ends when the test process closes its end.

What is imported here must not capture the environment or the terminal at import time: eksprivate.ui
(whose consoles look at the terminal when made) is left to each child.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import sys
from typing import Any

MAX_MESSAGE = 1 << 20


def warm_up() -> None:
    """Import what a command imports, and parse the service models its clients use, into the loader
    eksprivate shares between its sessions (`eksprivate.aws._share_loader`)."""
    import importlib

    import boto3

    for module in ("eksprivate.cli", "eksprivate.config", "eksprivate.engine", "eksprivate.state", "eksprivate.steps",
                   "eksprivate.target", "rich.console", "rich.live", "rich.table", "rich.text"):
        importlib.import_module(module)
    from eksprivate import aws

    session = aws._share_loader(boto3.session.Session(region_name="eu-central-1", aws_access_key_id="warm-up",
                                                       aws_secret_access_key="warm-up"))
    for service in ("ec2", "eks", "iam", "kms", "logs", "sts", "s3", "ecr", "elbv2", "elb", "efs", "pricing",
                    "secretsmanager", "ssm"):
        session.client(service, endpoint_url="http://127.0.0.1:9")  # no call is made: models only
    assert "eksprivate.ui" not in sys.modules, "eksprivate.ui must be imported by each child, not here"


def serve(control: socket.socket) -> dict[str, Any] | None:
    """Answer spawn requests until the test process goes away (None), or return the request in a child."""
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ, None)
    while True:
        for key, _ in selector.select():
            if key.data is None:
                message, fds, _, _ = socket.recv_fds(control, MAX_MESSAGE, 2)
                if not message:
                    return None
                request = json.loads(message)
                pid = os.fork()
                if pid == 0:  # the child keeps its pipes only: not the control socket, nor others' pidfds
                    for watched in list(selector.get_map().values()):
                        if watched.data is not None:
                            os.close(watched.fd)
                    selector.close()
                    control.close()
                    request["fds"] = fds
                    return dict(request)
                for fd in fds:
                    os.close(fd)  # the child has them: end of file reaches the test once the child ends
                selector.register(os.pidfd_open(pid), selectors.EVENT_READ, pid)
                control.send(json.dumps({"pid": pid}).encode())
            else:
                pid = key.data
                selector.unregister(key.fileobj)
                os.close(key.fd)
                _, status, usage = os.wait4(pid, 0)
                control.send(json.dumps({"exit": pid, "code": os.waitstatus_to_exitcode(status),
                                         "cpu": usage.ru_utime + usage.ru_stime}).encode())


def become(request: dict[str, Any]) -> None:
    """Turn this forked process into the requested command's process (as far as Python can tell)."""
    out, err = request["fds"]
    devnull = os.open(os.devnull, os.O_RDONLY)
    for source, target in ((devnull, 0), (out, 1), (err, 2)):
        os.dup2(source, target)
        os.close(source)
    os.chdir(request["cwd"])
    # Ctrl-C raises KeyboardInterrupt, as in a command started from a terminal: a test run started in the
    # background of a non-interactive shell has SIGINT ignored, the server inherits that and so would every
    # child (tests/faults/test_crash.py's Ctrl-C test then waited out its hang guard, 300 s).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ.clear()
    os.environ.update(request["env"])
    # As the interpreter makes them for pipes: stdout block-buffered, stderr line-buffered, both written
    # through under PYTHONUNBUFFERED (which the tests set, to read progress lines as they come).
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 (the process's stdin, never closed)
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False)  # noqa: SIM115
    if os.environ.get("PYTHONUNBUFFERED"):
        sys.stdout.reconfigure(write_through=True)
        sys.stderr.reconfigure(write_through=True)
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr  # type: ignore[misc]


def main() -> None:
    control = socket.socket(fileno=int(sys.argv[1]))
    warm_up()
    request = serve(control)
    if request is None:
        return
    become(request)
    import runpy

    script = request["script"]
    if script:
        sys.argv = [script, *request["args"]]
        sys.path[0] = os.path.dirname(script)
        runpy.run_path(script, run_name="__main__")
    else:
        sys.argv = ["eksprivate", *request["args"]]  # `python -m eksprivate` puts the module's path here
        sys.path[0] = os.getcwd()
        runpy.run_module("eksprivate", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
