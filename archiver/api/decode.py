"""The vendor's success envelope: a body read as strict JSON and validated into typed data."""

from __future__ import annotations

import json
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from archiver.api.errors import ResponseFormatError

DataT = TypeVar("DataT")


class Model(BaseModel):
    """Base of the response schemas: unknown keys ignored (the vendor adds fields), frozen."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Envelope(Model, Generic[DataT]):
    """The vendor's success envelope around a typed `data`."""

    status: Literal["success"]
    data: DataT


def _where(error: Any) -> str:
    return ".".join(str(part) for part in error["loc"]) or "body"


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys: a bucket sent twice must be refused instead.
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return result


def _load(body: bytes, endpoint: str) -> Any:
    try:
        return json.loads(body, object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        raise ResponseFormatError(
            f"{endpoint}: the response repeats the key {exc.key[:64]!r}"
        ) from None
    except json.JSONDecodeError:
        raise ResponseFormatError(
            f"{endpoint}: response is not complete JSON ({len(body)} bytes)", truncated=True
        ) from None
    except (ValueError, RecursionError) as exc:
        # Invalid UTF-8, integers of thousands of digits, absurd nesting.
        raise ResponseFormatError(
            f"{endpoint}: response is not valid JSON ({type(exc).__name__})"
        ) from None


def load_json(body: bytes, endpoint: str) -> Any:
    """A body read as strict JSON (no repeated keys, complete, bounded nesting), untyped."""
    return _load(body, endpoint)


def validation_message(endpoint: str, exc: ValidationError, prefix: str = "") -> str:
    """One line naming the endpoint and the first part of the answer that did not match."""
    first = exc.errors()[0]
    where = _where(first)
    if prefix:
        where = f"{prefix}.{where}" if where != "body" else prefix
    kind = "response" if where == "data" or where.startswith("data.") else "envelope"
    return f"{endpoint}: unexpected {kind} at {where[:200]}: {first['msg']}"


def decode(body: bytes, schema: TypeAdapter[Any], *, endpoint: str) -> Any:
    """Parse and validate a success body; returns its typed `data`.

    A truncated body, repeated keys, a foreign envelope or data of the wrong shape raise
    ResponseFormatError naming the endpoint and the part that did not match.
    """
    raw = _load(body, endpoint)
    try:
        envelope = schema.validate_python(raw)
    except ValidationError as exc:
        raise ResponseFormatError(validation_message(endpoint, exc)) from None
    return envelope.data
