"""The embedded AWS stand-in: moto with real-world lifecycles, rules, faults and a call log.

Layout: `core/` (patching, the clock and Timing, state families share) ← one module per behaviour family,
listed in `families.FAMILIES` ← `server` / `process` (the running stand-in). Importing this package is cheap:
moto is only imported when a sandbox starts (`SandboxServer.start`, `families.install`), so `eksprivate --help`
stays fast.
"""

from eksprivate.sandbox.core.clock import Timing, current_timing, set_timing, update_timing
from eksprivate.sandbox.families import install, installed, uninstall
from eksprivate.sandbox.faults import CallLog, CallRecord, FaultConfig
from eksprivate.sandbox.process import SandboxInfo, SandboxStartError, ensure_running, read_running, stop
from eksprivate.sandbox.server import SandboxServer

__all__ = [
    "CallLog",
    "CallRecord",
    "FaultConfig",
    "SandboxInfo",
    "SandboxServer",
    "SandboxStartError",
    "Timing",
    "current_timing",
    "ensure_running",
    "install",
    "installed",
    "read_running",
    "set_timing",
    "stop",
    "uninstall",
    "update_timing",
]
