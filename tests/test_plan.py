"""The planner is pure: these tests need no database and no network."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.datasets import (
    ACCOUNT_GEO_SERIES,
    ACCOUNT_SERIES,
    ENDPOINTS,
    STREAMS_GEO_SERIES,
    STREAMS_SERIES,
)
from archiver.rules.plan import (
    ACCOUNT,
    Gap,
    Policy,
    Scope,
    ScopeState,
    Selection,
    StreamEntry,
    make_plan,
    streams_due,
)
from archiver.timeutil import Resolution, floor, next_start
from archiver.vocabulary import StreamStatus

NOW = datetime(2026, 11, 26, 6, 2, tzinfo=UTC)
POLICY = Policy()
H, D, M = Resolution.HOUR, Resolution.DAY, Resolution.MONTH


def active(*names: str) -> list[StreamEntry]:
    return [StreamEntry(n, StreamStatus.ACTIVE) for n in names]


def test_a_new_account_starts_at_each_horizon_and_asks_up_to_the_current_bucket() -> None:
    plan = make_plan(now=NOW, policy=POLICY, streams=[], state={})
    windows = {
        (p.request.endpoint.dataset, p.request.resolution): (p.request.start, p.request.stop)
        for p in plan.requests
    }
    assert windows == {
        # 7 days back (the vendor's exact line: the margin only doubts a zero read there),
        # rounded up to the hour; stop is the current hour's end.
        ("account_usage", H): (
            datetime(2026, 11, 19, 7, tzinfo=UTC),
            datetime(2026, 11, 26, 7, tzinfo=UTC),
        ),
        ("account_geo_usage", H): (
            datetime(2026, 11, 19, 7, tzinfo=UTC),
            datetime(2026, 11, 26, 7, tzinfo=UTC),
        ),
        ("account_usage", D): (
            datetime(2025, 11, 27, tzinfo=UTC),
            datetime(2026, 11, 27, tzinfo=UTC),
        ),
        ("account_geo_usage", D): (
            datetime(2025, 11, 27, tzinfo=UTC),
            datetime(2026, 11, 27, tzinfo=UTC),
        ),
        ("account_usage", M): (
            datetime(2024, 11, 1, tzinfo=UTC),
            datetime(2026, 12, 1, tzinfo=UTC),
        ),
    }
    assert plan.gaps == []
    assert plan.watermarks[Scope("account_usage", ACCOUNT, H)] == datetime(
        2026, 11, 19, 7, tzinfo=UTC
    )


def test_streams_share_requests_ten_names_each_in_steady_state() -> None:
    names = [f"s{i:02d}" for i in range(25)]
    watermark = datetime(2026, 11, 26, 4, tzinfo=UTC)
    state = {
        Scope(e.dataset, n, r): ScopeState(watermark)
        for e in (STREAMS_SERIES, STREAMS_GEO_SERIES)
        for r in e.resolutions
        for n in names
    }
    plan = make_plan(
        now=NOW,
        policy=POLICY,
        streams=active(*names),
        state=state,
        endpoints=[STREAMS_SERIES, STREAMS_GEO_SERIES],
    )
    assert len(plan.requests) == 2 * 2 * 3
    for planned in plan.requests:
        assert len(planned.request.streams) in (10, 5)
        assert planned.request.start == watermark
        assert {s.stream for s in planned.scopes} == set(planned.request.streams)
    sent = sorted(
        n
        for p in plan.requests
        if p.request.endpoint is STREAMS_SERIES and p.request.resolution is H
        for n in p.request.streams
    )
    assert sent == names


def test_streams_with_different_watermarks_get_separate_requests() -> None:
    early = datetime(2026, 11, 25, tzinfo=UTC)
    late = datetime(2026, 11, 26, 5, tzinfo=UTC)
    state = {
        Scope("stream_usage", "a", H): ScopeState(early),
        Scope("stream_usage", "b", H): ScopeState(late),
        Scope("stream_usage", "c", H): ScopeState(late),
    }
    plan = make_plan(
        now=NOW,
        policy=POLICY,
        streams=active("a", "b", "c"),
        state=state,
        selection=Selection(resolutions=frozenset({H})),
        endpoints=[STREAMS_SERIES],
    )
    assert [(p.request.streams, p.request.start) for p in plan.requests] == [
        (("a",), early),
        (("b", "c"), late),
    ]


def test_a_watermark_behind_the_horizon_becomes_a_gap_and_moves_to_it() -> None:
    old = datetime(2026, 11, 10, tzinfo=UTC)
    scope = Scope("account_usage", ACCOUNT, H)
    plan = make_plan(
        now=NOW,
        policy=POLICY,
        streams=[],
        state={scope: ScopeState(old)},
        endpoints=[ACCOUNT_SERIES],
        selection=Selection(resolutions=frozenset({H})),
    )
    horizon = datetime(2026, 11, 19, 7, tzinfo=UTC)
    assert plan.gaps == [Gap(scope, old, horizon)]
    assert plan.watermarks == {scope: horizon}
    assert plan.requests[0].request.start == horizon


def test_long_ranges_are_split_into_chunks() -> None:
    policy = Policy(max_buckets_per_request=48)
    plan = make_plan(
        now=NOW,
        policy=policy,
        streams=[],
        state={},
        endpoints=[ACCOUNT_SERIES],
        selection=Selection(resolutions=frozenset({H})),
    )
    spans = [(p.request.start, p.request.stop) for p in plan.requests]
    assert len(spans) == 4  # 167 hours in chunks of 48
    assert all(b - a <= timedelta(hours=48) for a, b in spans)
    assert spans[0][0] == datetime(2026, 11, 19, 7, tzinfo=UTC)
    assert spans[-1][1] == datetime(2026, 11, 26, 7, tzinfo=UTC)
    assert all(spans[i][1] == spans[i + 1][0] for i in range(3))


def test_data_nearest_its_purge_goes_first() -> None:
    plan = make_plan(now=NOW, policy=POLICY, streams=active("x"), state={})
    order = [(p.request.endpoint.dataset, p.request.resolution) for p in plan.requests]
    # Hours (their oldest bucket goes within the hour) before days, months (never purged) last.
    assert order[-1] == ("account_usage", M)
    assert {r for _, r in order[:5]} == {H}
    assert {r for _, r in order[5:-1]} == {D}
    deadlines = [p.deadline for p in plan.requests if p.deadline is not None]
    assert deadlines == sorted(deadlines)


def test_dormant_streams_are_checked_once_a_day() -> None:
    recent = Scope("stream_usage", "quiet", H)
    streams = [
        StreamEntry("busy", StreamStatus.ACTIVE),
        StreamEntry("quiet", StreamStatus.DORMANT),
        StreamEntry("never", StreamStatus.DORMANT),
    ]
    state = {recent: ScopeState(NOW - timedelta(hours=3), NOW - timedelta(hours=3))}
    assert streams_due(NOW, streams, state, POLICY) == ["busy", "never"]
    state = {recent: ScopeState(NOW - timedelta(days=1), NOW - timedelta(hours=24))}
    assert streams_due(NOW, streams, state, POLICY) == ["busy", "never", "quiet"]


def test_backfill_selection_reports_the_purged_part_and_limits_the_range() -> None:
    selection = Selection(
        start=datetime(2026, 11, 1, tzinfo=UTC),
        end=datetime(2026, 11, 25, tzinfo=UTC),
        resolutions=frozenset({D}),
        streams=frozenset({"a"}),
    )
    plan = make_plan(
        now=NOW, policy=POLICY, streams=active("a", "b"), state={}, selection=selection
    )
    assert {p.request.endpoint.dataset for p in plan.requests} == {
        "stream_usage",
        "stream_geo_usage",
        "stream_tracking_usage",
    }
    for planned in plan.requests:
        assert planned.request.streams == ("a",)
        assert planned.request.start == datetime(2026, 11, 20, tzinfo=UTC)
        assert planned.request.stop == datetime(2026, 11, 25, tzinfo=UTC)
    assert {(p.dataset, p.start, p.stop) for p in plan.purged} == {
        ("stream_usage", datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC)),
        ("stream_geo_usage", datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC)),
        (
            "stream_tracking_usage",
            datetime(2026, 11, 1, tzinfo=UTC),
            datetime(2026, 11, 20, tzinfo=UTC),
        ),
    }


def test_finality_rules() -> None:
    fetched = datetime(2026, 11, 26, 6, 2, tzinfo=UTC)
    assert POLICY.is_final(H, datetime(2026, 11, 26, 4, tzinfo=UTC), fetched)
    assert not POLICY.is_final(H, datetime(2026, 11, 26, 5, tzinfo=UTC), fetched)
    assert POLICY.first_unfinal(H, fetched) == datetime(2026, 11, 26, 5, tzinfo=UTC)
    assert POLICY.first_unfinal(D, fetched) == datetime(2026, 11, 26, tzinfo=UTC)
    assert POLICY.first_unfinal(D, datetime(2026, 11, 26, 0, 30, tzinfo=UTC)) == datetime(
        2026, 11, 25, tzinfo=UTC
    )


@settings(max_examples=200, deadline=None)
@given(
    minutes=st.integers(min_value=0, max_value=60 * 24 * 400),
    lags=st.lists(st.integers(min_value=-30 * 24, max_value=0), min_size=1, max_size=23),
)
def test_requests_cover_exactly_from_watermark_or_horizon_to_now(
    minutes: int, lags: list[int]
) -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    names = [f"n{i}" for i in range(len(lags))]
    state = {}
    for name, lag in zip(names, lags, strict=True):
        for endpoint in ENDPOINTS:
            for resolution in endpoint.resolutions:
                key = name if endpoint.takes_streams else ACCOUNT
                base = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=lag)
                state[Scope(endpoint.dataset, key, resolution)] = ScopeState(
                    floor(base, resolution)
                )
    plan = make_plan(now=now, policy=POLICY, streams=active(*names), state=state)
    covered: dict[Scope, list[tuple[datetime, datetime]]] = {}
    for planned in plan.requests:
        request = planned.request
        assert len(request.streams) <= 10
        horizon = POLICY.reach(request.endpoint, request.resolution, now)
        assert request.start >= horizon, "asked for a purged bucket"
        assert request.stop == next_start(
            floor(now, request.resolution),
            request.resolution,
        )
        for scope in planned.scopes:
            covered.setdefault(scope, []).append((request.start, request.stop))
    for scope, spans in covered.items():
        assert len(spans) == 1, "a scope asked twice in one cycle"
        endpoint = next(e for e in ENDPOINTS if e.dataset == scope.dataset)
        horizon = POLICY.reach(endpoint, scope.resolution, now)
        assert spans[0][0] == max(state[scope].watermark, horizon)
    for gap in plan.gaps:
        assert (
            gap.start
            < gap.stop
            == POLICY.reach(
                next(e for e in ENDPOINTS if e.dataset == gap.scope.dataset),
                gap.scope.resolution,
                now,
            )
        )
    assert ACCOUNT_GEO_SERIES.dataset in {p.request.endpoint.dataset for p in plan.requests}
    # The cycle finds each answer's scopes by its request: no request may appear twice.
    assert len({p.request for p in plan.requests}) == len(plan.requests)


def test_a_backfill_starting_at_the_horizon_reports_nothing_purged() -> None:
    horizon = POLICY.reach(STREAMS_SERIES, D, NOW)
    selection = Selection(start=horizon, resolutions=frozenset({D}), streams=frozenset({"a"}))
    plan = make_plan(now=NOW, policy=POLICY, streams=active("a"), state={}, selection=selection)
    assert plan.requests
    assert plan.purged == []  # not an empty range [horizon, horizon)


def test_a_scope_already_at_the_selections_end_asks_nothing() -> None:
    end = datetime(2026, 11, 24, tzinfo=UTC)
    state = {Scope("stream_usage", "a", D): ScopeState(watermark=end)}
    selection = Selection(end=end, resolutions=frozenset({D}), streams=frozenset({"a"}))
    plan = make_plan(now=NOW, policy=POLICY, streams=active("a"), state=state, selection=selection)
    assert [p for p in plan.requests if p.request.endpoint is STREAMS_SERIES] == []
