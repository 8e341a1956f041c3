"""Each archived dataset as one declaration: its endpoint, answer, table, metrics and rollups.

The planner, the client, the store and `archiver export` are driven by these declarations: a
new dataset is one `Endpoint` here, its migration and the simulator's own model (the steps are
in CONTRIBUTING.md). Plain data only (no HTTP, no pydantic, no SQLAlchemy): the planner reads
it without loading either.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from archiver.timeutil import Resolution


class Dataset(StrEnum):
    """What the archive keeps; each value is also the name of its table."""

    ACCOUNT_USAGE = "account_usage"
    ACCOUNT_GEO_USAGE = "account_geo_usage"
    STREAM_USAGE = "stream_usage"
    STREAM_GEO_USAGE = "stream_geo_usage"
    STREAM_TRACKING_USAGE = "stream_tracking_usage"


class Answer(StrEnum):
    """The shape of an endpoint's answer: `archiver.api.endpoints` has one parser per shape."""

    USAGE = "usage"  # blocks (bandwidth, restream, ...), then buckets
    STREAM_USAGE = "stream_usage"  # stream, then blocks, then buckets
    GEO = "geo"  # `geo`, then buckets, then countries
    STREAM_GEO = "stream_geo"  # `geo`, then stream, then buckets, then countries
    STREAM_TRACKING = "stream_tracking"  # stream, then buckets, then a list per trackingId


class Kind(StrEnum):
    """A column's type in the archive (store/tables.py maps each to SQL)."""

    COUNT = "count"  # a vendor int64 metric: BIGINT
    CODE = "code"  # short text the vendor names a part by (a country, a tracking ID)


@dataclass(frozen=True)
class Column:
    """One column of a dataset's table after its bucket key (stream, resolution, start)."""

    name: str
    kind: Kind = Kind.COUNT
    key: bool = False  # part of the primary key (a country, a tracking ID)
    nullable: bool = False  # an optional breakdown the vendor may leave out
    length: int = 0  # CODE columns: the longest value kept


class Keys(StrEnum):
    """Which buckets of a write a rollup statement recomputes."""

    HOUR_DAYS = "hour_days"  # the days of the Hour rows written
    DAY_ROWS = "day_rows"  # the Day rows written
    MONTHS = "months"  # the months of the Hour and Day rows written


@dataclass(frozen=True)
class Rollup:
    """One statement of `archiver.store.rollup`, run in order after a write of the dataset."""

    statement: str
    keys: Keys


@dataclass(frozen=True)
class Endpoint:
    """One dataset, declared once: the vendor's endpoint, its parameters and resolutions, the
    shape of its answer, its table (key and metrics), its rollups and the views over it."""

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
    def metrics(self) -> tuple[str, ...]:
        """The columns that hold the vendor's figures."""
        return tuple(c.name for c in self.columns if not c.key)


_USAGE = (
    Column("bytes_in"),
    Column("bytes_out"),
    *(
        Column(name, nullable=True)
        for name in (
            "standard_bytes_in",
            "standard_bytes_out",
            "restream_bytes_in",
            "restream_bytes_out",
            "restream_seconds",
            "cascade_bytes_in",
            "cascade_bytes_out",
        )
    ),
)
_GEO = (
    Column("country", Kind.CODE, key=True, length=8),
    *(
        Column(name)
        for name in (
            "publishes",
            "views",
            "publish_seconds",
            "view_seconds",
            "bytes_in",
            "bytes_out",
        )
    ),
)
# The tracking ID of a subscribe token; '' is traffic under no tracking ID.
MAX_TRACKING_ID_LENGTH = 128
_TRACKING = (
    Column("tracking_id", Kind.CODE, key=True, length=MAX_TRACKING_ID_LENGTH),
    Column("bytes_in"),
    Column("bytes_out"),
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
