"""The metrics: served on their port, and those that mirror the database (rows, gaps, data at
risk, streams, explained usage)."""

from __future__ import annotations

import errno
import logging

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.config import Settings
from archiver.cycle.report import current_time
from archiver.errors import ArchiverError
from archiver.observability import Metrics
from archiver.reading.attribution import read_attribution, unexplained_warning
from archiver.reading.status import read_status_now
from archiver.store import db
from archiver.store.tables import USAGE_TABLES

log = logging.getLogger(__name__)


def refresh_gauges(settings: Settings, engine: Engine, metrics: Metrics) -> None:
    """Set the metrics that mirror the database (rows, gaps, risk, streams)."""
    try:
        with db.transaction(engine) as conn:
            status = read_status_now(conn, settings)
            counts = {
                name: int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
                for name, t in USAGE_TABLES.items()
            }
    except ArchiverError as exc:
        log.warning("could not refresh metrics: %s", exc)
        return
    metrics.gaps.set(status.gaps)
    metrics.gap_buckets.set(status.gap_buckets)
    metrics.at_risk.set(status.at_risk_buckets)
    if status.last_success_at is not None:
        metrics.last_success.set(status.last_success_at.timestamp())
    for name, count in status.streams.items():
        metrics.streams.labels(status=name).set(count)
    for name, count in counts.items():
        metrics.rows_stored.labels(table=name).set(count)
    _refresh_attribution(settings, engine, metrics)


def _refresh_attribution(settings: Settings, engine: Engine, metrics: Metrics) -> None:
    try:
        with db.transaction(engine) as conn:
            attribution = read_attribution(conn, now=current_time(settings))
    except ArchiverError as exc:
        log.warning("could not refresh the explained-usage metric: %s", exc)
        return
    share = attribution.explained_share
    metrics.explained_share.set(float("nan") if share is None else share)
    warning = unexplained_warning(attribution, settings.unattributed_warn_percent)
    if warning is not None:
        log.warning("%s", warning)


def serve_metrics(metrics: Metrics, settings: Settings) -> None:
    """Serve the metrics, if a port is set; a port taken is a warning, never the end."""
    port, address = settings.metrics_port, settings.metrics_address
    if not port:
        return
    try:
        metrics.serve(port, address)
    except OSError as exc:
        # A second instance on the same host (a standby) must not die for its metrics.
        advice = (
            "the port is taken: set ARCHIVER_METRICS_PORT to a free one"
            if exc.errno == errno.EADDRINUSE
            else "check ARCHIVER_METRICS_ADDRESS"
        )
        log.warning(
            "metrics not served: cannot listen on %s:%d (%s); %s",
            address,
            port,
            exc.strerror or exc,
            advice,
        )
        return
    log.info("metrics on %s:%d", address, port)
