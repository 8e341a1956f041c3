"""Feeds as a name source and `stream_sessions`, against the simulator over loopback HTTP."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.api import feeds
from archiver.api.client import AnalyticsClient
from archiver.api.feeds import FeedWalks, read_feeds
from archiver.cycle.feeds import read_since
from archiver.datasets import STREAMS_SERIES
from archiver.rules.plan import Policy
from archiver.simulator import SimConfig, Simulator
from archiver.simulator.periods import at, seconds
from archiver.simulator.server import Faults
from archiver.store.tables import account_usage, feed_reads, stream_sessions, tracked_streams
from archiver.timeutil import Resolution
from tests.harness import (
    Harness,
    archived_sessions,
    compare_with_truth,
    tracked_names,
    truth,
    truth_sessions,
)
from tests.simhelpers import TOKEN

NOW = datetime(2026, 11, 20, 12, 2, tzinfo=UTC)
# Monitoring blind (discovery off: it lists the streams whose session began within the hour,
# which a scenario of short sessions cannot hide from it), publish tokens regex-only (no
# exact-name token: asserted below), no webhook: only the feeds can name a stream. Short
# sessions, streams that start and stop inside two days, a redundant share.
CONFIG = SimConfig(
    streams=30,
    seed=29,
    origin=datetime(2026, 11, 1, tzinfo=UTC),
    initial_streams=6,
    growth_days=20,
    lifetime_days=1.0,
    unreportable_streams=1,
    session_minutes=(5, 300),
    session_chance_percent=60,
    exact_token_streams=0,
    redundant_percent=40,
)
POLICY = Policy()


@contextmanager
def harness(
    engine: Engine, faults: Faults | None = None, **overrides: Any
) -> Iterator[tuple[Simulator, Harness, httpx.Client]]:
    with (
        Simulator(CONFIG, token=TOKEN, start=NOW, faults=faults) as sim,
        httpx.Client(base_url=sim.url) as http,
    ):
        yield sim, Harness(sim, engine, {"discovery": False, **overrides}), http


def _watermark(engine: Engine) -> datetime | None:
    with engine.connect() as conn:
        value: datetime | None = conn.execute(sa.select(feed_reads.c.watermark)).scalar()
        return value


def test_one_sync_on_a_fresh_archive_names_every_stream_of_the_last_week(engine: Engine) -> None:
    with harness(engine) as (sim, h, http):
        report = h.cycle(NOW)
        assert report.ok, report.errors
        assert sim.revealed_payload()["streams"] == {}  # monitoring and tokens told nothing
        start = POLICY.horizon(STREAMS_SERIES, Resolution.HOUR, NOW)
        published = {
            r["stream_name"] for r in truth(http, "stream_usage", Resolution.HOUR, start, NOW)
        }
        published -= {n for n in published if "--" in n}
        verdict = compare_with_truth(engine=engine, http=http, first_now=NOW, last_now=NOW)
    tracked = tracked_names(engine)
    assert len(published) >= 8
    assert published <= tracked, sorted(published - tracked)
    assert verdict.problems == [], "\n".join(verdict.lines + verdict.problems)
    with engine.connect() as conn:
        sources = set(conn.execute(sa.select(tracked_streams.c.source)).scalars())
    assert sources == {"feed"}


def test_a_read_after_a_two_day_outage_names_streams_that_lived_only_inside_it(
    engine: Engine,
) -> None:
    back = NOW + timedelta(days=2, hours=1)
    with harness(engine) as (sim, h, http):
        assert h.cycle(NOW).ok
        before = tracked_names(engine)
        every = sim.audience.feeds(back, retained=False)
        lives: dict[str, list[Any]] = {}
        for feed in every:
            lives.setdefault(feed.name, []).append(feed)
        inside = {
            name
            for name, feeds in lives.items()
            if "--" not in name and all(at(f.started) > NOW and at(f.ended) <= back for f in feeds)
        }
        report = h.cycle(back)
        assert report.ok, report.errors
        verdict = compare_with_truth(engine=engine, http=http, first_now=NOW, last_now=back)
    assert inside, "the scenario has no stream that lived only inside the outage"
    assert not inside & before
    assert inside <= tracked_names(engine)
    with engine.connect() as conn:
        refused = conn.execute(
            sa.select(tracked_streams.c.stream_name).where(tracked_streams.c.status == "refused")
        ).scalars()
        assert [n for n in refused if "--" in n]  # the unreportable one, refused as always
    assert verdict.problems == [], "\n".join(verdict.lines + verdict.problems)


def test_a_read_of_more_feeds_than_one_walk_may_page_reads_a_day_at_a_time() -> None:
    # 10,000 streams hold over 100,000 feeds in the vendor's 30 days: more than a walk's page
    # bound. Here pages of 10 and a bound of 4 pages: the 30 days hold far more than 40
    # feeds, each day fewer. The read must equal the vendor's feeds, in its order.
    since = read_since(None, NOW)
    with Simulator(CONFIG, token=TOKEN, start=NOW) as sim:
        truth = [
            (f.name, at(f.started), None if f.ended > seconds(NOW) else at(f.ended))
            for f in sim.audience.feeds(NOW)
        ]
        with AnalyticsClient(base_url=sim.url, token=TOKEN) as client:
            read = read_feeds(client, since, NOW, per_page=10, max_pages=4)
    assert len(truth) > 40 * 4
    assert [(f.stream_name, f.started, f.ended) for f in read.feeds] == truth
    assert read.refused == []


def test_a_read_hands_its_feeds_on_a_walk_at_a_time() -> None:
    # The cycle stores each batch as it comes: a read of 30 days of 10,000 streams held at
    # once took 300 MB. The first batch holds the walks until the account is known.
    since = read_since(None, NOW)
    with (
        Simulator(CONFIG, token=TOKEN, start=NOW) as sim,
        AnalyticsClient(base_url=sim.url, token=TOKEN) as client,
    ):
        walks = FeedWalks(client, since, NOW)
        batches = [[(f.stream_name, f.started) for f in b.feeds] for b in walks.batches()]
        whole = read_feeds(client, since, NOW)
    assert walks.failed is None
    assert [feed for batch in batches for feed in batch] == [
        (f.stream_name, f.started) for f in whole.feeds
    ]
    assert len(batches) > 10
    assert len(batches[0]) >= feeds.QUORUM
    assert max(len(batch) for batch in batches[1:]) < feeds.QUORUM


def test_stream_sessions_equal_the_truth_after_a_run_with_faults(engine: Engine) -> None:
    faults = Faults(graphql_error_rate=0.3, error_rate=0.05, truncate_rate=0.05)
    with harness(engine, faults) as (sim, h, http):
        moment = NOW
        for hour in range(30):
            sim.faults = faults
            if hour % 7 == 3:
                sim.faults = Faults(graphql_repeat_page=2)
            elif hour % 7 == 5:
                sim.faults = Faults(graphql_broken=("ended_before_started", "other_account"))
            h.cycle(moment)
            moment += timedelta(hours=1)
        sim.faults = Faults()
        end = moment
        assert h.cycle(end).ok
        got, want = archived_sessions(engine), truth_sessions(http, NOW)
    assert len(want) > 100
    assert any(a[0] == b[0] and a[1] != b[1] for a, b in itertools.pairwise(want))
    assert any(row[3] for row in want)  # some still publish at the end
    missing = [r for r in want if r not in got]
    extra = [r for r in got if r not in want]
    assert (missing, extra) == ([], []), (len(got), len(want), missing, extra)


def test_a_failing_feed_read_costs_only_the_feeds(engine: Engine) -> None:
    # Viewers off: the errors answered here would cost the viewer reads too (their own
    # failures: tests/test_viewers_cycle.py), and this test counts the feeds' errors alone.
    with harness(engine, Faults(graphql_error_rate=1.0), viewers=False) as (sim, h, _):
        report = h.cycle(NOW)
        assert not report.ok
        assert [e for e in report.errors if e.startswith("feeds:")] == report.errors
        assert "nothing of this answer is stored" in report.errors[0]
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(account_usage)).scalar()
            assert not conn.execute(
                sa.select(sa.func.count()).select_from(stream_sessions)
            ).scalar()
        assert _watermark(engine) is None
        sim.faults = Faults()
        assert h.cycle(NOW + timedelta(minutes=15)).ok
    assert _watermark(engine) == NOW + timedelta(minutes=15)


def test_a_page_that_repeats_or_is_slow_fails_the_read_not_the_cycle(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One walk of a year of starts (a day's walk here holds one page): page 2 repeats.
    monkeypatch.setattr(feeds, "WINDOW", timedelta(days=365))
    with harness(engine, Faults(graphql_repeat_page=2), request_deadline_seconds=1) as (
        sim,
        h,
        _,
    ):
        report = h.cycle(NOW)
        assert any("repeats the page before" in e for e in report.errors), report.errors
        # Held longer than the deadline (not for ever: the server thread waits it out; on a
        # reused keep-alive connection the deadline can cut the wait only once headers come).
        sim.faults = Faults(graphql_slow_page=1, graphql_slow_seconds=3)
        try:
            report = h.cycle(NOW + timedelta(minutes=15))
        finally:
            sim.slow_gate.release.set()
        assert any("overall deadline" in e for e in report.errors), report.errors
        assert report.requests == report.planned > 0
    assert _watermark(engine) is None


@pytest.mark.parametrize("kind", ["hostile_name", "other_account", "ended_before_started"])
def test_a_bad_feed_row_is_refused_and_the_rest_goes_on(engine: Engine, kind: str) -> None:
    with harness(engine, Faults(graphql_broken=(kind,))) as (sim, h, http):
        report = h.cycle(NOW)
        assert [e for e in report.errors if "feed row 1 refused" in e], report.errors
        assert "\n" not in " ".join(report.errors)  # the hostile name comes escaped
        assert _watermark(engine) is None  # the read is done again
        partial = archived_sessions(engine)
        sim.faults = Faults()
        assert h.cycle(NOW + timedelta(minutes=15)).ok
        want = truth_sessions(http, NOW)
    # The first row of each answer is broken: one refused per walk (a day of starts) but for
    # the walks with no feed; the others are stored.
    refused = [e for e in report.errors if e.startswith("feeds: feed row")]
    assert 1 < len(refused) < len(want) / 2
    assert len(partial) == len(want) - len(refused)
    assert archived_sessions(engine) == want


def test_a_dormant_stream_seen_live_in_a_feed_wakes_at_once(engine: Engine) -> None:
    with harness(engine) as (sim, h, _):
        live = sorted({f.name for f in sim.audience.feeds(NOW) if at(f.ended) > NOW})
        name = next(n for n in live if "--" not in n)
        with engine.begin() as conn:
            conn.execute(
                sa.insert(tracked_streams).values(
                    stream_name=name,
                    source="cli",
                    status="dormant",
                    added_at=NOW - timedelta(days=20),
                    last_seen_at=NOW - timedelta(days=10),
                )
            )
        assert h.cycle(NOW).ok
    with engine.connect() as conn:
        row = conn.execute(sa.select(tracked_streams).where(tracked_streams.c.stream_name == name))
        status = row.one()
    assert (status.status, status.source, status.last_seen_at) == ("active", "cli", NOW)


def test_feeds_off_asks_no_graphql(engine: Engine) -> None:
    # Viewers off too: the viewer statistics are GraphQL of their own.
    with harness(engine, feeds=False, viewers=False) as (sim, h, _):
        assert h.cycle(NOW).ok
        assert "/graphql" not in sim.stats_payload()["requests"]
    assert tracked_names(engine) == set()
    with engine.connect() as conn:
        assert not conn.execute(sa.select(sa.func.count()).select_from(stream_sessions)).scalar()
