"""The migrations create exactly the schema the models describe."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

from archiver.store import db, revisions
from archiver.store.tables import metadata
from tests.conftest import postgres_admin_url


def test_autogenerate_finds_no_difference(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_database_is_at_head(engine: Engine) -> None:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(db.alembic_config()).get_current_head()
    assert db.current_revision(engine) == head


def _follows(down: str | Sequence[str] | None) -> tuple[str, ...]:
    if down is None:
        return ()
    return (down,) if isinstance(down, str) else tuple(down)


def test_the_revisions_read_without_alembic_are_alembics() -> None:
    # Read-only commands check the schema without loading Alembic: the same answers.
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(db.alembic_config())
    expected = {s.revision: _follows(s.down_revision) for s in scripts.walk_revisions()}
    assert len(expected) >= 7
    assert revisions.shipped() == expected
    assert revisions.head() == db.head_revision() == scripts.get_current_head()


def test_a_merge_revision_spread_over_lines_is_read_too(tmp_path: Path) -> None:
    script = tmp_path / "0009_merge.py"
    lines = [
        '"""Merge."""',
        'revision: str = "0009"',
        "down_revision = (",
        '    "0008_a",',
        '    "0008_b",',
        ")",
        'SQL = """',
        "revision = not this one",
        '"""',
    ]
    script.write_text("\n".join(lines) + "\n")
    merge = {"revision": "0009", "down_revision": ("0008_a", "0008_b")}
    assert revisions._literals(script) == merge


def test_the_current_revision_read_without_alembic_is_alembics(
    engine: Engine, tmp_path: Path
) -> None:
    def both(conn: sa.Connection) -> tuple[str | None, str | None]:
        return revisions.current(conn), MigrationContext.configure(conn).get_current_revision()

    with engine.connect() as conn:
        assert both(conn) == (db.head_revision(),) * 2
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0003'"))
        assert both(conn) == ("0003", "0003")
        conn.execute(sa.text("DELETE FROM alembic_version"))
        assert both(conn) == (None, None)
        conn.rollback()
    empty = sa.create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    with empty.connect() as conn:
        assert both(conn) == (None, None)
    empty.dispose()


def test_upgrade_twice_is_harmless(engine: Engine) -> None:
    db.upgrade(engine)
    db.upgrade(engine)
    assert db.current_revision(engine) is not None


@pytest.mark.postgres
@pytest.mark.e2e
def test_processes_starting_together_on_a_new_postgresql_database_all_migrate(
    tmp_path: Path, postgres_url: str
) -> None:
    admin = sa.create_engine(postgres_admin_url(), isolation_level="AUTOCOMMIT")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
    try:
        for trial in range(3):
            name = f"archiver_race_{os.getpid()}_{trial}"
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            env["ARCHIVER_DATABASE_URL"] = (
                sa.make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
            )
            processes = [
                subprocess.Popen(
                    [sys.executable, "-m", "archiver", "db", "upgrade"],
                    cwd=tmp_path,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for _ in range(5)
            ]
            results = [(p.wait(120), p.stderr.read() if p.stderr else "") for p in processes]
            for process in processes:
                for stream in (process.stdout, process.stderr):
                    if stream:
                        stream.close()
            assert [code for code, _ in results] == [0] * 5, [err for _, err in results]
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
