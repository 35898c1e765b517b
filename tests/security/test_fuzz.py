"""Fuzzing what a peer sends before anything trusts it: HTTP requests and plugin-channel frames.

Each target runs a few hundred examples in ``make test`` and many thousands
under ``make stress`` (the ``slow`` copies).  A finding shrinks to the
smallest input that breaks the property, which then belongs in a named test.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.types import ASGIApp, Message

from pluginkv import Store, open_store
from pluginkv.host.framing import LineReader, read_messages
from pluginkv.server.app import create_app
from pluginkv.services.tokens import Tokens

from ..server import asgi

SECRET = "fuzz-secret-" + "f" * 40
QUICK = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
LONG = settings(
    max_examples=20_000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# -- HTTP requests, as the server hands them to the app ---------------------------------------

_METHODS = st.sampled_from(["GET", "HEAD", "PUT", "DELETE", "POST", "PATCH", "OPTIONS", "XYZ"])
_PATH_PARTS = st.sampled_from(
    ["/v1/kv/", "/v1/keys", "/v1/incr/", "/v1/batch/get", "/v1/batch/set", "/v1/batch/delete",
     "/v1/usage", "/v1/admin/purge", "/e/", "/", "%", "%2F", "%00", "%ff", "..", "/", "a", "\\"]
)  # fmt: skip
_RAW_PATHS = st.lists(_PATH_PARTS | st.binary(max_size=8), max_size=6).map(
    lambda parts: b"".join(p.encode() if isinstance(p, str) else p for p in parts)
)
_QUERIES = st.lists(
    st.tuples(
        st.sampled_from(["ttl", "prefix", "limit", "cursor", "meta", "all", "x"]),
        st.sampled_from(["", "1", "-1", "1e308", "nan", "inf", "0", "%ff", "a"]) | st.text(),
    ),
    max_size=4,
).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs).encode("utf-8", "surrogatepass"))
_HEADER_VALUES = st.sampled_from(
    [b"*", b'"1"', b'W/"1"', b"", b"-1", b"99999999999999999999", b"\xff", b"Bearer", b"a, b"]
) | st.binary(max_size=20)
_HEADER_NAMES = [
    b"if-match", b"if-none-match", b"content-length", b"content-type",
    b"transfer-encoding", b"authorization", b"x-other",
]  # fmt: skip
_HEADERS = st.lists(
    st.tuples(
        st.sampled_from(_HEADER_NAMES),
        _HEADER_VALUES,
    ),
    max_size=4,
)
_BODIES = st.binary(max_size=64) | st.sampled_from(
    [b"{}", b'{"keys": ["a"]}', b'{"items": {"a": "eA=="}}', b'{"delta": 1e308}', b"[]", b"null"]
)


@pytest.fixture(name="fuzz_app")
def _fuzz_app() -> Iterator[tuple[ASGIApp, Store, str]]:
    tokens = Tokens(SECRET, default_ttl=3600)
    with open_store("memory://") as store:
        store.storage(workspace="ws-1", plugin="acme/weather").set("a", b"kept")
        token = tokens.issue(workspace="ws-1", plugin="acme/weather")
        yield create_app(store=store, tokens=tokens), store, token


def _call(
    app: ASGIApp,
    method: str,
    raw_path: bytes,
    query: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
) -> list[Message]:
    incoming = [{"type": "http.request", "body": body, "more_body": False}]
    path = raw_path.decode("latin-1")
    return asgi.call(app, method, path, headers, incoming, raw_path=raw_path, query=query)


def _check_request(
    fuzz_app: tuple[ASGIApp, Store, str],
    method: str,
    raw_path: bytes,
    query: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    authorized: bool,
) -> None:
    app, store, token = fuzz_app
    if authorized:
        headers = [(b"authorization", f"Bearer {token}".encode()), *headers]
    other = store.storage(workspace="ws-2", plugin="acme/weather")
    sent = _call(app, method, raw_path, query, headers, body)
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) == 1, sent
    status = starts[0]["status"]
    assert status < 500 or status == 503, (status, sent)
    assert other.keys("").entries == []  # no request reaches a scope its token does not name


@given(
    method=_METHODS,
    raw_path=_RAW_PATHS,
    query=_QUERIES,
    headers=_HEADERS,
    body=_BODIES,
    authorized=st.booleans(),
)
@QUICK
def test_no_request_makes_the_service_fail(
    fuzz_app: tuple[ASGIApp, Store, str],
    method: str,
    raw_path: bytes,
    query: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    authorized: bool,
) -> None:
    _check_request(fuzz_app, method, raw_path, query, headers, body, authorized)


@pytest.mark.slow
@given(
    method=_METHODS,
    raw_path=_RAW_PATHS,
    query=_QUERIES,
    headers=_HEADERS,
    body=_BODIES,
    authorized=st.booleans(),
)
@LONG
def test_no_request_makes_the_service_fail_long(
    fuzz_app: tuple[ASGIApp, Store, str],
    method: str,
    raw_path: bytes,
    query: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    authorized: bool,
) -> None:
    _check_request(fuzz_app, method, raw_path, query, headers, body, authorized)


# -- plugin-channel frames ----------------------------------------------------------------------

_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)
_LINES = st.one_of(
    st.binary(max_size=40),
    _JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(["event", "session_id", "data"]), _JSON_VALUES).map(
        lambda d: json.dumps(d).encode()
    ),
    st.integers(min_value=0, max_value=200).map(lambda n: b"[" * n),  # deep nesting
)
_STREAMS = st.lists(st.tuples(_LINES, st.sampled_from([b"\n", b"\n\n", b"\r\n", b""])), max_size=8)
_LIMIT = 64  # bytes: small, so over-long lines are exercised


def _decode(chunks: list[bytes]) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        reader = asyncio.StreamReader(limit=_LIMIT)

        async def collect() -> list[dict[str, Any]]:
            lines = LineReader(reader, _LIMIT)
            return [message async for message in read_messages(lines, "fuzz")]

        decoding = asyncio.create_task(collect())
        for chunk in chunks:  # as a socket delivers them: the reader runs between chunks
            reader.feed_data(chunk)
            await asyncio.sleep(0)
        reader.feed_eof()
        return await decoding

    return asyncio.run(run())


def _check_frames(stream: list[tuple[bytes, bytes]], split: int) -> None:
    data = b"".join(line + end for line, end in stream)
    chunks = [data[i : i + split] for i in range(0, len(data), split)] if data else []
    messages = _decode(chunks)
    assert all(isinstance(message, dict) for message in messages)
    # Exactly the objects on lines within the limit come through, in order:
    # nothing from the tail of an over-long line.
    expected = []
    for line in data.split(b"\n"):
        stripped = line.strip()
        if not stripped or len(line) > _LIMIT:
            continue
        try:
            value = json.loads(stripped)
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            expected.append(value)
    assert messages == expected


@given(stream=_STREAMS, split=st.integers(min_value=1, max_value=50))
@QUICK
def test_no_frame_stream_breaks_the_plugin_channel_reader(
    stream: list[tuple[bytes, bytes]], split: int
) -> None:
    _check_frames(stream, split)


@pytest.mark.slow
@given(stream=_STREAMS, split=st.integers(min_value=1, max_value=50))
@LONG
def test_no_frame_stream_breaks_the_plugin_channel_reader_long(
    stream: list[tuple[bytes, bytes]], split: int
) -> None:
    _check_frames(stream, split)
