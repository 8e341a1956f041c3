"""A partial benchmark run replaces its own sections of RESULTS.md and keeps the others."""

from __future__ import annotations

from pathlib import Path

from bench.results import merge, put_block


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


def test_a_merge_by_heading_never_reaches_into_a_block(tmp_path: Path) -> None:
    # bench.queries' block holds a `## A` of its own: `python -m bench`'s `## A` replaces the
    # one outside it, and a section after the block keeps its place.
    path = tmp_path / "RESULTS.md"
    block = "<!-- q: begin -->\n## A\n\nblock a\n<!-- q: end -->\n"
    path.write_text(f"# R\n\n{block}\n## A\n\nold a\n\n## B\n\nb\n")
    merged = merge(path, "# R\n\n## A\n\nnew a\n", [])
    assert merged == f"# R\n\n{block}\n## A\n\nnew a\n\n## B\n\nb\n"
    # With no `## A` outside the block, the new one is added at the end: the block is whole.
    path.write_text(f"# R\n\n{block}\n## B\n\nb\n")
    merged = merge(path, "# R\n\n## A\n\nnew a\n", [])
    assert merged == f"# R\n\n{block}\n## B\n\nb\n\n## A\n\nnew a\n"


def test_a_block_replaces_its_own_lines_only(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    path.write_text(
        "# R\n\n## A\n\na\n\n<!-- q 1: begin -->\nold 1\n<!-- q 1: end -->\n\n"
        "<!-- q 2: begin -->\n## C\nold 2\n<!-- q 2: end -->\n\n## B\n\nb\n"
    )
    merged = put_block(path, "q 2", ["## C", "new 2"])
    assert merged == (
        "# R\n\n## A\n\na\n\n<!-- q 1: begin -->\nold 1\n<!-- q 1: end -->\n\n"
        "<!-- q 2: begin -->\n## C\nnew 2\n<!-- q 2: end -->\n\n## B\n\nb\n"
    )
    path.write_text(merged)
    added = put_block(path, "q 3", ["x"])
    assert added == merged + "\n<!-- q 3: begin -->\nx\n<!-- q 3: end -->\n"
    assert put_block(tmp_path / "new.md", "q", ["x"]) == (
        "# Benchmark results\n\n<!-- q: begin -->\nx\n<!-- q: end -->\n"
    )
