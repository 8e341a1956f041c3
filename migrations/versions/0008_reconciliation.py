"""reconciliation view (the vendor's resolutions checked against each other); usage_attribution
keeps stream-only buckets and reports an excess apart from missed usage

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 18:30:00

`reconciliation` lists every closed month whose archived days do not sum to its Month bucket,
and every day whose archived hours do not sum to its Day bucket (account_usage; the vendor's
sums are exact: the simulator's were measured, tests/test_reconciliation.py). A month or day
is compared only where both sides are archived: its whole bucket is final and the archive
holds parts before it (or a recorded gap of the parts inside it), so the first, partial month
of a backfill is not a disagreement. No row is how the archive keeps a zero bucket.

usage_attribution: 0006's columns and meaning, plus `excess_bytes_in/out`; an hour or day with
stream rows but no account row is kept (account 0), and `unattributed_*` is never negative: what
the streams report beyond the account is `excess_*`, never netted against other buckets' misses.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _later(dialect: str, column: str, step: str) -> str:
    """`column` plus one `step` ('day' or 'month'), compared as each database stores times."""
    if dialect == "sqlite":
        return f"strftime('%Y-%m-%dT%H:%M:%SZ', {column}, '+1 {step}')"
    # In UTC, whatever the session's time zone: a month after 1 March is 1 April at 00:00 UTC.
    return f"(({column} AT TIME ZONE 'UTC' + INTERVAL '1 {step}') AT TIME ZONE 'UTC')"


def _check(dialect: str, name: str, whole: str, part: str, step: str) -> str:
    """One check: each final `whole` bucket against the sum of its final `part` buckets."""
    end = _later(dialect, "w.period_start", step)
    inside = (
        f"p.resolution = '{part}' AND p.is_final AND p.period_start >= w.period_start "
        f"AND p.period_start < {end}"
    )
    gap = (
        "EXISTS (SELECT 1 FROM sync_gaps g WHERE g.dataset = 'account_usage' "
        f"AND g.stream_name = '' AND g.resolution = '{part}' "
        f"AND g.gap_start < {end} AND g.gap_stop > w.period_start)"
    )
    return f"""
SELECT '{name}' AS check_name, '{whole}' AS resolution, w.period_start,
       w.bytes_in AS whole_bytes_in, w.bytes_out AS whole_bytes_out,
       CAST(COALESCE((SELECT SUM(p.bytes_in) FROM account_usage p WHERE {inside}), 0) AS BIGINT)
           AS parts_bytes_in,
       CAST(COALESCE((SELECT SUM(p.bytes_out) FROM account_usage p WHERE {inside}), 0) AS BIGINT)
           AS parts_bytes_out,
       (SELECT COUNT(*) FROM account_usage p WHERE {inside}) AS parts,
       {gap} AS gap_recorded
FROM account_usage w
WHERE w.resolution = '{whole}' AND w.is_final
  AND ({gap} OR EXISTS (SELECT 1 FROM account_usage b WHERE b.resolution = '{part}'
                        AND b.is_final AND b.period_start < w.period_start))
"""


def reconciliation_view(dialect: str) -> str:
    """The view, in `dialect`'s spelling of date arithmetic."""
    checks = " UNION ALL ".join(
        (
            _check(dialect, "days_in_month", "Month", "Day", "month"),
            _check(dialect, "hours_in_day", "Day", "Hour", "day"),
        )
    )
    return f"""
CREATE VIEW reconciliation AS
SELECT c.check_name, c.resolution, c.period_start, c.whole_bytes_in, c.whole_bytes_out,
       c.parts_bytes_in, c.parts_bytes_out,
       CAST(c.whole_bytes_in - c.parts_bytes_in AS BIGINT) AS missing_bytes_in,
       CAST(c.whole_bytes_out - c.parts_bytes_out AS BIGINT) AS missing_bytes_out,
       c.parts, c.gap_recorded
FROM ({checks}) c
WHERE c.whole_bytes_in <> c.parts_bytes_in OR c.whole_bytes_out <> c.parts_bytes_out
"""


def _streams(column: str) -> str:
    return (
        f"(SELECT {column} FROM stream_usage s "
        "WHERE s.resolution = a.resolution AND s.period_start = a.period_start)"
    )


def attribution_view(dialect: str) -> str:
    """usage_attribution: every bucket either side has; misses and excess apart."""
    all_final = "bool_and(s.is_final)" if dialect == "postgresql" else "MIN(s.is_final)"
    return f"""
CREATE VIEW usage_attribution AS
SELECT t.resolution, t.period_start, t.account_bytes_in, t.account_bytes_out,
       t.streams_bytes_in, t.streams_bytes_out,
       CAST(CASE WHEN t.account_bytes_in > t.streams_bytes_in
                 THEN t.account_bytes_in - t.streams_bytes_in ELSE 0 END AS BIGINT)
           AS unattributed_bytes_in,
       CAST(CASE WHEN t.account_bytes_out > t.streams_bytes_out
                 THEN t.account_bytes_out - t.streams_bytes_out ELSE 0 END AS BIGINT)
           AS unattributed_bytes_out,
       t.streams, t.is_final,
       CAST(CASE WHEN t.streams_bytes_in > t.account_bytes_in
                 THEN t.streams_bytes_in - t.account_bytes_in ELSE 0 END AS BIGINT)
           AS excess_bytes_in,
       CAST(CASE WHEN t.streams_bytes_out > t.account_bytes_out
                 THEN t.streams_bytes_out - t.account_bytes_out ELSE 0 END AS BIGINT)
           AS excess_bytes_out
FROM (
    SELECT a.resolution, a.period_start,
           a.bytes_in AS account_bytes_in, a.bytes_out AS account_bytes_out,
           CAST(COALESCE({_streams("SUM(s.bytes_in)")}, 0) AS BIGINT) AS streams_bytes_in,
           CAST(COALESCE({_streams("SUM(s.bytes_out)")}, 0) AS BIGINT) AS streams_bytes_out,
           {_streams("COUNT(*)")} AS streams, a.is_final
    FROM account_usage a
    WHERE a.resolution IN ('Hour', 'Day')
    UNION ALL
    SELECT s.resolution, s.period_start, CAST(0 AS BIGINT), CAST(0 AS BIGINT),
           CAST(SUM(s.bytes_in) AS BIGINT), CAST(SUM(s.bytes_out) AS BIGINT), COUNT(*),
           {all_final}
    FROM stream_usage s
    WHERE s.resolution IN ('Hour', 'Day')
      AND NOT EXISTS (SELECT 1 FROM account_usage a
                      WHERE a.resolution = s.resolution AND a.period_start = s.period_start)
    GROUP BY s.resolution, s.period_start
) t
"""


# 0006's definition, for the way back.
LOOKUP_VIEW = f"""
CREATE VIEW usage_attribution AS
SELECT a.resolution, a.period_start,
       a.bytes_in AS account_bytes_in, a.bytes_out AS account_bytes_out,
       CAST(COALESCE({_streams("SUM(s.bytes_in)")}, 0) AS BIGINT) AS streams_bytes_in,
       CAST(COALESCE({_streams("SUM(s.bytes_out)")}, 0) AS BIGINT) AS streams_bytes_out,
       CAST(a.bytes_in - COALESCE({_streams("SUM(s.bytes_in)")}, 0) AS BIGINT)
           AS unattributed_bytes_in,
       CAST(a.bytes_out - COALESCE({_streams("SUM(s.bytes_out)")}, 0) AS BIGINT)
           AS unattributed_bytes_out,
       {_streams("COUNT(*)")} AS streams, a.is_final
FROM account_usage a
WHERE a.resolution IN ('Hour', 'Day')
"""


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute("DROP VIEW usage_attribution")
    op.execute(attribution_view(dialect))
    op.execute(reconciliation_view(dialect))


def downgrade() -> None:
    op.execute("DROP VIEW reconciliation")
    op.execute("DROP VIEW usage_attribution")
    op.execute(LOOKUP_VIEW)
