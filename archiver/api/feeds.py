"""The vendor's feeds (publications into streams), read from GraphQL and parsed row by row.

A read walks a day of starts at a time, in the vendor's order, and hands each walk on as it
ends (`FeedWalks`); a walk that fails costs only its own day (the read is then partial, and
says so).

A row the vendor should never send (fields missing or of the wrong type, a time that is not
ISO 8601, `ended` before `started`, `active` disagreeing with `ended`, a `streamId` that is
not `<accountId>/<name>` or whose account differs from the read's, a name with control
characters or too long to store) is refused with its reason; the other rows go on. A name
the vendor cannot report on (`/`, `*`, `--`) is a well-formed row: it is returned for the
registry to refuse, as every source's names are.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from archiver.api.errors import CYCLE_ENDING, ApiError, GraphQLAnswerError, ResponseFormatError
from archiver.api.graphql import MAX_PAGES, PAGE_SIZE, BadRow, read_pages, row_time
from archiver.datasets import STREAM_SESSIONS
from archiver.text import printable
from archiver.vocabulary import storable

if TYPE_CHECKING:
    from archiver.api.client import AnalyticsClient


@dataclass(frozen=True)
class Feed:
    """One publication: `ended` None while it runs."""

    stream_name: str
    started: datetime
    ended: datetime | None
    active: bool


@dataclass
class FeedRead:
    """The well-formed feeds of a read, in the vendor's order, and the refused rows' reasons."""

    feeds: list[Feed] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    failed: str | None = None  # why some of the feeds could not be read: the read is partial


# The feeds of a read are walked a day of starts at a time: the vendor pages 100 feeds a
# query, and 10,000 streams hold over 100,000 feeds in its 30 days, past a walk's bound.
WINDOW = timedelta(days=1)
# Rows a read holds before it takes the account from them.
QUORUM = 100


def feed_filters(since: datetime, now: datetime, window: timedelta = WINDOW) -> list[Any]:
    """Filters whose walks together match, each feed once, every feed that started or ended
    at `since` or later, or still runs: those started before `since` that ended after it or
    run, then a window of starts at a time, the last one open (a vendor clock ahead)."""
    filters: list[Any] = [
        {
            "AND": [
                {"_operators": {"started": {"lt": since}}},
                {"OR": [{"_operators": {"ended": {"gte": since}}}, {"active": True}]},
            ]
        }
    ]
    start = since
    while start + window <= now:
        filters.append({"_operators": {"started": {"gte": start, "lt": start + window}}})
        start += window
    filters.append({"_operators": {"started": {"gte": start}}})
    return filters


class FeedWalks:
    """One read's walks, handed on walk by walk (`batches`): a read holds a day of feeds,
    not the 30 days (over 200,000 feeds, 300 MB, at 10,000 streams). The first walks are
    held together until QUORUM rows name the account (the one most of them name); each
    later walk is checked against it. After `batches` ends, `failed` says why some of the
    feeds could not be read (None: every walk answered)."""

    def __init__(
        self,
        client: AnalyticsClient,
        since: datetime,
        now: datetime,
        *,
        per_page: int = PAGE_SIZE,
        max_pages: int = MAX_PAGES,
    ) -> None:
        self.client, self.per_page, self.max_pages = client, per_page, max_pages
        self.filters = feed_filters(since, now, WINDOW)
        self.failed: str | None = None
        self._rows = 0  # rows parsed so far: a refused row is named by its place in the read

    def batches(self) -> Iterator[FeedRead]:
        """Each walk's feeds in the vendor's order, parsed (the first ones together)."""
        held: list[Any] = []
        account: str | None = None
        decided = False
        for items in self._walks():
            if decided:
                yield self._parse(items, account)
                continue
            held += items
            if len(held) >= QUORUM:
                account, decided = _majority(held), True
                yield self._parse(held, account)
                held = []
        if not decided:
            yield self._parse(held, _majority(held))

    def _walks(self) -> Iterator[list[Any]]:
        failed: list[str] = []
        stopped = ""
        # One walk after another: side by side, the vendor's faults would strike the walks
        # in a different order on each run.
        for filt in self.filters:
            try:
                items = read_pages(
                    self.client,
                    STREAM_SESSIONS.resolver,
                    STREAM_SESSIONS.fields,
                    {"filter": filt},
                    what="feeds",
                    per_page=self.per_page,
                    max_pages=self.max_pages,
                )
            except CYCLE_ENDING:
                raise
            except (ResponseFormatError, GraphQLAnswerError) as exc:
                failed.append(str(exc))  # this walk's answer: the next walk may fare better
                continue
            except ApiError as exc:
                # A status, a timeout or the deadline, after every retry: the next walks
                # would each wait them out again (an hour at 32 walks); next cycle reads them.
                failed.append(str(exc))
                stopped = "; the walks after it were not asked"
                break
            yield items
        if failed:
            self.failed = f"{len(failed)} of {len(self.filters)} walks failed, the first: "
            self.failed += failed[0] + stopped

    def _parse(self, items: list[Any], account: str | None) -> FeedRead:
        read = _parse_rows(items, account, self._rows)
        self._rows += len(items)
        read.refused = [self.client.scrub(reason, 300) for reason in read.refused]
        return read


def read_feeds(
    client: AnalyticsClient,
    since: datetime,
    now: datetime,
    *,
    per_page: int = PAGE_SIZE,
    max_pages: int = MAX_PAGES,
) -> FeedRead:
    """Every feed that started or ended at `since` or later, or still runs, in the vendor's
    order, in one FeedRead. A walk whose answer breaks the contract costs its own window:
    the read says so in `failed` and goes on. A status or a timeout that outlasted the
    retries ends the read there (it says so too); a refused secret or no server at the URL
    raises, as for every request."""
    walks = FeedWalks(client, since, now, per_page=per_page, max_pages=max_pages)
    read = FeedRead()
    for batch in walks.batches():
        read.feeds += batch.feeds
        read.refused += batch.refused
    read.failed = walks.failed
    return read


def parse_feeds(items: list[Any]) -> FeedRead:
    """Each row parsed on its own; the account is the one most rows name."""
    return _parse_rows(items, _majority(items), 0)


def _majority(items: list[Any]) -> str | None:
    accounts = Counter(
        item["accountId"]
        for item in items
        if isinstance(item, dict) and isinstance(item.get("accountId"), str)
    )
    return accounts.most_common(1)[0][0] if accounts else None


def _parse_rows(items: list[Any], account: str | None, before: int) -> FeedRead:
    read = FeedRead()
    for index, item in enumerate(items, start=before + 1):
        try:
            read.feeds.append(_feed(item, account))
        except BadRow as exc:
            read.refused.append(f"feed row {index} refused: {exc}")
    return read


def _feed(item: Any, account: str | None) -> Feed:
    if not isinstance(item, dict):
        raise BadRow("not an object")
    name, stream_id, account_id = (_text(item, k) for k in ("name", "streamId", "accountId"))
    if not storable(name):
        raise BadRow(f"the stream name {printable(name, 140)} cannot be stored")
    if account_id != account:
        raise BadRow(f"account {printable(account_id, 64)} differs from the answer's")
    if stream_id != f"{account_id}/{name}":
        raise BadRow(f"streamId {printable(stream_id, 200)} is not <accountId>/<name>")
    started = row_time(item.get("started"), "started")
    ended = None if item.get("ended") is None else row_time(item["ended"], "ended")
    active = item.get("active")
    if not isinstance(active, bool):
        raise BadRow("active is not true or false")
    if active != (ended is None):
        raise BadRow("active disagrees with ended")
    if ended is not None and ended < started:
        raise BadRow(f"ended {ended.isoformat()} before started {started.isoformat()}")
    return Feed(name, started, ended, active)


def _text(item: dict[str, Any], key: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise BadRow(f"{key} is not a string")
    return value
