"""The simulated account's records: what to simulate, its streams, sessions and usage."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from archiver.simulator.buckets import EPOCH

# Metric layout of one usage record (one stream or the account, one hour or bucket):
# geo: country -> [publishes, views, publish_seconds, view_seconds, bytes_in, bytes_out]
# extra: [restream_bytes_in, restream_bytes_out, restream_seconds,
#         cascade_bytes_in, cascade_bytes_out]
GEO_FIELDS = ("publishes", "views", "publish_seconds", "view_seconds", "bytes_in", "bytes_out")


@dataclass
class Usage:
    """Metrics of one stream or the account over one bucket."""

    geo: dict[str, list[int]] = field(default_factory=dict)
    extra: list[int] = field(default_factory=lambda: [0, 0, 0, 0, 0])

    def add(self, other: Usage, quarters: int = 4) -> None:
        """Add `quarters/4` of `other` (integer parts, as the vendor's refresh shows them)."""
        if quarters == 4:  # the common case, taken millions of times by the account's sums
            for country, values in other.geo.items():
                mine = self.geo.get(country)
                if mine is None:
                    self.geo[country] = list(values)
                else:
                    self.geo[country] = [a + b for a, b in zip(mine, values, strict=True)]
            self.extra = [a + b for a, b in zip(self.extra, other.extra, strict=True)]
            return
        for country, values in other.geo.items():
            mine = self.geo.setdefault(country, [0] * 6)
            for i, value in enumerate(values):
                mine[i] += value * quarters // 4
        for i, value in enumerate(other.extra):
            self.extra[i] += value * quarters // 4

    def bandwidth(self) -> tuple[int, int]:
        """(bytes_in, bytes_out) summed over countries."""
        return (
            sum(v[4] for v in self.geo.values()),
            sum(v[5] for v in self.geo.values()),
        )

    def tracking(self, stream: Stream) -> dict[str, list[int]]:
        """[bytes_in, bytes_out] per tracking ID ('' for none): publishing is never tracked;
        each country's viewers subscribe under the token `tracking_id` names. Linear in the
        usage, so a day's split is the sum of its hours' splits."""
        split: dict[str, list[int]] = {}
        for country, values in sorted(self.geo.items()):
            untracked = split.setdefault("", [0, 0])
            untracked[0] += values[4]
            viewers = split.setdefault(tracking_id(stream, country), [0, 0])
            viewers[1] += values[5]
        return {key: value for key, value in split.items() if any(value)}

    def is_empty(self) -> bool:
        """True when every metric is zero."""
        return not any(any(v) for v in self.geo.values()) and not any(self.extra)


MAX_SESSION_MINUTES = 360
# Minute-resolution sessions start 06:00-23:59 UTC and last at most 6 hours, so one day's
# session ends before the next day's can start: an hour never holds two sessions of a stream.
SESSION_FIRST_MINUTE = 360


@dataclass(frozen=True)
class SimConfig:
    """What to simulate: how many streams, from which seed, and the vendor's retention."""

    streams: int = 20
    seed: int = 1
    origin: datetime = datetime(2026, 11, 1, tzinfo=UTC)
    initial_streams: int | None = None
    growth_days: float = 14.0
    unreportable_streams: int = 0
    hour_retention_days: int = 7
    day_retention_days: int = 365
    stream_retention_days: int = 7
    history_days: int = 60
    lifetime_days: float | None = None  # if set, every third stream stops this long after it starts
    # (shortest, longest) session in minutes, at most 6 hours; None: the original 1-5 hours.
    session_minutes: tuple[int, int] | None = None
    # Publish tokens: `exact_token_streams` streams (spread evenly over the indices) publish
    # under exact-name tokens (`names_per_exact_token` names each); the rest under regex ones.
    exact_token_streams: int = 0
    names_per_exact_token: int = 3
    session_chance_percent: int = 55  # the chance that a stream starts a session on a day
    # GraphQL history (audience.py): the share of sessions published redundantly (a second
    # feed at once), how long the vendor keeps an ended feed, and the largest page it serves.
    redundant_percent: int = 25
    feed_retention_days: int = 30
    graphql_max_per_page: int = 100

    def __post_init__(self) -> None:
        if self.session_minutes is not None:
            shortest, longest = self.session_minutes
            if not 1 <= shortest <= longest <= MAX_SESSION_MINUTES:
                raise ValueError("session_minutes must be 1 <= shortest <= longest <= 360")
        if self.graphql_max_per_page < 1 or self.feed_retention_days < 1:
            raise ValueError("graphql_max_per_page and feed_retention_days must be at least 1")
        if not 0 <= self.redundant_percent <= 100:
            raise ValueError("redundant_percent must be from 0 to 100")


@dataclass(frozen=True)
class Session:
    """One publishing session: `[start, end)` in whole minutes since the Unix epoch."""

    start: int
    end: int

    @property
    def first_hour(self) -> int:
        """The hour the session starts in."""
        return self.start // 60

    @property
    def last_hour(self) -> int:
        """The last hour the session publishes in."""
        return (self.end - 1) // 60

    def started_at(self) -> datetime:
        """The start as a UTC instant."""
        return EPOCH + timedelta(minutes=self.start)

    def ended_at(self) -> datetime:
        """The end as a UTC instant."""
        return EPOCH + timedelta(minutes=self.end)

    def minutes_in(self, hour: int) -> int:
        """Minutes of publishing inside `hour`."""
        return max(min(self.end, (hour + 1) * 60) - max(self.start, hour * 60), 0)


@dataclass(frozen=True)
class Stream:
    """One simulated stream: its name, index and the hour it first exists."""

    index: int
    name: str
    born_hour: int
    died_hour: int | None
    countries: tuple[str, ...]
    restreams: bool
    cascades: bool


def tracking_id(stream: Stream, country: str) -> str:
    """The tracking ID of the subscribe token `stream`'s viewers in `country` use: none on a
    third of the streams, one per country on another, one per partner on the rest (shared
    across streams, as a customer's token is)."""
    if stream.index % 3 == 0:
        return ""
    if stream.index % 3 == 1:
        return f"viewers-{country.lower()}"
    return f"partner-{stream.index % 4}"
