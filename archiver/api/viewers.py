"""The vendor's viewer statistics (StreamStat, AccountStat), read from GraphQL, parsed strictly.

A row is refused with its reason, and the other rows go on, when a count is not a
non-negative integer, its period is not 5 minutes starting on the 5-minute grid, a time is
not ISO 8601, its `streamId` is not `<accountId>/<name>` or names another account than the
answer's other rows, or it is the stat of a stream the read did not ask for.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from archiver.api.graphql import MAX_PAGES, PAGE_SIZE, BadRow, query, read_pages, row_time
from archiver.datasets import ACCOUNT_VIEWER_STATS, STREAM_VIEWER_STATS
from archiver.text import printable
from archiver.vocabulary import storable

if TYPE_CHECKING:
    from archiver.api.client import AnalyticsClient

PERIOD = timedelta(minutes=5)
COUNTS = {"active_viewers": "active", "views_started": "numStarted", "views_ended": "numEnded"}


@dataclass
class StatRead:
    """The well-formed rows of a read (archive rows without `fetched_at`/`is_final`), the
    refused rows' reasons, and the account the rows name (None: no row named one)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    account: str | None = None


def parse_stream_stats(items: list[Any], asked: Collection[str], account: str | None) -> StatRead:
    """StreamStat rows of streams in `asked`; the account is `account`, else the one most
    rows' `streamId` name."""
    if account is None:
        parts = Counter(
            item["streamId"].partition("/")[0]
            for item in items
            if isinstance(item, dict) and isinstance(item.get("streamId"), str)
        )
        account = parts.most_common(1)[0][0] if parts else None
    read = StatRead(account=account)
    for index, item in enumerate(items):
        try:
            stream = _stream(item, account, asked)
            read.rows.append({"stream_name": stream, **_stat(item)})
        except BadRow as exc:
            read.refused.append(f"stream viewer stat row {index + 1} refused: {exc}")
    return read


def parse_account_stats(items: list[Any]) -> StatRead:
    """AccountStat rows; the account is the one most rows name."""
    accounts = Counter(
        item["accountId"]
        for item in items
        if isinstance(item, dict) and isinstance(item.get("accountId"), str)
    )
    read = StatRead(account=accounts.most_common(1)[0][0] if accounts else None)
    for index, item in enumerate(items):
        try:
            row = _stat(item)
            if item.get("accountId") != read.account:
                named = printable(str(item.get("accountId")), 64)
                raise BadRow(f"accountId {named} names another account than the answer's")
            row["streams"] = _count(item, "streams")
            read.rows.append(row)
        except BadRow as exc:
            read.refused.append(f"account viewer stat row {index + 1} refused: {exc}")
    return read


def _stream(item: Any, account: str | None, asked: Collection[str]) -> str:
    if not isinstance(item, dict) or not isinstance(item.get("streamId"), str):
        raise BadRow("no streamId")
    stream_id: str = item["streamId"]
    owner, slash, name = stream_id.partition("/")
    if not slash or not storable(name):
        raise BadRow(f"streamId {printable(stream_id, 200)} is not <accountId>/<name>")
    if owner != account:
        raise BadRow(f"streamId {printable(stream_id, 200)} names another account")
    if name not in asked:
        raise BadRow(f"stream {printable(name, 140)} was not asked for")
    return name


def _stat(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise BadRow("not an object")
    start, end = row_time(item.get("from"), "from"), row_time(item.get("to"), "to")
    if end - start != PERIOD:
        raise BadRow(f"the period {start.isoformat()} to {end.isoformat()} is not 5 minutes")
    if start.minute % 5 or start.second or start.microsecond:
        raise BadRow(f"the period {start.isoformat()} is not on the 5-minute grid")
    return {"period_start": start, **{column: _count(item, key) for column, key in COUNTS.items()}}


def _count(item: dict[str, Any], key: str) -> int:
    value = item.get(key)
    if type(value) is not int or value < 0 or value > 2**31 - 1:
        raise BadRow(f"{key} {printable(repr(value), 40)} is not a non-negative integer")
    return value


def read_account_stats(
    client: AnalyticsClient, since: datetime, until: datetime, *, max_pages: int = MAX_PAGES
) -> StatRead:
    """The account's stats of the periods starting in `[since, until)` (raises ApiError)."""
    filt = {"_operators": {"from": {"gte": since, "lt": until}}}
    items = read_pages(
        client,
        ACCOUNT_VIEWER_STATS.resolver,
        ACCOUNT_VIEWER_STATS.fields,
        {"filter": filt},
        what="account viewer stats",
        per_page=PAGE_SIZE,
        max_pages=max_pages,
    )
    return _scrubbed(client, parse_account_stats(items))


def read_stream_stats(
    client: AnalyticsClient,
    account: str,
    names: list[str],
    since: datetime,
    until: datetime,
    *,
    max_pages: int = MAX_PAGES,
) -> StatRead:
    """The stats of `names` (at most `names_per_read`: a query of a few kilobytes) of the
    periods starting in `[since, until)` (raises ApiError)."""
    ids = [f"{account}/{name}" for name in names]
    filt = {"_operators": {"from": {"gte": since, "lt": until}, "streamId": {"in": ids}}}
    items = read_pages(
        client,
        STREAM_VIEWER_STATS.resolver,
        STREAM_VIEWER_STATS.fields,
        {"filter": filt},
        what=f"viewer stats of {len(names)} stream(s)",
        per_page=PAGE_SIZE,
        max_pages=max_pages,
    )
    return _scrubbed(client, parse_stream_stats(items, set(names), account))


def find_account(client: AnalyticsClient) -> str | None:
    """The account's id as a feed names it (None: no feed in the vendor's 30 days)."""
    data = query(client, "{feedFindMany(limit: 1) {accountId}}", what="the account's id")
    found = data.get("feedFindMany")
    first = found[0] if isinstance(found, list) and found else None
    value = first.get("accountId") if isinstance(first, dict) else None
    return value if isinstance(value, str) and storable(value) else None


def _scrubbed(client: AnalyticsClient, read: StatRead) -> StatRead:
    read.refused = [client.scrub(reason, 300) for reason in read.refused]
    return read
