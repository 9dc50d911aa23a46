"""What the user sees: a live view of the steps on a terminal, plain lines otherwise, tables and JSON.

Progress goes to stderr; results (plan, status, JSON) go to stdout, so scripts can pipe them.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

from rich.cells import cell_len, set_cell_size
from rich.console import Console, ConsoleDimensions, ConsoleOptions, RenderResult
from rich.live import Live
from rich.table import Table
from rich.text import Text

from eksprivate.engine import Outcome, PlanItem

STYLE = {
    "pending": "dim", "checking": "cyan", "creating": "yellow", "updating": "yellow", "waiting": "yellow",
    "deleting": "magenta", "ready": "green", "created": "green", "updated": "green", "deleted": "green",
    "scheduled": "green", "absent": "dim", "kept": "yellow", "failed": "bold red", "skipped": "red",
}
ICON = {"ready": "✓", "created": "✓", "updated": "✓", "deleted": "✓", "scheduled": "✓", "absent": "·",
        "failed": "✗", "skipped": "-", "kept": "!", "pending": " "}
ACTION_STYLE = {"create": "green", "update": "yellow", "delete": "red", "keep": "yellow", "none": "dim",
                "absent": "dim", "exists": "green"}
# A step that is busy: the engine's "waiting" (for readiness) after one of these keeps its word, so a
# row reads "creating" until it is created, not "waiting".
BUSY = ("creating", "updating", "deleting")
QUIET_PHASES = ("pending", "checking", "waiting")  # never a plain line: not a change the user needs
REPEAT_SECONDS = 60.0  # a step that keeps waiting says so at most once a minute in plain lines
STATUS_WIDTH = max(len(word) for word in STYLE)
MIN_TITLE = 8  # titles shrink below their length only when even an empty detail does not fit

OFF_TERMINAL_WIDTH = 10_000  # columns off a terminal: a table row is one line, whatever it holds


class _Console(Console):
    """A rich Console that, off a terminal (a file, a pipe, a CI log), is wide enough for every row: rich
    would otherwise lay tables out in 80 columns (or the width of a terminal the output is not going to)
    and cut `subnet-…/rtb-…` and `vpc-…` ids mid-token. Tables never stretch to the width (expand=False),
    so a row is as long as its content. On a terminal: the terminal's width, as rich measures it. (COLUMNS,
    which rich reads once at start, describes a terminal, so it does not apply off one either.)"""

    @property
    def size(self) -> ConsoleDimensions:
        measured = super().size
        if not self.is_terminal:
            return ConsoleDimensions(OFF_TERMINAL_WIDTH, measured.height)
        return measured

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


out = _Console(soft_wrap=True)
err = _Console(stderr=True, soft_wrap=True)


def _now() -> float:
    """The clock of progress timers and plain-line throttling (tests replace it)."""
    return time.monotonic()


class _Row:
    def __init__(self, title: str) -> None:
        self.title = title
        self.phase = "pending"  # the engine's phase, e.g. "scheduled for deletion (7 days)"
        self.detail = ""
        self.note = ""
        self.started: float | None = None
        self.ended: float | None = None
        self.said: list[str] = []  # plain mode: notes already printed for this step
        self.last_line = 0.0  # plain mode: when a line for this step was last printed

    @property
    def word(self) -> str:
        """The status word: the first word of the phase (the rest goes in front of the detail)."""
        return self.phase.split(" ", 1)[0]

    def shown_detail(self) -> str:
        rest = self.phase.split(" ", 1)[1] if " " in self.phase else ""
        text = self.note if self.note and self.phase in (*BUSY, "waiting", "checking") else self.detail
        return f"{rest}: {text}" if rest and text else rest or text


SETTLED = ("ACTIVE", "AVAILABLE", "PENDING")  # AWS's words the step's own lines say: done, or just made


def _echo(word: str, text: str) -> bool:
    """An AWS status seen by a waiter that plain lines need not repeat: the step's own word ("CREATING" while
    creating), the end state its outcome line ("created: …") says next, or one endpoint's `vpce-… pending`
    / `available`, which the group's lines say for all of them."""
    words = text.split()
    return 0 < len(words) <= 2 and words[-1].upper() in (word.upper(), *SETTLED)


class Progress:
    """Collects step phases from the engine's threads; renders them live or as plain lines.

    `started` is when the command started (monotonic), so the live timer and `elapsed` (which the
    summary line prints) count the same time."""

    def __init__(self, verb: str, live: bool | None = None, started: float | None = None) -> None:
        self.verb = verb
        self.live_mode = err.is_terminal if live is None else live
        self.rows: dict[str, _Row] = {}
        self.start = _now() if started is None else started
        self.stopped: float | None = None
        self._lock = threading.Lock()
        self._live: Live | None = None

    @property
    def elapsed(self) -> float:
        """Seconds from the start to the last frame (or to now while running)."""
        return (self.stopped if self.stopped is not None else _now()) - self.start

    def __enter__(self) -> Progress:
        if self.live_mode:
            self._live = Live(get_renderable=self._render, console=err, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stopped = _now()  # the last frame shows the time the summary line prints
        if self._live is not None:
            self._live.__exit__(*exc)

    # Reporter protocol ---------------------------------------------------------------------------
    def phase(self, key: str, title: str, phase: str, detail: str = "") -> None:
        with self._lock:
            row = self.rows.setdefault(key, _Row(title))
            now = _now()
            if phase != "pending" and row.started is None:
                row.started = now
            if phase not in ("pending", *BUSY, "waiting", "checking"):
                row.ended = now
            if phase == "waiting" and row.phase in BUSY:
                phase = row.phase  # still creating/updating/deleting: waiting is how
            changed = phase != row.phase
            row.phase, row.detail = phase, detail or row.detail
            if phase not in (*BUSY, "waiting", "checking"):
                row.note = ""
            plain = not self.live_mode and changed and phase not in QUIET_PHASES
            if plain:
                row.last_line = now
        if plain:
            self._line(key, f"{phase}{': ' + detail if detail else ''}", STYLE.get(row.word, ""))

    def note(self, key: str, text: str) -> None:
        with self._lock:
            row = self.rows.get(key)
            if row is None or (row.note == text and self.live_mode):
                return
            row.note = text
            if self.live_mode or row.phase in ("pending", "checking"):
                return  # plain lines: what `find` saw is not a change; the outcome line says it
            now = _now()
            if any(text in said for said in row.said):  # same news ("CREATING" after "CREATING: EKS takes…")
                if now - row.last_line < REPEAT_SECONDS or row.word not in (*BUSY, "waiting"):
                    return  # a finished step's resource read again by another step is no news
                line = f"still {row.word}: {text}" + (f" ({_clock(now - row.started)})" if row.started else "")
            else:
                row.said.append(text)
                if _echo(row.word, text):
                    return  # remembered (a long wait still repeats it), said by the lines around it
                line = text
            row.last_line = now
        self._line(key, line, "dim")

    # rendering ----------------------------------------------------------------------------------
    def _line(self, key: str, text: str, style: str) -> None:
        # Wall-clock time, as CI logs put them side by side with other tools' lines.
        err.print(f"[{time.strftime('%H:%M:%S')}] {key}: {text}", style=style, highlight=False, markup=False)

    def _render(self) -> _Frame:
        now = self.stopped if self.stopped is not None else _now()
        with self._lock:
            rows = [(ICON.get(r.word, "•"), r.title, r.word, self._took(r, now), r.shown_detail())
                    for r in self.rows.values()]
        return _Frame(f"eksprivate {self.verb} — {_clock(now - self.start)}", rows)

    @staticmethod
    def _took(row: _Row, now: float) -> str:
        if row.started is None or row.word == "absent":
            return ""
        return _clock((row.ended or now) - row.started)


class _Frame:
    """One frame of the live view, laid out for the console's width: icon, title, status word and elapsed
    time always fit; the detail (ids, AWS statuses) takes what is left and is cut first, with an ellipsis;
    a title is shortened only when even an empty detail would not make the row fit."""

    def __init__(self, header: str, rows: list[tuple[str, str, str, str, str]]) -> None:
        self.header = header
        self.rows = rows

    def lines(self, width: int) -> list[Text]:
        took_w = max([5, *(len(r[3]) for r in self.rows)])
        fixed = 1 + 1 + 2 + STATUS_WIDTH + 1 + took_w  # icon, gap, gap, status, gap, elapsed
        title_w = max([0, *(cell_len(r[1]) for r in self.rows)])
        title_w = max(min(title_w, width - fixed), min(title_w, MIN_TITLE))
        detail_w = width - fixed - title_w - 2
        out_lines = [Text(self.header, style="bold", no_wrap=True, overflow="ellipsis")]
        for icon, title, word, took, detail in self.rows:
            style = STYLE.get(word, "")
            line = Text(no_wrap=True, overflow="ellipsis")
            line.append(icon, style=style)
            line.append(" ")
            line.append(_fit(title, title_w), style="bold")
            line.append("  ")
            line.append(word.ljust(STATUS_WIDTH), style=style)
            line.append(" ")
            line.append(took.rjust(took_w))
            if detail and detail_w >= 2:
                line.append("  ")
                line.append(_fit(detail, detail_w, pad=False), style="dim")
            out_lines.append(line)
        return out_lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from self.lines(options.max_width)


def _fit(text: str, width: int, pad: bool = True) -> str:
    """`text` in exactly `width` cells (or fewer without `pad`), cut with an ellipsis when longer."""
    if cell_len(text) > width:
        text = set_cell_size(text, max(width - 1, 0)) + "…" if width > 0 else ""
    return set_cell_size(text, width) if pad else text


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


def print_skipped_zones(zones: list[Any]) -> None:
    """The zones left out when choosing AZs, one line each with why (zone IDs EKS refuses, Local Zones...)."""
    for zone in zones:
        out.print(f"zone skipped: {zone}", highlight=False)


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


# Short units for the cost table (JSON keeps the full ones).
COST_UNITS = {"cluster-hour": "h", "endpoint-AZ-hour": "AZ-h", "instance-hour": "h", "NAT-gateway-hour": "h",
              "GiB-month": "GiB-mo", "key-month": "mo"}


def print_cost(estimate: Any, title: str) -> None:
    """The cost table (`eksprivate.cost.Estimate`), its totals, the NAT-gateway comparison and the sources."""
    from rich import box

    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)  # no vertical rules: fits 80 columns
    table.add_column("item", ratio=3)
    table.add_column("qty", justify="right", no_wrap=True)
    table.add_column("unit price", justify="right", no_wrap=True)
    table.add_column("per hour", justify="right", no_wrap=True)
    table.add_column("per month", justify="right", no_wrap=True)
    table.add_column("note", ratio=2, overflow="fold")
    for line in estimate.lines:
        short = COST_UNITS.get(line.unit, line.unit)
        unit_price = "—" if line.unit_price is None else f"${line.unit_price:g}/{short}"
        quantity = "—" if line.usage_based else f"{line.quantity:g}"
        hourly = "—" if line.hourly is None else f"${line.hourly:,.4f}"
        monthly = "—" if line.monthly is None else f"${line.monthly:,.2f}" + (" ~" if line.variable else "")
        table.add_row(line.item, quantity, unit_price, hourly, monthly,
                      Text(line.note, style="yellow" if line.note.startswith("unknown") else "dim"))
    out.print(table)
    unknown = len(estimate.unknown)
    lower = f" (at least: {unknown} line(s) unknown)" if unknown else ""
    variable = " ~ marks Spot prices, which vary." if any(line.variable for line in estimate.lines) else ""
    out.print(f"total: ${estimate.hourly:,.4f}/hour, ${estimate.monthly:,.2f}/month (730 h){lower}, "
              f"plus usage-based charges.{variable}", highlight=False)
    nat = estimate.with_nat()
    if estimate.nat_alternative and any(line.item.startswith("interface endpoint ") for line in estimate.lines):
        endpoints = sum(line.monthly or 0 for line in estimate.lines if line.item.startswith("interface endpoint "))
        gateways = sum(line.monthly or 0 for line in estimate.nat_alternative)
        out.print(f"with NAT gateways instead of interface endpoints: ${sum(line.monthly or 0 for line in nat):,.2f}"
                  f"/month (endpoints ${endpoints:,.2f} → NAT gateways ${gateways:,.2f}, plus per-GB processing "
                  "either way; NAT gives the nodes internet access, which a private cluster exists to avoid)",
                  highlight=False)
    for source in estimate.sources:
        dated = f" as of {source['as_of']}" if source.get("as_of") else ""
        out.print(f"prices: {source['detail']}{dated}", style="dim", highlight=False)
