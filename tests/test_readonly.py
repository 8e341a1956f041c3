"""The engine read-only commands use cannot write, on either database, whatever the URL says."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from archiver.store import db
from archiver.store.tables import tracked_streams


def _write(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.insert(tracked_streams).values(
                stream_name="x", source="cli", status="active", added_at=datetime.now(UTC)
            )
        )


def test_a_read_only_archive_refuses_writes(database_url: str) -> None:
    engine = db.open_readonly(database_url)
    try:
        with pytest.raises(sa.exc.DBAPIError, match=r"(?i)read.?only"):
            _write(engine)
    finally:
        engine.dispose()
    writable = db.make_engine(database_url)
    try:
        _write(writable)  # the same write through a normal engine works: the guard is real
        with writable.begin() as conn:
            conn.execute(tracked_streams.delete())
    finally:
        writable.dispose()


@pytest.mark.postgres
def test_the_urls_own_options_survive_the_read_only_guard(postgres_url: str) -> None:
    url = sa.make_url(postgres_url).update_query_dict({"options": "-c search_path=public"})
    engine = db.open_readonly(url.render_as_string(hide_password=False))
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SHOW search_path")).scalar() == "public"
            assert conn.execute(sa.text("SHOW transaction_read_only")).scalar() == "on"
    finally:
        engine.dispose()


def test_passwords_in_the_query_are_masked() -> None:
    shown = db.safe_url("postgresql+psycopg://u:pw1@h/d?password=hunter2&sslmode=require")
    assert "hunter2" not in shown
    assert "pw1" not in shown
    assert "sslmode=require" in shown
