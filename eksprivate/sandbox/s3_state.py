"""S3 conditional writes as AWS does them, for the S3 state store.

moto 5.2 already answers `If-None-Match: *` and `If-Match: <etag>` on PutObject and `If-Match` on
DeleteObject with 412 PreconditionFailed (probed: see docs/aws-fidelity.md, section teams). What it does
not do is make the check and the write one step: its server handles requests on threads, checks the
precondition, then does more work before it stores the object, so two concurrent `If-None-Match: *`
writes can both pass the check and both "win". AWS documents the opposite: of concurrent conditional
writes to one key the first to finish succeeds and the others get 412, and a write that races a
delete of the key gets 409 ConditionalRequestConflict (which AWS says to retry).

`install(patcher)` (listed in `families.FAMILIES`) therefore

* runs every PutObject and DeleteObject of a key under that key's lock, so a precondition is checked
  and acted on atomically, as on AWS;
* can answer the next N conditional writes with AWS's 409 (`inject_conflicts`), so the client's retry
  of a documented, otherwise unreproducible race is exercised.

moto is imported only inside `install()`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eksprivate.sandbox.core.patching import Patcher

_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_guard = threading.Lock()
_conflicts = 0
_conflicts_guard = threading.Lock()

CONFLICT_BODY = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ConditionalRequestConflict</Code>'
                 "<Message>A conflicting conditional operation is currently in progress against this resource. "
                 "Please try again.</Message></Error>")


def inject_conflicts(count: int) -> None:
    """Answer the next `count` conditional PutObject requests with 409 ConditionalRequestConflict."""
    global _conflicts
    with _conflicts_guard:
        _conflicts = max(0, count)


def _take_conflict() -> bool:
    global _conflicts
    with _conflicts_guard:
        if _conflicts <= 0:
            return False
        _conflicts -= 1
        return True


def _key_lock(bucket: str, key: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault((bucket, key), threading.Lock())


def _atomic(original: Callable[..., Any], *, may_conflict: bool) -> Callable[..., Any]:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        conditional = bool(self.headers.get("If-Match") or self.headers.get("If-None-Match"))
        if may_conflict and conditional and _take_conflict():
            return 409, {"Content-Type": "application/xml"}, CONFLICT_BODY
        with _key_lock(self.bucket_name, self.parse_key_name()):
            return original(self, *args, **kwargs)

    method.__name__ = original.__name__
    method.__doc__ = original.__doc__
    return method


def install(patcher: Patcher) -> None:
    from moto.s3.responses import S3Response

    patcher.replace_method(S3Response, "put_object", _atomic(S3Response.put_object, may_conflict=True))
    patcher.replace_method(S3Response, "delete_object", _atomic(S3Response.delete_object, may_conflict=False))
