"""The migrations create exactly the schema the models describe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

from archiver.store import db
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
