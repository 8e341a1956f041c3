"""Each archived dataset, declared once (CONTRIBUTING.md): plain data, no HTTP nor SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from archiver.columns import FETCHED_AT, IS_FINAL, PERIOD_START, STREAM, Column, Kind, counts
from archiver.timeutil import Resolution


class Dataset(StrEnum):
    """What the archive keeps; each value is also the name of its table."""

    ACCOUNT_USAGE = "account_usage"
    ACCOUNT_GEO_USAGE = "account_geo_usage"
    STREAM_USAGE = "stream_usage"
    STREAM_GEO_USAGE = "stream_geo_usage"
    STREAM_TRACKING_USAGE = "stream_tracking_usage"
    STREAM_SESSIONS = "stream_sessions"
    STREAM_VIEWER_STATS = "stream_viewer_stats"
    ACCOUNT_VIEWER_STATS = "account_viewer_stats"


class Answer(StrEnum):
    """The shape of an endpoint's answer: `archiver.api.endpoints` has one parser per shape."""

    USAGE = "usage"  # blocks (bandwidth, restream, ...), then buckets
    STREAM_USAGE = "stream_usage"  # stream, then blocks, then buckets
    GEO = "geo"  # `geo`, then buckets, then countries
    STREAM_GEO = "stream_geo"  # `geo`, then stream, then buckets, then countries
    STREAM_TRACKING = "stream_tracking"  # stream, then buckets, then a list per trackingId


class Keys(StrEnum):
    """Which buckets of a write a rollup statement recomputes."""

    HOUR_DAYS = "hour_days"  # the days of the Hour rows written
    DAY_ROWS = "day_rows"  # the Day rows written
    MONTHS = "months"  # the months of the Hour and Day rows written
    DAY_MONTHS = "day_months"  # the months of the Day rows written
    PERIODS = "periods"  # the Hour and Day buckets written, all streams of each


@dataclass(frozen=True)
class Rollup:
    """One statement of `archiver.store.rollup`, run in order after a write of the dataset."""

    statement: str
    keys: Keys


class Finality(StrEnum):
    """When a row of a GraphQL dataset is final: never written again."""

    PERIOD = "period"  # read the settle time after its period ended (`is_final`, as a bucket)
    ENDED = "ended"  # once its `ended` is known: a stored row changes only while it is NULL


@dataclass(frozen=True)
class Endpoint:
    """A REST dataset: its endpoint and resolutions, answer, table, rollups and views."""

    dataset: Dataset
    path: str
    resolutions: tuple[Resolution, ...]
    takes_streams: bool  # 1 to 10 `streamNames` a request, the vendor's per-stream retention
    answer: Answer = Answer.USAGE
    columns: tuple[Column, ...] = ()
    period_index: bool = False  # an index on (resolution, period_start): "all streams at t"
    rollups: tuple[Rollup, ...] = ()
    marks_seen: bool = False  # its rows tell when each stream last had traffic
    views: tuple[str, ...] = ()  # exported beside the table (created by its migrations)

    @property
    def table(self) -> str:
        """Dataset names are the archive's table names."""
        return self.dataset.value

    @property
    def table_columns(self) -> tuple[Column, ...]:
        """Its table, key first: the bucket (the stream first), its columns, the bookkeeping."""
        stream = (STREAM,) if self.takes_streams else ()
        resolution = Column("resolution", Kind.CODE, key=True, length=5)
        return (*stream, resolution, PERIOD_START, *self.columns, FETCHED_AT, IS_FINAL)

    @property
    def indexes(self) -> dict[str, tuple[str, ...]]:
        """Its table's indexes beside the key, by name."""
        period: tuple[str, ...] = ("resolution", "period_start")
        return {f"ix_{self.table}_period": period} if self.period_index else {}


_USAGE = counts("bytes_in bytes_out") + counts(
    "standard_bytes_in standard_bytes_out restream_bytes_in restream_bytes_out "
    "restream_seconds cascade_bytes_in cascade_bytes_out",
    nullable=True,
)
_GEO = (
    Column("country", Kind.CODE, key=True, length=8),
    *counts("publishes views publish_seconds view_seconds bytes_in bytes_out"),
)
# The tracking ID of a subscribe token; '' is traffic under no tracking ID.
MAX_TRACKING_ID_LENGTH = 128
_TRACKING = (
    Column("tracking_id", Kind.CODE, key=True, length=MAX_TRACKING_ID_LENGTH),
    *counts("bytes_in bytes_out"),
)

ACCOUNT_SERIES = Endpoint(
    dataset=Dataset.ACCOUNT_USAGE,
    path="/api/analytics/account/series",
    resolutions=(Resolution.HOUR, Resolution.DAY, Resolution.MONTH),
    takes_streams=False,
    answer=Answer.USAGE,
    columns=_USAGE,
    rollups=(
        Rollup("supersede_account", Keys.DAY_ROWS),
        Rollup("account_daily_hours", Keys.HOUR_DAYS),
    ),
    views=("account_daily_usage", "account_monthly_usage", "reconciliation"),
)
ACCOUNT_GEO_SERIES = Endpoint(
    dataset=Dataset.ACCOUNT_GEO_USAGE,
    path="/api/analytics/account/geo_series",
    resolutions=(Resolution.HOUR, Resolution.DAY),
    takes_streams=False,
    answer=Answer.GEO,
    columns=_GEO,
    rollups=(
        Rollup("supersede_country", Keys.DAY_ROWS),
        Rollup("country_daily_hours", Keys.HOUR_DAYS),
    ),
    views=("country_daily_usage",),
)
STREAMS_SERIES = Endpoint(
    dataset=Dataset.STREAM_USAGE,
    path="/api/analytics/streams/series",
    resolutions=(Resolution.HOUR, Resolution.DAY),
    takes_streams=True,
    answer=Answer.STREAM_USAGE,
    columns=_USAGE,
    period_index=True,
    rollups=(
        Rollup("supersede_stream", Keys.DAY_ROWS),
        Rollup("stream_daily_hours", Keys.HOUR_DAYS),
        Rollup("stream_monthly_totals", Keys.MONTHS),
        Rollup("stream_period_totals", Keys.PERIODS),
    ),
    marks_seen=True,
    views=("stream_daily_usage", "stream_monthly_usage", "usage_attribution"),
)
STREAMS_GEO_SERIES = Endpoint(
    dataset=Dataset.STREAM_GEO_USAGE,
    path="/api/analytics/streams/geo_series",
    resolutions=(Resolution.HOUR, Resolution.DAY),
    takes_streams=True,
    answer=Answer.STREAM_GEO,
    columns=_GEO,
    period_index=True,
    rollups=(Rollup("stream_country_monthly_totals", Keys.DAY_MONTHS),),
    views=("stream_country_monthly_usage",),
)
STREAMS_TRACKING_SERIES = Endpoint(
    dataset=Dataset.STREAM_TRACKING_USAGE,
    path="/api/analytics/tracking/streams/series",
    resolutions=(Resolution.HOUR, Resolution.DAY),
    takes_streams=True,
    answer=Answer.STREAM_TRACKING,
    columns=_TRACKING,
    period_index=True,
    views=("tracking_daily_usage", "tracking_monthly_usage"),
)
ENDPOINTS = (
    ACCOUNT_SERIES,
    ACCOUNT_GEO_SERIES,
    STREAMS_SERIES,
    STREAMS_GEO_SERIES,
    STREAMS_TRACKING_SERIES,
)
BY_DATASET: dict[str, Endpoint] = {e.dataset: e for e in ENDPOINTS}


@dataclass(frozen=True)
class Query:
    """A GraphQL dataset: its paged query, how far a read reaches, its table, finality, views."""

    dataset: Dataset
    resolver: str  # walked to its last page (`api/graphql.read_pages`)
    fields: str  # what each row of a page is asked for
    takes_streams: bool  # rows per stream: `stream_name` leads the key
    columns: tuple[Column, ...]  # key parts, then the rest; `fetched_at` (`is_final`) follow
    finality: Finality
    # A first read reaches back what the vendor keeps, or (it purges nothing) a setting's days.
    retention: timedelta | None = None
    reach_setting: str = ""  # a field of `config.Settings`
    window: timedelta | None = None  # how much one read spans (None: all since its watermark)
    names_per_read: int = 0  # streams named in one read (a `streamId: {in: [...]}` filter)
    # Indexes beside the key: a key column alone ("all streams at t" without a scan), or what
    # a rollup's refresh reads by.
    index_on: tuple[tuple[str, ...], ...] = ()
    views: tuple[str, ...] = ()  # exported beside the table (created by its migrations)

    @property
    def table(self) -> str:
        """Dataset names are the archive's table names."""
        return self.dataset.value

    @property
    def table_columns(self) -> tuple[Column, ...]:
        """Its table, key first; `is_final` only where a row is final by its period."""
        stream = (STREAM,) if self.takes_streams else ()
        final = (IS_FINAL,) if self.finality is Finality.PERIOD else ()
        return (*stream, *self.columns, FETCHED_AT, *final)

    @property
    def indexes(self) -> dict[str, tuple[str, ...]]:
        """Its table's indexes beside the key, by name."""
        return {f"ix_{self.table}_{'_'.join(columns)}": columns for columns in self.index_on}


# A row per feed (a publication), kept forever (the vendor drops feeds 30 days after they end).
# Feeds carry no id, and a stream published redundantly has several at once: the key is the
# stream, the start to the second, and the feed's place among the stream's feeds started in
# that second, in the vendor's order (0 for nearly all).
STREAM_SESSIONS = Query(
    dataset=Dataset.STREAM_SESSIONS,
    resolver="feedPagination",
    fields="accountId streamId name started ended active",
    takes_streams=True,
    columns=(
        Column("started", Kind.TIME, key=True),
        Column("feed_ordinal", Kind.INT, key=True),
        Column("ended", Kind.TIME, nullable=True),  # NULL while the feed runs
        Column("active", Kind.FLAG),
        Column("duration_seconds", nullable=True),  # NULL while the feed runs
    ),
    finality=Finality.ENDED,
    retention=timedelta(days=30),
    # `stream_name, ended`: the sessions still running, or ended since a day (session_days.py).
    index_on=(("started",), ("stream_name", "ended")),
    views=("stream_daily_sessions",),
)
# Viewers watching at the 5-minute period's end, views that began and ended in it. A read spans
# 288 periods of 100 streams or 2,016 of the account: 288 or 21 pages, under the walk's 1,000.
_VIEWERS = counts("active_viewers views_started views_ended", Kind.INT)
STREAM_VIEWER_STATS = Query(
    dataset=Dataset.STREAM_VIEWER_STATS,
    resolver="streamStatPagination",
    fields="streamId from to active numStarted numEnded",
    takes_streams=True,
    columns=(PERIOD_START, *_VIEWERS),
    finality=Finality.PERIOD,
    reach_setting="stream_viewer_days",
    window=timedelta(days=1),
    names_per_read=100,
    views=("stream_hourly_viewers", "stream_daily_viewers"),
)
ACCOUNT_VIEWER_STATS = Query(
    dataset=Dataset.ACCOUNT_VIEWER_STATS,
    resolver="accountStatPagination",
    fields="accountId from to active numStarted numEnded streams",
    takes_streams=False,
    columns=(
        PERIOD_START,
        *_VIEWERS,
        Column("streams", Kind.INT),
    ),  # streams published at the period's end
    finality=Finality.PERIOD,
    reach_setting="account_viewer_days",
    window=timedelta(days=7),
    views=("account_hourly_viewers", "account_daily_viewers"),
)
QUERIES = (STREAM_SESSIONS, STREAM_VIEWER_STATS, ACCOUNT_VIEWER_STATS)
# Every dataset, REST then GraphQL: the archive's tables and exported views follow this order.
DECLARED: tuple[Endpoint | Query, ...] = (*ENDPOINTS, *QUERIES)
