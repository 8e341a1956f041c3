"""Logging set-up (text or JSON) with a filter that keeps the API token out of every record."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from archiver.config import MIN_TOKEN_LENGTH

if TYPE_CHECKING:
    from archiver.config import Settings

REDACTED = "[redacted]"


def _pattern(secret: str) -> re.Pattern[str]:
    # A real secret (8+ characters) is removed wherever it stands. A short one, accepted only
    # for a loopback simulator, is removed only as a whole word: redacting every letter `t`
    # would mangle every log line.
    if len(secret) >= MIN_TOKEN_LENGTH:
        return re.compile(re.escape(secret))
    return re.compile(rf"(?<![\w-]){re.escape(secret)}(?![\w-])")


class SecretFilter(logging.Filter):
    """Replaces every occurrence of the given secrets in a record's final message."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._patterns = [_pattern(s) for s in secrets if s]

    def _clean(self, text: str) -> str:
        for pattern in self._patterns:
            text = pattern.sub(REDACTED, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._patterns:
            return True
        record.msg, record.args = self._clean(record.getMessage()), None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_info, record.exc_text = None, self._clean(text)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            payload.update(fields)
        if record.exc_text:
            payload["exception"] = record.exc_text
        elif record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def setup_logging(settings: Settings) -> None:
    """Route the archiver's logs to stderr in the configured format, token redacted."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    secret = settings.api_token.get_secret_value() if settings.api_token else ""
    webhook = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
    handler.addFilter(SecretFilter([secret, webhook]))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    for noisy in ("httpx", "httpcore", "apscheduler.executors", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


class Metrics:
    """Prometheus metrics of one process, in a registry of their own."""

    def __init__(self) -> None:
        # Only the service keeps metrics: the read-only commands never load the library.
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.cycles = Counter("archiver_cycles", "Cycles run, by outcome", ["status"], registry=r)
        self.cycle_seconds = Histogram(
            "archiver_cycle_duration_seconds",
            "Duration of one cycle",
            registry=r,
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900),
        )
        self.requests = Counter(
            "archiver_requests",
            "HTTP responses from the vendor API, by endpoint and status",
            ["endpoint", "status"],
            registry=r,
        )
        self.rows = Counter(
            "archiver_rows_written", "Rows upserted, by table", ["table"], registry=r
        )
        self.rows_stored = Gauge(
            "archiver_rows_stored", "Rows in the archive, by table", ["table"], registry=r
        )
        self.gaps = Gauge("archiver_gaps", "Lost-bucket ranges recorded", registry=r)
        self.gap_buckets = Gauge("archiver_gap_buckets", "Buckets recorded as lost", registry=r)
        self.at_risk = Gauge(
            "archiver_buckets_at_risk",
            "Buckets purged by the vendor within 24 hours and not yet final in the archive",
            registry=r,
        )
        self.last_success = Gauge(
            "archiver_last_success_timestamp_seconds",
            "Unix time of the end of the last fully successful cycle",
            registry=r,
        )
        self.streams = Gauge(
            "archiver_tracked_streams", "Tracked streams, by status", ["status"], registry=r
        )
        self.active = Gauge(
            "archiver_active", "1 while this instance holds the lock, 0 in standby", registry=r
        )
        self._stream_source_metrics()

    def _stream_source_metrics(self) -> None:
        from prometheus_client import Counter, Gauge

        r = self.registry
        self.webhooks = Counter(
            "archiver_webhooks",
            "Webhook requests answered, by outcome (registered, ignored, bad_signature, ...)",
            ["outcome"],
            registry=r,
        )
        self.webhook_spool = Gauge(
            "archiver_webhook_spool_events",
            "Accepted webhook events kept on disk, not yet applied to the archive",
            registry=r,
        )
        self.explained_share = Gauge(
            "archiver_explained_egress_ratio",
            "Share of account egress over the last 7 days explained by archived streams",
            registry=r,
        )

    def on_response(self, endpoint: str, status: str) -> None:
        """Count one HTTP response, or a timeout or transport error (the client's hook)."""
        self.requests.labels(endpoint=endpoint, status=status).inc()

    def serve(self, port: int, address: str = "127.0.0.1") -> None:
        """Expose the metrics on `address:port`; OSError if the port is taken."""
        from prometheus_client import start_http_server

        start_http_server(port, addr=address, registry=self.registry)
