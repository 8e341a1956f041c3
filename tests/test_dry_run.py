"""`backfill --dry-run` writes nothing and counts the requests the real backfill makes
(issue #25): the same streams, found by the same read-only listing questions."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from archiver.cycle.dry_run import Tracked, would_track
from archiver.simulator import SimConfig, Simulator
from archiver.store import db
from archiver.vocabulary import StreamStatus
from tests.conftest import postgres_admin_url
from tests.processes import Ran
from tests.simhelpers import TOKEN

NOW = "2026-11-20T12:20:00Z"


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    config = SimConfig(streams=12, seed=4, exact_token_streams=2)
    with Simulator(config, token=TOKEN, start=datetime(2026, 11, 20, 12, 20, tzinfo=UTC)) as sim:
        yield sim


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An archive that does not exist yet: no SQLite file, or an empty PostgreSQL database."""
    if request.param == "sqlite":
        (tmp_path / "data").mkdir()
        yield f"sqlite:///{tmp_path / 'data' / 'archive.db'}"
        return
    admin_url = sa.make_url(postgres_admin_url())
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"archiver_fresh_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL unreachable: {str(exc).splitlines()[0]}")
    yield admin_url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _asked(simulator: Simulator) -> int:
    return int(simulator.stats_payload()["api_requests"])


def _number(pattern: str, text: str) -> int:
    found = re.search(pattern, text, re.MULTILINE)
    assert found is not None, text
    return int(found.group(1))


def _tables(url: str) -> list[str]:
    engine = db.make_engine(url)
    try:
        return sorted(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _contents(url: str) -> dict[str, list[tuple[object, ...]]]:
    engine = db.open_readonly(url)
    try:
        with engine.connect() as conn:
            meta = sa.MetaData()
            meta.reflect(conn)
            return {
                name: sorted(tuple(map(repr, row)) for row in conn.execute(sa.select(table)))
                for name, table in meta.tables.items()
            }
    finally:
        engine.dispose()


@pytest.mark.e2e
def test_a_dry_run_on_a_fresh_archive_writes_nothing_and_counts_the_real_runs_requests(
    tmp_path: Path, simulator: Simulator, cli: Callable[..., Ran], fresh_url: str
) -> None:
    env = {
        "ARCHIVER_API_BASE_URL": simulator.url,
        "ARCHIVER_API_TOKEN": TOKEN,
        "ARCHIVER_NOW": NOW,
        "ARCHIVER_DATABASE_URL": fresh_url,
        # The dry run counts the REST and feed requests, not the viewer reads (README).
        "ARCHIVER_VIEWERS": "false",
    }
    before = _asked(simulator)
    dry = cli(["backfill", "--dry-run"], tmp_path, **env)
    assert dry.returncode == 0, dry.stderr
    asked = _asked(simulator) - before
    assert "no stream is tracked" not in dry.stderr
    streams = _number(r"^streams: (\d+) ", dry.stdout)
    total = _number(r"^total: (\d+) requests", dry.stdout)
    assert _number(r"\((\d+) before planning", dry.stdout) == asked
    assert asked >= 2  # monitoring and publish tokens at least
    assert streams > 0
    # Nothing written: no file, no tables, no migration.
    assert list(tmp_path.rglob("*archive.db*")) == []
    if fresh_url.startswith("postgresql"):
        assert _tables(fresh_url) == []

    before = _asked(simulator)
    real = cli(["backfill"], tmp_path, **env)
    assert real.returncode == 0, real.stderr
    assert _asked(simulator) - before == total
    listing = cli(["streams", "list"], tmp_path, **env)
    assert f"{streams} streams" in listing.stdout


@pytest.mark.e2e
def test_a_dry_run_on_an_existing_archive_changes_nothing_in_it(
    tmp_path: Path, simulator: Simulator, cli: Callable[..., Ran], database_url: str
) -> None:
    env = {
        "ARCHIVER_API_BASE_URL": simulator.url,
        "ARCHIVER_API_TOKEN": TOKEN,
        "ARCHIVER_NOW": NOW,
        "ARCHIVER_DATABASE_URL": database_url,
        # The dry run counts the REST and feed requests, not the viewer reads (README).
        "ARCHIVER_VIEWERS": "false",
    }
    added = cli(["streams", "add", "kept-a", "kept-b"], tmp_path, **env)
    assert added.returncode == 0, added.stderr
    first = cli(["backfill", "--resolution", "Day"], tmp_path, **env)
    assert first.returncode == 0, first.stderr
    simulator.advance(timedelta(hours=3))
    env["ARCHIVER_NOW"] = "2026-11-20T15:20:00Z"
    saved = _contents(database_url)
    before = _asked(simulator)
    dry = cli(["backfill", "--dry-run"], tmp_path, **env)
    assert dry.returncode == 0, dry.stderr
    assert _contents(database_url) == saved
    assert _number(r"\((\d+) already tracked", dry.stdout) >= 2
    total = _number(r"^total: (\d+) requests", dry.stdout)
    assert _asked(simulator) - before < total
    before = _asked(simulator)
    real = cli(["backfill"], tmp_path, **env)
    assert real.returncode == 0, real.stderr
    assert _asked(simulator) - before == total


@pytest.mark.e2e
def test_without_a_token_the_dry_run_says_it_cannot_know_the_streams(
    tmp_path: Path, simulator: Simulator, cli: Callable[..., Ran]
) -> None:
    env = {"ARCHIVER_API_BASE_URL": simulator.url, "ARCHIVER_NOW": NOW}
    dry = cli(["backfill", "--dry-run"], tmp_path, ARCHIVER_STREAMS="a", **env)
    assert dry.returncode == 0, dry.stderr
    assert "cannot know them" in dry.stderr
    assert "total:" not in dry.stdout
    assert "data: " in dry.stdout
    assert _asked(simulator) == 0
    assert list(tmp_path.iterdir()) == []


def test_the_dry_runs_registry_marks_quiet_streams_dormant_and_wakes_listed_ones() -> None:
    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    old = now - timedelta(days=30)
    registry = {
        "quiet": Tracked(StreamStatus.ACTIVE, old, None),
        "listed": Tracked(StreamStatus.DORMANT, old, None),
        "refused": Tracked(StreamStatus.REFUSED, old, None),
    }
    entries = would_track(
        registry,
        [(["new", "bad name*"], False), (["listed"], True)],
        now=now,
        window=timedelta(days=7),
    )
    assert sorted((e.name, e.status) for e in entries) == [
        ("listed", "active"),
        ("new", "active"),
        ("quiet", "dormant"),
    ]


def test_a_dry_run_refuses_an_in_memory_archive_as_the_real_run_does(
    tmp_path: Path, cli: Callable[..., Ran]
) -> None:
    for command in (["backfill", "--dry-run"], ["backfill"]):
        result = cli(command, tmp_path, ARCHIVER_DATABASE_URL="sqlite://", ARCHIVER_API_TOKEN=TOKEN)
        assert result.returncode == 1
        (line,) = result.stderr.splitlines()
        assert "in-memory SQLite database keeps nothing" in line
