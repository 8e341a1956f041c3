"""The feed history and viewer statistics `bench.viewer_queries` asks, generated in SQL.

Every stream publishes one session a day, starting on the 5-minute grid between 06:00 and
21:55 UTC and lasting 15 minutes to 2 hours (67 minutes on average, about half of them over an
hour); a quarter of the sessions have a backup feed as well (30 s later, ending a minute
earlier). Each session's 5-minute periods have a `stream_viewer_stats` row (13.5 a day on
average); the account has a row for every 5-minute period of every day. The viewer rollups
and each stream's publishing days are filled from them as migrations 0012 and 0013 fill them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import text
from sqlalchemy.engine import Engine

from archiver.store import db
from bench.common import migration
from bench.queries_data import PG_URL, WORK

FIRST_DAY = "2025-12-01"  # as bench.queries_data.FIRST


def _gen(dialect: str, column: str, n: int) -> str:
    if dialect == "postgresql":
        return f"generate_series(0, {n - 1}) AS {column}"
    return (
        f"(WITH RECURSIVE r(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM r WHERE i < {n - 1}) "
        f"SELECT i AS {column} FROM r) AS {column}_rows"
    )


def _spelling(dialect: str) -> dict[str, str]:
    """SQL for a moment `{m}` minutes (an expression) after the first day, and the rest."""
    if dialect == "postgresql":
        return {
            "at": f"(TIMESTAMPTZ '{FIRST_DAY} 00:00:00+00' + ({{m}}) * INTERVAL '1 minute')",
            "name": "'stream-' || lpad(s::text, 4, '0')",
            "true": "true",
            "false": "false",
            "fetched": "TIMESTAMPTZ '2026-12-01 06:00:00+00'",
        }
    return {
        "at": f"strftime('%Y-%m-%dT%H:%M:%SZ', '{FIRST_DAY}', '+' || ({{m}}) || ' minutes')",
        "name": "'stream-' || printf('%04d', s)",
        "true": "1",
        "false": "0",
        "fetched": "'2026-12-01T06:00:00Z'",
    }


# Per stream `s` and day `d`: the session's first minute of the day and its periods (3-24).
START = "(360 + 5 * ((s * 37 + d * 101) % 192))"
PERIODS = "(3 + ((s * 13 + d * 7) % 22))"


def fill_viewers(engine: Engine, streams: int, days: int) -> dict[str, int]:
    """Generate sessions and viewer statistics; the rows of each table."""
    dialect = engine.dialect.name
    sql = _spelling(dialect)

    def at(minutes: str) -> str:
        return sql["at"].format(m=minutes)

    s_rows, d_rows = _gen(dialect, "s", streams), _gen(dialect, "d", days)
    begin = f"d * 1440 + {START}"
    seconds = f"{PERIODS} * 300"
    statements = [
        "INSERT INTO stream_sessions (stream_name, started, feed_ordinal, ended, active, "
        f"duration_seconds, fetched_at) SELECT {sql['name']}, {at(begin)}, 0, "
        f"{at(f'{begin} + {PERIODS} * 5')}, {sql['false']}, {seconds}, {sql['fetched']} "
        f"FROM {s_rows}, {d_rows}",
        # The backup feeds: 30 s late, a minute early (minutes as fractions on both sides).
        "INSERT INTO stream_sessions (stream_name, started, feed_ordinal, ended, active, "
        f"duration_seconds, fetched_at) SELECT {sql['name']}, {at(f'{begin} + 0.5')}, 0, "
        f"{at(f'{begin} + {PERIODS} * 5 - 1')}, {sql['false']}, {seconds} - 90, "
        f"{sql['fetched']} FROM {s_rows}, {d_rows} WHERE s % 4 = 0",
        "INSERT INTO stream_viewer_stats (stream_name, period_start, active_viewers, "
        f"views_started, views_ended, fetched_at, is_final) SELECT {sql['name']}, "
        f"{at(f'{begin} + p * 5')}, (s * 31 + d * 17 + p * 7) % 500, 1 + (s + p) % 40, "
        f"1 + (d + p) % 40, {sql['fetched']}, {sql['true']} "
        f"FROM {s_rows}, {d_rows}, {_gen(dialect, 'p', 24)} WHERE p < {PERIODS}",
        "INSERT INTO account_viewer_stats (period_start, active_viewers, views_started, "
        f"views_ended, streams, fetched_at, is_final) SELECT {at('d * 1440 + p * 5')}, "
        f"(d * 7 + p * 13) % 20000, 1 + p % 400, 1 + d % 400, 1 + (d + p) % {streams}, "
        f"{sql['fetched']}, {sql['true']} FROM {d_rows}, {_gen(dialect, 'p', 288)}",
    ]
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
        # The rollups, as migrations 0012 and 0013 fill them from an archive's rows.
        for statement in migration("0012_viewer_rollups.py").fill_rollups(dialect):
            conn.execute(text(statement))
        migration("0013_session_days.py")._fill(conn)
        counts = {
            table: int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())
            for table in ("stream_sessions", "stream_viewer_stats", "account_viewer_stats")
        }
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()
    return counts


@contextmanager
def archive(dialect: str, label: str) -> Iterator[tuple[Engine, str]]:
    """A fresh, migrated archive (a SQLite file or a PostgreSQL database), dropped after."""
    WORK.mkdir(exist_ok=True)
    admin, name = None, f"archiver_bench_v_{uuid.uuid4().hex[:8]}"
    path = WORK / f"viewers-{label}.db"
    if dialect == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = sa.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    engine = db.make_engine(url)
    try:
        db.upgrade(engine)
        yield engine, url
    finally:
        engine.dispose()
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
