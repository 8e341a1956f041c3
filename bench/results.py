"""Merge one benchmark run's sections into RESULTS.md, keeping the sections it did not measure."""

from __future__ import annotations

from pathlib import Path


def sections(text: str) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The lines before the first `## ` heading, and each section (its heading and lines) in
    order; a heading used twice (another tool's block of its own) stays two sections."""
    head: list[str] = []
    found: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("## "):
            found.append((line, []))
        if found:
            found[-1][1].append(line)
        else:
            head.append(line)
    return head, found


def merge(path: Path, run: str, stamp: list[str]) -> str:
    """`path`'s sections with those of `run` put in place of the first of the same heading (or
    added at the end), each new section stamped with the run's machine and date (sections left
    alone keep their own)."""
    old_head, old = sections(path.read_text() if path.exists() else "")
    new_head, new = sections(run)
    for heading, lines in new:
        stamped = [lines[0], "", *stamp, *lines[1:]] if stamp else lines
        if stamped[-1]:
            stamped.append("")  # a blank line before whatever section follows
        places = [index for index, (name, _) in enumerate(old) if name == heading]
        if places:
            old[places[0]] = (heading, stamped)
        else:
            old.append((heading, stamped))
    head = old_head or new_head
    body = [line for _, lines in old for line in lines]
    return "\n".join([*head, *body]).rstrip("\n") + "\n"
