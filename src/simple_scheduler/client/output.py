"""Printing for people and for scripts: tables, JSON, messages, human durations.

Colour, table rules and progress bars only on a terminal, never with `NO_COLOR` set (any
non-empty value, no-color.org) nor `TERM=dumb`; elsewhere tables are plain columns with
no trailing spaces, so `awk` and `cut` read them.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from simple_scheduler.states import JobStatus, TaskStatus

#: Rich styles by status name (jobs and tasks share most names).
STYLES: dict[str, str] = {
    JobStatus.FINISHED: "green",
    JobStatus.RUNNING: "cyan",
    JobStatus.STALLED: "cyan",
    JobStatus.PENDING: "dim",
    JobStatus.PAUSED: "yellow",
    JobStatus.IN_ERROR: "red",
    JobStatus.CANCELED: "yellow",
    JobStatus.FAILED: "bold red",
    JobStatus.KILLED: "red",
    TaskStatus.SUBMITTED: "dim",
    TaskStatus.WAITING_ON_ERROR: "yellow",
    TaskStatus.WAITING_ON_FAILURE: "yellow",
    TaskStatus.FAULTY: "bold red",
    TaskStatus.ABORTED: "red",
    TaskStatus.NOT_STARTED: "dim",
    TaskStatus.NOT_RESTARTED: "dim",
    TaskStatus.SKIPPED: "dim",
}


def fancy(stream: TextIO) -> bool:
    """Colours and animations for this stream?"""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def error(message: str) -> None:
    prefix = "\x1b[31merror:\x1b[0m" if fancy(sys.stderr) else "error:"
    sys.stderr.write(f"{prefix} {message}\n")


def note(message: str) -> None:
    """A message for the person at the terminal, kept out of stdout (which scripts read)."""
    sys.stderr.write(message + "\n")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], status_column: int) -> None:
    """Rows under headers on stdout; the status column coloured on a terminal."""
    if not fancy(sys.stdout):
        widths = [len(h) for h in headers]
        for row in rows:
            widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
        for row in (headers, *rows):
            padded = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            sys.stdout.write("  ".join(padded).rstrip() + "\n")
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    grid = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False)
    for header in headers:
        grid.add_column(header, overflow="fold")
    for row in rows:
        cells = [Text(cell) for cell in row]
        cells[status_column].stylize(STYLES.get(row[status_column], ""))
        grid.add_row(*cells)
    Console(file=sys.stdout, highlight=False, emoji=False).print(grid)


def duration(ms: int | None) -> str:
    """`850ms`, `12.3s`, `4m05s`, `2h03m`: short enough for a table column."""
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def local_time(ms: Any) -> str:
    """Epoch milliseconds as local `YYYY-MM-DD HH:MM:SS`, `-` when unset."""
    if ms is None or int(ms) < 0:
        return "-"
    return datetime.datetime.fromtimestamp(int(ms) / 1000).strftime("%Y-%m-%d %H:%M:%S")


def exit_text(code: Any, sig: Any) -> str:
    """`0`, `3`, `SIGKILL`, or `-` for a task that has not exited."""
    if sig is not None:
        try:
            return signal.Signals(int(sig)).name
        except ValueError:
            return f"signal {sig}"
    return "-" if code is None else str(code)
