"""A partial benchmark run replaces its own sections of RESULTS.md and keeps the others."""

from __future__ import annotations

from pathlib import Path

from bench.results import merge


def test_a_partial_run_keeps_the_sections_it_did_not_measure(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    path.write_text("# Results\n\nintro\n\n## A\n\nold a\n\n## B\n\nold b\n")
    run = "# Results\n\n- date: today\n\n## B\n\nnew b\n\n## C\n\nnew c\n"
    merged = merge(path, run, ["- date: today"])
    assert merged == (
        "# Results\n\nintro\n\n## A\n\nold a\n\n"
        "## B\n\n- date: today\n\nnew b\n\n"
        "## C\n\n- date: today\n\nnew c\n"
    )


def test_the_first_run_writes_a_new_file(tmp_path: Path) -> None:
    merged = merge(tmp_path / "RESULTS.md", "# Results\n\n## A\n\nx\n", [])
    assert merged == "# Results\n\n## A\n\nx\n"


def test_a_heading_used_twice_keeps_both_sections_in_place(tmp_path: Path) -> None:
    # bench.queries writes a block of its own with a heading `python -m bench` uses too.
    path = tmp_path / "RESULTS.md"
    path.write_text("# R\n\n## A\n\nold a\n\n## B\n\nb\n\n## A\n\nother a\n")
    merged = merge(path, "# R\n\n## A\n\nnew a\n", [])
    assert merged == "# R\n\n## A\n\nnew a\n\n## B\n\nb\n\n## A\n\nother a\n"
