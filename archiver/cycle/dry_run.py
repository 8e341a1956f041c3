"""`backfill --dry-run`: the real backfill's streams and requests, with nothing written."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.api.client import AnalyticsClient
from archiver.api.feeds import read_feeds
from archiver.config import Settings
from archiver.cycle.feeds import read_since
from archiver.cycle.prelude import judge_clock
from archiver.cycle.report import CycleReport
from archiver.cycle.streams import discover_names
from archiver.errors import ArchiverError
from archiver.rules.clock_trust import History
from archiver.rules.plan import Plan, Policy, Scope, ScopeState, Selection, StreamEntry, make_plan
from archiver.store import db
from archiver.store.clock_runs import clock_history
from archiver.store.sessions import feed_watermark
from archiver.store.state import load_state
from archiver.store.tables import tracked_streams
from archiver.vocabulary import RunKind, StreamStatus, refusal_reason

log = logging.getLogger(__name__)


@dataclass
class Tracked:
    """A registry row as the real run would leave it before planning."""

    status: StreamStatus
    added_at: datetime
    last_seen_at: datetime | None


@dataclass
class DryRun:
    """What the real backfill would do: its plan, and the questions it asks before planning."""

    plan: Plan
    streams: list[StreamEntry]
    # Listing and clock requests the real run makes before its data requests (the dry run
    # asked the same ones); None when they could not be asked.
    listing_requests: int | None
    by_source: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def total(self) -> int | None:
        """Every request the real backfill makes, if known."""
        if self.listing_requests is None:
            return None
        return self.listing_requests + len(self.plan.requests)


@contextmanager
def existing_archive(settings: Settings) -> Iterator[Engine | None]:
    """The archive opened read-only, or None where there is none yet (nothing is created)."""
    sqlite = db.sqlite_target(settings.database_url)
    if sqlite is not None:
        # No file yet: the real run would create it. (One in memory holds nothing either.)
        if sqlite.path is None or not sqlite.path.exists():
            yield None
            return
    else:
        probe = db.make_engine(settings.database_url)
        try:
            db.check_connection(probe)
            fresh = db.current_revision(probe) is None
        finally:
            probe.dispose()
        if fresh:
            yield None
            return
    engine = db.open_readonly(settings.database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _read(engine: Engine | None) -> tuple[dict[str, Tracked], dict[Scope, ScopeState]]:
    if engine is None:
        return {}, {}
    with db.transaction(engine) as conn:
        rows = conn.execute(
            sa.select(
                tracked_streams.c.stream_name,
                tracked_streams.c.status,
                tracked_streams.c.added_at,
                tracked_streams.c.last_seen_at,
            )
        ).all()
        state = load_state(conn)
    return {
        r.stream_name: Tracked(StreamStatus(r.status), r.added_at, r.last_seen_at) for r in rows
    }, state


def would_track(
    registry: dict[str, Tracked],
    sources: Iterable[tuple[Iterable[str], bool]],
    *,
    now: datetime,
    window: timedelta,
) -> list[StreamEntry]:
    """The plannable streams after the real run registers `sources` ((names, seen live) in
    its order) and marks quiet streams dormant: `add_streams` and `update_dormancy` in memory."""
    rows = dict(registry)
    for names, seen in sources:
        for name in dict.fromkeys(n.strip() for n in names if n.strip()):
            reason = refusal_reason(name)
            known = rows.get(name)
            if known is None:
                status = StreamStatus.REFUSED if reason else StreamStatus.ACTIVE
                rows[name] = Tracked(status, now, now if seen and not reason else None)
            elif seen and not reason:
                rows[name] = Tracked(StreamStatus.ACTIVE, known.added_at, now)
    line = now - window
    entries: list[StreamEntry] = []
    for name, row in rows.items():
        status = row.status
        quiet = row.last_seen_at is None or row.last_seen_at < line
        if status == StreamStatus.ACTIVE and row.added_at < line and quiet:
            status = StreamStatus.DORMANT
        if status != StreamStatus.REFUSED:
            entries.append(StreamEntry(name, status))
    return entries


def dry_run(
    *,
    settings: Settings,
    now: datetime,
    selection: Selection,
    names: list[str] | None,
) -> DryRun:
    """Plan the backfill as the real one would, asking the vendor only its read-only listing
    questions (monitoring, publish tokens, the clock, the feeds); nothing is written anywhere."""
    discover = names is None
    history = History()
    watermark: datetime | None = None
    with existing_archive(settings) as engine:
        registry, state = _read(engine)
        if engine is not None:
            with db.transaction(engine) as conn:
                history = clock_history(conn)
                watermark = feed_watermark(conn)
    listed: list[str] = []
    token_names: list[str] = []
    fed: list[tuple[list[str], bool]] = []
    problems: list[str] = []
    asked: int | None = None
    if settings.api_token is not None:
        counted = [0]

        def count(_path: str, _status: str) -> None:
            counted[0] += 1

        report = CycleReport(kind=RunKind.BACKFILL, now=now)
        with AnalyticsClient.from_options(settings.client_options(), on_response=count) as client:
            if discover and settings.discovery:
                try:
                    listed = discover_names(client, settings.discovery_pattern)
                except ArchiverError as exc:
                    problems.append(f"discovery: {exc}")
            now = judge_clock(client, report, history)
            if discover and settings.publish_tokens:
                try:
                    tokens = client.publish_tokens()
                except ArchiverError as exc:
                    problems.append(f"publish tokens: {exc}")
                else:
                    token_names = [
                        s.streamName for t in tokens for s in t.streams or () if not s.isRegex
                    ]
            if discover and settings.feeds:
                try:
                    read = read_feeds(client, read_since(watermark, now), now)
                except ArchiverError as exc:
                    problems.append(f"feeds: {exc}")
                else:
                    if read.failed:
                        problems.append(f"feeds: {read.failed}")
                    # As the real run: a stream that published inside the window is seen.
                    line = now - timedelta(days=settings.stream_retention_days)
                    recent = [f.stream_name for f in read.feeds if (f.ended or now) >= line]
                    fed = [([f.stream_name for f in read.feeds], False), (recent, True)]
        asked = counted[0]
    sources = [(names or [], False), (settings.streams, False), (listed, True)]
    streams = would_track(
        registry,
        [*sources, (token_names, False), *fed],
        now=now,
        window=timedelta(days=settings.stream_retention_days),
    )
    plan = make_plan(
        now=now,
        policy=Policy.from_settings(settings),
        streams=streams,
        state=state,
        selection=selection,
    )
    tracked = sum(1 for s in streams if s.name in registry)
    by_source = {"already tracked": tracked, "new": len(streams) - tracked}
    return DryRun(plan, streams, asked, by_source, problems)
