"""Usage no archived stream explains: the account's totals minus the archived streams' sum."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from archiver.store.timecolumn import UtcDateTime
from archiver.timeutil import format_iso

# The view migrations 0003, 0006 and 0008 define; declared apart from the tables' metadata (a
# view is not a table to create or compare).
usage_attribution = sa.Table(
    "usage_attribution",
    sa.MetaData(),
    sa.Column("resolution", sa.String(5)),
    sa.Column("period_start", UtcDateTime),
    sa.Column("account_bytes_in", sa.BigInteger),
    sa.Column("account_bytes_out", sa.BigInteger),
    sa.Column("streams_bytes_in", sa.BigInteger),
    sa.Column("streams_bytes_out", sa.BigInteger),
    sa.Column("unattributed_bytes_in", sa.BigInteger),
    sa.Column("unattributed_bytes_out", sa.BigInteger),
    sa.Column("streams", sa.BigInteger),
    sa.Column("is_final", sa.Boolean),
    # Migration 0008: what streams report beyond the account (a vendor inconsistency), apart.
    sa.Column("excess_bytes_in", sa.BigInteger),
    sa.Column("excess_bytes_out", sa.BigInteger),
)
SUMMED = (
    "account_bytes_in",
    "account_bytes_out",
    "streams_bytes_in",
    "streams_bytes_out",
    "unattributed_bytes_out",
    "excess_bytes_out",
)


@dataclass(frozen=True)
class Attribution:
    """Hourly account usage over a window and how much of it archived streams explain."""

    since: datetime
    until: datetime
    account_bytes_in: int
    account_bytes_out: int
    streams_bytes_in: int
    streams_bytes_out: int
    # Summed hour by hour, each hour's never below zero: an hour whose streams report more
    # than the account (excess) cannot hide another hour's missed usage.
    unattributed_bytes_out: int
    excess_bytes_out: int

    @property
    def explained_share(self) -> float | None:
        """The share of the account's egress archived streams explain (each hour at most its
        own account egress); None without account egress."""
        if self.account_bytes_out <= 0:
            return None
        return (self.account_bytes_out - self.unattributed_bytes_out) / self.account_bytes_out

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types, times as ISO 8601."""
        return {
            "since": format_iso(self.since),
            "until": format_iso(self.until),
            "account_bytes_in": self.account_bytes_in,
            "account_bytes_out": self.account_bytes_out,
            "streams_bytes_in": self.streams_bytes_in,
            "streams_bytes_out": self.streams_bytes_out,
            "unattributed_bytes_out": self.unattributed_bytes_out,
            "excess_bytes_out": self.excess_bytes_out,
            "explained_share": self.explained_share,
        }


def read_attribution(conn: Connection, *, now: datetime, days: int = 7) -> Attribution:
    """Sum the hourly attribution over the `days` before `now`."""
    since = now - timedelta(days=days)
    view = usage_attribution
    row = conn.execute(
        sa.select(*(sa.func.coalesce(sa.func.sum(view.c[name]), 0) for name in SUMMED)).where(
            view.c.resolution == "Hour",
            view.c.period_start >= since,
            view.c.period_start < now,
        )
    ).one()
    return Attribution(since, now, *(int(value) for value in row))


def unexplained_warning(attribution: Attribution, warn_percent: float) -> str | None:
    """A warning when more than `warn_percent` of egress is explained by no archived stream."""
    share = attribution.explained_share
    if share is None or (1 - share) * 100 <= warn_percent:
        return None
    return (
        f"{(1 - share) * 100:.1f}% of the account's egress over the last 7 days is explained by "
        f"no archived stream (threshold {warn_percent:g}%): some stream names are missed; "
        "list them (ARCHIVER_STREAMS), check publish tokens, enable feed webhooks "
        "(README: Never miss a stream)"
    )
