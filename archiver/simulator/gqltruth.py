"""The GraphQL history's ground truth (`/_sim/truth`): sessions and viewers, archive words.

`stream_sessions`: every feed started in `[start, stop)` by the clock, purged or not (the
archive keeps what the vendor drops): stream_name, started, ended (None while active),
active. `stream_viewer_stats` (stream_name, period_start, active_viewers, views_started,
views_ended) and `account_viewer_stats` (the same without the name, plus streams): every
5-minute period starting in `[start, stop)` that has ended. Names the vendor cannot report
on are left out of the per-stream datasets (the archive refuses them); the account keeps them.
"""

from __future__ import annotations

from typing import Any

from archiver.simulator import vendor
from archiver.simulator.audience import Audience
from archiver.simulator.buckets import format_iso
from archiver.simulator.periods import PERIOD_MINUTES, at, seconds
from archiver.simulator.rendering import Query, parse_time

DATASETS = ("stream_sessions", "stream_viewer_stats", "account_viewer_stats")


def rows(audience: Audience, dataset: str, query: Query, now: Any) -> list[dict[str, Any]]:
    """The truth of one of `DATASETS` at `now`, in time order (then stream name)."""
    start, stop = parse_time(query, "start"), parse_time(query, "stop")
    wanted = set(query.get("stream", []))

    def shown(name: str) -> bool:
        return vendor.reportable(name) and (not wanted or name in wanted)

    found: list[dict[str, Any]] = []
    if dataset == "stream_sessions":
        for feed in audience.feeds(now, retained=False):
            if shown(feed.name) and start <= at(feed.started) < stop:
                running = seconds(now) < feed.ended
                found.append(
                    {
                        "stream_name": feed.name,
                        "started": format_iso(at(feed.started)),
                        "ended": None if running else format_iso(at(feed.ended)),
                        "active": running,
                    }
                )
        return found
    if dataset == "stream_viewer_stats":
        names = audience.traffic.streams
        for row in audience.stream_stats(start, stop, now):
            if shown(names[row.stream].name):
                found.append(
                    {
                        "stream_name": names[row.stream].name,
                        "period_start": format_iso(at(row.period * PERIOD_MINUTES * 60)),
                        "active_viewers": row.active,
                        "views_started": row.started,
                        "views_ended": row.ended,
                    }
                )
        found.sort(key=lambda r: (r["period_start"], r["stream_name"]))
        return found
    for period, active, started, ended, streams in audience.account_stats(start, stop, now):
        found.append(
            {
                "period_start": format_iso(at(period * PERIOD_MINUTES * 60)),
                "active_viewers": active,
                "views_started": started,
                "views_ended": ended,
                "streams": streams,
            }
        )
    return found
