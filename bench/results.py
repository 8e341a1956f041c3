"""Merge one benchmark run's sections into RESULTS.md, keeping the sections it did not measure."""

from __future__ import annotations

from pathlib import Path


def sections(text: str) -> tuple[list[str], dict[str, list[str]]]:
    """The lines before the first `## ` heading, and each section's lines by its heading."""
    head: list[str] = []
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = found.setdefault(line, [])
        if current is None:
            head.append(line)
        else:
            current.append(line)
    return head, found


def merge(path: Path, run: str, stamp: list[str]) -> str:
    """`path`'s sections with those of `run` put in place (or added at the end), each new
    section stamped with the run's machine and date (sections left alone keep their own)."""
    old_head, old = sections(path.read_text() if path.exists() else "")
    new_head, new = sections(run)
    for heading, lines in new.items():
        old[heading] = [lines[0], "", *stamp, *lines[1:]] if stamp else lines
    head = old_head or new_head
    body = [line for lines in old.values() for line in lines]
    return "\n".join([*head, *body]).rstrip("\n") + "\n"
