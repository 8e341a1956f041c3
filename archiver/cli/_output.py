"""Command output: lines on stdout, one-line messages on stderr, table rows, a progress line."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from archiver.text import printable

if TYPE_CHECKING:
    from archiver.cycle.report import CycleReport


def out(text: str = "") -> None:
    """Write one line of command output to stdout."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def say(text: str) -> None:
    """Write one `archiver: ...` line to stderr: an error, a warning or a note beside the output."""
    sys.stderr.write(f"archiver: {text}\n")


def refused(name: str, reason: str) -> None:
    """One line for a stream name the archiver will not track or ask about."""
    say(f"stream '{printable(name, 140)}' refused: {reason}")


def table_row(cells: Iterable[tuple[object, str]]) -> str:
    """One row of a fixed-width table: each value formatted by its spec (`<18`, `>6`), one space
    between columns."""
    return " ".join(format(value, spec) for value, spec in cells)


class ProgressLine:
    """Requests done of total, rows, rate and ETA on one refreshed terminal line."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.enabled = sys.stderr.isatty()

    def __call__(self, report: CycleReport) -> None:
        if not self.enabled:
            return
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = report.requests / elapsed
        left = (report.planned - report.requests) / rate if rate else 0.0
        sys.stderr.write(
            f"\r{report.requests}/{report.planned} requests, {report.rows} rows, "
            f"{rate:.1f} req/s, ETA {int(left) // 60}:{int(left) % 60:02d}   "
        )
        if report.requests == report.planned:
            sys.stderr.write("\n")
        sys.stderr.flush()
