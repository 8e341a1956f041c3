"""The vendor's responses: envelopes, error bodies and each endpoint's JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from archiver.simulator import vendor
from archiver.simulator.buckets import floor, format_iso, next_start, utc
from archiver.simulator.model import Stream, Usage
from archiver.simulator.traffic import Traffic, refresh_time
from archiver.simulator.vendor import MAX_NAME_LENGTH, MAX_NAMES_PER_REQUEST, SERIES

Answer = tuple[int, dict[str, str], bytes]
Query = dict[str, list[str]]


class BadRequest(Exception):
    """A vendor-style 400: message plus per-field errors."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def json_answer(status: int, payload: object, headers: dict[str, str] | None = None) -> Answer:
    """A JSON answer as the vendor writes it (compact, UTF-8)."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    return status, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, body


def validation_error(field: str, message: str) -> Answer:
    """The vendor's 400 for a bad parameter."""
    return json_answer(
        400,
        {"status": "fail", "data": {"message": "Validation errors", "errors": {field: [message]}}},
    )


def failure(status: int, message: str) -> Answer:
    """The vendor's `fail` envelope (404, 405, 401, a bad control request)."""
    return json_answer(status, {"status": "fail", "data": {"message": message}})


def server_error(status: int, message: str, headers: dict[str, str] | None = None) -> Answer:
    """The vendor's `error` envelope (503, 429, and the simulator's own 500)."""
    payload = {"status": "error", "message": message, "code": status, "data": None}
    return json_answer(status, payload, headers)


def parse_time(query: Query, name: str) -> datetime:
    """A time parameter as the vendor reads it: a date, or ISO 8601 (naive means UTC)."""
    values = query.get(name)
    if not values or not values[0]:
        raise BadRequest(name, f"The {name} field is required.")
    text = values[0]
    try:
        if len(text) == 10:
            return datetime.fromisoformat(text).replace(tzinfo=UTC)
        return utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise BadRequest(name, f"The value '{text}' is not valid for {name}.") from None


def _page(query: Query) -> tuple[int, int]:
    try:
        page = int((query.get("page") or ["1"])[0])
        size = int((query.get("itemsOnPage") or ["10"])[0])
    except ValueError:
        raise BadRequest("page", "page and itemsOnPage must be integers.") from None
    if page < 1 or not 1 <= size <= 1000:
        raise BadRequest("itemsOnPage", "page >= 1 and 1 <= itemsOnPage <= 1000.")
    return page, size


def _bandwidth(usage: Usage) -> dict[str, dict[str, int]]:
    bytes_in, bytes_out = usage.bandwidth()
    r_in, r_out, r_seconds, c_in, c_out = usage.extra
    return {
        "bandwidth": {"bytesOut": bytes_out, "bytesIn": bytes_in},
        "standardStream": {
            "bytesOut": bytes_out - r_out - c_out,
            "bytesIn": bytes_in - r_in - c_in,
        },
        "restream": {"secondsUsed": r_seconds, "bytesOut": r_out, "bytesIn": r_in},
        "geoCascade": {"bytesOut": c_out, "bytesIn": c_in},
    }


def _geo(usage: Usage) -> dict[str, dict[str, int]]:
    return {
        country: {
            "publishes": v[0],
            "views": v[1],
            "publishDuration": v[2],
            "viewDuration": v[3],
            "bytesOut": v[5],
            "bytesIn": v[4],
        }
        for country, v in sorted(usage.geo.items())
        if any(v)
    }


def _tracking(usage: Usage, stream: Stream) -> list[dict[str, Any]]:
    return [
        {"trackingId": key, "bytesOut": value[1], "bytesIn": value[0]}
        for key, value in sorted(usage.tracking(stream).items())
    ]


def series(
    traffic: Traffic, name: str, query: Query, now: datetime, stranger: str | None = None
) -> dict[str, Any]:
    """The `data` of analytics endpoint `name` at `now`: purged buckets read as zero.

    A `stranger` (a fault) is one more stream in every per-stream answer, asked for or not.
    """
    spec = SERIES[name]
    raw = (query.get("resolution") or [""])[0]
    resolution = next((r for r in spec.resolutions if r.value.lower() == raw.lower()), None)
    if resolution is None:
        allowed = ", ".join(r.value for r in spec.resolutions)
        raise BadRequest("resolution", f"The value '{raw}' is not valid. Use {allowed}.")
    start, stop = parse_time(query, "startDate"), parse_time(query, "stopDate")
    if start >= stop:
        raise BadRequest("stopDate", "stopDate must be after startDate.")
    names: list[str] = []
    if spec.per_stream:
        names = query.get("streamNames", [])
        if not names:
            raise BadRequest("streamNames", "The streamNames field is required.")
        if len(names) > MAX_NAMES_PER_REQUEST:
            raise BadRequest(
                "streamNames", f"At most {MAX_NAMES_PER_REQUEST} stream names are allowed."
            )
        if any(len(n) > MAX_NAME_LENGTH for n in names):
            raise BadRequest(
                "streamNames", f"Stream names are at most {MAX_NAME_LENGTH} characters."
            )
    visible = refresh_time(now)
    retention = vendor.retention(traffic.config, spec.per_stream, resolution)
    purge_line = None if retention is None else now - retention
    bucket_list: list[datetime] = []
    current = floor(start, resolution)
    while current < stop:
        bucket_list.append(current)
        current = next_start(current, resolution)

    def render(stream: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for bucket in bucket_list:
            held = purge_line is None or bucket >= purge_line
            known = stream is None or stream in traffic.by_name
            usage = (
                traffic.bucket(stream, resolution, bucket, visible_until=visible)
                if held and known and bucket < visible
                else Usage()
            )
            if spec.kind == "tracking":
                known_stream = traffic.by_name.get(stream or "")
                out[format_iso(bucket)] = _tracking(usage, known_stream) if known_stream else []
            elif spec.kind == "geo":
                out[format_iso(bucket)] = _geo(usage)
            else:
                out[format_iso(bucket)] = _bandwidth(usage)
        return out

    def regroup(buckets: dict[str, Any]) -> dict[str, Any]:
        blocks = ("bandwidth", "standardStream", "restream", "geoCascade")
        return {b: {t: v[b] for t, v in buckets.items()} for b in blocks}

    if not spec.per_stream:
        rendered = render(None)
        return {"geo": rendered} if spec.kind == "geo" else regroup(rendered)
    reportable = [n for n in dict.fromkeys(names) if vendor.reportable(n)]
    if stranger is not None and stranger not in reportable:
        reportable.append(stranger)
    if spec.kind == "geo":
        return {"geo": {n: render(n) for n in reportable}}
    if spec.kind == "tracking":
        return {n: render(n) for n in reportable}
    return {n: regroup(render(n)) for n in reportable}


def monitoring(traffic: Traffic, query: Query, now: datetime) -> tuple[Answer, list[str]]:
    """The monitoring page asked for, and the names it lists."""
    page, size = _page(query)
    found = sorted(traffic.live_streams(now), key=lambda item: (-item[1].start, item[0].index))
    chosen = found[(page - 1) * size : page * size]
    items = []
    for stream, session, live in chosen:
        started = session.started_at()
        items.append(
            {
                "streamId": f"{vendor.ACCOUNT_ID}/{stream.name}",
                "streamName": stream.name,
                "clusterId": "sim-1",
                "clusters": ["sim-1"],
                "secureStream": False,
                "isRecordingAllowed": False,
                "multisource": False,
                "live": live,
                "startTime": started.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "viewerCount": 0,
                "hasRedundant": False,
                "restreaming": stream.restreams,
                "feeds": [],
            }
        )
    pages = (len(found) + size - 1) // size
    pagination = {"totalItems": len(found), "totalPages": pages, "itemsOnPage": len(items)}
    answer = json_answer(
        200, {"status": "success", "data": {"pagination": pagination, "data": items}}
    )
    return answer, [stream.name for stream, _, _ in chosen]


def publish_tokens(traffic: Traffic, query: Query) -> tuple[Answer, list[str]]:
    """The publish-token page asked for, and the exact names it reveals."""
    page, size = _page(query)
    tokens = vendor.publish_tokens(traffic)[(page - 1) * size : page * size]
    exact = [s["streamName"] for t in tokens for s in t["streams"] if s["isRegex"] is False]
    return json_answer(200, {"status": "success", "data": tokens}), exact
