"""The archive `bench.queries` asks: a year of generated rows, their rollups, the baseline views."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench.common import migration

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
README = HERE.parent / "README.md"
RESULTS = HERE / "RESULTS.md"
PG_URL = os.environ.get(
    "ARCHIVER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
# A year ending with README's examples (November 2026) inside it.
FIRST = datetime(2025, 12, 1, tzinfo=UTC)
COUNTRIES = ("US", "GB", "FR", "DE", "BR", "IN", "JP", "CA", "ES", "IT")
VIEWS = (
    "stream_daily_usage",
    "account_daily_usage",
    "stream_monthly_usage",
    "account_monthly_usage",
    "country_daily_usage",
    "stream_country_monthly_usage",
)


def baseline_sql(dialect: str) -> list[str]:
    """Migration 0002's views, named `baseline_*`, for times stored as 0004 stores them."""
    module = migration("0002_query_views.py")
    if dialect == "postgresql":
        sql = {
            "day": "date_trunc('day', {c} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
            "month": "date_trunc('month', {c} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
            "all_final": "bool_and({c})",
        }
    else:
        # 0002's expressions, spelling the time as the archive now stores it.
        sql = {
            "day": "strftime('%Y-%m-%dT00:00:00Z', {c})",
            "month": "strftime('%Y-%m-01T00:00:00Z', {c})",
            "all_final": "min({c})",
        }
    statements = []

    class _Op:
        @staticmethod
        def execute(text: str) -> None:
            statements.append(text)

        @staticmethod
        def get_bind() -> Any:
            return type("Bind", (), {"dialect": type("D", (), {"name": dialect})})()

    setattr(module, "op", _Op)  # noqa: B010
    module._dialect_sql = lambda: sql
    module.upgrade()
    renamed = []
    for text in statements:
        for view in VIEWS:
            text = re.sub(rf"\b{view}\b", f"baseline_{view}", text)
        renamed.append(text)
    # usage_attribution as 0008 defined it (the stream rows summed at each read), for 0014.
    old = migration("0014_attribution_rollup.py")._old_view(dialect)
    # 0015's view as the day rows summed at each read (what README's query did before).
    countries = migration("0015_country_monthly_rollup.py").fill_sql(dialect)
    countries = countries[countries.index("SELECT") :]
    return [
        *renamed,
        old.replace("VIEW usage_attribution", "VIEW attribution_0008"),
        "CREATE VIEW baseline_stream_country_monthly_usage (stream_name, month, country, "
        "publishes, views, publish_seconds, view_seconds, bytes_in, bytes_out, "
        f"days_with_traffic) AS {countries}",
    ]


def fill(engine: Engine, streams: int, days: int) -> int:
    """Generate the archive inside the database; returns the number of hourly stream rows."""
    dialect = engine.dialect.name
    hours = days * 24
    if dialect == "postgresql":
        t = "TIMESTAMPTZ '2025-12-01 00:00:00+00'"
        hour = f"({t} + h * INTERVAL '1 hour')"
        day = f"({t} + d * INTERVAL '1 day')"
        month = f"({t} + m * INTERVAL '1 month')"
        name = "'stream-' || lpad(s::text, 4, '0')"
        rnd = "(floor(random() * {n}))::bigint"
        true, false = "true", "false"
        fetched = "TIMESTAMPTZ '2026-12-01 06:00:00+00'"
    else:
        hour = "strftime('%Y-%m-%dT%H:%M:%SZ', '2025-12-01', '+' || h || ' hours')"
        day = "strftime('%Y-%m-%dT%H:%M:%SZ', '2025-12-01', '+' || d || ' days')"
        month = "strftime('%Y-%m-%dT%H:%M:%SZ', '2025-12-01', '+' || m || ' months')"
        name = "'stream-' || printf('%04d', s)"
        rnd = "(abs(random()) % {n})"
        true, false = "1", "0"
        fetched = "'2026-12-01T06:00:00Z'"

    def gen(column: str, n: int) -> str:
        if dialect == "postgresql":
            return f"generate_series(0, {n - 1}) AS {column}"
        return (
            f"(WITH RECURSIVE r(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM r WHERE i < {n - 1}) "
            f"SELECT i AS {column} FROM r) AS {column}_rows"
        )

    # Heavy-tailed traffic: a few streams carry most of the egress, as on a real account.
    out = f"({rnd.format(n=1000000)} * (1 + (s % 17) * (s % 17)) * 1000)"
    streams_sql = gen("s", streams)
    statements = [
        f"INSERT INTO stream_usage (stream_name, resolution, period_start, bytes_in, bytes_out, "
        f"fetched_at, is_final) SELECT {name}, 'Hour', {hour}, {out} / 40, {out}, "
        f"{fetched}, {true} FROM {streams_sql}, {gen('h', hours)}",
        # Day rows for every day but the last two (the vendor's day still settling).
        f"INSERT INTO stream_usage (stream_name, resolution, period_start, bytes_in, bytes_out, "
        f"fetched_at, is_final) SELECT {name}, 'Day', {day}, {out} * 24 / 40, "
        f"{out} * 24, {fetched}, {true} FROM {streams_sql}, {gen('d', days - 2)}",
        # Three countries a stream a day.
        f"INSERT INTO stream_geo_usage (stream_name, resolution, period_start, country, "
        f"publishes, views, publish_seconds, view_seconds, bytes_in, bytes_out, fetched_at, "
        f"is_final) SELECT {name}, 'Day', {day}, "
        f"CASE c WHEN 0 THEN 'US' WHEN 1 THEN 'GB' ELSE 'FR' END, 1, "
        f"{rnd.format(n=500)}, 3600, {rnd.format(n=500)} * 900, 1000, {out}, {fetched}, {true} "
        f"FROM {streams_sql}, {gen('d', days)}, {gen('c', 3)}",
        f"INSERT INTO account_usage (resolution, period_start, bytes_in, bytes_out, fetched_at, "
        f"is_final) SELECT 'Hour', {hour}, {rnd.format(n=10**12)}, "
        f"{rnd.format(n=10**13)}, {fetched}, {true} FROM {gen('h', hours)}",
        f"INSERT INTO account_usage (resolution, period_start, bytes_in, bytes_out, fetched_at, "
        f"is_final) SELECT 'Day', {day}, {rnd.format(n=10**13)}, "
        f"{rnd.format(n=10**14)}, {fetched}, {true} FROM {gen('d', days - 2)}",
        f"INSERT INTO account_usage (resolution, period_start, bytes_in, bytes_out, fetched_at, "
        f"is_final) SELECT 'Month', {month}, {rnd.format(n=10**14)}, "
        f"{rnd.format(n=10**15)}, {fetched}, {false} FROM {gen('m', 12)}",
        f"INSERT INTO account_geo_usage (resolution, period_start, country, publishes, views, "
        f"publish_seconds, view_seconds, bytes_in, bytes_out, fetched_at, is_final) "
        f"SELECT 'Hour', {hour}, 'C' || c, 1, {rnd.format(n=5000)}, 60, "
        f"{rnd.format(n=10**6)}, 1, {rnd.format(n=10**9)}, {fetched}, {true} "
        f"FROM {gen('h', hours)}, {gen('c', len(COUNTRIES))}",
        f"INSERT INTO account_geo_usage (resolution, period_start, country, publishes, views, "
        f"publish_seconds, view_seconds, bytes_in, bytes_out, fetched_at, is_final) "
        f"SELECT 'Day', {day}, 'C' || c, 1, {rnd.format(n=10**5)}, 60, "
        f"{rnd.format(n=10**7)}, 1, {rnd.format(n=10**10)}, {fetched}, {true} "
        f"FROM {gen('d', days - 2)}, {gen('c', len(COUNTRIES))}",
    ]
    end = FIRST + timedelta(days=days)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
        conn.execute(
            sa.text(
                "INSERT INTO sync_state (dataset, stream_name, resolution, watermark, "
                "last_success_at) VALUES ('account_usage', '', 'Hour', :w, :w)"
            ),
            {"w": end.strftime("%Y-%m-%dT%H:%M:%SZ") if dialect == "sqlite" else end},
        )
    return streams * hours


def build_rollups(engine: Engine) -> None:
    """Fill the rollups from the generated rows, as migration 0004 does for an old archive."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    module = migration("0004_time_text_rollups.py")
    with engine.begin() as conn:
        setattr(module, "op", Operations(MigrationContext.configure(conn)))  # noqa: B010
        for table in ("stream_daily_hours", "account_daily_hours", "country_daily_hours"):
            conn.execute(sa.text(f"DELETE FROM {table}"))
        conn.execute(sa.text("DELETE FROM stream_monthly_totals"))
        module._fill_daily_rollups()
        module._fill_monthly_rollup()
        conn.execute(sa.text("DELETE FROM stream_period_totals"))
        conn.execute(sa.text(migration("0014_attribution_rollup.py").fill_sql(engine.dialect.name)))
        conn.execute(sa.text("DELETE FROM stream_country_monthly_totals"))
        countries = migration("0015_country_monthly_rollup.py").fill_sql(engine.dialect.name)
        conn.execute(sa.text(countries))
        for statement in baseline_sql(engine.dialect.name):
            conn.execute(sa.text(statement))
    with engine.connect() as conn:
        conn.execute(sa.text("ANALYZE"))
        conn.commit()
