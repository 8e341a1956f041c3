"""Each dataset is one declaration: its table, parser, rollups, views and the simulator's
endpoint or query all follow from it (issue #21 item 1; CONTRIBUTING.md "Adding a vendor
dataset", REST and GraphQL)."""

from __future__ import annotations

import graphql
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.api.endpoints import schema_of
from archiver.api.graphql import PAGE_FIELDS
from archiver.columns import Kind
from archiver.config import Settings
from archiver.datasets import ENDPOINTS, QUERIES, Finality
from archiver.reading.export import EXPORTABLE, VIEWS
from archiver.simulator import gqlschema, gqltruth, vendor
from archiver.simulator.oracle import TRUTH_DATASETS
from archiver.store.rollup import _REFRESH
from archiver.store.tables import DATASET_TABLES, USAGE_TABLES
from archiver.store.timecolumn import UtcDateTime

TYPES = {
    Kind.COUNT: sa.BigInteger,
    Kind.INT: sa.Integer,
    Kind.CODE: sa.String,
    Kind.TIME: UtcDateTime,
    Kind.FLAG: sa.Boolean,
}


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


def test_each_graphql_table_is_built_from_its_declaration() -> None:
    for query in QUERIES:
        table = DATASET_TABLES[query.table]
        stream = ["stream_name"] if query.takes_streams else []
        final = ["is_final"] if query.finality is Finality.PERIOD else []
        declared = [c.name for c in query.columns]
        assert [c.name for c in table.columns] == [*stream, *declared, "fetched_at", *final]
        key = [*stream, *(c.name for c in query.columns if c.key)]
        assert [c.name for c in table.primary_key.columns] == key
        for column in query.columns:
            kind = table.c[column.name].type
            assert isinstance(kind, TYPES[column.kind]), (query.table, column.name)
            assert isinstance(kind, sa.BigInteger) is (column.kind is Kind.COUNT)
            assert table.c[column.name].nullable is (column.nullable and not column.key)
        indexed = {ix.name: tuple(c.name for c in ix.columns) for ix in table.indexes}
        assert indexed == query.indexes
        # A session is final once ended: its guard reads `ended`, there is no `is_final`.
        assert (query.finality is Finality.ENDED) is ("ended" in table.c)


def test_each_graphql_declaration_says_how_far_and_how_much_a_read_reaches() -> None:
    fields = Settings.model_fields
    for query in QUERIES:
        # A first read reaches what the vendor keeps or, where it purges nothing, a setting.
        assert (query.retention is None) is bool(query.reach_setting), query.table
        if query.reach_setting:
            assert fields[query.reach_setting].annotation is int
            assert query.window is not None  # a read of what is never purged is bounded
        assert (query.names_per_read > 0) is (query.takes_streams and query.window is not None)


def test_every_view_of_the_archive_is_declared_once_and_exported(engine: Engine) -> None:
    views = set(sa.inspect(engine).get_view_names())
    assert sorted(VIEWS) == sorted(views)
    assert len(VIEWS) == len(set(VIEWS))
    assert set(DATASET_TABLES) | set(VIEWS) <= set(EXPORTABLE)


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


def test_the_simulator_answers_and_knows_the_truth_of_every_graphql_dataset() -> None:
    # Each declared query, as `read_pages` asks it, is valid against the vendor-shaped schema.
    schema = gqlschema.build()
    for query in QUERIES:
        text = (
            f"{{{query.resolver}(page: 1, perPage: 100) "
            f"{{items {{{query.fields}}} {PAGE_FIELDS}}}}}"
        )
        assert graphql.validate(schema, graphql.parse(text)) == [], query.table
        assert query.table in gqltruth.DATASETS
    assert set(gqltruth.DATASETS) == {q.table for q in QUERIES}
