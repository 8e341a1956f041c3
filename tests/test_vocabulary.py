"""The vocabulary's enums spell exactly what the archive stores (its CHECK constraints)."""

from __future__ import annotations

import sqlalchemy as sa

from archiver.datasets import DECLARED, ENDPOINTS, Dataset
from archiver.store.tables import DATASET_TABLES, USAGE_TABLES, tracked_streams
from archiver.vocabulary import StreamSource, StreamStatus


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


def test_every_dataset_is_an_archive_table_fed_by_one_declaration() -> None:
    assert sorted(d.dataset for d in DECLARED) == sorted(Dataset)
    assert [d.table for d in DECLARED] == list(DATASET_TABLES)
    assert {e.table for e in ENDPOINTS} == set(USAGE_TABLES)


def test_name_rules_at_their_edges() -> None:
    from archiver.vocabulary import MAX_NAME_LENGTH, refusal_reason, storable

    longest = "x" * MAX_NAME_LENGTH
    assert refusal_reason(longest) is None
    assert storable(longest)
    assert refusal_reason(longest + "x") is not None
    assert not storable(longest + "x")
    assert refusal_reason("cam--1") is not None
    assert storable("cam--1")  # refused, but kept in the registry as refused
    assert not storable("cam\x001")  # a NUL never reaches the database


def test_a_request_needs_a_non_empty_range() -> None:
    from datetime import UTC, datetime

    import pytest

    from archiver.datasets import ACCOUNT_SERIES
    from archiver.timeutil import Resolution
    from archiver.vocabulary import ApiRequest

    t = datetime(2026, 11, 20, tzinfo=UTC)
    with pytest.raises(ValueError, match="start < stop"):
        ApiRequest(ACCOUNT_SERIES, Resolution.HOUR, t, t)
