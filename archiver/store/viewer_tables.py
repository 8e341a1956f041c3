"""The tables of the vendor's viewer statistics (5-minute periods) and how far each was read."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, String, Table

from archiver.store.tables import UtcDateTime, metadata

# One row per stream and 5-minute period with viewers (the vendor's StreamStat): viewers
# watching at the period's end, views that began and ended in it. Final by the rule of every
# bucket: fetched at least the settle time after the period's end, by the vendor's clock.
stream_viewer_stats = Table(
    "stream_viewer_stats",
    metadata,
    Column("stream_name", String(128), primary_key=True),
    Column("period_start", UtcDateTime, primary_key=True),
    Column("active_viewers", Integer, nullable=False),
    Column("views_started", Integer, nullable=False),
    Column("views_ended", Integer, nullable=False),
    Column("fetched_at", UtcDateTime, nullable=False),
    Column("is_final", Boolean, nullable=False),
)

# The same for the whole account (AccountStat), plus the streams published at the period's end.
account_viewer_stats = Table(
    "account_viewer_stats",
    metadata,
    Column("period_start", UtcDateTime, primary_key=True),
    Column("active_viewers", Integer, nullable=False),
    Column("views_started", Integer, nullable=False),
    Column("views_ended", Integer, nullable=False),
    Column("streams", Integer, nullable=False),
    Column("fetched_at", UtcDateTime, nullable=False),
    Column("is_final", Boolean, nullable=False),
)

# Where each read starts next: the first period not yet final, per dataset and stream ('' for
# the account); moved only in the transaction that stores the rows it read.
viewer_reads = Table(
    "viewer_reads",
    metadata,
    Column("dataset", String(32), primary_key=True),
    Column("stream_name", String(128), primary_key=True),
    Column("watermark", UtcDateTime, nullable=False),
    Column("read_at", UtcDateTime, nullable=False),
)

# Rollups behind the daily and account views (migration 0012), recomputed from their 5-minute
# rows in the transaction that writes them (viewer_rollup.py): a stream's day, the account's hour.
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
