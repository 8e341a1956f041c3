"""The edges of strict reading: repeated keys, the body cap's exact size, the kind of a
mismatch. Each test kills a mutant that survived every fast test (bench/MUTATION.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from archiver.api.decode import load_json
from archiver.api.errors import ApiError, ResponseFormatError
from archiver.datasets import ACCOUNT_SERIES
from archiver.timeutil import Resolution
from archiver.vocabulary import ApiRequest
from tests.apifakes import fake_client

T0 = datetime(2026, 11, 20, 10, tzinfo=UTC)
HOUR = ApiRequest(ACCOUNT_SERIES, Resolution.HOUR, T0, T0 + timedelta(hours=1))
GOOD = (
    b'{"status":"success","data":{"bandwidth":{"2026-11-20T10:00:00Z":{"bytesIn":1,"bytesOut":2}}}}'
)


@pytest.mark.parametrize(
    ("body", "repeated"),
    [
        (b'{"a": 1, "a": 2}', "a"),
        (b'{"b": 1, "a": 1, "a": 2}', "a"),  # named: the repeated key, not the first one
        (b'{"x": {"b": 0, "c": 1, "c": 1}}', "c"),
    ],
)
def test_a_repeated_key_is_refused_and_named(body: bytes, repeated: str) -> None:
    with pytest.raises(ResponseFormatError) as info:
        load_json(body, "account/series")
    assert str(info.value) == f"account/series: the response repeats the key {repeated!r}"


def test_distinct_keys_are_read_as_sent() -> None:
    assert load_json(b'{"a": 1, "b": {"c": 2, "d": 3}}', "x") == {"a": 1, "b": {"c": 2, "d": 3}}


@pytest.mark.parametrize("declared", [True, False])
def test_a_body_of_exactly_the_cap_is_read_and_one_byte_more_is_refused(declared: bool) -> None:
    def answer(size: int) -> httpx.Response:
        body = GOOD + b" " * (size - len(GOOD))  # trailing blanks are valid JSON
        if declared:
            return httpx.Response(200, content=body)
        return httpx.Response(200, stream=httpx.ByteStream(body))  # no Content-Length

    cap = len(GOOD) + 100
    client, _ = fake_client(lambda _: answer(cap), max_response_bytes=cap)
    with client:
        assert client.fetch(HOUR).rows
    client, _ = fake_client(lambda _: answer(cap + 1), max_response_bytes=cap)
    with client, pytest.raises(ApiError) as info:
        client.fetch(HOUR)
    assert f"answer larger than {cap} bytes" in str(info.value)


def test_a_data_mismatch_is_called_a_response_and_an_envelope_one_an_envelope() -> None:
    bad_data = b'{"status":"success","data":{"bandwidth":7}}'
    bad_envelope = b'{"status":"maybe","data":{}}'
    for body, kind in ((bad_data, "response"), (bad_envelope, "envelope")):

        def answer(_: httpx.Request, body: bytes = body) -> httpx.Response:
            return httpx.Response(200, content=body)

        client, _ = fake_client(answer)
        with client, pytest.raises(ResponseFormatError) as info:
            client.fetch(HOUR)
        assert f"unexpected {kind} at" in str(info.value)


def test_a_metric_one_past_a_64_bit_integer_is_refused() -> None:
    # The archive's columns are signed 64-bit: 2**63 would overflow them, 2**63 - 1 fits.
    def body(value: int) -> bytes:
        return GOOD.replace(b'"bytesIn":1', b'"bytesIn":' + str(value).encode())

    client, _ = fake_client(lambda _: httpx.Response(200, content=body(2**63 - 1)))
    with client:
        assert client.fetch(HOUR).rows[0]["bytes_in"] == 2**63 - 1
    client, _ = fake_client(lambda _: httpx.Response(200, content=body(2**63)))
    with client, pytest.raises(ResponseFormatError):
        client.fetch(HOUR)
