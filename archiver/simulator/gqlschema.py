"""The vendor's GraphQL schema (graphql-compose-mongoose style), its Date scalar and filters.

Type names follow the generator the vendor's API is built with (`FilterFindManyFeedInput`,
`SortFindManyFeedInput`, `FeedPagination`, `PaginationInfo`, `FeedConnection`, `PageInfo`);
the vendor does not publish them, so a client should not depend on them (inline arguments
need none).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from graphql import GraphQLError, GraphQLScalarType, GraphQLSchema, StringValueNode, build_schema
from graphql.language import ValueNode

# model -> (fields with their GraphQL types, fields with comparison operators, sortable fields)
MODELS: dict[str, tuple[dict[str, str], tuple[str, ...], tuple[str, ...]]] = {
    "Feed": (
        {
            "accountId": "String!",
            "streamId": "String!",
            "name": "String!",
            "started": "Date!",
            "ended": "Date",
            "active": "Boolean!",
        },
        ("started", "ended", "name", "streamId"),
        ("started", "ended"),
    ),
    "StreamStat": (
        {
            "accountId": "String!",
            "streamId": "String!",
            "from": "Date!",
            "to": "Date!",
            "active": "Int!",
            "numStarted": "Int!",
            "numEnded": "Int!",
        },
        ("from", "to", "streamId"),
        ("from", "to"),
    ),
    "AccountStat": (
        {
            "accountId": "String!",
            "from": "Date!",
            "to": "Date!",
            "active": "Int!",
            "numStarted": "Int!",
            "numEnded": "Int!",
            "streams": "Int!",
        },
        ("from", "to"),
        ("from", "to"),
    ),
}
RESOLVERS = ("FindOne", "FindMany", "Count", "Connection", "Pagination")


def resolver_name(model: str, kind: str) -> str:
    """`feedPagination`, `streamStatFindMany`, ..."""
    return model[0].lower() + model[1:] + kind


def _model_sdl(model: str) -> str:
    fields, operated, sortable = MODELS[model]
    filt = f"FilterFindMany{model}Input"
    lines = [f"type {model} {{", *(f"  {f}: {t}" for f, t in fields.items()), "}"]
    lines += [f"input {filt} {{", *(f"  {f}: {t.rstrip('!')}" for f, t in fields.items())]
    lines += [
        f"  _operators: FilterFindMany{model}OperatorsInput",
        f"  OR: [{filt}!]",
        f"  AND: [{filt}!]",
        "}",
        f"input FilterFindMany{model}OperatorsInput {{",
    ]
    for field in operated:
        scalar = fields[field].rstrip("!")
        ops = f"FilterFindMany{model}{field[0].upper()}{field[1:]}OperatorsInput"
        lines.append(f"  {field}: {ops}")
        lines.insert(
            0,
            f"input {ops} {{ gt: {scalar} gte: {scalar} lt: {scalar} lte: {scalar} "
            f"ne: {scalar} in: [{scalar}] nin: [{scalar}] exists: Boolean }}",
        )
    lines.append("}")
    sorts = " ".join(f"{f.upper()}_ASC {f.upper()}_DESC" for f in sortable)
    lines.append(f"enum SortFindMany{model}Input {{ _ID_ASC _ID_DESC {sorts} }}")
    lines += [
        f"type {model}Pagination {{ count: Int items: [{model}!] pageInfo: PaginationInfo! }}",
        f"type {model}Edge {{ node: {model}! cursor: String! }}",
        f"type {model}Connection {{ count: Int! pageInfo: PageInfo! edges: [{model}Edge!]! }}",
    ]
    return "\n".join(lines)


def _query_sdl(model: str) -> str:
    name = resolver_name(model, "")
    filt = f"filter: FilterFindMany{model}Input"
    sort = f"sort: SortFindMany{model}Input = _ID_ASC"
    return "\n".join(
        [
            f"  {name}FindOne({filt}, skip: Int, {sort}): {model}",
            f"  {name}FindMany({filt}, skip: Int, limit: Int, {sort}): [{model}!]!",
            f"  {name}Count({filt}): Int",
            f"  {name}Connection(first: Int, after: String, last: Int, before: String, "
            f"{filt}, {sort}): {model}Connection",
            f"  {name}Pagination(page: Int = 1, perPage: Int = 20, {filt}, {sort}): "
            f"{model}Pagination",
        ]
    )


SDL = "\n".join(
    [
        '"""An instant, ISO 8601 in UTC; a date alone means its midnight."""',
        "scalar Date",
        "type PaginationInfo { currentPage: Int! perPage: Int! pageCount: Int itemCount: Int "
        "hasNextPage: Boolean hasPreviousPage: Boolean }",
        "type PageInfo { hasNextPage: Boolean! hasPreviousPage: Boolean! startCursor: String "
        "endCursor: String }",
        *(_model_sdl(m) for m in MODELS),
        "type Query {",
        *(_query_sdl(m) for m in MODELS),
        "}",
    ]
)


def format_date(value: Any) -> str:
    """A Date as the vendor writes it (JavaScript's toISOString)."""
    if not isinstance(value, datetime):
        raise GraphQLError(f"Date cannot represent {value!r}")
    return (
        value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    )


def parse_date(value: Any) -> datetime:
    """A Date argument: `2026-11-01`, or ISO 8601 (naive means UTC)."""
    if not isinstance(value, str):
        raise GraphQLError(f"Date cannot represent a non-string value: {value!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise GraphQLError(f"Date cannot represent an invalid date: {value!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _parse_literal(node: ValueNode, _variables: Any = None) -> datetime:
    if not isinstance(node, StringValueNode):
        raise GraphQLError("Date cannot represent a non-string value")
    return parse_date(node.value)


def build() -> GraphQLSchema:
    """The schema, with the Date scalar's behaviour attached (resolvers are set by gql.py)."""
    schema = build_schema(SDL)
    date = schema.type_map["Date"]
    assert isinstance(date, GraphQLScalarType)
    # graphql-core 3.2 calls serialize/parse_*, 3.3 its coerce_* names: set both.
    behaviour = {
        "serialize": format_date,
        "coerce_output_value": format_date,
        "parse_value": parse_date,
        "coerce_input_value": parse_date,
        "parse_literal": _parse_literal,
    }
    for name, function in behaviour.items():
        setattr(date, name, function)
    return schema


def _compare(value: Any, op: str, want: Any) -> bool:
    if op == "exists":
        return (value is not None) == bool(want)
    if op == "ne":
        return bool(value != want)
    if op in ("in", "nin"):
        return (value in (want or [])) == (op == "in")
    if value is None or want is None:
        return False  # as the vendor's database: null is neither before nor after anything
    if op == "gt":
        return bool(value > want)
    if op == "gte":
        return bool(value >= want)
    if op == "lt":
        return bool(value < want)
    return bool(value <= want)  # lte


def matches(record: dict[str, Any], filt: dict[str, Any] | None) -> bool:
    """Whether `record` passes a filter: field equality, `_operators`, `AND` and `OR` lists."""
    for key, want in (filt or {}).items():
        if key == "AND":
            if not all(matches(record, f) for f in want or []):
                return False
        elif key == "OR":
            if want and not any(matches(record, f) for f in want):
                return False
        elif key == "_operators":
            for field, ops in (want or {}).items():
                for op, operand in (ops or {}).items():
                    if not _compare(record.get(field), op, operand):
                        return False
        elif record.get(key) != want:
            return False
    return True
