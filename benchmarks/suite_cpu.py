"""A pytest plugin: CPU seconds per test phase, for judging the suite's speed on a busy machine.

    PYTHONPATH=benchmarks python -m pytest -p suite_cpu tests/test_tunnel.py [-p no:xdist]

Counts this process's CPU (every thread: the in-process sandbox included), the CPU of the child processes
it reaped, and that of the crash tests' forked children (tests/faults/spawn.py). Wall time on a shared
machine mostly measures the other users; CPU measures the suite. Run it serially (no `-n`): each xdist
worker would report only its own share. It prints the most expensive phases and a total per file. With
SUITE_CPU_JSON=path it also writes every row there.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections import defaultdict
from collections.abc import Generator
from typing import Any

import pytest

_rows: list[tuple[str, str, float, float]] = []  # node id, phase, CPU seconds, wall seconds


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    spawn = sys.modules.get("faults.spawn")
    server = getattr(spawn, "_server", None)
    forked = float(server.children_cpu) if server is not None else 0.0
    return own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime + forked


def _measure(item: pytest.Item, phase: str) -> Generator[None, Any, None]:
    cpu, wall = _cpu(), time.perf_counter()
    yield
    _rows.append((item.nodeid, phase, _cpu() - cpu, time.perf_counter() - wall))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, Any, None]:
    yield from _measure(item, "setup")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, None]:
    yield from _measure(item, "call")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, Any, None]:
    yield from _measure(item, "teardown")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _rows:
        return
    write = terminalreporter.write_line
    write(f"CPU seconds by phase, this process and its children ({len({r[0] for r in _rows})} tests):")
    for nodeid, phase, cpu, wall in sorted(_rows, key=lambda r: -r[2])[:15]:
        write(f"{cpu:7.2f} cpu {wall:7.2f} wall  {phase:8s} {nodeid}")
    per_file: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for nodeid, phase, cpu, _ in _rows:
        per_file[nodeid.split("::")[0]][phase] += cpu
    for path, phases in sorted(per_file.items(), key=lambda kv: -sum(kv[1].values())):
        tests = len({r[0] for r in _rows if r[0].startswith(path + "::")})
        total = sum(phases.values())
        write(f"{total:7.2f} cpu  {tests:3d} tests  {total / tests:5.2f} per test  setup {phases['setup']:6.2f}  "
              f"call {phases['call']:6.2f}  teardown {phases['teardown']:6.2f}  {path}")
    if os.environ.get("SUITE_CPU_JSON"):
        with open(os.environ["SUITE_CPU_JSON"], "w", encoding="utf-8") as fh:
            json.dump(_rows, fh)
