"""Viewer reads skip the streams the feeds show quiet, and miss nothing: against the simulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.datasets import STREAM_VIEWER_STATS
from archiver.simulator import SimConfig, Simulator
from archiver.store.tables import stream_viewer_stats, viewer_reads
from tests.harness import Harness
from tests.simhelpers import TOKEN
from tests.test_viewers_cycle import STREAM_COLUMNS, archived, truth

NOW = datetime(2026, 11, 20, 12, 2, tzinfo=UTC)
# Seed 11: stream-0002 publishes 2026-11-19 08:38-11:42, then nothing until 11-20 19:15-20:57;
# stream-0005 publishes 11-20 09:05-09:22 and not again before 11-21 12:17.
CONFIG = SimConfig(
    streams=8,
    seed=11,
    origin=datetime(2026, 11, 8, tzinfo=UTC),
    history_days=0,
    unreportable_streams=1,
    redundant_percent=30,
)


def read_at(engine: Engine, name: str) -> datetime:
    with engine.connect() as conn:
        value: datetime = conn.execute(
            sa.select(viewer_reads.c.read_at).where(
                viewer_reads.c.dataset == STREAM_VIEWER_STATS.dataset,
                viewer_reads.c.stream_name == name,
            )
        ).scalar_one()
        return value


def stream_rows(engine: Engine, name: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(stream_viewer_stats)
                .where(stream_viewer_stats.c.stream_name == name)
            ).scalar_one()
        )


def test_a_dormant_stream_is_skipped_and_read_again_when_it_publishes(engine: Engine) -> None:
    evening = NOW.replace(hour=19, minute=32)
    times = [NOW, NOW.replace(hour=18), evening, NOW.replace(hour=21), NOW.replace(hour=22)]
    with (
        Simulator(CONFIG, token=TOKEN, start=NOW) as sim,
        httpx.Client(base_url=sim.url) as http,
    ):
        h = Harness(sim, engine, {"discovery": True})
        for at in times[:2]:
            assert h.cycle(at).ok
        # Quiet since its last read: skipped at 18:00, its watermark and read time kept.
        assert read_at(engine, "stream-0002") == NOW.replace(microsecond=0)
        assert read_at(engine, "stream-0001") == times[1]  # its feed ended after its mark
        before = stream_rows(engine, "stream-0002")
        for at in times[2:]:
            assert h.cycle(at).ok
        want = truth(
            http, "stream_viewer_stats", STREAM_COLUMNS, NOW - timedelta(days=7, minutes=5), at
        )
    assert stream_rows(engine, "stream-0002") > before  # its evening session, read
    assert archived(engine, stream_viewer_stats, STREAM_COLUMNS) == want


def test_a_stream_without_feeds_is_still_read_once_a_day(engine: Engine) -> None:
    later = NOW + timedelta(days=1, minutes=15)
    with Simulator(CONFIG, token=TOKEN, start=NOW) as sim, httpx.Client(base_url=sim.url) as http:
        h = Harness(sim, engine, {"discovery": True})
        assert h.cycle(NOW).ok
        assert h.cycle(NOW + timedelta(minutes=15)).ok
        assert read_at(engine, "stream-0005") == NOW.replace(microsecond=0)  # skipped
        assert h.cycle(later).ok
        want = truth(
            http, "stream_viewer_stats", STREAM_COLUMNS, NOW - timedelta(days=7, minutes=5), later
        )
    assert read_at(engine, "stream-0005") == later
    assert archived(engine, stream_viewer_stats, STREAM_COLUMNS) == want
