"""Proof for stream names: 14 simulated days of sessions from 5 minutes to 6 hours, a third of
names in exact-name tokens and the rest under regex tokens, webhooks losing 20% of events,
outages of 3 hours and 2 days; run with monitoring only, then + tokens, then + webhooks.

Verdict, per run: every stream some source revealed is archived exactly as the vendor held it
when it was revealed; the usage the archive cannot attribute equals the truth's (the traffic of
streams no source revealed in time), bucket for bucket; the share of account egress explained is
printed and written to `.reports/`.
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.reading.attribution import usage_attribution
from archiver.rules.plan import Policy
from archiver.service.webhooks import WebhookReceiver, WebhookServer
from archiver.simulator import SimConfig, Simulator
from archiver.simulator.server import WebhookTarget
from archiver.store.tables import tracked_streams
from archiver.timeutil import Resolution, ceil, format_iso
from archiver.vocabulary import RunKind
from tests.harness import Harness, compare_with_truth
from tests.simhelpers import TOKEN

pytestmark = [pytest.mark.e2e, pytest.mark.completeness]

T0 = datetime(2026, 11, 2, 0, 2, tzinfo=UTC)
DAYS = 14
END = T0 + timedelta(days=DAYS)
OUTAGES = [
    (T0 + timedelta(days=3, hours=10), T0 + timedelta(days=3, hours=13)),
    (T0 + timedelta(days=8, hours=6), T0 + timedelta(days=10, hours=6)),
]
CONFIG = SimConfig(
    streams=30,
    seed=31,
    origin=T0.replace(minute=0),
    initial_streams=15,
    growth_days=12,
    lifetime_days=1.5,
    unreportable_streams=1,
    session_minutes=(5, 360),
    exact_token_streams=10,
    session_chance_percent=20,
)
SECRET = base64.b64encode(b"proof webhook secret").decode()
POLICY = Policy(margin=timedelta(0))
REPORTS = Path(__file__).resolve().parents[1] / ".reports"
# The feed history is off in every mode: this proof measures the sources that cannot look
# back (the feeds, which can, are proven in tests/test_feeds_source.py).
MODES = {
    "monitoring": {"publish_tokens": False, "feeds": False},
    "tokens": {"publish_tokens": True, "feeds": False},
    "webhooks": {"publish_tokens": True, "feeds": False},
}


class Receiver(WebhookReceiver):
    """The archiver's receiver, down (503) while the service is down."""

    up = True

    def receive(self, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        return super().receive(body, headers) if self.up else (503, "down")


def _down(moment: datetime) -> bool:
    return any(start <= moment < stop for start, stop in OUTAGES)


def _view(
    engine: Engine, resolution: Resolution, start: datetime, stop: datetime
) -> dict[str, tuple[int, int, int, int]]:
    v = usage_attribution
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(v).where(
                v.c.resolution == resolution.value,
                v.c.period_start >= start,
                v.c.period_start < stop,
            )
        )
        return {
            format_iso(r.period_start): (
                int(r.account_bytes_out),
                int(r.streams_bytes_out),
                int(r.unattributed_bytes_in),
                int(r.unattributed_bytes_out),
            )
            for r in rows
        }


def _truth(
    http: httpx.Client, resolution: Resolution, start: datetime, stop: datetime
) -> dict[str, tuple[int, int, int, int]]:
    params = {
        "dataset": "attribution",
        "resolution": resolution.value,
        "start": format_iso(start),
        "stop": format_iso(stop),
    }
    response = http.get("/_sim/truth", params=params)
    assert response.status_code == 200, response.text
    return {
        r["period_start"]: (
            r["account_bytes_out"],
            r["streams_bytes_out"],
            r["unattributed_bytes_in"],
            r["unattributed_bytes_out"],
        )
        for r in response.json()["rows"]
    }


def _run(
    engine: Engine, mode: str, on_cycle: Callable[[datetime], None] | None = None
) -> list[str]:
    receiver = Receiver(engine=engine, secret=SECRET, now=lambda: clock[0])
    clock = [T0]
    server = WebhookServer(receiver, address="127.0.0.1", port=0).start()
    target = (
        WebhookTarget(url=server.url, secret=SECRET, loss_rate=0.2, seed=5)
        if mode == "webhooks"
        else None
    )
    lines: list[str] = []
    try:
        with Simulator(CONFIG, token=TOKEN, start=T0, webhook=target) as sim:
            overrides = {"retention_margin_minutes": 0, **MODES[mode]}
            harness = Harness(sim, engine, overrides)
            assert harness.cycle(T0, kind=RunKind.BACKFILL).ok
            moment = T0 + timedelta(hours=1)
            while moment <= END:
                clock[0] = moment
                receiver.up = not _down(moment)
                if receiver.up:
                    report = harness.cycle(moment)
                    assert report.ok, report.errors
                else:
                    sim.set_now(moment)  # the vendor's clock runs on; its webhooks are lost
                moment += timedelta(hours=1)
            last = END
            with httpx.Client(base_url=sim.url) as http:
                verdict = compare_with_truth(
                    engine=engine, http=http, first_now=T0, last_now=last, policy=POLICY
                )
                lines += verdict.lines
                problems = list(verdict.problems)
                for resolution, back in ((Resolution.HOUR, 7), (Resolution.DAY, 30)):
                    start = ceil(T0 - timedelta(days=back), resolution)
                    stop = POLICY.first_unfinal(resolution, last)
                    got, want = (
                        _view(engine, resolution, start, stop),
                        _truth(http, resolution, start, stop),
                    )
                    wrong = [k for k in sorted(set(got) | set(want)) if got.get(k) != want.get(k)]
                    unexplained = sum(v[3] for v in want.values())
                    lines.append(
                        f"unattributed {resolution.value:<5} buckets={len(want):>5} "
                        f"unequal={len(wrong)} unexplained_bytes_out={unexplained}"
                    )
                    if wrong:
                        k = wrong[0]
                        problems.append(
                            f"attribution {resolution}: {len(wrong)} unequal, e.g. {k}: "
                            f"archive {got.get(k)} truth {want.get(k)}"
                        )
                window = _truth(
                    http, Resolution.HOUR, T0, POLICY.first_unfinal(Resolution.HOUR, last)
                )
                account = sum(v[0] for v in window.values())
                explained = sum(v[1] for v in window.values())
                revealed = sim.revealed_payload()["streams"]
            with engine.connect() as conn:
                names = set(
                    conn.execute(
                        sa.select(tracked_streams.c.stream_name).where(
                            tracked_streams.c.status != "refused"
                        )
                    ).scalars()
                )
            tracked_count = len(names)
            # Every name a source revealed is tracked (the one the vendor cannot report on is
            # refused), and nothing else is.
            told = {n for n in revealed if "--" not in n}
            if names != told:
                problems.append(f"tracked {sorted(names ^ told)[:5]} differ from the revealed")
            lost = sum(1 for d in sim.webhook_log if d.lost or d.status != 200)
            share = explained / account
            lines.insert(
                0,
                f"stream sources: {mode:<10} {engine.dialect.name:<10} explained egress "
                f"{share * 100:6.2f}%  (streams revealed {len(revealed)}/"
                f"{len(sim.traffic.streams)}, tracked {tracked_count}, webhook events "
                f"{len(sim.webhook_log)} of which not delivered {lost})",
            )
            lines.append(f"problems: {len(problems)}")
            lines += problems[:10]
            assert problems == [], "\n".join(lines)
    finally:
        server.stop()
    return lines


@pytest.mark.parametrize("mode", list(MODES))
def test_every_revealed_stream_archived_and_the_rest_accounted_for(
    engine: Engine, mode: str
) -> None:
    lines = _run(engine, mode)
    REPORTS.mkdir(exist_ok=True)
    text = "\n".join(lines) + "\n"
    (REPORTS / f"stream-sources-{mode}-{engine.dialect.name}.txt").write_text(text)
    sys.stderr.write("\n" + text)
