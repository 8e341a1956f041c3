"""`archiver run` as a real process: cycles, graceful stop, one active instance, metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from archiver.simulator import SimConfig, Simulator
from archiver.store import db
from archiver.store.tables import USAGE_TABLES, sync_runs, tracked_streams
from tests.pgcluster import private_cluster
from tests.processes import Process, free_port, service_cycles, wait_for
from tests.simhelpers import TOKEN

pytestmark = pytest.mark.e2e


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    with Simulator(SimConfig(streams=8, seed=2), token=TOKEN, clock="real") as sim:
        yield sim


def test_cycles_run_and_sigterm_stops_cleanly(
    start_service: Callable[..., Process], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'archive.db'}"
    process = start_service("one", url)
    wait_for(lambda: service_cycles(url) >= 2, what="two cycles")
    process.popen.send_signal(signal.SIGTERM)
    # A generous bound: a service ignoring SIGTERM would run cycles every second for good.
    assert process.popen.wait(60) == 0
    text = process.text()
    assert "received SIGTERM" in text
    assert "cycle done: service:" in text
    assert text.rstrip().endswith("stopped")
    assert TOKEN not in text


def _standby_takeover(start_service: Callable[..., Process], url: str) -> None:
    first = start_service("first", url)
    wait_for(lambda: "active: holding" in first.text(), what="first active")
    second = start_service("second", url)
    wait_for(lambda: "standby: another archiver is active" in second.text(), what="second standby")
    assert "active: holding" not in second.text()
    cycles = service_cycles(url)
    first.popen.kill()  # SIGKILL: no chance to release anything
    first.popen.wait(10)
    wait_for(lambda: "active: holding" in second.text(), timeout=20, what="takeover")
    wait_for(lambda: service_cycles(url) > cycles + 1, what="cycles after takeover")
    second.popen.send_signal(signal.SIGINT)
    assert second.popen.wait(10) == 0


def test_second_instance_on_sqlite_waits_then_takes_over(
    start_service: Callable[..., Process], tmp_path: Path
) -> None:
    _standby_takeover(start_service, f"sqlite:///{tmp_path / 'archive.db'}")


@pytest.mark.postgres
def test_second_instance_on_postgresql_waits_then_takes_over(
    start_service: Callable[..., Process], postgres_url: str
) -> None:
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sync_runs.delete())
    engine.dispose()
    _standby_takeover(start_service, postgres_url)


def test_status_and_metrics_match_the_database(
    start_service: Callable[..., Process], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'archive.db'}"
    port = free_port()
    process = start_service(
        "metrics", url, ARCHIVER_METRICS_PORT=str(port), ARCHIVER_SCHEDULE_INTERVAL_SECONDS="3600"
    )
    wait_for(lambda: service_cycles(url) >= 1, what="the catch-up cycle")

    def scrape() -> dict[str, float]:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        values = {}
        for line in text.splitlines():
            if line.startswith("archiver_") and " " in line:
                key, value = line.rsplit(" ", 1)
                values[key] = float(value)
        return values

    wait_for(lambda: 'archiver_rows_stored{table="account_usage"}' in scrape(), what="gauges")
    metrics = scrape()
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        for name, table in USAGE_TABLES.items():
            count = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            assert metrics[f'archiver_rows_stored{{table="{name}"}}'] == count
        active = conn.execute(
            sa.select(sa.func.count())
            .select_from(tracked_streams)
            .where(tracked_streams.c.status == "active")
        ).scalar_one()
        requests = conn.execute(sa.select(sync_runs.c.requests)).scalar_one()
    engine.dispose()
    assert metrics['archiver_tracked_streams{status="active"}'] == active
    assert metrics['archiver_cycles_total{status="ok"}'] == 1
    assert metrics["archiver_active"] == 1
    served = sum(
        v
        for k, v in metrics.items()
        if k.startswith("archiver_requests_total")
        and 'status="200"' in k
        and "publish_token" not in k
        and "graphql" not in k
    )
    assert served == requests + 1  # every planned request plus discovery's one page
    # The feeds' GraphQL pages are counted under their own endpoint (paging: test_feeds_*).
    assert metrics['archiver_requests_total{endpoint="graphql",status="200"}'] >= 1
    # The publish token list: its one page of tokens, then the empty page that ends it.
    assert metrics['archiver_requests_total{endpoint="publish_token/list",status="200"}'] == 2

    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
    env["ARCHIVER_DATABASE_URL"] = url
    status = subprocess.run(
        [sys.executable, "-m", "archiver", "status", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    payload = json.loads(status.stdout)
    assert payload["streams"]["active"] == active
    assert payload["last_run"]["requests"] == requests
    assert payload["gaps"] == 0
    health = subprocess.run(
        [sys.executable, "-m", "archiver", "health"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert health.returncode == 0, health.stderr
    process.popen.send_signal(signal.SIGTERM)
    assert process.popen.wait(10) == 0


def test_a_wrong_token_stops_the_service_with_the_setting_named(
    start_service: Callable[..., Process], tmp_path: Path
) -> None:
    process = start_service(
        "badtoken", f"sqlite:///{tmp_path / 'a.db'}", ARCHIVER_API_TOKEN="not-the-token-42"
    )
    assert process.popen.wait(30) == 1
    text = process.text()
    assert "check ARCHIVER_API_TOKEN" in text.strip().splitlines()[-1]
    assert "not-the-token-42" not in text


@pytest.mark.postgres
def test_the_service_outlives_a_postgresql_outage(start_service: Callable[..., Process]) -> None:
    # A private server: stopping the machine's would break every test running beside this one.
    with private_cluster() as cluster:
        url = cluster.url()
        engine = db.make_engine(url)
        db.upgrade(engine)
        engine.dispose()
        process = start_service("outage", url, ARCHIVER_STANDBY_POLL_SECONDS="0.5")
        wait_for(lambda: "active: holding" in process.text(), what="active")
        wait_for(lambda: service_cycles(url) >= 2, what="cycles before the outage")
        try:
            cluster.stop()
            lost = "standing by until it can be taken again"
            wait_for(lambda: lost in process.text(), what="the lock lost")
            # The outage lasts until the service has failed to take the lock again twice.
            tried = "cannot take the instance lock"
            wait_for(lambda: process.text().count(tried) >= 2, what="two failed attempts")
        finally:
            cluster.start()
        before = service_cycles(url)
        wait_for(lambda: service_cycles(url) >= before + 2, timeout=60, what="cycles after")
        assert process.popen.poll() is None
        assert process.text().count("active: holding") == 2
        process.popen.send_signal(signal.SIGTERM)
        assert process.popen.wait(15) == 0
        assert "Traceback" not in process.text()


def test_active_and_standby_both_register_streams_from_feed_webhooks(
    start_service: Callable[..., Process], tmp_path: Path
) -> None:
    import base64

    from archiver.service.webhooks import sign

    secret = base64.b64encode(b"webhook secret of the test").decode()
    url = f"sqlite:///{tmp_path / 'hooks.db'}"
    ports = [free_port(), free_port()]
    common = {"ARCHIVER_WEBHOOK_SECRET": secret, "ARCHIVER_SCHEDULE_INTERVAL_SECONDS": "3600"}
    metrics_port = free_port()
    active = start_service(
        "hooks-active",
        url,
        ARCHIVER_WEBHOOK_PORT=str(ports[0]),
        ARCHIVER_METRICS_PORT=str(metrics_port),
        **common,
    )
    wait_for(lambda: "active: holding" in active.text(), what="the active instance")
    # The metrics include the share of egress explained by archived streams.
    wait_for(
        lambda: (
            "archiver_explained_egress_ratio "
            in httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        ),
        what="the explained-egress metric",
    )
    standby = start_service("hooks-standby", url, ARCHIVER_WEBHOOK_PORT=str(ports[1]), **common)
    wait_for(lambda: "standby:" in standby.text(), what="the standby instance")
    for port, name in zip(ports, ("via-active", "via-standby"), strict=True):
        body = json.dumps(
            {"type": "feeds", "event": "started", "timestamp": 1, "data": {"name": name}}
        ).encode()
        headers = {"X-Millicast-Signature": sign(base64.b64decode(secret), body)}
        answer = httpx.post(f"http://127.0.0.1:{port}/webhooks", content=body, headers=headers)
        assert answer.status_code == 200, answer.text
        wrong = httpx.post(f"http://127.0.0.1:{port}/webhooks", content=body)
        assert wrong.status_code == 400
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        sources = {
            r.stream_name: r.source
            for r in conn.execute(
                sa.select(tracked_streams.c.stream_name, tracked_streams.c.source)
            )
        }
    engine.dispose()
    assert sources["via-active"] == sources["via-standby"] == "webhook"
    for process in (standby, active):
        process.popen.send_signal(signal.SIGTERM)
        assert process.popen.wait(10) == 0
        assert secret not in process.text()
