"""A JSON-lines export streams PostgreSQL rows through a server-side cursor, never all at once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from archiver.reading.export import export_rows
from archiver.store import db
from archiver.store.tables import tracked_streams

pytestmark = pytest.mark.postgres
AT = datetime(2026, 11, 25, 10, tzinfo=UTC)


def test_a_jsonl_export_reads_postgresql_through_a_server_side_cursor(
    postgres_url: str,
) -> None:
    engine = db.make_engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.delete(tracked_streams))
            conn.execute(
                tracked_streams.insert(),
                [
                    {"stream_name": f"s{i}", "source": "config", "status": "active", "added_at": AT}
                    for i in range(3)
                ],
            )
        with engine.connect() as conn:
            rows = iter(export_rows(conn, "tracked_streams"))
            first = next(rows)
            # While the export is under way its rows wait in a cursor on the server.
            open_cursors = conn.exec_driver_sql("SELECT count(*) FROM pg_cursors").scalar()
            rest = list(rows)
        assert open_cursors, "the rows were fetched whole, not streamed"
        assert sorted(r["stream_name"] for r in [first, *rest]) == ["s0", "s1", "s2"]
    finally:
        engine.dispose()
