"""stream_daily_feeds and the stream_daily_sessions view: each stream's publishing time and
sessions per UTC day

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 13:30:00

A day's publishing time is the union of the stream's feeds' time inside it (two encoders
publishing at once count once; a session across midnight counts in both days), which SQL
cannot group portably; so `stream_daily_feeds` keeps each stream's day, recomputed by the
write path in the transaction that writes the sessions (archiver/store/session_days.py), and
is filled here from the sessions already archived, by this file's own copy of the rule.
"""

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DAY = timedelta(days=1)
VIEW = (
    "CREATE VIEW stream_daily_sessions AS SELECT stream_name, day, sessions, "
    "publishing_seconds, active FROM stream_daily_feeds"
)


def _instant(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite keeps RFC 3339 text
        value = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T"))
    moment: datetime = value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def stream_days(feeds: Iterable[tuple[datetime, datetime, bool]]) -> dict[datetime, list[Any]]:
    """One stream's days from its feeds (started, known until, still running): per day the
    feeds started in it, the seconds of the union of the feeds' time in it, and whether a
    running feed may still add to it."""
    days: dict[datetime, list[Any]] = {}
    pieces: dict[datetime, list[tuple[datetime, datetime]]] = {}
    for started, until, running in feeds:
        day = started.replace(hour=0, minute=0, second=0, microsecond=0)
        days.setdefault(day, [0, 0, False])[0] += 1
        while True:  # each day the feed touches, from its start
            figures = days.setdefault(day, [0, 0, False])
            pieces.setdefault(day, []).append((max(started, day), min(until, day + DAY)))
            figures[2] = figures[2] or (running and until < day + DAY)
            if until <= day + DAY:
                break
            day += DAY
    for day, spans in pieces.items():
        covered, edge = timedelta(0), day
        for begin, end in sorted(spans):
            covered += max(end - max(begin, edge), timedelta(0))
            edge = max(edge, end)
        days[day][1] = int(covered.total_seconds())
    return days


def _fill(conn: sa.Connection) -> None:
    found = conn.execute(
        sa.text(
            "SELECT stream_name, started, ended, fetched_at FROM stream_sessions "
            "ORDER BY stream_name, started"
        )
    )
    feeds: dict[str, list[tuple[datetime, datetime, bool]]] = {}
    for name, started, ended, fetched_at in found:
        begin = _instant(started)
        until = max(begin, _instant(fetched_at if ended is None else ended))
        feeds.setdefault(name, []).append((begin, until, ended is None))
    sqlite = conn.dialect.name == "sqlite"
    rows = [
        {
            "n": name,
            "d": day.strftime("%Y-%m-%dT%H:%M:%SZ") if sqlite else day,
            "s": sessions,
            "p": seconds,
            "a": active,
        }
        for name, stream in feeds.items()
        for day, (sessions, seconds, active) in stream_days(stream).items()
    ]
    if rows:
        conn.execute(
            sa.text(
                "INSERT INTO stream_daily_feeds (stream_name, day, sessions, publishing_seconds, "
                "active) VALUES (:n, :d, :s, :p, :a)"
            ),
            rows,
        )


def upgrade() -> None:
    op.create_table(
        "stream_daily_feeds",
        sa.Column("stream_name", sa.String(length=128), nullable=False),
        sa.Column("day", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sessions", sa.Integer(), nullable=False),
        sa.Column("publishing_seconds", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("stream_name", "day", name=op.f("pk_stream_daily_feeds")),
    )
    op.create_index("ix_stream_daily_feeds_day", "stream_daily_feeds", ["day"])
    # The write path re-reads a stream's sessions that still ran at a day's start by this.
    op.create_index(
        "ix_stream_sessions_stream_name_ended", "stream_sessions", ["stream_name", "ended"]
    )
    _fill(op.get_bind())
    op.execute(VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW stream_daily_sessions")
    op.drop_index("ix_stream_sessions_stream_name_ended", table_name="stream_sessions")
    op.drop_index("ix_stream_daily_feeds_day", table_name="stream_daily_feeds")
    op.drop_table("stream_daily_feeds")
