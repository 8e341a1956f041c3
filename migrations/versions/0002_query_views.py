"""views for the questions analysts ask most

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 06:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VIEWS = (
    "country_daily_usage",
    "account_monthly_usage",
    "account_daily_usage",
    "stream_monthly_usage",
    "stream_daily_usage",
)


def _dialect_sql() -> dict[str, str]:
    if op.get_bind().dialect.name == "postgresql":
        return {
            # date_trunc on timestamptz follows the session time zone: pin it to UTC.
            "day": "date_trunc('day', {c} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
            "month": "date_trunc('month', {c} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
            "all_final": "bool_and({c})",
        }
    # SQLAlchemy stores SQLite times as 'YYYY-MM-DD HH:MM:SS.ffffff' text; keep that shape.
    return {
        "day": "strftime('%Y-%m-%d 00:00:00.000000', {c})",
        "month": "strftime('%Y-%m-01 00:00:00.000000', {c})",
        "all_final": "min({c})",
    }


def _daily(table: str, key: str, view: str, sql: dict[str, str]) -> str:
    day = sql["day"].format(c="h.period_start")
    final = sql["all_final"].format(c="h.is_final")
    join_key = " AND ".join(f"d.{k} = h.{k}" for k in key.split(", ") if k) if key else ""
    key_select = f"{key}, " if key else ""
    h_key = ", ".join(f"h.{k}" for k in key.split(", ")) + ", " if key else ""
    return f"""
CREATE VIEW {view} AS
SELECT {key_select}period_start AS day, bytes_in, bytes_out, is_final, 'Day' AS source
FROM {table} WHERE resolution = 'Day'
UNION ALL
SELECT {h_key}{day} AS day, SUM(h.bytes_in) AS bytes_in, SUM(h.bytes_out) AS bytes_out,
       {final} AS is_final, 'Hour' AS source
FROM {table} h
WHERE h.resolution = 'Hour' AND NOT EXISTS (
    SELECT 1 FROM {table} d
    WHERE d.resolution = 'Day' {"AND " + join_key if join_key else ""}
      AND d.period_start = {day})
GROUP BY {h_key}{day}
"""


def upgrade() -> None:
    sql = _dialect_sql()
    op.execute(_daily("stream_usage", "stream_name", "stream_daily_usage", sql))
    op.execute(_daily("account_usage", "", "account_daily_usage", sql))
    month = sql["month"].format(c="day")
    op.execute(f"""
CREATE VIEW stream_monthly_usage AS
SELECT stream_name, {month} AS month, SUM(bytes_in) AS bytes_in, SUM(bytes_out) AS bytes_out,
       COUNT(*) AS days_with_traffic
FROM stream_daily_usage
GROUP BY stream_name, {month}
""")
    op.execute("""
CREATE VIEW account_monthly_usage AS
SELECT period_start AS month, bytes_in, bytes_out, restream_seconds, is_final
FROM account_usage WHERE resolution = 'Month'
""")
    day = sql["day"].format(c="h.period_start")
    op.execute(f"""
CREATE VIEW country_daily_usage AS
SELECT period_start AS day, country, publishes, views, publish_seconds, view_seconds,
       bytes_in, bytes_out
FROM account_geo_usage WHERE resolution = 'Day'
UNION ALL
SELECT {day} AS day, h.country, SUM(h.publishes), SUM(h.views), SUM(h.publish_seconds),
       SUM(h.view_seconds), SUM(h.bytes_in), SUM(h.bytes_out)
FROM account_geo_usage h
WHERE h.resolution = 'Hour' AND NOT EXISTS (
    SELECT 1 FROM account_geo_usage d
    WHERE d.resolution = 'Day' AND d.period_start = {day})
GROUP BY {day}, h.country
""")


def downgrade() -> None:
    for view in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {view}")
