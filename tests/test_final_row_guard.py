"""The SQL that guards finality (final-row guard, the move's scope) on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.rules.finality import Settlement
from archiver.rules.plan import Policy, Scope
from archiver.store import state
from archiver.store.tables import stream_usage, sync_state
from archiver.store.upsert import COPY_THRESHOLD, upsert_rows
from archiver.timeutil import Resolution
from tests.test_store import T0, usage_row

# (stored row is final, later read is final) -> does the read replace the stored value?
GUARD = {
    (False, False): True,  # a newer partial read replaces an older partial one
    (False, True): True,  # the final read replaces the partial one
    (True, False): False,  # a partial read (or a purged bucket read as zeros) never does
    (True, True): True,  # a later final read (the vendor's correction) does
}


@pytest.mark.parametrize(("stored_final", "read_final"), sorted(GUARD))
# One row goes through the prepared statement; COPY_THRESHOLD rows through PostgreSQL's COPY
# and `INSERT ... SELECT` (on SQLite, the same prepared statement).
@pytest.mark.parametrize("rows", [1, COPY_THRESHOLD])
def test_the_final_row_guard_on_both_write_paths(
    engine: Engine, stored_final: bool, read_final: bool, rows: int
) -> None:
    with engine.begin() as conn:
        upsert_rows(
            conn=conn,
            table=stream_usage,
            rows=[usage_row("a", h, bytes_out=5, final=stored_final) for h in range(rows)],
        )
    with engine.begin() as conn:
        upsert_rows(
            conn=conn,
            table=stream_usage,
            rows=[usage_row("a", h, bytes_out=9, final=read_final) for h in range(rows)],
        )
    with engine.connect() as conn:
        found = set(conn.execute(sa.select(stream_usage.c.bytes_out, stream_usage.c.is_final)))
    replaced = GUARD[(stored_final, read_final)]
    assert found == {(9, read_final) if replaced else (5, stored_final)}


def test_the_move_touches_only_the_responses_dataset_resolution_and_streams(
    engine: Engine,
) -> None:
    hour = Scope("stream_usage", "a", Resolution.HOUR)
    others = [
        Scope("stream_usage", "b", Resolution.HOUR),  # another stream
        Scope("stream_usage", "a", Resolution.DAY),  # another resolution
        Scope("stream_geo_usage", "a", Resolution.HOUR),  # another dataset
    ]
    with engine.begin() as conn:
        state.start_scopes(
            conn=conn, watermarks=dict.fromkeys([hour, *others], T0), gaps=[], recorded_at=T0
        )
    later = T0 + timedelta(days=3)
    settlement = Settlement(
        Policy(settle=timedelta(minutes=60)), Resolution.HOUR, T0, T0 + timedelta(hours=10), later
    )
    with engine.begin() as conn:
        written = state.store_response(
            conn=conn, dataset="stream_usage", scopes=[hour], rows=[], settlement=settlement
        )
    assert written.advanced == 1
    with engine.connect() as conn:
        found = {
            (row.dataset, row.stream_name, row.resolution): (row.watermark, row.last_success_at)
            for row in conn.execute(sa.select(sync_state))
        }
    assert found == {
        ("stream_usage", "a", "Hour"): (T0 + timedelta(hours=10), later),
        **{(s.dataset, s.stream, s.resolution.value): (T0, None) for s in others},
    }
