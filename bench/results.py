"""Merge one benchmark run's sections into RESULTS.md, keeping the sections it did not measure.

RESULTS.md holds two kinds of section: a `## ` heading and the lines up to the next one
(`python -m bench`, `bench.startup`, `bench.steady` replace theirs by heading), and a block
between `<!-- NAME: begin -->` and `<!-- NAME: end -->` that one tool owns whole, `## `
headings inside it included (`bench.queries`, `bench.viewer_queries`). A merge by heading
never reaches into a block, so neither kind can cut the other.
"""

from __future__ import annotations

import re
from pathlib import Path

_BEGIN = re.compile(r"<!-- (.+): begin -->$")


def _marker(name: str, edge: str) -> str:
    return f"<!-- {name}: {edge} -->"


def sections(text: str) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The lines before the first section, and each section (its heading or begin marker, and
    its lines) in order; a heading used twice stays two sections."""
    head: list[str] = []
    found: list[tuple[str, list[str]]] = []
    end = ""  # the end marker of the block being read
    for line in text.splitlines():
        if end:
            found[-1][1].append(line)
            if line == end:
                end = ""
            continue
        block = _BEGIN.match(line)
        if block:
            end = _marker(block.group(1), "end")
        if line.startswith("## ") or block:
            found.append((line, []))
        if found:
            found[-1][1].append(line)
        else:
            head.append(line)
    return head, found


def _blank_after(lines: list[str]) -> None:
    """End `lines` with a blank line, before a section added after them."""
    if lines and lines[-1]:
        lines.append("")


def _join(head: list[str], found: list[tuple[str, list[str]]]) -> str:
    body = [line for _, lines in found for line in lines]
    return "\n".join([*head, *body]).rstrip("\n") + "\n"


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
            _blank_after(old[-1][1] if old else old_head)
            old.append((heading, stamped))
    return _join(old_head or new_head, old)


def put_block(path: Path, name: str, lines: list[str]) -> str:
    """`path`'s text with the block `name` holding `lines` (in place of the block's previous
    lines, or added at the end)."""
    head, found = sections(path.read_text() if path.exists() else "# Benchmark results\n")
    begin = _marker(name, "begin")
    block = [begin, *lines, _marker(name, "end"), ""]
    places = [index for index, (heading, _) in enumerate(found) if heading == begin]
    if places:
        found[places[0]] = (begin, block)
    else:
        _blank_after(found[-1][1] if found else head)
        found.append((begin, block))
    return _join(head, found)
