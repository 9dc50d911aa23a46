"""Run the eksprivate CLI and die by SIGKILL in the window between a create call returning and its id
being recorded — the one instant a kill from outside cannot aim at.

CRASH_AT is a comma-separated list of ledger keys (`vpc`, `subnets`, `endpoints/ec2`, `cluster`, ...).
The process kills itself at the first `Ledger.record` of a listed key that CRASH_LOG does not name yet,
after appending the key to CRASH_LOG; so a chain of runs crashes once at each key, in whatever order the
engine reaches them, and a run with nothing left to crash at completes.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from eksprivate import state

TARGETS = set(filter(None, os.environ.get("CRASH_AT", "").split(",")))
LOG = Path(os.environ.get("CRASH_LOG", "crashes.log"))
DONE = set(LOG.read_text().split()) if LOG.exists() else set()
_record = state.Ledger.record
_dying = threading.Lock()  # steps record from several threads (the AZs' subnets): crash exactly once


def record(self: state.Ledger, key: str, **ids: Any) -> None:
    if key in TARGETS and key not in DONE:
        _dying.acquire()  # never released: the process dies holding it, other threads wait here
        with LOG.open("a") as fh:
            fh.write(key + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    _record(self, key, **ids)


state.Ledger.record = record  # type: ignore[method-assign]

if __name__ == "__main__":
    from eksprivate.cli import main

    sys.argv[0] = "eksprivate"
    main()
