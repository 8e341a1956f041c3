"""The simulator's ground truth: what the vendor held, what it was asked, who revealed what."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from archiver.simulator import gqltruth, vendor
from archiver.simulator.audience import Audience
from archiver.simulator.buckets import Resolution, floor, format_iso, next_start
from archiver.simulator.model import GEO_FIELDS, Usage
from archiver.simulator.rendering import BadRequest, Query, parse_time
from archiver.simulator.traffic import Traffic, refresh_time

ATTRIBUTION = "attribution"
TRUTH_DATASETS = {
    "account_usage": "account/series",
    "account_geo_usage": "account/geo_series",
    "stream_usage": "streams/series",
    "stream_geo_usage": "streams/geo_series",
    "stream_tracking_usage": "tracking/streams/series",
}


@dataclass(frozen=True)
class LoggedRequest:
    """One analytics request as answered: for tests that judge what the archiver could know."""

    now: datetime
    path: str
    resolution: str
    start: datetime
    stop: datetime
    streams: tuple[str, ...]
    status: int
    truncated: bool


def usage_row(usage: Usage) -> dict[str, int]:
    """A bandwidth bucket in the archive's column names."""
    bytes_in, bytes_out = usage.bandwidth()
    r_in, r_out, r_seconds, c_in, c_out = usage.extra
    return {
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
        "standard_bytes_in": bytes_in - r_in - c_in,
        "standard_bytes_out": bytes_out - r_out - c_out,
        "restream_bytes_in": r_in,
        "restream_bytes_out": r_out,
        "restream_seconds": r_seconds,
        "cascade_bytes_in": c_in,
        "cascade_bytes_out": c_out,
    }


class Oracle:
    """What the simulator knows that the archiver must not: counts, requests, reveals, truth."""

    def __init__(self, traffic: Traffic, *, log_requests: bool = False) -> None:
        self.traffic = traffic
        self.audience = Audience(traffic)
        self.log_requests = log_requests
        self.stats: Counter[tuple[str, int]] = Counter()
        self.request_log: list[LoggedRequest] = []
        # name -> source ("monitoring", "token", "webhook") -> first time it told the name
        self.revealed: dict[str, dict[str, datetime]] = {}
        self._lock = threading.Lock()

    # --- what was asked ------------------------------------------------------------------

    def count(self, path: str, status: int) -> None:
        """Count one answer."""
        with self._lock:
            self.stats[(path, status)] += 1

    def stats_payload(self) -> dict[str, Any]:
        """Requests per path and status."""
        with self._lock:
            items = list(self.stats.items())
        per_path: dict[str, dict[str, int]] = {}
        for (path, status), count in sorted(items):
            per_path.setdefault(path, {})[str(status)] = count
        api_total = sum(c for (p, _), c in items if not p.startswith("/_sim/"))
        return {"requests": per_path, "api_requests": api_total}

    def log(self, now: datetime, path: str, query: Query, status: int, *, truncated: bool) -> None:
        """Keep an analytics request in `request_log` (when asked to log requests)."""
        if not self.log_requests or not path.startswith(vendor.ANALYTICS):
            return
        try:
            start, stop = parse_time(query, "startDate"), parse_time(query, "stopDate")
        except BadRequest:
            return
        entry = LoggedRequest(
            now,
            path,
            (query.get("resolution") or [""])[0],
            start,
            stop,
            tuple(query.get("streamNames", [])),
            status,
            truncated,
        )
        with self._lock:
            self.request_log.append(entry)

    # --- who revealed which name ---------------------------------------------------------

    def reveal(self, names: list[str], source: str, at: datetime) -> None:
        """Record that `source` told these names at `at` (the first time counts)."""
        with self._lock:
            for name in names:
                self.revealed.setdefault(name, {}).setdefault(source, at)

    def revealed_payload(self) -> dict[str, Any]:
        """Per name, when each source first told it to the archiver."""
        with self._lock:
            items = {n: dict(s) for n, s in self.revealed.items()}
        return {
            "streams": {
                name: {src: format_iso(at) for src, at in sorted(sources.items())}
                for name, sources in sorted(items.items())
            }
        }

    # --- what the vendor held ------------------------------------------------------------

    def truth_rows(self, query: Query, now: datetime) -> list[dict[str, Any]]:
        """Final values of one dataset and resolution in `[start, stop)`, archive column names
        (the GraphQL history's datasets: see gqltruth.py).

        Only buckets that are final at `now` and have any traffic appear; purges do not
        apply (this is what the vendor once held). Names the vendor cannot report on are
        left out.
        """
        dataset = (query.get("dataset") or [""])[0]
        if dataset == ATTRIBUTION:
            return self.attribution_rows(query, now)
        if dataset in gqltruth.DATASETS:
            return gqltruth.rows(self.audience, dataset, query, now)
        if dataset not in TRUTH_DATASETS:
            known = ", ".join([*TRUTH_DATASETS, ATTRIBUTION, *gqltruth.DATASETS])
            raise BadRequest("dataset", f"dataset must be one of {known}")
        spec = vendor.SERIES[TRUTH_DATASETS[dataset]]
        raw = (query.get("resolution") or [""])[0]
        resolution = next((r for r in spec.resolutions if r.value.lower() == raw.lower()), None)
        if resolution is None:
            raise BadRequest("resolution", f"resolution {raw!r} is not served by {dataset}")
        start, stop = parse_time(query, "start"), parse_time(query, "stop")
        visible = refresh_time(now)
        wanted = set(query.get("stream", []))
        streams: list[str | None] = [None]
        if spec.per_stream:
            streams = [
                s.name
                for s in self.traffic.streams
                if vendor.reportable(s.name) and (not wanted or s.name in wanted)
            ]
        rows: list[dict[str, Any]] = []
        for stream in streams:
            bucket = floor(start, resolution)
            while bucket < stop and next_start(bucket, resolution) <= visible:
                usage = self.traffic.bucket(stream, resolution, bucket, visible_until=visible)
                key: dict[str, Any] = {
                    "resolution": resolution.value,
                    "period_start": format_iso(bucket),
                }
                if stream is not None:
                    key = {"stream_name": stream, **key}
                if spec.kind == "tracking":
                    rows.extend(self._tracking_rows(key, usage, stream))
                elif spec.kind == "geo":
                    for country, values in sorted(usage.geo.items()):
                        if any(values):
                            rows.append(
                                {
                                    **key,
                                    "country": country,
                                    **dict(zip(GEO_FIELDS, values, strict=True)),
                                }
                            )
                elif not usage.is_empty():
                    rows.append({**key, **usage_row(usage)})
                bucket = next_start(bucket, resolution)
        return rows

    def _tracking_rows(
        self, key: dict[str, Any], usage: Usage, stream: str | None
    ) -> list[dict[str, Any]]:
        """One bucket's rows per tracking ID, in the archive's column names."""
        known = self.traffic.by_name.get(stream or "")
        split = usage.tracking(known) if known is not None else {}
        return [
            {**key, "tracking_id": tracking_id, "bytes_in": value[0], "bytes_out": value[1]}
            for tracking_id, value in sorted(split.items())
        ]

    def attribution_rows(self, query: Query, now: datetime) -> list[dict[str, Any]]:
        """Per final bucket: the account, the streams some source revealed in time, the rest.

        A revealed stream explains a bucket when the vendor still held the bucket's
        per-stream data when the name was first revealed (by the sources asked for).
        """
        raw = (query.get("resolution") or [""])[0]
        resolution = next(
            (r for r in (Resolution.HOUR, Resolution.DAY) if r.value.lower() == raw.lower()), None
        )
        if resolution is None:
            raise BadRequest("resolution", "attribution is served per Hour and per Day")
        start, stop = parse_time(query, "start"), parse_time(query, "stop")
        wanted = set(",".join(query.get("sources", [])).split(",")) - {""}
        retention = timedelta(days=self.traffic.config.stream_retention_days)
        visible = refresh_time(now)
        with self._lock:
            revealed = {n: dict(s) for n, s in self.revealed.items()}
        first_told: dict[str, datetime] = {}
        for name, sources in revealed.items():
            times = [at for src, at in sources.items() if not wanted or src in wanted]
            if times and name in self.traffic.by_name and vendor.reportable(name):
                first_told[name] = min(times)
        rows: list[dict[str, Any]] = []
        bucket = floor(start, resolution)
        while bucket < stop and next_start(bucket, resolution) <= visible:
            account = self.traffic.bucket(None, resolution, bucket, visible_until=visible)
            a_in, a_out = account.bandwidth()
            s_in = s_out = 0
            for name, told in first_told.items():
                if bucket >= told - retention:
                    usage = self.traffic.bucket(name, resolution, bucket, visible_until=visible)
                    b_in, b_out = usage.bandwidth()
                    s_in, s_out = s_in + b_in, s_out + b_out
            if a_in or a_out:
                rows.append(
                    {
                        "resolution": resolution.value,
                        "period_start": format_iso(bucket),
                        "account_bytes_in": a_in,
                        "account_bytes_out": a_out,
                        "streams_bytes_in": s_in,
                        "streams_bytes_out": s_out,
                        "unattributed_bytes_in": a_in - s_in,
                        "unattributed_bytes_out": a_out - s_out,
                    }
                )
            bucket = next_start(bucket, resolution)
        return rows
