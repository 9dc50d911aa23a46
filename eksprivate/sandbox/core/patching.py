"""Changes to moto, recorded so that they can be undone, and the events that join behaviour families.

A family patches moto through the `Patcher` it is given by `families.install()`. When one family's call must
let another act (a new cluster's role is checked by IAM propagation; a node group's role gets an access entry),
the first `emit`s a named event and the second handles it with `Patcher.on`: neither imports the other, as
botocore's session emits events that handlers registered in `BUILTIN_HANDLERS` answer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, MutableMapping
from typing import Any

# -- events: name, who emits it, its keyword arguments ------------------------------------------------------

# eks_lifecycle, before CreateCluster makes a new cluster (not for a retried request): role_arn.
EKS_CLUSTER_CREATING = "eks.create-cluster.before"
# eks_lifecycle, before CreateNodegroup makes a new node group on an ACTIVE cluster: node_role.
EKS_NODEGROUP_CREATING = "eks.create-nodegroup.before"
# eks_lifecycle, once CreateNodegroup made one: backend (moto's EKSBackend), cluster, node_role.
EKS_NODEGROUP_CREATED = "eks.create-nodegroup.after"
# lb_dependents, before it judges what is left in a VPC: backend (moto's EC2Backend). Deletions whose time has
# come finish first (endpoint_lifecycle: the endpoints, whose interfaces go with them).
EC2_DELETIONS_DUE = "ec2.deletions-due"

EVENTS = frozenset({EKS_CLUSTER_CREATING, EKS_NODEGROUP_CREATING, EKS_NODEGROUP_CREATED, EC2_DELETIONS_DUE})

Handler = Callable[..., None]

_handlers: dict[str, list[Handler]] = {}
_handlers_lock = threading.Lock()


def emit(event: str, **kwargs: Any) -> None:
    """Call every handler of `event`, in the order they were registered; a handler's exception propagates
    (it is how a check refuses the call)."""
    with _handlers_lock:
        handlers = list(_handlers.get(event, ()))
    for handler in handlers:
        handler(**kwargs)


# -- patching ------------------------------------------------------------------------------------------------


def calling_first(before: Callable[[Any], None], original: Callable[..., Any]) -> Callable[..., Any]:
    """`original` (a backend method) that first calls `before(backend)`: e.g. so that resources whose deletion
    has finished vanish before a read."""

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        before(self)
        return original(self, *args, **kwargs)

    method.__name__ = original.__name__
    method.__doc__ = original.__doc__
    return method


_MISSING = object()


class Patcher:
    """Changes to moto's classes and tables and handlers of events, recorded so that `undo()` reverses them."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []
        self.originals: dict[str, Callable[..., Any]] = {}

    def set_attr(self, owner: Any, name: str, value: object) -> None:
        """Set a class attribute (moto's type hints would refuse some, e.g. a computed property)."""
        previous = vars(owner).get(name, _MISSING)  # an inherited method is not "previous"

        def undo() -> None:
            if previous is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, previous)

        setattr(owner, name, value)
        self._undo.append(undo)

    def set_item(self, mapping: MutableMapping[str, Any], key: str, value: Any) -> None:
        previous = mapping.get(key, _MISSING)

        def undo() -> None:
            if previous is _MISSING:
                del mapping[key]
            else:
                mapping[key] = previous

        mapping[key] = value
        self._undo.append(undo)

    def replace_method(self, cls: Any, name: str, replacement: Callable[..., Any]) -> None:
        """Put `replacement` in place of `cls.name`, keeping the original in `originals["Cls.name"]`."""
        self.originals[f"{cls.__name__}.{name}"] = getattr(cls, name)
        self.set_attr(cls, name, replacement)

    def on(self, event: str, handler: Handler) -> None:
        """Handle `event` (one of `EVENTS`) until `undo()`."""
        if event not in EVENTS:
            raise ValueError(f"unknown sandbox event {event!r}; known: {', '.join(sorted(EVENTS))}")
        with _handlers_lock:
            _handlers.setdefault(event, []).append(handler)

        def undo() -> None:
            with _handlers_lock:
                _handlers[event].remove(handler)

        self._undo.append(undo)

    def undo(self) -> None:
        while self._undo:
            self._undo.pop()()
        self.originals.clear()
