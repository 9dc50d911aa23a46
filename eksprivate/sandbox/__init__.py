"""The embedded AWS stand-in: moto with real-world lifecycles, rules, faults and a call log.

Importing this package is cheap: moto is only imported when a sandbox starts (`SandboxServer.start`,
`lifecycle.install`), so `eksprivate --help` stays fast.
"""

from eksprivate.sandbox.faults import CallLog, CallRecord, FaultConfig
from eksprivate.sandbox.lifecycle import Timing, current_timing, install, set_timing, uninstall, update_timing
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
    "read_running",
    "set_timing",
    "stop",
    "uninstall",
    "update_timing",
]
