"""The views of migration 0008 and the Day guard, one case at a time, on both databases.

`usage_attribution` keeps a bucket either side has and reports an excess apart (issue #23
item 6); `reconciliation` lists each whole bucket its archived parts do not sum to; a Day
answer is judged against its closed month before it is stored final (item 5).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.cycle.day_check import DAYS, MONTHS, checked
from archiver.datasets import BY_DATASET
from archiver.reading.attribution import read_attribution, usage_attribution
from archiver.rules.finality import Settlement
from archiver.rules.plan import Gap, Policy
from archiver.store import state as store_state
from archiver.store.tables import account_usage, stream_usage, sync_gaps
from archiver.store.upsert import upsert_rows
from archiver.timeutil import Resolution
from archiver.vocabulary import ApiRequest
from tests.processes import Ran

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
DAY = datetime(2026, 11, 18, tzinfo=UTC)
H = [DAY + timedelta(hours=h) for h in range(24)]


def usage(start: datetime, resolution: str, out: int, **key: str) -> dict[str, Any]:
    return {
        **key,
        "resolution": resolution,
        "period_start": start,
        "bytes_in": out // 2,
        "bytes_out": out,
        "standard_bytes_in": None,
        "standard_bytes_out": None,
        "restream_bytes_in": None,
        "restream_bytes_out": None,
        "restream_seconds": None,
        "cascade_bytes_in": None,
        "cascade_bytes_out": None,
        "fetched_at": NOW,
        "is_final": True,
    }


def put(engine: Engine, table: sa.Table, *rows: dict[str, Any]) -> None:
    with engine.begin() as conn:
        upsert_rows(conn=conn, table=table, rows=list(rows))


def attribution(engine: Engine) -> dict[datetime, tuple[int, ...]]:
    v = usage_attribution
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                v.c.period_start,
                v.c.account_bytes_out,
                v.c.streams_bytes_out,
                v.c.unattributed_bytes_out,
                v.c.excess_bytes_out,
                v.c.unattributed_bytes_in,
                v.c.excess_bytes_in,
                v.c.streams,
            ).where(v.c.resolution == "Hour")
        ).all()
    return {r[0]: tuple(int(x) for x in r[1:]) for r in rows}


# --- usage_attribution ------------------------------------------------------------------------


def test_an_hour_with_streams_but_no_account_row_is_kept(engine: Engine) -> None:
    put(engine, account_usage, usage(H[5], "Hour", 1000))
    put(engine, stream_usage, usage(H[5], "Hour", 400, stream_name="a"))
    put(engine, stream_usage, usage(H[6], "Hour", 300, stream_name="a"))
    put(engine, stream_usage, usage(H[6], "Hour", 100, stream_name="b"))
    assert attribution(engine) == {
        H[5]: (1000, 400, 600, 0, 300, 0, 1),
        # No account row: the account said zero (how a zero is archived), the streams did not.
        H[6]: (0, 400, 0, 400, 0, 200, 2),
    }


def test_an_excess_is_reported_apart_never_netted_against_missed_usage(engine: Engine) -> None:
    put(engine, account_usage, usage(H[5], "Hour", 1000), usage(H[6], "Hour", 1000))
    put(engine, stream_usage, usage(H[5], "Hour", 1300, stream_name="a"))  # 300 too many
    put(engine, stream_usage, usage(H[6], "Hour", 800, stream_name="a"))  # 200 missed
    assert attribution(engine) == {
        H[5]: (1000, 1300, 0, 300, 0, 150, 1),
        H[6]: (1000, 800, 200, 0, 100, 0, 1),
    }
    with engine.connect() as conn:
        seen = read_attribution(conn, now=NOW)
    # Netted, the 300 would hide the 200 and the archive would claim to explain everything.
    assert (seen.unattributed_bytes_out, seen.excess_bytes_out) == (200, 300)
    assert seen.explained_share == 1800 / 2000


# --- reconciliation ---------------------------------------------------------------------------


def disagreements(engine: Engine) -> list[tuple[str, str, int, int, bool]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT check_name, period_start, missing_bytes_out, parts, gap_recorded "
                "FROM reconciliation"
            )
        ).all()
    return sorted((n, str(p)[:10], int(m), int(c), bool(g)) for n, p, m, c, g in rows)


def test_a_day_its_hours_do_not_sum_to_is_listed(engine: Engine) -> None:
    before = DAY - timedelta(days=1)
    # The day before: the first archived hours (a partial day, as a first sync leaves it).
    put(engine, account_usage, usage(before + timedelta(hours=20), "Hour", 50))
    put(engine, account_usage, usage(before, "Day", 5000))
    put(engine, account_usage, *(usage(h, "Hour", 100) for h in H[:10]))
    put(engine, account_usage, usage(DAY, "Day", 1000))
    assert disagreements(engine) == []
    put(engine, account_usage, usage(DAY, "Day", 1100))
    assert disagreements(engine) == [("hours_in_day", "2026-11-18", 100, 10, False)]
    put(engine, account_usage, usage(H[23], "Hour", 150))  # more hours than the day
    assert disagreements(engine) == [("hours_in_day", "2026-11-18", -50, 11, False)]


def test_a_month_its_days_do_not_sum_to_is_listed_with_its_gap(engine: Engine) -> None:
    october, november = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
    put(engine, account_usage, usage(october, "Month", 900), usage(november, "Month", 600))
    # October's days start mid-month (the backfill's horizon): not compared, not listed.
    put(engine, account_usage, usage(october + timedelta(days=20), "Day", 700))
    put(engine, account_usage, *(usage(november + timedelta(days=d), "Day", 100) for d in range(6)))
    assert disagreements(engine) == []
    put(engine, account_usage, usage(november + timedelta(days=3), "Day", 50))
    assert disagreements(engine) == [("days_in_month", "2026-11-01", 50, 6, False)]
    with engine.begin() as conn:
        store_state.start_scopes(
            conn=conn,
            watermarks={},
            gaps=[Gap(DAYS, october + timedelta(days=2), october + timedelta(days=5))],
            recorded_at=NOW,
        )
    assert disagreements(engine) == [
        ("days_in_month", "2026-10-01", 200, 1, True),
        ("days_in_month", "2026-11-01", 50, 6, False),
    ]


def test_status_counts_the_disagreements_and_the_excess(
    database_url: str, engine: Engine, tmp_path: Path, cli: Callable[..., Ran]
) -> None:
    put(engine, account_usage, usage(DAY - timedelta(hours=1), "Hour", 50))
    put(engine, account_usage, usage(DAY, "Day", 900), *(usage(h, "Hour", 100) for h in H[:3]))
    put(engine, stream_usage, usage(H[1], "Hour", 130, stream_name="a"))
    env = {"ARCHIVER_DATABASE_URL": database_url, "ARCHIVER_NOW": "2026-11-20T12:00:00Z"}
    ran = cli(["status", "--json"], tmp_path, **env)
    assert ran.returncode == 0, ran.stderr
    seen = json.loads(ran.stdout)
    assert (seen["disagreements"], seen["disagreements_with_gaps"]) == (1, 0)
    assert seen["attribution"]["excess_bytes_out"] == 30
    ran = cli(["status"], tmp_path, **env)
    assert "reconcile:     1 months or days" in ran.stdout
    assert "streams report 30 bytes out more than the account" in ran.stderr


# --- the Day guard ----------------------------------------------------------------------------

SEPTEMBER = datetime(2026, 9, 1, tzinfo=UTC)
DAY_REQUEST = ApiRequest(BY_DATASET["account_usage"], Resolution.DAY, SEPTEMBER, DAY)


def store_days(engine: Engine, rows: list[dict[str, Any]]) -> list[Gap]:
    """Store one account Day answer for September 1 to November 18 as a cycle does."""
    found: list[Gap] = []
    settlement = Settlement(Policy(), Resolution.DAY, SEPTEMBER, DAY, NOW)
    with engine.begin() as conn:
        store_state.start_scopes(conn=conn, watermarks={DAYS: SEPTEMBER}, gaps=[], recorded_at=NOW)
        settlement = checked(conn, DAY_REQUEST, rows, settlement, Policy(), found)
        store_state.store_response(
            conn=conn,
            dataset=DAY_REQUEST.endpoint.dataset,
            scopes=(DAYS,),
            rows=rows,
            settlement=settlement,
        )
    return found


def days(engine: Engine) -> dict[str, bool]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(account_usage.c.period_start, account_usage.c.is_final).where(
                account_usage.c.resolution == "Day"
            )
        ).all()
    return {f"{p:%m-%d}": bool(f) for p, f in rows}


def watermark(engine: Engine) -> datetime:
    with engine.connect() as conn:
        return store_state.load_state(conn)[DAYS].watermark


def test_zero_days_of_a_month_they_do_not_explain_become_a_gap(engine: Engine) -> None:
    put(
        engine,
        account_usage,
        usage(SEPTEMBER, "Month", 3000),
        usage(datetime(2026, 10, 1, tzinfo=UTC), "Month", 300),
    )
    # September: the vendor answers zeros (no row) for the 1st-3rd, traffic from the 4th; the
    # month holds more than the days: the zeros were purged. October: a zero day is a true
    # zero, its days sum exactly to the month.
    answer = [usage(SEPTEMBER + timedelta(days=d), "Day", 100) for d in range(3, 30)]
    answer += [
        usage(datetime(2026, 10, 1, tzinfo=UTC) + timedelta(days=d), "Day", 100) for d in (0, 2, 4)
    ]
    gaps = store_days(engine, answer)
    assert gaps == [Gap(DAYS, SEPTEMBER, SEPTEMBER + timedelta(days=3))]
    with engine.connect() as conn:
        recorded = conn.execute(sa.select(sync_gaps.c.gap_start, sync_gaps.c.gap_stop)).all()
    assert recorded == [(SEPTEMBER, SEPTEMBER + timedelta(days=3))]
    assert len(days(engine)) == 30
    assert all(days(engine).values())
    assert watermark(engine) == DAY  # past the gap, as with any recorded gap


def test_days_of_a_month_not_yet_archived_wait_for_it(engine: Engine) -> None:
    put(engine, account_usage, usage(SEPTEMBER, "Month", 300))  # October's Month not archived
    answer = [usage(SEPTEMBER + timedelta(days=d), "Day", 100) for d in (0, 1, 2)]
    answer += [usage(datetime(2026, 10, 1, tzinfo=UTC), "Day", 100)]
    assert store_days(engine, answer) == []
    assert days(engine) == {"09-01": True, "09-02": True, "09-03": True, "10-01": False}
    assert watermark(engine) == datetime(2026, 10, 1, tzinfo=UTC)
    with engine.begin() as conn:  # the month's scope settled past October without a row: zero
        store_state.start_scopes(
            conn=conn,
            watermarks={MONTHS: datetime(2026, 11, 1, tzinfo=UTC)},
            gaps=[],
            recorded_at=NOW,
        )
    assert store_days(engine, answer) == []  # 100 bytes in a zero month: no zero to doubt
    assert watermark(engine) == DAY
