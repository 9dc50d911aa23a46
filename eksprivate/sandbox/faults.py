"""A WSGI middleware in front of moto: injected faults, a call log and the sandbox's control API.

* Faults: with configured probabilities (seeded RNG) a request is answered, without reaching moto,
  by throttling or HTTP 503, in the error format of the request's protocol, so botocore sees
  exactly what AWS would send (`Throttling`, `ThrottlingException`, `RequestLimitExceeded`, ...).
* Call log: every AWS request is recorded as service, operation, timestamp (plus region, status
  and the fault injected, if any), so tests can check which calls a command made and in what order.
* Control endpoints under `/_sandbox/` (never faulted nor logged):

  ==================================  ==========================================================
  ``GET  /_sandbox/health``           ``{"ok": true, "pid": ..., "settings": {...}}``
  ``GET  /_sandbox/calls``            JSON list of call records
  ``POST /_sandbox/calls/clear``      empty the call log
  ``GET  /_sandbox/config``           current settings (timing and fault rates)
  ``POST /_sandbox/config``           JSON object of settings to change, e.g.
                                      ``{"time_scale": 0.001, "throttle_rate": 0.3}``
  ``POST /_sandbox/reset``            reset every moto backend and empty the call log
  ==================================  ==========================================================

Only the standard library is imported at module level (botocore lazily, for REST routing).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import os
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import parse_qs, quote

CONTROL_PREFIX = "/_sandbox"

Environ = dict[str, Any]


class StartResponse(Protocol):
    def __call__(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None, /
    ) -> Callable[[bytes], object]: ...


WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

Fault = Literal["throttle", "unavailable"]

# ---------------------------------------------------------------------------------------------------
# Fault configuration


@dataclass(frozen=True)
class FaultConfig:
    """Probabilities, per AWS request, of answering with throttling or with HTTP 503."""

    throttle_rate: float = 0.0
    unavailable_rate: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("throttle_rate", "unavailable_rate"):
            rate = getattr(self, name)
            if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be a number between 0 and 1, not {rate!r}")
        if self.throttle_rate + self.unavailable_rate > 1.0:
            raise ValueError("throttle_rate + unavailable_rate must not exceed 1")
        if self.seed is not None and (not isinstance(self.seed, int) or isinstance(self.seed, bool)):
            raise ValueError(f"seed must be an integer or null, not {self.seed!r}")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FAULT_FIELDS: frozenset[str] = frozenset(f.name for f in dataclasses.fields(FaultConfig))


class FaultInjector:
    """Draws faults from a seeded RNG; its configuration can change while requests run."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self._config = config or FaultConfig()
        self._rng = random.Random(self._config.seed)

    @property
    def config(self) -> FaultConfig:
        return self._config

    def update(self, **changes: Any) -> FaultConfig:
        unknown = set(changes) - FAULT_FIELDS
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(sorted(unknown))}")
        with self._lock:
            self._config = dataclasses.replace(self._config, **changes)
            if "seed" in changes:
                self._rng = random.Random(self._config.seed)
            return self._config

    def draw(self) -> Fault | None:
        with self._lock:
            roll = self._rng.random()
            if roll < self._config.throttle_rate:
                return "throttle"
            if roll < self._config.throttle_rate + self._config.unavailable_rate:
                return "unavailable"
            return None


# ---------------------------------------------------------------------------------------------------
# Call log


@dataclass(frozen=True)
class CallRecord:
    """One AWS request as the sandbox received it."""

    service: str
    operation: str
    timestamp: float
    region: str | None = None
    status: int | None = None
    fault: Fault | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CallRecord:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


class CallLog:
    """Thread-safe, append-only (until cleared) list of call records."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[CallRecord] = []

    def append(self, record: CallRecord) -> None:
        with self._lock:
            self._records.append(record)

    def records(self) -> list[CallRecord]:
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


# ---------------------------------------------------------------------------------------------------
# Recognising a request: service, region, protocol and operation

WireProtocol = Literal["ec2", "query", "json", "rest-json", "rest-xml", "rpc-v2-cbor"]

_CREDENTIAL = re.compile(r"Credential=[^/,\s]+/\d{8}/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request")
_CBOR_PATH = re.compile(r"/service/[^/]+/operation/(?P<operation>[^/?]+)")
# SigV4 signing names that differ from botocore's service names (only REST services matter here).
_SERVICE_BY_SIGNING_NAME = {"execute-api": "apigateway", "elasticfilesystem": "efs"}


@dataclass(frozen=True)
class RequestInfo:
    service: str
    region: str | None
    protocol: WireProtocol
    operation: str


@dataclass(frozen=True)
class _Route:
    method: str
    path: re.Pattern[str]
    query_keys: frozenset[str]
    literal_length: int  # more literal text = more specific template
    operation: str
    # Required members sent outside the URI template (S3's AbortMultipartUpload: `uploadId` in the query;
    # CopyObject: the x-amz-copy-source header): what tells operations of one template apart.
    required_query: frozenset[str] = frozenset()
    required_headers: frozenset[str] = frozenset()


def _route(method: str, request_uri: str, operation: str, op_model: Any = None) -> _Route:
    path, _, query = request_uri.partition("?")
    pattern = ""
    literal = 0
    for piece in re.split(r"(\{[^}]+\})", path):
        if piece.startswith("{"):
            pattern += ".+" if piece.endswith("+}") else "[^/]+"
        else:
            pattern += re.escape(piece)
            literal += len(piece)
    keys = frozenset(part.split("=", 1)[0] for part in query.split("&") if part)
    shape = getattr(op_model, "input_shape", None)
    required = set(getattr(shape, "required_members", []) or []) if shape is not None else set()
    members = shape.members if shape is not None else {}
    located = [(members[m].serialization.get("location"), members[m].serialization.get("name", m))
               for m in required if m in members]
    return _Route(method, re.compile(pattern + "/?"), keys, literal, operation,
                  frozenset(name for where, name in located if where == "querystring"),
                  frozenset(name for where, name in located if where == "header"))


@functools.cache
def _rest_routes(signing_name: str) -> tuple[tuple[_Route, ...], WireProtocol]:
    """Method + URI templates of a REST service's operations, from botocore's model."""
    import botocore.loaders
    from botocore.exceptions import DataNotFoundError
    from botocore.model import ServiceModel

    name = _SERVICE_BY_SIGNING_NAME.get(signing_name, signing_name)
    # A loader of its own, not a session's: botocore's S3 client strips `/{Bucket}` from an operation's
    # requestUri the first time it calls it (handlers.remove_bucket_from_url_paths_from_model), in the
    # model dict its loader shares with every session using that loader. Read from a shared loader after
    # such a call, CreateBucket's template became "" and the request went unnamed ("PUT /bucket").
    try:
        model = ServiceModel(botocore.loaders.Loader().load_service_model(name, "service-2"), name)
    except DataNotFoundError:
        return (), "rest-json"
    routes = tuple(
        _route(op.http.get("method", "POST"), op.http.get("requestUri", "/"), op.name, op)
        for op in (model.operation_model(n) for n in model.operation_names)
    )
    return routes, "rest-xml" if model.protocol == "rest-xml" else "rest-json"


def _rest_operation(service: str, method: str, raw_path: str, query: str,
                    environ: Environ | None = None) -> tuple[str, WireProtocol]:
    routes, protocol = _rest_routes(service)
    query_keys = set(parse_qs(query, keep_blank_values=True))
    headers = {k[5:].replace("_", "-").lower() for k in (environ or {}) if k.startswith("HTTP_")}
    matches = [r for r in routes if r.method == method and r.query_keys <= query_keys and r.path.fullmatch(raw_path)
               and r.required_query <= query_keys and {h.lower() for h in r.required_headers} <= headers]
    if not matches:
        return f"{method} {raw_path}", protocol
    best = max(matches, key=lambda r: (len(r.query_keys), r.literal_length))
    return best.operation, protocol


def _read_form_body(environ: Environ) -> dict[str, list[str]]:
    """Parse a form-encoded body and put it back so moto can read it too."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length <= 0:  # no body, or one of unknown length: leave the stream to moto untouched
        return {}
    body: bytes = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    return parse_qs(body.decode("utf-8", "replace"))


def identify(environ: Environ) -> RequestInfo:
    """Which AWS service, region and operation a request is for, and in which protocol."""
    credential = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    service = credential["service"] if credential else "unknown"
    region = credential["region"] if credential else None
    method = environ.get("REQUEST_METHOD", "GET")
    raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or quote(environ.get("PATH_INFO", "/"))
    raw_path, _, query = raw_uri.partition("?")

    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return RequestInfo(service, region, "json", target.rsplit(".", 1)[-1])
    cbor = _CBOR_PATH.search(raw_path)
    if environ.get("HTTP_SMITHY_PROTOCOL") == "rpc-v2-cbor" and cbor:
        return RequestInfo(service, region, "rpc-v2-cbor", cbor["operation"])
    if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        action = _read_form_body(environ).get("Action") or parse_qs(query).get("Action")
        if action:
            return RequestInfo(service, region, "ec2" if service == "ec2" else "query", action[0])
    operation, protocol = _rest_operation(service, method, raw_path, query, environ)
    return RequestInfo(service, region, protocol, operation)


# ---------------------------------------------------------------------------------------------------
# Fault responses, in each protocol's error format

# (status, code, message) per protocol; botocore's standard retry mode treats all of these as
# throttling or transient errors and retries them.
_THROTTLE: dict[WireProtocol, tuple[int, str, str]] = {
    "ec2": (503, "RequestLimitExceeded", "Request limit exceeded."),
    "query": (400, "Throttling", "Rate exceeded"),
    "json": (400, "ThrottlingException", "Rate exceeded"),
    "rest-json": (429, "ThrottlingException", "Rate exceeded"),
    "rest-xml": (503, "SlowDown", "Please reduce your request rate."),
    "rpc-v2-cbor": (429, "", ""),
}
_UNAVAILABLE: dict[WireProtocol, tuple[int, str, str]] = {
    "ec2": (503, "Unavailable", "The service is unavailable. Please try again shortly."),
    "query": (503, "ServiceUnavailable", "Service is unavailable. Please try again later."),
    "json": (503, "ServiceUnavailableException", "Service is unavailable. Please try again later."),
    "rest-json": (503, "ServiceUnavailableException", "Service is unavailable. Please try again later."),
    "rest-xml": (503, "ServiceUnavailable", "Service is unavailable. Please try again later."),
    "rpc-v2-cbor": (503, "", ""),
}
_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 429: "Too Many Requests", 503: "Service Unavailable"}


def fault_response(fault: Fault, protocol: WireProtocol) -> tuple[int, list[tuple[str, str]], bytes]:
    status, code, message = (_THROTTLE if fault == "throttle" else _UNAVAILABLE)[protocol]
    request_id = str(uuid.uuid4())
    headers = [("x-amzn-RequestId", request_id)]
    if protocol == "ec2":
        body = (
            f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        )
        headers.append(("Content-Type", "text/xml"))
    elif protocol == "query":
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message>"
            f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        headers.append(("Content-Type", "text/xml"))
    elif protocol == "rest-xml":
        body = f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
        headers.append(("Content-Type", "application/xml"))
    elif protocol in ("json", "rest-json"):
        body = json.dumps({"__type": code, "message": message})
        headers += [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", code)]
    else:  # CBOR bodies are not worth encoding: botocore goes by the status code
        body = ""
    return status, headers, body.encode()


# ---------------------------------------------------------------------------------------------------
# The middleware


# Decides, before moto, whether a request is refused (or answered where moto cannot: the IAM policy simulator):
# None, or the (status, headers, body) to answer.
Gate = Callable[[Environ, RequestInfo], "tuple[int, list[tuple[str, str]], bytes] | None"]


class Controller(Protocol):
    """What the control endpoints act on (implemented by SandboxServer)."""

    def settings(self) -> dict[str, Any]: ...

    def configure(self, **settings: Any) -> dict[str, Any]: ...

    def reset(self) -> None: ...


class SandboxMiddleware:
    """Wraps moto's WSGI app: control endpoints, fault injection and the call log."""

    def __init__(
        self,
        app: WSGIApp,
        controller: Controller,
        faults: FaultInjector | None = None,
        log: CallLog | None = None,
        gate: Gate | None = None,
    ) -> None:
        self.app = app
        self.controller = controller
        self.faults = faults or FaultInjector()
        self.log = log or CallLog()
        self.gate = gate

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/"):
            return self._control(environ, start_response)
        if path.startswith("/moto-api") or path == "/favicon.ico":
            return self.app(environ, start_response)

        info = identify(environ)
        refusal = self.gate(environ, info) if self.gate is not None else None
        if refusal is not None:  # refused before moto, as AWS refuses before acting (operator_policy)
            status, headers, body = refusal
            self._record(info, status, None)
            start_response(f"{status} {_REASONS.get(status, 'Forbidden')}", headers)
            return [body]
        fault = self.faults.draw()
        if fault is not None:
            status, headers, body = fault_response(fault, info.protocol)
            self._record(info, status, fault)
            start_response(f"{status} {_REASONS[status]}", headers)
            return [body]

        statuses: list[int] = []

        def recording_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None, /
        ) -> Callable[[bytes], object]:
            statuses.append(int(status.split()[0]))
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, recording_start_response)
        finally:
            self._record(info, statuses[-1] if statuses else None, None)

    def _record(self, info: RequestInfo, status: int | None, fault: Fault | None) -> None:
        self.log.append(CallRecord(info.service, info.operation, time.time(), info.region, status, fault))

    def _control(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        route = (environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "").rstrip("/"))
        try:
            status, payload = self._dispatch_control(route, environ)
        except (ValueError, TypeError) as error:  # bad settings or JSON
            status, payload = 400, {"error": str(error)}
        body = json.dumps(payload).encode()
        start_response(
            f"{status} {'OK' if status == 200 else 'Error'}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    def _dispatch_control(self, route: tuple[str, str], environ: Environ) -> tuple[int, Any]:
        p = CONTROL_PREFIX
        if route == ("GET", f"{p}/health"):
            return 200, {"ok": True, "pid": os.getpid(), "settings": self.controller.settings()}
        if route == ("GET", f"{p}/calls"):
            return 200, [record.as_dict() for record in self.log.records()]
        if route == ("POST", f"{p}/calls/clear"):
            self.log.clear()
            return 200, {"ok": True}
        if route == ("GET", f"{p}/config"):
            return 200, self.controller.settings()
        if route == ("POST", f"{p}/config"):
            settings = _read_json(environ)
            if not isinstance(settings, dict):
                raise ValueError("expected a JSON object of settings")
            return 200, self.controller.configure(**settings)
        if route == ("POST", f"{p}/reset"):
            self.controller.reset()
            return 200, {"ok": True}
        return 404, {"error": f"no control endpoint {route[0]} {route[1]}"}


def _read_json(environ: Environ) -> Any:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    return json.loads(body or b"{}")
