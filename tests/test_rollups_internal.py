"""Every rollup the write path keeps is internal: `export` offers the views over it, not it."""

from __future__ import annotations

import re

from archiver.reading.export import EXPORTABLE
from archiver.store import rollup, viewer_rollup
from archiver.store.tables import ROLLUP_TABLES


def _written_by_refreshes() -> set[str]:
    statements = [*rollup._REFRESH.values(), *viewer_rollup._REFRESH.values()]
    return {m for s in statements for m in re.findall(r"INSERT INTO (\w+)", s)}


def test_every_refreshed_table_is_a_rollup_and_not_exported() -> None:
    written = _written_by_refreshes()
    assert written >= {"stream_daily_hours", "stream_daily_periods", "account_hourly_periods"}
    assert written <= {t.name for t in ROLLUP_TABLES}
    assert not written & set(EXPORTABLE)
