"""The archive's tables: a public interface, changed only through a migration."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeEngine

from archiver.columns import Column as DatasetColumn
from archiver.columns import Kind
from archiver.datasets import DECLARED, ENDPOINTS, Dataset, Endpoint, Query
from archiver.store.timecolumn import UtcDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

RESOLUTIONS = "resolution IN ('Hour', 'Day', 'Month')"


_TYPES: dict[Kind, type[TypeEngine[Any]]] = {
    Kind.COUNT: BigInteger,
    Kind.INT: Integer,
    Kind.TIME: UtcDateTime,
    Kind.FLAG: Boolean,
}


def _column(column: DatasetColumn) -> Column[Any]:
    kind = String(column.length) if column.kind is Kind.CODE else _TYPES[column.kind]()
    if column.key:
        # An integer key part is the vendor's (a feed's place), never a counter of ours.
        auto: bool | Literal["auto"] = False if column.kind is Kind.INT else "auto"
        return Column(column.name, kind, primary_key=True, autoincrement=auto)
    return Column(column.name, kind, nullable=column.nullable)


def _dataset_table(declared: Endpoint | Query) -> Table:
    """A dataset's table, from its declaration: its columns (key first) and indexes."""
    columns = declared.table_columns
    resolution = any(c.name == "resolution" for c in columns)
    checks = [CheckConstraint(RESOLUTIONS, name="resolution")] if resolution else []
    table = Table(declared.table, metadata, *(_column(c) for c in columns), *checks)
    for name, indexed in declared.indexes.items():
        # Analysts ask "what happened in this period, across streams": serve that without a scan.
        Index(name, *(table.c[c] for c in indexed))
    return table


DATASET_TABLES = {d.table: _dataset_table(d) for d in DECLARED}
# The REST datasets' tables, which `store_response` writes with their scopes' watermarks.
USAGE_TABLES = {e.table: DATASET_TABLES[e.table] for e in ENDPOINTS}
stream_usage = USAGE_TABLES[Dataset.STREAM_USAGE]
stream_geo_usage = USAGE_TABLES[Dataset.STREAM_GEO_USAGE]
account_usage = USAGE_TABLES[Dataset.ACCOUNT_USAGE]
account_geo_usage = USAGE_TABLES[Dataset.ACCOUNT_GEO_USAGE]
stream_tracking_usage = USAGE_TABLES[Dataset.STREAM_TRACKING_USAGE]
stream_sessions = DATASET_TABLES[Dataset.STREAM_SESSIONS]
stream_viewer_stats = DATASET_TABLES[Dataset.STREAM_VIEWER_STATS]
account_viewer_stats = DATASET_TABLES[Dataset.ACCOUNT_VIEWER_STATS]

# Where a tracked name came from; 'token' and 'webhook' arrived with migration 0003, 'feed'
# with 0009.
STREAM_SOURCES = "'config', 'cli', 'discovered', 'token', 'webhook', 'feed'"

tracked_streams = Table(
    "tracked_streams",
    metadata,
    Column("stream_name", String(512), primary_key=True),
    Column("source", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("added_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime),
    Column("note", Text),
    CheckConstraint(f"source IN ({STREAM_SOURCES})", name="source"),
    CheckConstraint("status IN ('active', 'dormant', 'refused')", name="status"),
)

# The regex patterns of the account's publish tokens, as last read (replaced each read).
token_patterns = Table(
    "token_patterns",
    metadata,
    Column("token_id", BigInteger, primary_key=True, autoincrement=False),
    Column("pattern", String(512), primary_key=True),
    Column("label", String(512)),
    Column("is_active", Boolean),
    Column("read_at", UtcDateTime, nullable=False),
)

# One row per (dataset, stream, resolution); account datasets use stream_name ''.
sync_state = Table(
    "sync_state",
    metadata,
    Column("dataset", String(32), primary_key=True),
    Column("stream_name", String(128), primary_key=True),
    Column("resolution", String(5), primary_key=True),
    Column("watermark", UtcDateTime, nullable=False),
    Column("last_success_at", UtcDateTime),
    Column("last_error_at", UtcDateTime),
    Column("last_error", Text),
)

sync_gaps = Table(
    "sync_gaps",
    metadata,
    Column("dataset", String(32), primary_key=True),
    Column("stream_name", String(128), primary_key=True),
    Column("resolution", String(5), primary_key=True),
    Column("gap_start", UtcDateTime, primary_key=True),
    Column("gap_stop", UtcDateTime, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
)

sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),
    Column("status", String(16), nullable=False),
    Column("requests", Integer, nullable=False, default=0),
    Column("failed_requests", Integer, nullable=False, default=0),
    Column("rows_written", BigInteger, nullable=False, default=0),
    Column("gaps", Integer, nullable=False, default=0),
    Column("error", Text),
    # The vendor's clock minus ours (its `Date` header), seconds; NULL: not measured.
    Column("clock_skew_seconds", Float),
    # Why the cycle did not believe the vendor's clock (and settled nothing on it); NULL: it did.
    Column("clock_problem", Text),
)

# Rollups: figures per UTC day and month kept up to date in the transaction that writes the
# rows they sum (archiver/store/rollup.py), so the views read a few rows per day instead of
# summing the whole history at query time. Not a public interface: query the views.
stream_daily_hours = Table(
    "stream_daily_hours",
    metadata,
    Column("stream_name", String(128), primary_key=True),
    Column("day", UtcDateTime, primary_key=True),
    Column("bytes_in", BigInteger, nullable=False),
    Column("bytes_out", BigInteger, nullable=False),
    Column("is_final", Boolean, nullable=False),
    Column("hours", Integer, nullable=False),
    # True once the vendor's day row is archived: the views then show that row instead.
    Column("superseded", Boolean, nullable=False),
)
account_daily_hours = Table(
    "account_daily_hours",
    metadata,
    Column("day", UtcDateTime, primary_key=True),
    Column("bytes_in", BigInteger, nullable=False),
    Column("bytes_out", BigInteger, nullable=False),
    Column("is_final", Boolean, nullable=False),
    Column("hours", Integer, nullable=False),
    # True once the vendor's day row is archived: the views then show that row instead.
    Column("superseded", Boolean, nullable=False),
)
country_daily_hours = Table(
    "country_daily_hours",
    metadata,
    Column("day", UtcDateTime, primary_key=True),
    Column("country", String(8), primary_key=True),
    Column("publishes", BigInteger, nullable=False),
    Column("views", BigInteger, nullable=False),
    Column("publish_seconds", BigInteger, nullable=False),
    Column("view_seconds", BigInteger, nullable=False),
    Column("bytes_in", BigInteger, nullable=False),
    Column("bytes_out", BigInteger, nullable=False),
    Column("superseded", Boolean, nullable=False),
)
stream_monthly_totals = Table(
    "stream_monthly_totals",
    metadata,
    Column("stream_name", String(128), primary_key=True),
    Column("month", UtcDateTime, primary_key=True),
    Column("bytes_in", BigInteger, nullable=False),
    Column("bytes_out", BigInteger, nullable=False),
    Column("days_with_traffic", BigInteger, nullable=False),
)
# "All streams on these days/months": the primary keys serve the per-stream questions.
Index("ix_stream_daily_hours_day", stream_daily_hours.c.day)
Index("ix_stream_monthly_totals_month", stream_monthly_totals.c.month)
# Rollups behind the viewer views (0012), recomputed as their rows are written (viewer_rollup.py).
stream_daily_periods = Table(
    "stream_daily_periods",
    metadata,
    Column("stream_name", String(128), primary_key=True),
    Column("day", UtcDateTime, primary_key=True),
    Column("peak_viewers", Integer, nullable=False),
    Column("views_started", BigInteger, nullable=False),
    Column("views_ended", BigInteger, nullable=False),
    Column("periods", Integer, nullable=False),
    Column("is_final", Boolean, nullable=False),
)
Index("ix_stream_daily_periods_day", stream_daily_periods.c.day)
account_hourly_periods = Table(
    "account_hourly_periods",
    metadata,
    Column("hour", UtcDateTime, primary_key=True),
    Column("peak_viewers", Integer, nullable=False),
    Column("views_started", BigInteger, nullable=False),
    Column("views_ended", BigInteger, nullable=False),
    Column("peak_streams", Integer, nullable=False),
    Column("periods", Integer, nullable=False),
    Column("is_final", Boolean, nullable=False),
)
# Each stream's days of publishing (0013), recomputed as sessions are written (session_days.py).
stream_daily_feeds = Table(
    "stream_daily_feeds",
    metadata,
    Column("stream_name", String(128), primary_key=True),
    Column("day", UtcDateTime, primary_key=True),
    Column("sessions", Integer, nullable=False),
    Column("publishing_seconds", Integer, nullable=False),
    Column("active", Boolean, nullable=False),
)
Index("ix_stream_daily_feeds_day", stream_daily_feeds.c.day)
# The streams' sums per hour and day (0014), behind usage_attribution; recomputed as stream
# rows are written (rollup.py), like the daily and monthly ones.
stream_period_totals = Table(
    "stream_period_totals",
    metadata,
    Column("resolution", String(5), primary_key=True),
    Column("period_start", UtcDateTime, primary_key=True),
    Column("bytes_in", BigInteger, nullable=False),
    Column("bytes_out", BigInteger, nullable=False),
    Column("streams", BigInteger, nullable=False),
    Column("is_final", Boolean, nullable=False),
)
# Each stream's countries per month (0015): its day rows summed (rollup.py).
stream_country_monthly_totals = Table(
    "stream_country_monthly_totals",
    metadata,
    Column("stream_name", String(128), primary_key=True),
    Column("month", UtcDateTime, primary_key=True),
    Column("country", String(8), primary_key=True),
    Column("publishes", BigInteger, nullable=False),
    Column("views", BigInteger, nullable=False),
    Column("publish_seconds", BigInteger, nullable=False),
    Column("view_seconds", BigInteger, nullable=False),
    Column("bytes_in", BigInteger, nullable=False),
    Column("bytes_out", BigInteger, nullable=False),
    Column("days_with_traffic", BigInteger, nullable=False),
)
Index("ix_stream_country_monthly_totals_month", stream_country_monthly_totals.c.month)
ROLLUP_TABLES = (
    stream_daily_hours,
    account_daily_hours,
    country_daily_hours,
    stream_monthly_totals,
    stream_daily_periods,
    account_hourly_periods,
    stream_daily_feeds,
    stream_period_totals,
    stream_country_monthly_totals,
)

# How far the feeds were last read: one row per source ('feeds'), moved only in the
# transaction that stores what the read found.
feed_reads = Table(
    "feed_reads",
    metadata,
    Column("source", String(16), primary_key=True),
    Column("watermark", UtcDateTime, nullable=False),
    Column("read_at", UtcDateTime, nullable=False),
)

# Where each viewer statistics read starts next: the first period not yet final, per dataset
# and stream ('' for the account); moved only in the transaction that stores the rows it read.
viewer_reads = Table(
    "viewer_reads",
    metadata,
    Column("dataset", String(32), primary_key=True),
    Column("stream_name", String(128), primary_key=True),
    Column("watermark", UtcDateTime, nullable=False),
    Column("read_at", UtcDateTime, nullable=False),
)
