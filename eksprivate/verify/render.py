"""Human output: one table row per check, the fix under every warning and failure, a summary line."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from eksprivate.verify.model import Report, Status

STYLE: dict[Status, str] = {"PASS": "green", "WARN": "yellow", "FAIL": "bold red"}


def render(report: Report, console: Console) -> None:
    table = Table(title=f"eksprivate verify: {report.cluster} ({report.region})", title_justify="left",
                  show_lines=False, expand=False)
    table.add_column("status", no_wrap=True)
    table.add_column("check", overflow="fold")
    table.add_column("resource", overflow="fold")
    table.add_column("detail / fix", overflow="fold")
    for c in report.checks:
        detail = Text(c.detail)
        if c.status != "PASS" and c.fix:
            detail.append("\nfix: ", style="bold cyan")
            detail.append(c.fix, style="cyan")
        check = Text(c.title)
        check.append(f"\n{c.id}", style="dim")
        table.add_row(Text(c.status, style=STYLE[c.status]), check, Text(c.resource), detail)
    console.print(table)
    summary = Text()
    summary.append(f"{report.count('PASS')} pass", style=STYLE["PASS"])
    summary.append(", ")
    summary.append(f"{report.count('WARN')} warn", style=STYLE["WARN"] if report.count("WARN") else "")
    summary.append(", ")
    summary.append(f"{report.count('FAIL')} fail", style=STYLE["FAIL"] if report.failed else "")
    summary.append(" — ")
    if report.failed:
        summary.append(f"cluster {report.cluster} is not a working private cluster", style=STYLE["FAIL"])
    elif report.count("WARN"):
        summary.append(f"cluster {report.cluster} is private; review the warnings", style=STYLE["WARN"])
    else:
        summary.append(f"cluster {report.cluster} is private and healthy", style=STYLE["PASS"])
    console.print(summary)
