"""What the user sees: a live view of the steps on a terminal, plain lines otherwise, tables and JSON.

Progress goes to stderr; results (plan, status, JSON) go to stdout, so scripts can pipe them.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from eksprivate.engine import Outcome, PlanItem

STYLE = {
    "pending": "dim", "checking": "cyan", "creating": "yellow", "updating": "yellow", "waiting": "yellow",
    "deleting": "magenta", "ready": "green", "created": "green", "updated": "green", "deleted": "green",
    "absent": "dim", "kept": "yellow", "failed": "bold red", "skipped": "red",
}
ICON = {"ready": "✓", "created": "✓", "updated": "✓", "deleted": "✓", "absent": "·", "failed": "✗",
        "skipped": "-", "kept": "!", "pending": " "}
ACTION_STYLE = {"create": "green", "update": "yellow", "delete": "red", "keep": "yellow", "none": "dim",
                "absent": "dim", "exists": "green"}

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class _Row:
    def __init__(self, title: str) -> None:
        self.title = title
        self.phase = "pending"
        self.detail = ""
        self.note = ""
        self.started: float | None = None
        self.ended: float | None = None


class Progress:
    """Collects step phases from the engine's threads; renders them live or as plain lines."""

    def __init__(self, verb: str, live: bool | None = None) -> None:
        self.verb = verb
        self.live_mode = err.is_terminal if live is None else live
        self.rows: dict[str, _Row] = {}
        self.start = time.monotonic()
        self._lock = threading.Lock()
        self._live: Live | None = None

    def __enter__(self) -> Progress:
        if self.live_mode:
            self._live = Live(get_renderable=self._render, console=err, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    # Reporter protocol ---------------------------------------------------------------------------
    def phase(self, key: str, title: str, phase: str, detail: str = "") -> None:
        with self._lock:
            row = self.rows.setdefault(key, _Row(title))
            now = time.monotonic()
            if phase not in ("pending",) and row.started is None:
                row.started = now
            if phase in ICON and phase not in ("pending",):
                row.ended = now
            changed = phase != row.phase
            row.phase, row.detail = phase, detail or row.detail
            if phase not in ("waiting", "creating", "deleting", "updating", "checking"):
                row.note = ""
        if not self.live_mode and changed and phase not in ("pending", "checking"):
            self._line(key, f"{phase}{': ' + detail if detail else ''}", STYLE.get(phase, ""))

    def note(self, key: str, text: str) -> None:
        with self._lock:
            row = self.rows.get(key)
            if row is None or row.note == text:
                return
            row.note = text
        if not self.live_mode:
            self._line(key, text, "dim")

    # rendering ----------------------------------------------------------------------------------
    def _line(self, key: str, text: str, style: str) -> None:
        elapsed = time.monotonic() - self.start
        err.print(f"[{_clock(elapsed)}] {key}: {text}", style=style, highlight=False)

    def _render(self) -> Group:
        table = Table(box=None, pad_edge=False, show_header=False, expand=False)
        table.add_column(width=1)
        table.add_column(style="bold", no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column(justify="right", no_wrap=True)
        table.add_column(overflow="ellipsis", no_wrap=True, max_width=80)
        now = time.monotonic()
        with self._lock:
            for row in self.rows.values():
                style = STYLE.get(row.phase, "")
                icon = ICON.get(row.phase, "…")
                took = ""
                if row.started is not None:
                    took = _clock((row.ended or now) - row.started) if row.phase != "absent" else ""
                table.add_row(Text(icon, style=style), row.title, Text(row.phase, style=style), took,
                              Text(row.note or row.detail, style="dim"))
        header = Text(f"eksprivate {self.verb} — {_clock(now - self.start)}", style="bold")
        return Group(header, table)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes:d}:{secs:02d}"


def print_outcomes(outcomes: list[Outcome], verb: str, seconds: float) -> None:
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.phase] = counts.get(o.phase, 0) + 1
    summary = ", ".join(f"{n} {phase}" for phase, n in sorted(counts.items()))
    err.print(f"{verb} finished in {_clock(seconds)}: {summary}", style="bold green", highlight=False)


def print_plan(items: list[PlanItem], destroy: bool) -> None:
    table = Table(title="eksprivate plan" + (" --destroy" if destroy else ""), show_lines=False)
    table.add_column("step")
    table.add_column("action")
    table.add_column("resources", overflow="fold")
    table.add_column("details", overflow="fold")
    for item in items:
        label = "no change" if item.action == "none" else item.action
        table.add_row(item.title, Text(label, style=ACTION_STYLE.get(item.action, "")), item.resources,
                      "\n".join(item.details))
    out.print(table)
    counts: dict[str, int] = {}
    for item in items:
        counts[item.action] = counts.get(item.action, 0) + 1
    out.print(", ".join(f"{n} to {a}" if a in ("create", "update", "delete") else
                        f"{n} {'unchanged' if a == 'none' else a}" for a, n in sorted(counts.items())),
              highlight=False)


def print_status(items: list[PlanItem], target: dict[str, Any]) -> None:
    table = Table(title=f"{target['name']} in {target['region']} (account {target['account']})")
    table.add_column("step")
    table.add_column("status")
    table.add_column("resources", overflow="fold")
    for item in items:
        table.add_row(item.title, Text(item.status, style=ACTION_STYLE.get(item.action, "")), item.resources)
    out.print(table)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def warn(text: str) -> None:
    err.print(f"warning: {text}", style="yellow", highlight=False)


def info(text: str) -> None:
    err.print(text, highlight=False)


def error(text: str) -> None:
    err.print(f"error: {text}", style="bold red", highlight=False, markup=False)
