"""The questions `bench.queries` times: README examples, report questions, Grafana panels."""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from archiver.reading.report import render_periods, render_streams, top_streams, usage_report
from bench.queries_data import (
    FIRST,
    HERE,
    README,
    VIEWS,
)

# README's stream-countries before 0015: the day rows summed at each read (its baseline).
BEFORE_0015 = (
    "SELECT stream_name, country, SUM(views) AS views, SUM(view_seconds) AS view_seconds "
    "FROM stream_geo_usage WHERE resolution = 'Day' AND period_start >= '2026-11-01' "
    "AND period_start < '2026-12-01' GROUP BY stream_name, country ORDER BY stream_name, views DESC"
)


def readme_examples() -> dict[str, str]:
    pattern = re.compile(r"<!-- example: (\S+) -->\n```sql\n(.*?)```", re.DOTALL)
    return {name: sql.strip().rstrip(";") for name, sql in pattern.findall(README.read_text())}


def baseline(sql: str) -> str:
    for view in VIEWS:
        sql = re.sub(rf"\b{view}\b", f"baseline_{view}", sql)
    return sql


def timed(runs: int, action: Callable[[], Any]) -> float:
    def once() -> float:
        began = time.perf_counter()
        action()
        return time.perf_counter() - began

    first = once()
    # A slow baseline is run once: its order of magnitude is the point, not its third digit.
    return first if first > 5 else statistics.median([first] + [once() for _ in range(runs - 1)])


def query(conn: Connection, sql: str) -> Callable[[], Any]:
    return lambda: conn.execute(sa.text(sql)).all()


def cases(
    conn: Connection, end: datetime
) -> list[tuple[str, Callable[[], Any], Callable[[], Any]]]:
    """(name, current, baseline) for every question of the benchmark."""
    dialect = conn.dialect.name

    def lit(value: datetime) -> str:
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")

    month_start = datetime(2026, 11, 1, tzinfo=UTC)
    one_day = (
        "SELECT stream_name, bytes_out FROM {v} WHERE day = '2026-11-20T00:00:00Z' "
        "ORDER BY bytes_out DESC LIMIT 10"
    )
    day31 = end - timedelta(days=31)
    week = (
        "SELECT * FROM {v} WHERE resolution = 'Hour' AND period_start >= "
        f"'{lit(end - timedelta(days=40))}' AND period_start < '{lit(end - timedelta(days=33))}' "
        "ORDER BY period_start"
    )
    result: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = []
    for name, sql in readme_examples().items():
        before = BEFORE_0015 if name == "stream-countries" else baseline(sql)
        result.append((f"README: {name}", query(conn, sql), query(conn, before)))
    old_report = (
        "SELECT {c} AS period, bytes_in, bytes_out FROM {v} "
        "WHERE {c} >= '{a}' AND {c} < '{b}'{s} ORDER BY {c}"
    )
    result += [
        (
            "report --by day (account, 31 days)",
            lambda: render_periods(
                usage_report(conn, stream=None, start=day31, stop=end, by="day"), "table"
            ),
            query(
                conn,
                old_report.format(
                    c="day", v="baseline_account_daily_usage", a=lit(day31), b=lit(end), s=""
                ),
            ),
        ),
        (
            "report --by month (account, 12 months)",
            lambda: render_periods(
                usage_report(conn, stream=None, start=FIRST, stop=end, by="month"), "table"
            ),
            query(
                conn,
                old_report.format(
                    c="month", v="baseline_account_monthly_usage", a=lit(FIRST), b=lit(end), s=""
                ),
            ),
        ),
        (
            "report --stream stream-0001 --by month (12 months)",
            lambda: render_periods(
                usage_report(conn, stream="stream-0001", start=FIRST, stop=end, by="month"),
                "table",
            ),
            query(
                conn,
                old_report.format(
                    c="month",
                    v="baseline_stream_monthly_usage",
                    a=lit(FIRST),
                    b=lit(end),
                    s=" AND stream_name = 'stream-0001'",
                ),
            ),
        ),
        (
            "report --by stream --top 10 (31 days)",
            lambda: render_streams(*top_streams(conn, start=day31, stop=end, top=10), "table"),
            query(
                conn,
                "SELECT stream_name, SUM(bytes_out) FROM baseline_stream_daily_usage "
                f"WHERE day >= '{lit(day31)}' AND day < '{lit(end)}' GROUP BY stream_name "
                "ORDER BY 2 DESC LIMIT 10",
            ),
        ),
        (
            "report --by stream --top 20 (a year; baseline: its days in stream_daily_usage)",
            lambda: render_streams(*top_streams(conn, start=FIRST, stop=end, top=20), "table"),
            query(
                conn,
                "SELECT stream_name, SUM(bytes_out) FROM stream_daily_usage "
                f"WHERE day >= '{lit(FIRST)}' AND day < '{lit(end)}' GROUP BY stream_name "
                "ORDER BY 2 DESC LIMIT 20",
            ),
        ),
        (
            "usage_attribution, a week by hour",
            query(conn, week.format(v="usage_attribution")),
            query(conn, week.format(v="attribution_0008")),
        ),
        (
            "stream_monthly_usage, one month, all streams",
            query(conn, f"SELECT * FROM stream_monthly_usage WHERE month = '{lit(month_start)}'"),
            query(
                conn,
                f"SELECT * FROM baseline_stream_monthly_usage WHERE month = '{lit(month_start)}'",
            ),
        ),
        (
            "a month's countries per stream (held out)",
            query(
                conn,
                "SELECT * FROM stream_country_monthly_usage "
                f"WHERE month = '{lit(month_start)}' ORDER BY stream_name, views DESC",
            ),
            query(
                conn,
                "SELECT * FROM baseline_stream_country_monthly_usage "
                f"WHERE month = '{lit(month_start)}' ORDER BY stream_name, views DESC",
            ),
        ),
        (
            "top streams of one day",
            query(conn, one_day.format(v="stream_daily_usage")),
            query(conn, one_day.format(v="baseline_stream_daily_usage")),
        ),
    ]
    if dialect == "postgresql":
        result += grafana_cases(conn)
        # As README tells psql users: date literals mean UTC midnight.
        conn.execute(sa.text("SET TIME ZONE 'UTC'"))
    return result


def grafana_cases(conn: Connection) -> list[tuple[str, Callable[[], Any], Callable[[], Any]]]:
    """Every panel of the provisioned dashboard over November 2026, macros as Grafana expands."""
    path = HERE.parent / "config" / "grafana" / "dashboards" / "archiver.json"
    result: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = []
    for panel in json.loads(path.read_text())["panels"]:
        sql = re.sub(
            r"\$__timeFilter\((\w+)\)",
            r"\1 BETWEEN '2026-11-01T00:00:00Z' AND '2026-11-30T23:59:59Z'",
            panel["targets"][0]["rawSql"],
        )
        sql = sql.replace("$__timeFrom()", "'2026-11-01T00:00:00Z'")
        sql = sql.replace("$__timeTo()", "'2026-11-30T23:59:59Z'")
        result.append((f"Grafana: {panel['title']}", query(conn, sql), query(conn, baseline(sql))))
    return result
