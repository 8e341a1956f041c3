"""Query benchmark on a synthetic archive of years' scale: views, report and export, vs 0002.

Run `python -m bench.queries` (1,000 streams over a year, about 9 million hourly rows) or
`python -m bench.queries --streams 100` for a smaller archive. Every query is timed on the
current views and, in the same run on the same data, on the views of migration 0002 (the
baseline, created beside them under `baseline_*` names). The figures go into a section of
bench/RESULTS.md of their own.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import re
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from archiver.reading.export import export_rows, write_export
from archiver.reading.report import render_periods, render_streams, top_streams, usage_report
from archiver.store import db
from bench.__main__ import bench_store, machine

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
)


def _0002() -> Any:
    path = HERE.parent / "migrations" / "versions" / "0002_query_views.py"
    spec = importlib.util.spec_from_file_location("_bench_0002", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def baseline_sql(dialect: str) -> list[str]:
    """Migration 0002's views, named `baseline_*`, for times stored as 0004 stores them."""
    module = _0002()
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
    return renamed


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

    path = HERE.parent / "migrations" / "versions" / "0004_time_text_rollups.py"
    spec = importlib.util.spec_from_file_location("_bench_0004", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with engine.begin() as conn:
        setattr(module, "op", Operations(MigrationContext.configure(conn)))  # noqa: B010
        for table in ("stream_daily_hours", "account_daily_hours", "country_daily_hours"):
            conn.execute(sa.text(f"DELETE FROM {table}"))
        conn.execute(sa.text("DELETE FROM stream_monthly_totals"))
        module._fill_daily_rollups()
        module._fill_monthly_rollup()
        for statement in baseline_sql(engine.dialect.name):
            conn.execute(sa.text(statement))
    with engine.connect() as conn:
        conn.execute(sa.text("ANALYZE"))
        conn.commit()


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
    result: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = []
    for name, sql in readme_examples().items():
        result.append((f"README: {name}", query(conn, sql), query(conn, baseline(sql))))
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
            "stream_monthly_usage, one month, all streams",
            query(conn, f"SELECT * FROM stream_monthly_usage WHERE month = '{lit(month_start)}'"),
            query(
                conn,
                f"SELECT * FROM baseline_stream_monthly_usage WHERE month = '{lit(month_start)}'",
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


def export_speed(engine: Engine, url: str, runs: int) -> tuple[float, float, int]:
    """(archiver export seconds, the database's own dump seconds, rows) for stream_usage:
    medians of `runs` runs of each, taken in turn so that both see the same machine."""
    ours, theirs = [], []
    for _ in range(runs):
        our, their, rows = _export_once(engine, url)
        ours.append(our)
        theirs.append(their)
    return statistics.median(ours), statistics.median(theirs), rows


def _export_once(engine: Engine, url: str) -> tuple[float, float, int]:
    with engine.connect() as conn:
        rows = int(conn.execute(sa.text("SELECT COUNT(*) FROM stream_usage")).scalar_one())
    began = time.perf_counter()
    with engine.connect() as conn, open(os.devnull, "w") as sink:
        write_export(export_rows(conn, "stream_usage"), "csv", sink)
    ours = time.perf_counter() - began
    began = time.perf_counter()
    if engine.dialect.name == "sqlite":
        path = url.removeprefix("sqlite:///")
        with open(os.devnull, "w") as sink:
            subprocess.run(
                ["sqlite3", "-csv", "-header", path, "SELECT * FROM stream_usage"],
                stdout=sink,
                check=True,
            )
    else:
        raw = engine.raw_connection()
        try:
            cursor = raw.driver_connection.cursor()  # type: ignore[union-attr]
            with cursor.copy("COPY stream_usage TO STDOUT WITH (FORMAT csv, HEADER)") as copy:
                buffer = io.BytesIO()
                for block in copy:
                    buffer.write(block)
                    if buffer.tell() > 1 << 24:
                        buffer.seek(0)
                        buffer.truncate()
        finally:
            raw.close()
    theirs = time.perf_counter() - began
    return ours, theirs, rows


def bench(dialect: str, streams: int, days: int, runs: int, *, export: bool) -> list[str]:
    WORK.mkdir(exist_ok=True)
    admin = None
    name = f"archiver_bench_q_{uuid.uuid4().hex[:8]}"
    if dialect == "sqlite":
        path = WORK / f"queries-{streams}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = sa.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    engine = db.make_engine(url)
    lines: list[str] = []
    try:
        db.upgrade(engine)
        began = time.perf_counter()
        hourly = fill(engine, streams, days)
        filled = time.perf_counter() - began
        began = time.perf_counter()
        build_rollups(engine)
        rolled = time.perf_counter() - began
        print(
            f"{dialect}: {hourly:,} hourly rows in {filled:.0f} s, rollups {rolled:.0f} s",
            flush=True,
        )
        lines += [
            f"### {dialect}: {streams:,} streams x {days} days = {hourly:,} hourly stream rows",
            "",
            f"Generated in {filled:.0f} s; rollups built from them (as migration 0004 does) in "
            f"{rolled:.0f} s. Seconds, median of {runs} runs (one run where it took over 5 s).",
            "",
            "| question | current | baseline (0002 views) | speed-up | under 1 s |",
            "|---|---:|---:|---:|---|",
        ]
        end = FIRST + timedelta(days=days)
        with engine.connect() as conn:
            for label, current, old in cases(conn, end):
                ours = timed(runs, current)
                theirs = timed(runs, old)
                print(f"{dialect} {label}: {ours:.3f} s vs {theirs:.3f} s", flush=True)
                lines.append(
                    f"| {label} | {ours:.3f} | {theirs:.3f} | {theirs / ours:,.1f}x | "
                    f"{'yes' if ours < 1 else 'NO'} |"
                )
        if not export:
            return [*lines, ""]
        ours, theirs, rows = export_speed(engine, url, runs)
        tool = "sqlite3 -csv" if dialect == "sqlite" else "COPY ... TO STDOUT (csv)"
        lines += [
            "",
            f"Export of `stream_usage` ({rows:,} rows) as CSV: `archiver export` {ours:.1f} s "
            f"({rows / ours:,.0f} rows/s) against {tool} {theirs:.1f} s ({rows / theirs:,.0f} "
            f"rows/s): {theirs / ours:.2f} of the database's own dump speed (goal 0.33); "
            f"medians of {runs} runs each.",
            "",
        ]
        print(lines[-2], flush=True)
    finally:
        engine.dispose()
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        elif dialect == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(str(WORK / f"queries-{streams}.db") + suffix).unlink(missing_ok=True)
    return lines


def record(lines: list[str], streams: int, days: int) -> None:
    """Put `lines` in RESULTS.md, replacing the previous figures of the same size only."""
    begin = f"<!-- bench.queries {streams}x{days}: begin -->"
    end = f"<!-- bench.queries {streams}x{days}: end -->"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    section = "\n".join([begin, *lines, end])
    if begin in text and end in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.queries", description=__doc__)
    parser.add_argument("--streams", type=int, default=1000, help="streams (default 1,000)")
    parser.add_argument("--days", type=int, default=365, help="days of history (default 365)")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median)")
    parser.add_argument(
        "--db", choices=("sqlite", "postgresql", "both"), default="both", help="default both"
    )
    parser.add_argument("--no-record", action="store_true", help="print only")
    parser.add_argument(
        "--store",
        action="store_true",
        help="also the write path's throughput with the rollups (bench's store figures)",
    )
    parser.add_argument(
        "--skip-export", action="store_true", help="leave out the export measurement (slow)"
    )
    args = parser.parse_args()
    lines = [
        f"## Queries at scale (`python -m bench.queries --streams {args.streams} "
        f"--days {args.days}`)",
        "",
        *machine(),
        "- Current: migration 0004's views over rollups kept by the write path. Baseline: "
        "migration 0002's views (computed from the raw rows at query time) on the same data, "
        "same run. The archive is generated in SQL: every stream has every hour of the year, a "
        "Day row for every day but the last two, three countries a day; the account has "
        "hours, days, months and ten countries an hour.",
        "",
    ]
    dialects = ("sqlite", "postgresql") if args.db == "both" else (args.db,)
    for dialect in dialects:
        lines += bench(dialect, args.streams, args.days, args.runs, export=not args.skip_export)
    if args.store:
        WORK.mkdir(exist_ok=True)
        bench_store(lines, args.runs)
    print("\n".join(lines))
    if not args.no_record:
        record(lines, args.streams, args.days)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
