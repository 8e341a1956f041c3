"""`archiver run`'s service loop (archiver/service/runner.py), driven in-process and fast.

The service's collaborators are faked where the point is the loop, not them: the instance lock
answers from a script, the scheduler runs its catch-up job at `start()`, the stop event records
its waits and never sleeps, the vendor client and the cycle are stand-ins that record what the
service did with them. Every step lands in one trace, so a test states the whole sequence an
operator would see (take the lock, migrate, schedule, cycle, wait, give the lock up). The
database (SQLite, migrated for real), the metrics registry and the webhook server are real.
"""

from __future__ import annotations

import base64
import errno
import logging
import os
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import Engine

from archiver.api.errors import AuthenticationError, ServerError, UnreachableError
from archiver.config import Settings, get_settings
from archiver.cycle.report import CycleReport
from archiver.errors import ConfigError, DatabaseError, LockError
from archiver.observability import Metrics
from archiver.service import gauges, runner
from archiver.store import db
from archiver.store.tables import sync_runs
from archiver.vocabulary import RunKind
from tests.processes import free_port

NOW = datetime(2026, 11, 20, 12, 20, tzinfo=UTC)
POLL = 0.5  # the standby poll of every test's settings; the fake stop event never sleeps it
SECRET = base64.b64encode(b"a webhook secret for the tests").decode()
Trace = list[str]


class Spent(AssertionError):
    """A scripted fake was asked more than its script holds: the service is looping."""


class Stop(threading.Event):
    """The service's stop event: each wait is recorded and returns at once."""

    def __init__(self, trace: Trace) -> None:
        super().__init__()
        self.trace = trace

    def wait(self, timeout: float | None = None) -> bool:
        self.trace.append(f"wait {timeout:g}")
        return self.is_set()


class Lock:
    """The instance lock, answering from scripts. `held` answers "stop" as True, after setting
    the stop event (SIGTERM arriving while the service watches its lock)."""

    problem: str | None = None

    def __init__(self, trace: Trace, stop: Stop) -> None:
        self.trace = trace
        self.stop = stop
        self.acquire: list[bool | Exception] = []  # an error is raised
        self.held: list[bool | str] = []

    def try_acquire(self) -> bool:
        if not self.acquire:
            raise Spent(f"try_acquire beyond its script: {self.trace}")
        got = self.acquire.pop(0)
        if isinstance(got, Exception):
            self.trace.append("acquire failed")
            raise got
        self.trace.append(f"acquire {got}")
        return got

    def still_held(self) -> bool:
        if not self.held:
            raise Spent(f"still_held beyond its script: {self.trace}")
        answer = self.held.pop(0)
        if answer == "stop":
            self.stop.set()
            answer = True
        self.trace.append(f"held? {answer}")
        return bool(answer)

    def release(self) -> None:
        self.trace.append("release")

    def describe(self) -> str:
        return "test lock"

    def holder(self) -> None:
        return None


class Client:
    """The vendor client a cycle gets: only its cancellation matters to the service."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.cancelled = threading.Event()
        self.options: dict[str, Any] = {}

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None

    def cancel(self) -> None:
        self.trace.append("cancel")
        self.cancelled.set()


class Scheduler:
    """APScheduler's BackgroundScheduler as the service uses it: the job added with
    `next_run_time=now` (the catch-up cycle) runs at `start()`; in a thread if `threaded`,
    in which case `start()` returns once the cycle is under way and `shutdown(wait=True)`
    waits for it."""

    def __init__(self, rig: Rig, **options: Any) -> None:
        self.rig = rig
        self.options = options
        self.jobs: list[tuple[Callable[[], None], Any, dict[str, Any]]] = []
        self.thread: threading.Thread | None = None
        rig.trace.append("scheduler")
        rig.schedulers.append(self)

    def add_job(self, func: Callable[[], None], trigger: Any, **options: Any) -> None:
        self.jobs.append((func, trigger, options))

    def start(self) -> None:
        self.rig.trace.append("start")
        for func, _, _ in self.jobs:
            if not self.rig.threaded:
                func()
                continue
            self.rig.cycling.clear()
            self.thread = threading.Thread(target=func)
            self.thread.start()
            assert self.rig.cycling.wait(30), "the catch-up cycle did not start"

    def shutdown(self, wait: bool = True) -> None:
        self.rig.trace.append(f"shutdown wait={wait}")
        if wait and self.thread is not None:
            self.thread.join(60)


@dataclass
class Rig:
    """The fakes of one test, and what they saw."""

    trace: Trace
    stop: Stop
    lock: Lock
    metrics: Metrics
    # What each cycle does, in turn (the cycle's client as argument); a cycle beyond the list
    # is a test failure.
    cycles: list[Callable[[Client], None]] = field(default_factory=list)
    report: Callable[[], CycleReport] = lambda: report()
    clients: list[Client] = field(default_factory=list)
    schedulers: list[Scheduler] = field(default_factory=list)
    made: Callable[[Client], None] = lambda client: None  # called as each client is made
    active: list[float | None] = field(default_factory=list)  # archiver_active, each cycle
    threaded: bool = False
    cycling: threading.Event = field(default_factory=threading.Event)
    service: runner.Service | None = None

    def value(self, name: str, **labels: str) -> float:
        got = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if got is None else got

    def start(self, settings: Settings, engine: Engine) -> runner.Service:
        self.service = runner.Service(settings, engine, metrics=self.metrics)
        self.service.stop = self.stop
        return self.service


def report(**fields: Any) -> CycleReport:
    """A cycle's report: 3 requests, 2 ok, 12 rows in two tables, 2.5 s."""
    values: dict[str, Any] = {
        "planned": 3,
        "requests": 3,
        "failed": 1,
        "rows": 12,
        "rows_by_table": {"stream_hours": 10, "account_days": 2},
        "duration": 2.5,
    }
    values.update(fields)
    return CycleReport(kind=RunKind.SERVICE, now=NOW, **values)


@pytest.fixture
def rig(monkeypatch: pytest.MonkeyPatch) -> Rig:
    trace: Trace = []
    stop = Stop(trace)
    made = Rig(trace=trace, stop=stop, lock=Lock(trace, stop), metrics=Metrics())

    class Clients:
        @staticmethod
        def from_options(options: object, **overrides: Any) -> Client:
            client = Client(trace)
            client.options = overrides
            made.clients.append(client)
            made.made(client)
            return client

    def run_cycle(
        *, engine: Engine, client: Client, settings: Settings, kind: RunKind, stop: Stop
    ) -> CycleReport:
        assert kind == RunKind.SERVICE
        assert stop is made.stop
        trace.append("cycle")
        made.active.append(made.metrics.registry.get_sample_value("archiver_active"))
        if not made.cycles:
            raise Spent(f"a cycle beyond the script: {trace}")
        made.cycling.set()
        made.cycles.pop(0)(client)
        return made.report()

    monkeypatch.setattr(runner, "lock_for", lambda engine: made.lock)
    monkeypatch.setattr(runner, "BackgroundScheduler", lambda **o: Scheduler(made, **o))
    monkeypatch.setattr(runner, "AnalyticsClient", Clients)
    monkeypatch.setattr(runner, "run_cycle", run_cycle)
    return made


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ARCHIVER_* setting nor .env but the test's own."""
    for name in [n for n in os.environ if n.startswith("ARCHIVER_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def archive(migrated_sqlite: Path, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty SQLite archive."""
    path = tmp_path / "archive.db"
    shutil.copyfile(migrated_sqlite, path)
    engine = db.make_engine(f"sqlite:///{path}")
    yield engine
    engine.dispose()


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Engine]:
    """A SQLite archive never migrated (a new file)."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'new.db'}")
    yield engine
    engine.dispose()


def config(engine: Engine, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": engine.url.render_as_string(hide_password=False),
        "api_token": "a-token-for-the-tests",
        "now": NOW,
        "standby_poll_seconds": POLL,
        "schedule_interval_seconds": 60,
        "misfire_grace_seconds": 240,
    }
    values.update(overrides)
    return get_settings(**values)


def stop_now(rig: Rig) -> Callable[[Client], None]:
    """A cycle during which SIGTERM arrives."""

    def cycle(client: Client) -> None:
        assert rig.service is not None
        rig.service.request_stop()

    return cycle


def ok(client: Client) -> None:
    """A cycle that just runs."""


def messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name in (runner.__name__, gauges.__name__) and r.levelno == level
    ]


def has_tables(engine: Engine) -> bool:
    return sa.inspect(engine).has_table("sync_runs")


# --- a run, start to end ------------------------------------------------------------------


def test_a_run_migrates_under_the_lock_runs_the_catch_up_cycle_and_stops_on_request(
    clean_env: None, rig: Rig, fresh: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    rig.lock.acquire = [True]
    rig.lock.held = [True]
    rig.cycles = [stop_now(rig)]
    settings = config(fresh)
    assert not has_tables(fresh)

    assert rig.start(settings, fresh).run() == 0

    assert rig.trace == [
        "acquire True",
        "scheduler",
        "start",
        "held? True",  # a cycle never writes without the lock
        "cycle",
        "cancel",  # the stop request cuts the cycle's requests in flight
        "wait 0.5",
        "shutdown wait=True",  # waits for a cycle in flight
        "release",
    ]
    assert has_tables(fresh)  # migrated, by the active instance
    assert rig.active == [1.0]  # active while it cycles
    assert rig.value("archiver_active") == 0.0  # and no more once stopped
    assert rig.value("archiver_cycles_total", status="ok") == 1.0  # into the metrics it got
    info = messages(caplog, logging.INFO)
    assert info[0] == "active: holding the test lock"
    assert info[-1] == "stopped"
    assert not messages(caplog, logging.ERROR)
    # One job: at once (the catch-up cycle), then on the trigger; one cycle at a time, late
    # cycles coalesced into one and run within the misfire grace (not APScheduler's 1 s).
    (scheduler,) = rig.schedulers
    assert scheduler.options == {
        "timezone": UTC,
        "job_defaults": {"coalesce": True, "max_instances": 1, "misfire_grace_time": 240},
    }
    ((_, trigger, options),) = scheduler.jobs
    assert isinstance(trigger, IntervalTrigger)
    assert trigger.interval == timedelta(seconds=60)
    assert abs(options["next_run_time"] - datetime.now(UTC)) < timedelta(minutes=5)


def test_the_cron_schedule_is_used_without_an_interval(
    clean_env: None, rig: Rig, archive: Engine
) -> None:
    rig.lock.acquire = [True]
    rig.lock.held = [True]
    rig.cycles = [stop_now(rig)]
    settings = config(archive, schedule_interval_seconds=None, schedule_minutes="5,35")
    assert rig.start(settings, archive).run() == 0
    ((_, trigger, _),) = rig.schedulers[0].jobs
    assert isinstance(trigger, CronTrigger)
    assert str(trigger.fields[trigger.FIELD_NAMES.index("minute")]) == "5,35"


def test_a_service_stopped_before_it_was_active_neither_locks_nor_migrates(
    clean_env: None, rig: Rig, fresh: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    service = rig.start(config(fresh), fresh)
    service.request_stop()
    assert service.run() == 0
    assert rig.trace == []
    assert not has_tables(fresh)
    assert messages(caplog, logging.INFO) == ["stopped"]


def test_a_standby_announces_itself_once_and_asks_for_the_lock_every_poll(
    clean_env: None, rig: Rig, archive: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    rig.lock.acquire = [False, False, False, True]
    rig.lock.held = [True]
    rig.cycles = [stop_now(rig)]
    assert rig.start(config(archive), archive).run() == 0
    assert rig.trace[:7] == [
        "acquire False",
        "wait 0.5",
        "acquire False",
        "wait 0.5",
        "acquire False",
        "wait 0.5",
        "acquire True",
    ]
    assert messages(caplog, logging.INFO)[:2] == [
        "standby: another archiver is active (test lock is taken); checking every 0.5s",
        "active: holding the test lock",
    ]
    assert rig.active == [1.0]


def test_the_active_service_checks_its_lock_every_poll_until_stopped(
    clean_env: None, rig: Rig, archive: Engine
) -> None:
    rig.lock.acquire = [True]
    rig.lock.held = [True, True, True, "stop"]
    rig.cycles = [ok]
    assert rig.start(config(archive), archive).run() == 0
    assert rig.trace == [
        "acquire True",
        "scheduler",
        "start",
        "held? True",
        "cycle",
        "wait 0.5",
        "held? True",
        "wait 0.5",
        "held? True",
        "wait 0.5",
        "held? True",  # SIGTERM meanwhile
        "wait 0.5",
        "shutdown wait=True",
        "release",
    ]


def test_a_lock_lost_and_taken_again_at_once_keeps_the_service_active(
    clean_env: None, rig: Rig, archive: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    rig.lock.acquire = [True, True]
    rig.lock.held = [True, False, "stop"]
    rig.cycles = [ok]
    assert rig.start(config(archive), archive).run() == 0
    assert rig.trace == [
        "acquire True",
        "scheduler",
        "start",
        "held? True",
        "cycle",
        "wait 0.5",
        "held? False",
        "acquire True",
        "wait 0.5",
        "held? True",
        "wait 0.5",
        "shutdown wait=True",
        "release",
    ]
    assert messages(caplog, logging.WARNING) == ["lost the test lock and took it again"]


def test_a_lost_lock_sends_the_service_back_to_standby_until_it_is_free_again(
    clean_env: None, rig: Rig, archive: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    rig.lock.acquire = [True, False, False, True]
    rig.lock.held = [True, False, True]
    rig.cycles = [ok, stop_now(rig)]
    assert rig.start(config(archive), archive).run() == 0
    assert rig.trace == [
        "acquire True",
        "scheduler",
        "start",
        "held? True",
        "cycle",
        "wait 0.5",
        "held? False",
        "acquire False",  # another instance took it
        "shutdown wait=True",
        "release",
        "acquire False",  # standby
        "wait 0.5",
        "acquire True",
        "scheduler",  # migrated again, and a catch-up cycle again
        "start",
        "held? True",
        "cycle",
        "cancel",
        "wait 0.5",
        "shutdown wait=True",
        "release",
    ]
    assert messages(caplog, logging.WARNING) == [
        "lost the test lock (database restarted or unreachable?); standing by until it can be "
        "taken again"
    ]
    info = messages(caplog, logging.INFO)
    assert info.count("active: holding the test lock") == 2
    assert any(m.startswith("standby: another archiver is active") for m in info)
    assert rig.active == [1.0, 1.0]
    assert rig.value("archiver_active") == 0.0


def test_a_lock_lost_mid_cycle_cuts_the_cycle_in_flight(
    clean_env: None, rig: Rig, archive: Engine
) -> None:
    rig.threaded = True
    rig.lock.acquire = [True, False, True]
    rig.lock.held = [True, False, True]
    seen: list[bool] = []

    def long_cycle(client: Client) -> None:
        # Still asking the vendor when the lock goes: it must not write on without it.
        seen.append(client.cancelled.wait(30))

    rig.cycles = [long_cycle, stop_now(rig)]
    assert rig.start(config(archive), archive).run() == 0
    assert seen == [True]
    assert rig.trace[:10] == [
        "acquire True",
        "scheduler",
        "start",
        "held? True",
        "cycle",
        "wait 0.5",
        "held? False",
        "acquire False",
        "cancel",
        "shutdown wait=True",
    ]


def test_a_lock_that_cannot_even_be_asked_for_again_cuts_the_cycle_in_flight(
    clean_env: None, rig: Rig, archive: Engine
) -> None:
    # The lock file deleted, and the directory no longer writable: `FileLock.try_acquire`
    # raises. The service ends with that error, and the cycle in flight, no longer under the
    # lock, must not write on meanwhile (`shutdown(wait=True)` waits for it).
    rig.threaded = True
    rig.lock.acquire = [True, LockError("cannot use the lock file x.lock: Permission denied")]
    rig.lock.held = [True, False]
    seen: list[bool] = []

    def long_cycle(client: Client) -> None:
        seen.append(client.cancelled.wait(30))

    rig.cycles = [long_cycle]
    with pytest.raises(LockError, match="Permission denied"):
        rig.start(config(archive), archive).run()
    assert seen == [True]
    assert rig.trace == [
        "acquire True",
        "scheduler",
        "start",
        "held? True",
        "cycle",
        "wait 0.5",
        "held? False",
        "acquire failed",
        "cancel",
        "shutdown wait=True",
        "release",
    ]
    assert rig.value("archiver_active") == 0.0


# --- the database ---------------------------------------------------------------------------


def test_a_database_down_at_migration_is_a_standby_not_an_exit(
    clean_env: None,
    rig: Rig,
    archive: Engine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = ["up", "down"]  # check_connection's answers: at start, then after the failure

    def check_connection(engine: Engine) -> None:
        state = down.pop(0) if down else "up"
        rig.trace.append(f"check {state}")
        if state == "down":
            raise DatabaseError("cannot reach the database (ARCHIVER_DATABASE_URL): refused")

    upgrades = ["fail"]

    def upgrade(engine: Engine, revision: str = "head") -> None:
        if upgrades:
            upgrades.pop()
            rig.trace.append("migrate failed")
            raise DatabaseError("migration failed: server closed the connection")
        rig.trace.append("migrate")

    monkeypatch.setattr(db, "check_connection", check_connection)
    monkeypatch.setattr(db, "upgrade", upgrade)
    rig.lock.acquire = [True, True]
    rig.lock.held = [True]
    rig.cycles = [stop_now(rig)]
    assert rig.start(config(archive), archive).run() == 0
    assert rig.trace == [
        "check up",  # reachable at start
        "acquire True",
        "migrate failed",
        "check down",
        "wait 0.5",  # stands by a poll
        "release",
        "acquire True",
        "migrate",
        "scheduler",
        "start",
        "held? True",
        "cycle",
        "cancel",
        "wait 0.5",
        "shutdown wait=True",
        "release",
    ]
    assert messages(caplog, logging.WARNING) == [
        "database unreachable (migration failed: server closed the connection); standing by "
        "until it is back"
    ]


def test_a_migration_that_fails_on_a_reachable_database_is_fatal(
    clean_env: None, rig: Rig, archive: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def upgrade(engine: Engine, revision: str = "head") -> None:
        raise DatabaseError("migration failed: the archive is newer than this archiver")

    monkeypatch.setattr(db, "upgrade", upgrade)
    rig.lock.acquire = [True]
    with pytest.raises(DatabaseError, match="newer than this archiver"):
        rig.start(config(archive), archive).run()
    assert rig.trace == ["acquire True", "release"]
    assert rig.value("archiver_active") == 0.0


def test_run_refuses_an_unreachable_database_before_anything_else(
    clean_env: None, rig: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[tuple[int, str]] = []
    monkeypatch.setattr(rig.metrics, "serve", lambda port, address: served.append((port, address)))
    engine = db.make_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    try:
        with pytest.raises(DatabaseError, match="cannot reach the database"):
            rig.start(config(engine, metrics_port=free_port()), engine).run()
    finally:
        engine.dispose()
    assert rig.trace == []
    assert served == []


def test_run_refuses_to_start_without_a_token(
    clean_env: None, rig: Rig, archive: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[Engine] = []
    monkeypatch.setattr(db, "check_connection", checked.append)
    with pytest.raises(ConfigError, match="ARCHIVER_API_TOKEN is not set"):
        rig.start(config(archive, api_token=None), archive).run()
    assert checked == []
    assert rig.trace == []


def test_runs_left_running_by_a_dead_process_are_marked_interrupted_once_active(
    clean_env: None, rig: Rig, archive: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with archive.begin() as conn:
        conn.execute(
            sa.insert(sync_runs).values(
                kind="service", started_at=NOW - timedelta(hours=1), status="running"
            )
        )
    rig.lock.acquire = [True]
    rig.lock.held = [True]
    rig.cycles = [stop_now(rig)]
    assert rig.start(config(archive), archive).run() == 0
    with archive.connect() as conn:
        row = conn.execute(sa.select(sync_runs.c.status, sync_runs.c.finished_at)).one()
    assert row.status == "interrupted"
    assert row.finished_at == NOW
    assert messages(caplog, logging.WARNING) == [
        "marked 1 run(s) left running by a stopped process interrupted"
    ]


def test_stale_runs_that_cannot_be_marked_are_a_warning_and_the_cycles_run(
    clean_env: None,
    rig: Rig,
    archive: Engine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def interrupt_stale_runs(**_: object) -> int:
        raise DatabaseError("database is locked")

    monkeypatch.setattr(runner, "interrupt_stale_runs", interrupt_stale_runs)
    rig.lock.acquire = [True]
    rig.lock.held = [True]
    rig.cycles = [stop_now(rig)]
    assert rig.start(config(archive), archive).run() == 0
    assert "cycle" in rig.trace
    assert messages(caplog, logging.WARNING) == ["could not mark stale runs: database is locked"]


# --- metrics and webhooks -------------------------------------------------------------------


def test_metrics_are_served_where_the_settings_say(
    clean_env: None,
    rig: Rig,
    archive: Engine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    served: list[tuple[int, str]] = []
    monkeypatch.setattr(rig.metrics, "serve", lambda port, address: served.append((port, address)))
    port = free_port()
    service = rig.start(config(archive, metrics_port=port, metrics_address="0.0.0.0"), archive)
    service.request_stop()
    assert service.run() == 0
    assert served == [(port, "0.0.0.0")]
    assert messages(caplog, logging.INFO) == [f"metrics on 0.0.0.0:{port}", "stopped"]


def test_no_metrics_port_no_metrics_server(
    clean_env: None, rig: Rig, archive: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[tuple[int, str]] = []
    monkeypatch.setattr(rig.metrics, "serve", lambda port, address: served.append((port, address)))
    service = rig.start(config(archive), archive)
    service.request_stop()
    assert service.run() == 0
    assert served == []


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (
            OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE)),
            f"({os.strerror(errno.EADDRINUSE)}); the port is taken: set ARCHIVER_METRICS_PORT "
            "to a free one",
        ),
        (
            OSError(errno.EADDRNOTAVAIL, os.strerror(errno.EADDRNOTAVAIL)),
            f"({os.strerror(errno.EADDRNOTAVAIL)}); check ARCHIVER_METRICS_ADDRESS",
        ),
        (OSError("no such interface"), "(no such interface); check ARCHIVER_METRICS_ADDRESS"),
    ],
)
def test_metrics_that_cannot_be_served_are_a_warning_not_an_exit(
    clean_env: None,
    rig: Rig,
    archive: Engine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    error: OSError,
    says: str,
) -> None:
    caplog.set_level(logging.INFO)

    def serve(port: int, address: str) -> None:
        raise error

    monkeypatch.setattr(rig.metrics, "serve", serve)
    port = free_port()
    rig.lock.acquire = [True]
    rig.lock.held = [True]
    rig.cycles = [stop_now(rig)]
    assert rig.start(config(archive, metrics_port=port), archive).run() == 0
    assert "cycle" in rig.trace  # a standby's port clash is no reason to stop
    assert messages(caplog, logging.WARNING) == [
        f"metrics not served: cannot listen on 127.0.0.1:{port} {says}"
    ]
    assert f"metrics on 127.0.0.1:{port}" not in messages(caplog, logging.INFO)


def test_webhooks_are_served_from_the_start_and_closed_at_the_end(
    clean_env: None,
    rig: Rig,
    archive: Engine,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    port = free_port()
    spool = tmp_path / "spool"
    settings = config(archive, webhook_port=port, webhook_secret=SECRET, webhook_spool_dir=spool)
    url = f"http://127.0.0.1:{port}/webhooks"
    answers: list[int] = []

    def standby(_: Client) -> None:
        answers.append(httpx.post(url, content=b"{}", timeout=30).status_code)
        stop_now(rig)(_)

    rig.lock.acquire = [True]
    rig.lock.held = [True]
    rig.cycles = [standby]
    assert rig.start(settings, archive).run() == 0
    assert len(answers) == 1
    assert answers[0] >= 400  # served: an unsigned event is refused
    assert f"feed webhooks on {url}, kept in {spool}" in messages(caplog, logging.INFO)
    with pytest.raises(httpx.ConnectError):
        httpx.post(url, content=b"{}", timeout=30)  # closed once the service stopped


def test_a_webhook_secret_without_a_port_serves_no_webhooks(
    clean_env: None, rig: Rig, archive: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    service = rig.start(config(archive, webhook_secret=SECRET), archive)
    service.request_stop()
    assert service.run() == 0
    assert messages(caplog, logging.INFO) == ["stopped"]


# --- stopping -------------------------------------------------------------------------------


def test_a_stop_request_names_the_signal_and_needs_no_cycle_in_flight(
    clean_env: None, rig: Rig, archive: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    service = rig.start(config(archive), archive)
    service.request_stop()  # no signal, no client: nothing to name or cut
    assert service.stop.is_set()
    assert messages(caplog, logging.INFO) == []
    service.request_stop(signal.SIGTERM)
    assert messages(caplog, logging.INFO) == [
        "received SIGTERM: stopping after the transaction in flight"
    ]
    assert rig.trace == []


def test_sigterm_and_sigint_stop_the_service(clean_env: None, rig: Rig, archive: Engine) -> None:
    saved = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        for signum in (signal.SIGTERM, signal.SIGINT):
            service = rig.start(config(archive), archive)
            service.stop = threading.Event()
            service.install_signal_handlers()
            assert signal.getsignal(signum) == service.request_stop
            os.kill(os.getpid(), signum)
            assert service.stop.wait(30)
    finally:
        signal.signal(signal.SIGTERM, saved[0])
        signal.signal(signal.SIGINT, saved[1])


def test_a_refused_secret_stops_the_service_with_the_reason(
    clean_env: None, rig: Rig, archive: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    refused = "401 Unauthorized: the API secret was refused (ARCHIVER_API_TOKEN)"

    def refuse() -> CycleReport:
        raise AuthenticationError(refused, status_code=401)

    rig.report = refuse
    rig.lock.acquire = [True]
    rig.lock.held = [True]
    rig.cycles = [ok]
    service = rig.start(config(archive), archive)
    assert service.run() == 1
    assert service.fatal == refused
    assert rig.trace[-4:] == ["cancel", "wait 0.5", "shutdown wait=True", "release"]
    assert messages(caplog, logging.ERROR) == [refused, f"stopped: {refused}"]
    assert rig.value("archiver_cycles_total", status="failed") == 0.0


# --- one cycle ------------------------------------------------------------------------------


def cycle_once(rig: Rig, settings: Settings, engine: Engine) -> runner.Service:
    rig.lock.held = [True]
    rig.cycles = [ok]
    service = rig.start(settings, engine)
    service.cycle()
    return service


def test_a_cycle_counts_its_outcome_rows_and_time_and_says_what_it_did(
    clean_env: None,
    rig: Rig,
    archive: Engine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    refreshed: list[object] = []
    monkeypatch.setattr(runner, "refresh_gauges", lambda *a: refreshed.append(a))
    service = cycle_once(rig, config(archive), archive)
    assert rig.value("archiver_cycles_total", status="ok") == 1.0
    assert rig.value("archiver_cycles_total", status="partial") == 0.0
    assert rig.value("archiver_rows_written_total", table="stream_hours") == 10.0
    assert rig.value("archiver_rows_written_total", table="account_days") == 2.0
    assert rig.value("archiver_cycle_duration_seconds_count") == 1.0
    assert rig.value("archiver_cycle_duration_seconds_sum") == 2.5
    (done,) = [r for r in caplog.records if r.getMessage().startswith("cycle done: ")]
    assert done.getMessage() == f"cycle done: {report().summary()}"
    assert done.__dict__["fields"] == {
        "requests": 3,
        "failed": 1,
        "rows": 12,
        "gaps": 0,
        "duration_s": 2.5,
    }
    assert refreshed == []  # nobody scrapes: COUNT(*) over the archive is not paid for
    (client,) = rig.clients
    assert client.options["on_response"] == service.metrics.on_response
    assert not client.cancelled.is_set()


def test_a_cycle_refreshes_the_gauges_when_metrics_are_served(
    clean_env: None, rig: Rig, archive: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    refreshed: list[tuple[object, ...]] = []
    monkeypatch.setattr(runner, "refresh_gauges", lambda *a: refreshed.append(a))
    settings = config(archive, metrics_port=free_port())
    service = cycle_once(rig, settings, archive)
    assert refreshed == [(settings, archive, service.metrics)]


def test_a_cycle_with_errors_counts_as_partial(clean_env: None, rig: Rig, archive: Engine) -> None:
    rig.report = lambda: report(errors=["stream_hours cam: 500"])
    cycle_once(rig, config(archive), archive)
    assert rig.value("archiver_cycles_total", status="partial") == 1.0
    assert rig.value("archiver_cycles_total", status="ok") == 0.0


@pytest.mark.parametrize(
    "error",
    [
        AuthenticationError("403 Forbidden from every endpoint", status_code=403),
        UnreachableError("no server at https://api.example (ARCHIVER_API_BASE_URL)"),
        ServerError("503 on every attempt", status_code=503),
        DatabaseError("database is locked"),
    ],
    ids=["403", "unreachable", "api", "database"],
)
def test_a_failed_cycle_is_counted_and_logged_and_the_service_runs_on(
    clean_env: None,
    rig: Rig,
    archive: Engine,
    caplog: pytest.LogCaptureFixture,
    error: Exception,
) -> None:
    def fail() -> CycleReport:
        raise error

    rig.report = fail
    service = cycle_once(rig, config(archive), archive)
    assert messages(caplog, logging.ERROR) == [f"cycle failed: {error}"]
    assert rig.value("archiver_cycles_total", status="failed") == 1.0
    assert service.fatal is None
    assert not service.stop.is_set()


def test_an_unexpected_failure_is_logged_with_its_traceback_and_counted(
    clean_env: None, rig: Rig, archive: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    def crash() -> CycleReport:
        raise KeyError("a bug")

    rig.report = crash
    service = cycle_once(rig, config(archive), archive)
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage() == "cycle failed unexpectedly"
    # The traceback, in the record (or already folded into its text by the token filter of
    # a logging setup some earlier test left behind).
    assert "Traceback (most recent call last)" in caplog.text
    assert "KeyError: 'a bug'" in caplog.text
    assert rig.value("archiver_cycles_total", status="failed") == 1.0
    assert not service.stop.is_set()


def test_a_stop_requested_while_the_client_is_made_cuts_it_before_the_cycle_asks(
    clean_env: None, rig: Rig, archive: Engine
) -> None:
    cancelled: list[bool] = []

    def stopped_meanwhile(client: Client) -> None:
        assert rig.service is not None
        rig.service.request_stop()  # the client is not the service's yet: not cut here

    rig.made = stopped_meanwhile
    rig.lock.held = [True]
    rig.cycles = [lambda client: cancelled.append(client.cancelled.is_set())]
    rig.start(config(archive), archive).cycle()
    assert cancelled == [True]


def test_a_cycle_without_the_lock_is_skipped_with_a_warning(
    clean_env: None, rig: Rig, archive: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    rig.lock.held = [False]
    rig.start(config(archive), archive).cycle()
    assert rig.trace == ["held? False"]
    assert messages(caplog, logging.WARNING) == ["skipping a cycle: the test lock is not held"]


def test_a_cycle_after_the_stop_request_does_nothing(
    clean_env: None, rig: Rig, archive: Engine
) -> None:
    service = rig.start(config(archive), archive)
    service.request_stop()
    service.cycle()
    assert rig.trace == []
