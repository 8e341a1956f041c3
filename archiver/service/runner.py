"""`archiver run`: standby until the lock is ours, then a catch-up cycle and cron cycles."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import Engine

from archiver.api.client import AnalyticsClient
from archiver.api.errors import CYCLE_ENDING, ApiError, AuthenticationError
from archiver.config import Settings
from archiver.cycle.report import current_time
from archiver.cycle.sync import run_cycle
from archiver.errors import ArchiverError, DatabaseError
from archiver.observability import Metrics
from archiver.service.gauges import refresh_gauges, serve_metrics
from archiver.service.lock import InstanceLock, lock_for
from archiver.service.spool import spool_for
from archiver.service.webhooks import WebhookReceiver, WebhookServer
from archiver.store import db
from archiver.store.state import interrupt_stale_runs
from archiver.vocabulary import RunKind, RunStatus

log = logging.getLogger(__name__)


class Service:
    """The long-running archiver; `run()` blocks until SIGTERM/SIGINT or a fatal error."""

    def __init__(self, settings: Settings, engine: Engine, metrics: Metrics | None = None):
        self.settings = settings
        self.engine = engine
        self.metrics = metrics or Metrics()
        self.stop = threading.Event()
        self.lock: InstanceLock = lock_for(engine)
        self.fatal: str | None = None
        self._client: AnalyticsClient | None = None
        # Set by the run's first answer: from then on a refused connection is an outage.
        self._reached = threading.Event()

    def request_stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        """Finish the transaction in flight, then stop (safe from a signal handler)."""
        if signum is not None:
            log.info(
                "received %s: stopping after the transaction in flight", signal.Signals(signum).name
            )
        self.stop.set()
        if self._client is not None:
            self._client.cancel()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop the service gracefully."""
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def run(self) -> int:
        """Wait as a standby until active, then run cycles; returns the exit code.

        Losing the lock (a PostgreSQL restart ends the session that held it) sends the
        service back to standby until it can take the lock again: it never exits for that.
        """
        self.settings.require_token()
        db.check_connection(self.engine)
        serve_metrics(self.metrics, self.settings)
        webhooks = self._serve_webhooks()
        try:
            while self._become_active():
                try:
                    lost = not self._migrate() or self._run_active()
                finally:
                    self.lock.release()
                    self.metrics.active.set(0)
                if not lost:
                    break
        finally:
            if webhooks is not None:
                webhooks.stop()
        if self.fatal:
            log.error("stopped: %s", self.fatal)
            return 1
        log.info("stopped")
        return 0

    def _migrate(self) -> bool:
        """Migrate as the active instance; False if the database went away meanwhile."""
        try:
            # Only the active instance migrates: a standby of a newer version must not
            # change the schema under the older one still running.
            db.upgrade(self.engine)
        except DatabaseError as exc:
            try:
                db.check_connection(self.engine)
            except DatabaseError:
                log.warning("database unreachable (%s); standing by until it is back", exc)
                self.stop.wait(self.settings.standby_poll_seconds)
                return False
            raise  # reachable, so the migration itself failed: that will not fix itself
        self._interrupt_stale_runs()
        return True

    def _interrupt_stale_runs(self) -> None:
        try:
            with db.transaction(self.engine) as conn:
                stale = interrupt_stale_runs(conn=conn, at=current_time(self.settings))
        except ArchiverError as exc:
            log.warning("could not mark stale runs: %s", exc)
            return
        if stale:
            log.warning("marked %d run(s) left running by a stopped process interrupted", stale)

    def _serve_webhooks(self) -> WebhookServer | None:
        """Feed webhooks are served by every instance, active or standby: no event is lost
        while the vendor's URL points at a standby."""
        settings = self.settings
        if settings.webhook_port is None or settings.webhook_secret is None:
            return None
        receiver = WebhookReceiver(
            engine=self.engine,
            spool=spool_for(settings),
            secret=settings.webhook_secret.get_secret_value(),
            now=lambda: current_time(settings),
            max_body_bytes=settings.webhook_max_body_bytes,
            metrics=self.metrics,
        )
        try:
            server = WebhookServer(
                receiver, address=settings.webhook_address, port=settings.webhook_port
            ).start()
        except OSError as exc:
            raise ArchiverError(
                f"cannot serve webhooks on {settings.webhook_address}:{settings.webhook_port} "
                f"(ARCHIVER_WEBHOOK_PORT): {exc.strerror}"
            ) from exc
        log.info("feed webhooks on %s, kept in %s", server.url, receiver.applier.spool.root)
        return server

    def _become_active(self) -> bool:
        announced = False
        while not self.stop.is_set():
            if self.lock.try_acquire():
                log.info("active: holding the %s", self.lock.describe())
                self.metrics.active.set(1)
                return True
            if not announced:
                log.info(
                    "standby: another archiver is active (%s is taken); checking every %gs",
                    self.lock.describe(),
                    self.settings.standby_poll_seconds,
                )
                announced = True
            self.stop.wait(self.settings.standby_poll_seconds)
        return False

    def _trigger(self) -> Any:
        if self.settings.schedule_interval_seconds:
            return IntervalTrigger(seconds=self.settings.schedule_interval_seconds, timezone=UTC)
        return CronTrigger(minute=self.settings.schedule_minutes, timezone=UTC)

    def _run_active(self) -> bool:
        """Run cycles while the lock is ours; True if it was lost (go back to standby)."""
        scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                # APScheduler's default grace of 1 s would silently skip a late cycle.
                "misfire_grace_time": self.settings.misfire_grace_seconds,
            },
        )
        scheduler.add_job(
            self.cycle,
            self._trigger(),
            id="cycle",
            name="archiver cycle",
            next_run_time=datetime.now(UTC),  # the catch-up cycle, at once
        )
        scheduler.start()
        lost = False
        try:
            while not self.stop.wait(self.settings.standby_poll_seconds):
                if self.lock.still_held():
                    continue
                if self.lock.try_acquire():
                    log.warning("lost the %s and took it again", self.lock.describe())
                else:
                    log.warning(
                        "lost the %s (database restarted or unreachable?); standing by until "
                        "it can be taken again",
                        self.lock.describe(),
                    )
                    lost = True
                    break
        except BaseException:
            # The watch itself failed (the lock could not even be asked for again): the
            # service ends, and a cycle in flight must not write on without the lock.
            lost = True
            raise
        finally:
            client = self._client
            if lost and client is not None:
                client.cancel()
            scheduler.shutdown(wait=True)
        return lost and not self.stop.is_set()

    def cycle(self) -> None:
        """One scheduled cycle; failures are logged, never raised into the scheduler."""
        if self.stop.is_set():
            return
        if not self.lock.still_held():
            # Never write without the lock; the watcher takes it again or stands by.
            log.warning("skipping a cycle: the %s is not held", self.lock.describe())
            return
        settings = self.settings
        try:
            with AnalyticsClient.from_options(
                settings.client_options(),
                on_response=self.metrics.on_response,
                reached=self._reached,
            ) as client:
                self._client = client
                if self.stop.is_set():
                    client.cancel()
                report = run_cycle(
                    engine=self.engine,
                    client=client,
                    settings=settings,
                    kind=RunKind.SERVICE,
                    stop=self.stop,
                )
        except CYCLE_ENDING as exc:
            if isinstance(exc, AuthenticationError) and exc.status_code == 401:
                # A refused secret will not fix itself: stop with the reason, not loop.
                log.error("%s", exc)
                self.fatal = str(exc)
                self.request_stop()
                return
            # No server at the URL (yet) or a 403 everywhere: never the end of a long-running
            # service (DNS, the vendor, a permission may come back); one loud line naming the
            # setting, the next cycle asks again, the webhook receiver serves on.
            log.error("cycle failed: %s", exc)
            self.metrics.cycles.labels(status=RunStatus.FAILED).inc()
            return
        except (ApiError, ArchiverError) as exc:
            log.error("cycle failed: %s", exc)
            self.metrics.cycles.labels(status=RunStatus.FAILED).inc()
            return
        except Exception:
            log.exception("cycle failed unexpectedly")
            self.metrics.cycles.labels(status=RunStatus.FAILED).inc()
            return
        finally:
            self._client = None
        self.metrics.cycles.labels(status=RunStatus.OK if report.ok else RunStatus.PARTIAL).inc()
        for table, rows in report.rows_by_table.items():
            self.metrics.rows.labels(table=table).inc(rows)
        self.metrics.cycle_seconds.observe(report.duration)
        log.info(
            "cycle done: %s",
            report.summary(),
            extra={
                "fields": {
                    "requests": report.requests,
                    "failed": report.failed,
                    "rows": report.rows,
                    "gaps": len(report.gaps),
                    "duration_s": round(report.duration, 3),
                }
            },
        )
        if self.settings.metrics_port:
            # COUNT(*) over the archive is not free on a large database: only when scraped.
            refresh_gauges(self.settings, self.engine, self.metrics)
