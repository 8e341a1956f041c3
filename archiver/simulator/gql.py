"""`POST /graphql`: the vendor's GraphQL API, executed by graphql-core over the audience model.

Every model (Feed, StreamStat, AccountStat) has the resolvers `<model>FindOne(filter, skip,
sort)`, `<model>FindMany(filter, skip, limit, sort)`, `<model>Count(filter)`,
`<model>Connection(first, after, last, before, filter, sort)` and `<model>Pagination(page,
perPage, filter, sort)`, e.g.::

    {feedPagination(page: 2, perPage: 100, sort: STARTED_ASC,
                    filter: {OR: [{_operators: {started: {gte: "2026-11-01T00:00:00Z"}}},
                                  {active: true}]}) {
       count items {accountId streamId name started ended active}
       pageInfo {currentPage perPage pageCount itemCount hasNextPage hasPreviousPage}}}

Filters: field equality (`{active: true}`, `{ended: null}`), `_operators` (gt, gte, lt, lte,
ne, in, nin, exists) on the times and on `name`/`streamId`, `AND`/`OR` lists. Sorts:
`_ID_ASC` (the default: Feed by started, StreamStat by period then stream), `_ID_DESC`, and
`<FIELD>_ASC|DESC` on the times. A page above `graphql_max_per_page` (`perPage`, `first`,
`last`, `limit`; `limit` defaults to 100 or the cap) is an error. A query graphql-core
rejects answers HTTP 200 with `{"errors": [...], "data": null}`; a body that is not a
GraphQL request answers 400. Times answer as `2026-11-20T12:05:00.000Z`; a Date argument
is ISO 8601 or a date alone (UTC midnight). Stream stats filtered by `streamId` (equal to one,
or `in` a list) and stats bounded by `from`/`to` are computed for those streams or span only.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from graphql import GraphQLError, graphql_sync

from archiver.simulator.audience import Audience
from archiver.simulator.faults import Faults, SlowGate, broken_rows
from archiver.simulator.gqlschema import MODELS, RESOLVERS, build, matches, resolver_name
from archiver.simulator.rendering import Answer, json_answer
from archiver.simulator.vendor import ACCOUNT_ID

SCHEMA = build()
PERIOD = timedelta(minutes=5)


@dataclass(frozen=True)
class Context:
    """What one request's resolvers read: the truth, the clock, the page cap, the faults."""

    audience: Audience
    now: datetime
    max_per_page: int
    faults: Faults
    gate: SlowGate


def _bounds(filt: dict[str, Any] | None) -> tuple[datetime | None, datetime | None]:
    """Period starts a stats filter can match at most: its own and its AND lists' bounds on
    `from`/`to`, widened by a period (OR lists bound nothing)."""
    filt = filt or {}
    lows: list[datetime] = []
    highs: list[datetime] = []
    ops = filt.get("_operators") or {}
    for field in ("from", "to"):
        exact = [filt[field]] if filt.get(field) else []
        field_ops = ops.get(field) or {}
        lows += [*exact, *(field_ops[o] for o in ("gt", "gte") if field_ops.get(o))]
        highs += [*exact, *(field_ops[o] for o in ("lt", "lte") if field_ops.get(o))]
    for part in filt.get("AND") or []:
        low, high = _bounds(part)
        lows += [low + PERIOD] if low else []
        highs += [high - PERIOD] if high else []
    return (
        max(lows) - PERIOD if lows else None,
        min(highs) + PERIOD if highs else None,
    )


def _records(model: str, ctx: Context, filt: dict[str, Any] | None) -> list[dict[str, Any]]:
    audience, now = ctx.audience, ctx.now
    if model == "Feed":
        rows = [audience.feed_record(f, now) for f in audience.feeds(now)]
    else:
        low, high = _bounds(filt)
        start = max(low or audience.first_instant(), audience.first_instant())
        stop = min(high + PERIOD, now) if high else now
        if model == "StreamStat":
            stats = audience.stream_stats(start, stop, now, _streams(audience, filt))
            rows = [audience.stream_stat_record(r) for r in stats]
        else:
            rows = [
                audience.account_stat_record(r) for r in audience.account_stats(start, stop, now)
            ]
    return broken_rows(ctx.faults, model, [r for r in rows if matches(r, filt)])


def _streams(audience: Audience, filt: dict[str, Any] | None) -> list[int] | None:
    """The streams a stats filter can match at most, by its top-level `streamId` (equal to
    one, or `in` a list); None: any. Only which rows are built: `matches` still judges each."""
    filt = filt or {}
    wanted = filt.get("streamId")
    ids: list[Any] | None = [wanted] if isinstance(wanted, str) else None
    listed = ((filt.get("_operators") or {}).get("streamId") or {}).get("in")
    if isinstance(listed, list):
        ids = listed if ids is None else [i for i in ids if i in listed]
    if ids is None:
        return None
    prefix = f"{ACCOUNT_ID}/"
    found = (
        audience.traffic.by_name.get(i.removeprefix(prefix))
        for i in ids
        if isinstance(i, str) and i.startswith(prefix)
    )
    return sorted({stream.index for stream in found if stream is not None})


def _selected(model: str, ctx: Context, args: dict[str, Any]) -> list[dict[str, Any]]:
    """The sorted rows a request selects, remembered while the clock stands still."""
    filt, sort = args.get("filter"), args.get("sort")
    key = (model, ctx.now, repr(filt), sort, ctx.faults.graphql_broken)
    return ctx.audience.remember(key, lambda: _sorted(_records(model, ctx, filt), sort))


def _sorted(rows: list[dict[str, Any]], sort: str | None) -> list[dict[str, Any]]:
    sort = sort or "_ID_ASC"
    field, _, direction = sort.lower().rpartition("_")
    descending = direction == "desc"
    if field == "_id":
        return rows[::-1] if descending else rows
    return sorted(rows, key=lambda r: (r[field] is not None, r[field] or 0), reverse=descending)


def _size(ctx: Context, name: str, value: int) -> int:
    if not 0 <= value <= ctx.max_per_page:
        raise GraphQLError(f"{name} must be between 0 and {ctx.max_per_page}, got {value}")
    return value


def _find_many(model: str, _: Any, info: Any, **args: Any) -> Any:
    ctx: Context = info.context
    wanted = args.get("limit")
    limit = min(100, ctx.max_per_page) if wanted is None else _size(ctx, "limit", wanted)
    rows = _selected(model, ctx, args)
    skip = max(args.get("skip") or 0, 0)
    return rows[skip : skip + limit]


def _find_one(model: str, _: Any, info: Any, **args: Any) -> Any:
    rows = _selected(model, info.context, args)
    skip = max(args.get("skip") or 0, 0)
    return rows[skip] if skip < len(rows) else None


def _count(model: str, _: Any, info: Any, **args: Any) -> int:
    return len(_selected(model, info.context, args))


def _pagination(model: str, _: Any, info: Any, **args: Any) -> dict[str, Any]:
    ctx: Context = info.context
    page, per_page = args.get("page", 1), args.get("perPage", 20)
    if per_page < 1:
        raise GraphQLError("perPage must be at least 1")
    _size(ctx, "perPage", per_page)
    if page < 1:
        raise GraphQLError("page must be at least 1")
    rows = _selected(model, ctx, args)
    count = len(rows)
    pages = -(-count // per_page)
    shown, more = page, page < pages
    repeat = ctx.faults.graphql_repeat_page
    if repeat and page >= repeat:  # the fault: the page before again, and more forever
        shown, more = max(repeat - 1, 1), True
    if ctx.faults.graphql_slow_page and page == ctx.faults.graphql_slow_page:
        ctx.gate.hold(ctx.faults.graphql_slow_seconds)
    return {
        "count": count,
        "items": rows[(shown - 1) * per_page : shown * per_page],
        "pageInfo": {
            "currentPage": page,
            "perPage": per_page,
            "pageCount": pages,
            "itemCount": count,
            "hasNextPage": more,
            "hasPreviousPage": page > 1,
        },
    }


def _cursor(index: int) -> str:
    return base64.b64encode(f"offset:{index}".encode()).decode()


def _offset(cursor: str) -> int:
    try:
        return int(base64.b64decode(cursor.encode(), validate=True).decode().split(":")[1])
    except (ValueError, IndexError):
        raise GraphQLError(f"invalid cursor {cursor!r}") from None


def _connection(model: str, _: Any, info: Any, **args: Any) -> dict[str, Any]:
    ctx: Context = info.context
    rows = _selected(model, ctx, args)
    low = _offset(args["after"]) + 1 if args.get("after") else 0
    high = min(_offset(args["before"]), len(rows)) if args.get("before") else len(rows)
    first, last = args.get("first"), args.get("last")
    if first is not None:
        high = min(high, low + _size(ctx, "first", first))
    if last is not None:
        low = max(low, high - _size(ctx, "last", last))
    if first is None and last is None:
        high = min(high, low + ctx.max_per_page)
    more = high < len(rows)
    size = max(high - low, 1)
    repeat = ctx.faults.graphql_repeat_page
    if repeat and low // size + 1 >= repeat:  # the fault: the page before again, and more
        low, high, more = max(low - size, 0), max(low - size, 0) + size, True
    if ctx.faults.graphql_slow_page and low // size + 1 == ctx.faults.graphql_slow_page:
        ctx.gate.hold(ctx.faults.graphql_slow_seconds)
    edges = [{"node": rows[i], "cursor": _cursor(i)} for i in range(low, min(high, len(rows)))]
    return {
        "count": len(rows),
        "edges": edges,
        "pageInfo": {
            "hasNextPage": more,
            "hasPreviousPage": low > 0,
            "startCursor": edges[0]["cursor"] if edges else None,
            "endCursor": edges[-1]["cursor"] if edges else None,
        },
    }


_KINDS = {
    "FindOne": _find_one,
    "FindMany": _find_many,
    "Count": _count,
    "Connection": _connection,
    "Pagination": _pagination,
}
for _model in MODELS:
    for _kind in RESOLVERS:
        SCHEMA.query_type.fields[resolver_name(_model, _kind)].resolve = partial(  # type: ignore[union-attr]
            _KINDS[_kind], _model
        )


def answer(body: bytes, ctx: Context, errors_fault: bool) -> Answer:
    """Execute one GraphQL request body; `errors_fault`: answer `errors` with partial data."""
    try:
        request = json.loads(body or b"null")
        query = request["query"]
        variables = request.get("variables")
        operation = request.get("operationName")
        if not isinstance(query, str) or not isinstance(variables, dict | None):
            raise TypeError
    except (ValueError, TypeError, KeyError, AttributeError):
        message = "Must provide a JSON body with a query string (and variables as an object)."
        return json_answer(400, {"errors": [{"message": message}]})
    result = graphql_sync(
        SCHEMA, query, variable_values=variables, operation_name=operation, context_value=ctx
    )
    payload: dict[str, Any] = {"data": result.data}
    if result.errors:
        payload = {"errors": [e.formatted for e in result.errors], "data": result.data}
    elif errors_fault and result.data:
        first = next(iter(result.data))
        error = {"message": "Request timed out: partial results", "path": [first]}
        payload = {"errors": [error], "data": _halved(result.data)}
    return json_answer(200, payload)


def _halved(value: Any) -> Any:
    """Partial data: every list of items or edges cut to its first half."""
    if isinstance(value, dict):
        return {k: _halved(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_halved(v) for v in value[: len(value) // 2]]
    return value
