"""The vocabulary's enums spell exactly what the archive stores (its CHECK constraints)."""

from __future__ import annotations

import sqlalchemy as sa

from archiver.store.tables import USAGE_TABLES, tracked_streams
from archiver.vocabulary import ENDPOINTS, Dataset, StreamSource, StreamStatus


def _allowed(name: str) -> list[str]:
    for constraint in tracked_streams.constraints:
        if (
            isinstance(constraint, sa.CheckConstraint)
            and constraint.name == f"ck_tracked_streams_{name}"
        ):
            text = str(constraint.sqltext)
            return [part.strip(" '") for part in text.split("(", 1)[1].rstrip(")").split(",")]
    raise AssertionError(f"no CHECK constraint {name}")


def test_stream_status_and_source_are_the_values_the_registry_accepts() -> None:
    assert [s.value for s in StreamStatus] == _allowed("status")
    assert [s.value for s in StreamSource] == _allowed("source")


def test_every_dataset_is_an_archive_table_fed_by_one_endpoint() -> None:
    assert sorted(e.dataset for e in ENDPOINTS) == sorted(Dataset)
    assert {e.table for e in ENDPOINTS} <= set(USAGE_TABLES)
