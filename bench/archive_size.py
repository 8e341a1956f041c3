"""The archive's bytes on disk per stream-day, table by table, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench.queries_data import build_rollups, fill
from bench.viewer_data import archive, fill_viewers


def table_sizes(engine: Engine) -> dict[str, tuple[int, int]]:
    """(rows, bytes on disk with its indexes) of every table holding rows."""
    with engine.connect() as conn:
        tables = sa.inspect(conn).get_table_names()
        rows = {
            t: int(conn.execute(sa.text(f'SELECT COUNT(*) FROM "{t}"')).scalar_one())
            for t in tables
        }
        if conn.dialect.name == "postgresql":
            size = {
                t: int(
                    conn.execute(sa.text(f"SELECT pg_total_relation_size('\"{t}\"')")).scalar_one()
                )
                for t in tables
            }
        else:  # every b-tree's pages (table and its indexes), from SQLite's dbstat
            owner = {
                r.name: r.tbl_name
                for r in conn.execute(sa.text("SELECT name, tbl_name FROM sqlite_master"))
            }
            size = dict.fromkeys(tables, 0)
            for name, pages in conn.execute(
                sa.text("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")
            ):
                table = owner.get(name, name)
                if table in size:
                    size[table] += int(pages)
    return {t: (rows[t], size[t]) for t in tables if rows[t] and t != "alembic_version"}


def bench_size(streams: int, days: int) -> list[str]:
    """Bytes on disk per stream-day (tables keyed by stream) and per day (the account's)."""
    found: dict[str, dict[str, tuple[int, int]]] = {}
    for dialect in ("sqlite", "postgresql"):
        with archive(dialect, "size") as (engine, _):
            fill(engine, streams, days)
            build_rollups(engine)
            fill_viewers(engine, streams, days)
            found[dialect] = table_sizes(engine)
            with engine.connect() as conn:
                inspector = sa.inspect(conn)
                keyed = {
                    t
                    for t in found[dialect]
                    if "stream_name" in {c["name"] for c in inspector.get_columns(t)}
                }
                empty = sorted(set(inspector.get_table_names()) - set(found[dialect]))
    lite, pg = found["sqlite"], found["postgresql"]
    lines = [
        f"Archive of {streams:,} streams x {days} days: bench.queries' usage rows (every stream "
        "every hour, a Day row a day, three countries a day; the account's hours, days, months "
        "and ten countries an hour) and their rollups (filled as migration 0004 does), and the "
        "sessions and viewer statistics above. Bytes on disk of each table with its indexes "
        "(SQLite: its b-tree pages, from `dbstat`; PostgreSQL: `pg_total_relation_size`, right "
        "after the load), per stream-day for the tables keyed by stream, per day for the "
        "account's. Empty here (not generated): "
        + ", ".join(f"`{t}`" for t in empty if t != "alembic_version")
        + ".",
        "",
        "| table | rows | SQLite bytes | PostgreSQL bytes | SQLite per unit | PostgreSQL per unit "
        "| unit |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    sums = {"stream-day": [0, 0], "day": [0, 0]}
    for table in sorted(set(lite) | set(pg), key=lambda t: (t not in keyed, -pg.get(t, (0, 0))[1])):
        unit, per = ("stream-day", streams * days) if table in keyed else ("day", days)
        rows = max(lite.get(table, (0, 0))[0], pg.get(table, (0, 0))[0])
        a, b = lite.get(table, (0, 0))[1], pg.get(table, (0, 0))[1]
        sums[unit][0] += a
        sums[unit][1] += b
        lines.append(
            f"| {table} | {rows:,} | {a:,} | {b:,} | {a / per:,.0f} | {b / per:,.0f} | {unit} |"
        )
    per_stream = [v / (streams * days) for v in sums["stream-day"]]
    per_day = [v / days for v in sums["day"]]
    lines += [
        "",
        f"Tables keyed by stream: **{per_stream[0]:,.0f} bytes per stream-day on SQLite, "
        f"{per_stream[1]:,.0f} on PostgreSQL**; the account's: {per_day[0]:,.0f} and "
        f"{per_day[1]:,.0f} bytes per day. All tables at 1,000 streams: "
        f"{per_stream[0] + per_day[0] / 1000:,.0f} (SQLite) and "
        f"{per_stream[1] + per_day[1] / 1000:,.0f} (PostgreSQL) bytes per stream-day, "
        f"{(per_stream[0] * 1000 + per_day[0]) * 365 / 1e9:.1f} GB and "
        f"{(per_stream[1] * 1000 + per_day[1]) * 365 / 1e9:.1f} GB a year.",
        "",
    ]
    return lines
