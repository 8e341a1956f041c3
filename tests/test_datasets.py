"""Each dataset is one declaration: its table, parser, rollups, views and the simulator's
endpoint all follow from it (issue #21 item 1; CONTRIBUTING.md "Adding a vendor dataset")."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.api.endpoints import schema_of
from archiver.datasets import ENDPOINTS, Kind
from archiver.reading.export import EXPORTABLE
from archiver.simulator import vendor
from archiver.simulator.oracle import TRUTH_DATASETS
from archiver.store.rollup import _REFRESH
from archiver.store.tables import USAGE_TABLES


def test_each_table_is_built_from_its_declaration() -> None:
    for endpoint in ENDPOINTS:
        table = USAGE_TABLES[endpoint.table]
        bucket = ["stream_name"] if endpoint.takes_streams else []
        bucket += ["resolution", "period_start"]
        declared = [c.name for c in endpoint.columns]
        assert [c.name for c in table.columns] == [*bucket, *declared, "fetched_at", "is_final"]
        key = [*bucket, *(c.name for c in endpoint.columns if c.key)]
        assert [c.name for c in table.primary_key.columns] == key
        for column in endpoint.columns:
            kind = table.c[column.name].type
            assert isinstance(kind, sa.BigInteger if column.kind is Kind.COUNT else sa.String)
            assert table.c[column.name].nullable is (column.nullable and not column.key)
        assert bool(table.indexes) is endpoint.period_index


def test_each_declaration_has_a_parser_its_rollups_and_its_views(engine: Engine) -> None:
    views = set(sa.inspect(engine).get_view_names())
    for endpoint in ENDPOINTS:
        assert schema_of(endpoint).parser is not None
        assert all(rollup.statement in _REFRESH for rollup in endpoint.rollups)
        assert set(endpoint.views) <= views, endpoint.dataset
        assert set(endpoint.views) <= set(EXPORTABLE)
        assert endpoint.table in EXPORTABLE


def test_the_simulator_serves_and_knows_the_truth_of_every_declared_dataset() -> None:
    # Its own copy of the vendor's rules, compared here rather than imported there.
    for endpoint in ENDPOINTS:
        name = endpoint.path.removeprefix("/api/analytics/")
        assert name in vendor.SERIES, endpoint.path
        spec = vendor.SERIES[name]
        assert spec.per_stream is endpoint.takes_streams
        assert [r.value for r in spec.resolutions] == [r.value for r in endpoint.resolutions]
        assert TRUTH_DATASETS[endpoint.dataset] == name
