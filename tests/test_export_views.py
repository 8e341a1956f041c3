"""`archiver export` takes every view README lists, `usage_attribution` included (issue #25)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from archiver.simulator import SimConfig, Simulator
from archiver.store import db
from tests.processes import Ran
from tests.simhelpers import TOKEN

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_views() -> list[str]:
    """The names README's **Views** paragraph gives in backticks (rollup tables among them)."""
    text = README.read_text()
    paragraph = text[text.index("- **Views**") :].split("\n\n", 1)[0]
    return sorted(set(re.findall(r"`([a-z_]+)`", paragraph)))


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    config = SimConfig(streams=3, seed=7, exact_token_streams=3)
    with Simulator(config, token=TOKEN, start=datetime(2026, 11, 20, 12, 20, tzinfo=UTC)) as sim:
        yield sim


@pytest.mark.e2e
def test_every_view_readme_lists_exports_with_its_rows(
    tmp_path: Path, simulator: Simulator, cli: Callable[..., Ran], database_url: str
) -> None:
    engine = db.make_engine(database_url)
    try:
        views = set(sa.inspect(engine).get_view_names())
    finally:
        engine.dispose()
    listed = [name for name in readme_views() if name in views]
    assert "usage_attribution" in listed
    assert set(listed) == views  # README names every view of the archive
    env = {
        "ARCHIVER_API_BASE_URL": simulator.url,
        "ARCHIVER_API_TOKEN": TOKEN,
        "ARCHIVER_NOW": "2026-11-20T12:20:00Z",
        "ARCHIVER_DATABASE_URL": database_url,
    }
    backfill = cli(["backfill"], tmp_path, **env)
    assert backfill.returncode == 0, backfill.stderr
    for view in listed:
        csv_out = cli(["export", "--table", view], tmp_path, **env)
        assert csv_out.returncode == 0, (view, csv_out.stderr)
        # A header and rows; `reconciliation` lists disagreements, and this archive has none.
        assert len(csv_out.stdout.splitlines()) > (0 if view == "reconciliation" else 1), view
        jsonl = cli(["export", "--table", view, "--format", "jsonl"], tmp_path, **env)
        assert jsonl.returncode == 0, (view, jsonl.stderr)
        rows = [json.loads(line) for line in jsonl.stdout.splitlines()]
        assert len(rows) == len(csv_out.stdout.splitlines()) - 1, view
