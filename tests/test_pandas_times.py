"""Times from Python and SQLite's own clock functions: which forms select the right rows."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.test_query_times import FIRST, HOURS, hours  # noqa: F401  (fixture)

SINCE = datetime(2026, 11, 25, 8, tzinfo=UTC)
UNTIL = datetime(2026, 11, 26, 3, tzinfo=UTC)
# The rows of `hours` (FIRST and the 26 hours after it) in [SINCE, UNTIL).
RIGHT = sum(1 for h in range(HOURS) if SINCE <= FIRST + timedelta(hours=h) < UNTIL)
# What SQLite selects for a time bound spelt with a space (`2026-11-25 08:00:00`): every
# stored time of that day sorts after it ('T' > ' '), so `>=` takes the whole day and `<`
# none of it: the range [SINCE, UNTIL) becomes the whole of Nov 25.
WRONG = sum(1 for h in range(HOURS) if FIRST + timedelta(hours=h) >= SINCE.replace(hour=0))
WRONG_RANGE = 24
SQL = (
    "SELECT period_start, bytes_out FROM stream_usage "
    "WHERE period_start >= :since AND period_start < :until ORDER BY period_start"
)


def spelt(value: datetime) -> str:
    """README's recipe: a time as the archive spells it, `2026-11-25T08:00:00Z`."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_the_readme_recipe_reads_the_same_rows_on_both_databases(
    hours: Engine,  # noqa: F811
) -> None:
    assert RIGHT < WRONG  # else the test could not tell the forms apart
    # Any time zone in: the recipe converts to UTC first.
    paris = SINCE.astimezone(timezone(timedelta(hours=1)))
    with hours.connect() as conn:
        frame = pd.read_sql(
            sa.text(SQL),
            conn,
            params={"since": spelt(paris), "until": spelt(UNTIL)},
            parse_dates={"period_start": {"utc": True}},
        )
    assert len(frame) == RIGHT
    assert frame["period_start"].min() == pd.Timestamp(SINCE)


def test_a_datetime_parameter_is_right_on_postgresql_only(hours: Engine) -> None:  # noqa: F811
    with hours.connect() as conn:
        frame = pd.read_sql(sa.text(SQL), conn, params={"since": SINCE, "until": UNTIL})
        naive = pd.read_sql(
            sa.text(SQL),
            conn,
            params={"since": SINCE.replace(tzinfo=None), "until": UNTIL.replace(tzinfo=None)},
        )
    if hours.dialect.name == "postgresql":
        assert len(frame) == RIGHT
    else:
        # README says so: on SQLite a datetime is bound with a space and compares wrong.
        assert len(frame) == WRONG_RANGE != RIGHT
        assert len(naive) == WRONG_RANGE


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_clock_functions_compare_right_only_when_spelt_like_the_column(
    hours: Engine,  # noqa: F811
) -> None:
    # `now` is fixed here so that the count is known; README's forms use 'now' itself.
    now = spelt(SINCE + timedelta(days=7))
    with hours.connect() as conn:

        def rows(bound: str) -> int:
            query = f"SELECT COUNT(*) FROM stream_usage WHERE period_start >= {bound}"
            return int(conn.execute(sa.text(query), {"now": now}).scalar_one())

        assert rows("datetime(:now, '-7 days')") == WRONG
        assert rows("strftime('%Y-%m-%dT%H:%M:%SZ', :now, '-7 days')") == rows(f"'{spelt(SINCE)}'")
        assert rows("strftime('%Y-%m-%dT%H:%M:%SZ', :now, '-7 days')") == sum(
            1 for h in range(HOURS) if FIRST + timedelta(hours=h) >= SINCE
        )


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgresql_clock_arithmetic_compares_right(hours: Engine) -> None:  # noqa: F811
    now = spelt(SINCE + timedelta(days=7))
    with hours.connect() as conn:
        found = conn.execute(
            sa.text(
                "SELECT COUNT(*) FROM stream_usage "
                "WHERE period_start >= CAST(:now AS timestamptz) - interval '7 days'"
            ),
            {"now": now},
        ).scalar_one()
    assert found == sum(1 for h in range(HOURS) if FIRST + timedelta(hours=h) >= SINCE)


def test_the_readme_pandas_example_runs_as_written(hours: Engine) -> None:  # noqa: F811
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    found = re.search(r"<!-- example: pandas-times -->\n```python\n(.*?)```", readme, re.DOTALL)
    assert found is not None
    names: dict[str, Any] = {"engine": hours}
    exec(compile(found.group(1), "README.md", "exec"), names)
    frame = names["frame"]
    expected = sum(1 for h in range(HOURS) if FIRST + timedelta(hours=h) >= SINCE)
    assert names["since"] == SINCE
    assert len(frame) == expected
    assert frame["period_start"].min() == pd.Timestamp(SINCE)
