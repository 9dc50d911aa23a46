"""`SandboxServer`: moto's server app with real-world lifecycles, behind the fault middleware.

moto keeps its state in process-wide globals: every SandboxServer in one process serves the same
backends and the same (current) Timing.  moto and werkzeug are imported in `start()` only.

moto's backends are not thread-safe (a lookup iterates a dict that a concurrent create or delete resizes:
"RuntimeError: dictionary changed size during iteration", a 500 that no AWS call ever returns), while
eksprivate calls AWS from several threads at once.  AWS serialises nothing of the kind; the sandbox runs one
moto request at a time per process (`MOTO_STATE`) so that what a test sees is AWS's behaviour, not moto's
races.  moto's handlers never wait (the lifecycles are computed from the scaled clock when read), so the
lock is held for milliseconds.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import threading
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from eksprivate.sandbox import families, iam_simulation
from eksprivate.sandbox.core import updates
from eksprivate.sandbox.core.clock import TIMING_FIELDS, Timing, current_timing, set_timing
from eksprivate.sandbox.faults import (
    FAULT_FIELDS,
    CallLog,
    CallRecord,
    Environ,
    FaultConfig,
    FaultInjector,
    RequestInfo,
    SandboxMiddleware,
    StartResponse,
)
from eksprivate.sandbox.operator_policy import Check, OperatorPolicy

MOTO_STATE = threading.Lock()
"""Held while moto serves a request or is reset: its state is process-wide, so the lock is too."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_settings(settings: dict[str, Any]) -> tuple[Timing, dict[str, Any]]:
    """Split settings into a new Timing and fault changes, validating both before any is applied
    (the EKS update settings, `updates.UPDATE_FIELDS`, are validated here and set by `configure`)."""
    unknown = set(settings) - TIMING_FIELDS - FAULT_FIELDS - updates.UPDATE_FIELDS
    if unknown:
        known = ", ".join(sorted(TIMING_FIELDS | FAULT_FIELDS | updates.UPDATE_FIELDS))
        raise ValueError(f"unknown setting(s) {', '.join(sorted(unknown))}; known: {known}")
    timing_changes = {k: v for k, v in settings.items() if k in TIMING_FIELDS}
    fault_changes = {k: v for k, v in settings.items() if k in FAULT_FIELDS}
    timing = dataclasses.replace(current_timing(), **timing_changes)
    updates.validate(**{k: v for k, v in settings.items() if k in updates.UPDATE_FIELDS})
    return timing, fault_changes


class SandboxServer:
    """An AWS stand-in on a loopback port, in a background thread of this process.

    >>> with SandboxServer(timing=Timing(time_scale=0.01)) as sandbox:
    ...     ec2 = boto3.client("ec2", endpoint_url=sandbox.url, region_name="eu-central-1", ...)
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        timing: Timing | None = None,
        faults: FaultConfig | None = None,
        *,
        log_requests: bool = False,
    ) -> None:
        if not _is_loopback(host):
            raise ValueError(f"the sandbox binds loopback addresses only, not {host!r}")
        self.host = host
        self._requested_port = port
        self._timing = timing
        self._faults = FaultInjector(faults)
        self._log = CallLog()
        self._policy = OperatorPolicy()
        self._log_requests = log_requests
        self._server: Any = None
        self._thread: threading.Thread | None = None

    # -- running ------------------------------------------------------------------------------------

    def start(self) -> SandboxServer:
        if self._server is not None:
            return self
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        families.install(self._timing)
        log_requests = self._log_requests

        class RequestHandler(MotoRequestHandler):  # type: ignore[misc]
            def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
                # One line per AWS call drowns a test's output; the call log has them all.
                if log_requests:
                    super().log_request(code, size)

        moto_app = DomainDispatcherApplication(create_backend_app)

        def patched_moto(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
            # Someone in this process may have called uninstall() (a test wanting plain moto):
            # this server always serves moto with real-world behaviour.
            with MOTO_STATE:
                families.install()
                return moto_app(environ, start_response)  # type: ignore[no-any-return]

        policy = self._policy

        def gate(environ: Environ, info: RequestInfo) -> tuple[int, list[tuple[str, str]], bytes] | None:
            with MOTO_STATE:  # authorising reads moto's roles (PassRole, boundaries)
                refused = policy.authorise(environ, info.service, info.operation, info.region, info.protocol)
            if refused is None and (info.service, info.operation) == ("iam", "SimulatePrincipalPolicy"):
                return iam_simulation.answer(environ, policy.policy)  # moto has no policy simulator
            return refused

        app = SandboxMiddleware(patched_moto, self, self._faults, self._log, gate)
        self._server = make_server(self.host, self._requested_port, app, threaded=True, request_handler=RequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"sandbox:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the sandbox is not running: call start() first")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # -- control (also reached through the /_sandbox/ endpoints) -----------------------------------

    def calls(self) -> list[CallRecord]:
        return self._log.records()

    def clear_calls(self) -> None:
        self._log.clear()

    def enforce(self, policy: dict[str, Any] | None) -> None:
        """Authorise every call against this operator IAM policy from now on (None: allow everything, as
        moto does): see `operator_policy`."""
        self._policy.set(policy)

    def refused(self) -> list[Check]:
        """The checks the enforced policy refused since it was set, in order."""
        return list(self._policy.refused)

    def reset(self) -> None:
        """Forget every AWS resource (all moto backends) and the call log."""
        from moto.moto_api._internal.models import moto_api_backend

        with MOTO_STATE:
            moto_api_backend.reset()
        self._log.clear()

    def settings(self) -> dict[str, Any]:
        return {**current_timing().as_dict(), **self._faults.config.as_dict(),
                **updates.current_settings().as_dict()}

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change timing fields (`time_scale`, `iam_role_delay`, `cluster_create`, ...) and fault
        settings (`throttle_rate`, `unavailable_rate`, `seed`) and EKS update settings (`fail_next_update`,
        `degraded_nodegroups`, ...: see `core.updates`) at runtime; returns all settings."""
        timing, fault_changes = validate_settings(settings)
        if fault_changes:
            self._faults.update(**fault_changes)
        updates.configure(**{k: v for k, v in settings.items() if k in updates.UPDATE_FIELDS})
        set_timing(timing)
        return self.settings()
