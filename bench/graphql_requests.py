"""POST /graphql requests per steady-state cycle, counted by the simulator, against a minimum."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import sqlalchemy as sa

from archiver.cycle.feeds import OVERLAP
from archiver.datasets import ACCOUNT_VIEWER_STATS, STREAM_SESSIONS, STREAM_VIEWER_STATS
from archiver.rules.finality import first_unfinal_period
from archiver.simulator import SimConfig, Simulator
from archiver.simulator.periods import at, seconds
from archiver.simulator.vendor import GRAPHQL, reportable
from archiver.store import db
from archiver.store.sessions import move_feed_watermark
from archiver.store.tables import tracked_streams
from archiver.store.viewer_stats import ACCOUNT_KEY, move_viewer_watermarks
from bench.common import NOW, STEADY, TOKEN, cycle, fresh_sqlite
from bench.cycles import prepare_steady_state

SETTLE = timedelta(minutes=60)  # the default ARCHIVER_SETTLE_MINUTES
PAGE = 100  # rows per page, and stream names per read


def graphql_count(sim: Simulator) -> tuple[int, int]:
    """(POST /graphql answers, every other vendor answer) the simulator counted so far."""
    payload = sim.stats_payload()
    graphql = sum(payload["requests"].get(GRAPHQL, {}).values())
    return graphql, payload["api_requests"] - graphql


def synthetic_graphql_state(sim: Simulator, url: str) -> None:
    """Feed and viewer watermarks, and streams last seen, as a finished cycle at NOW leaves them
    (a real first read of 10,000 streams' 30 days of feeds would take too long here)."""
    engine = db.make_engine(url)
    mark = first_unfinal_period(SETTLE, NOW)
    names = [s.name for s in sim.traffic.streams if reportable(s.name)]
    seen: dict[str, datetime] = {}
    for feed in sim.audience.feeds(NOW):  # as the feed step marks them (cycle/feeds.py)
        moment = min(NOW, at(feed.ended))
        if moment >= NOW - timedelta(days=7) and moment > seen.get(feed.name, moment - SETTLE):
            seen[feed.name] = moment
    with db.transaction(engine) as conn:
        move_feed_watermark(conn, NOW, NOW)
        move_viewer_watermarks(conn, ACCOUNT_VIEWER_STATS.dataset, [ACCOUNT_KEY], mark, NOW)
        move_viewer_watermarks(conn, STREAM_VIEWER_STATS.dataset, names, mark, NOW)
        for name, moment in seen.items():
            conn.execute(
                sa.update(tracked_streams)
                .where(tracked_streams.c.stream_name == name)
                .values(last_seen_at=moment)
            )
    engine.dispose()


def minimum_graphql(sim: Simulator) -> tuple[int, dict[str, int]]:
    """The fewest POST /graphql a cycle at STEADY after one at NOW can make, by part."""
    feeds = sim.audience.feeds(STEADY)
    assert STREAM_SESSIONS.retention is not None
    since = seconds(max(NOW - OVERLAP, STEADY - STREAM_SESSIONS.retention))
    steady = seconds(STEADY)
    listed = [f for f in feeds if f.started >= since or f.ended >= since or f.ended > steady]
    mark = first_unfinal_period(SETTLE, NOW)
    account_periods = len(sim.audience.account_stats(mark, STEADY, STEADY))
    live = {
        f.name
        for f in feeds
        if reportable(f.name) and f.ended > seconds(mark) and f.started < steady
    }
    names = [s.name for s in sim.traffic.streams]
    rows = sum(
        1 for r in sim.audience.stream_stats(mark, STEADY, STEADY) if names[r.stream] in live
    )
    parts = {
        "feed pages": max(1, math.ceil(len(listed) / PAGE)),
        "account pages": max(1, math.ceil(account_periods / PAGE)),
        "stream pages": max(math.ceil(len(live) / PAGE), math.ceil(rows / PAGE)),
        "live streams": len(live),
        "stream rows": rows,
    }
    return parts["feed pages"] + parts["account pages"] + parts["stream pages"], parts


def bench_graphql_requests(lines: list[str], counts: tuple[int, ...] = (10, 1000, 10000)) -> None:
    lines += [
        "## GraphQL requests per steady-state cycle",
        "",
        "POST /graphql counted by the simulator (apart from the REST requests) during one "
        "cycle 15 minutes after the previous one, feeds and viewer statistics on (defaults: "
        "settle 60 minutes, pages of 100 rows, 100 stream names per viewer read). "
        "Minimum = feed pages (the feeds started or ended since the last read less the "
        "archive's hour of overlap, or still running: ceil(feeds / 100), at least 1) + "
        "account viewer pages (the account's periods not yet final: ceil(periods / 100), at "
        "least 1) + stream viewer pages, max(ceil(L / 100), ceil(R / 100)), where L is the "
        "tracked streams with a feed running or ended after their viewer watermark (only "
        "these can have new statistics) and R their rows not yet final. The vendor's "
        "`streamStatPagination` takes `streamId: {in: [...]}`, so one query covers many "
        "streams; a stream with no feed since its watermark needs no read at all.",
        "",
        "| streams | GraphQL requests | minimum | ratio | feed + account + stream pages "
        "(minimum) | live streams L | rows R | REST requests | state before the cycle |",
        "|---:|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for streams in counts:
        config = SimConfig(streams=streams, seed=1)
        with Simulator(config, token=TOKEN, start=NOW) as sim:
            names = [s.name for s in sim.traffic.streams]
            url = fresh_sqlite(f"graphql-{streams}")
            synthetic = streams > 1000
            prepare_steady_state(sim, url, names, synthetic=synthetic)
            if synthetic:
                synthetic_graphql_state(sim, url)
            graphql_before, rest_before = graphql_count(sim)
            cycle(sim, url, STEADY, concurrency=16, max_requests_per_second=1000.0, discovery=True)
            graphql_after, rest_after = graphql_count(sim)
            minimum, parts = minimum_graphql(sim)
        counted = graphql_after - graphql_before
        how = "watermarks set as a finished cycle leaves them" if synthetic else "a real backfill"
        split = f"{parts['feed pages']} + {parts['account pages']} + {parts['stream pages']}"
        lines.append(
            f"| {streams:,} | {counted:,} | {minimum:,} | {counted / minimum:.2f} | {split} | "
            f"{parts['live streams']:,} | {parts['stream rows']:,} | "
            f"{rest_after - rest_before:,} | {how} |"
        )
        print(f"graphql per cycle: {streams} streams: {counted} of minimum {minimum} {parts}")
    lines.append("")
