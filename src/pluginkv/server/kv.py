"""``/v1/kv/{key}``: GET, HEAD, PUT and DELETE of one key, in plain ASGI.

These four are nearly all of a plugin's traffic, and for them Starlette's
machinery (router, exception middleware, ``Request`` and ``Response``
objects, the metrics middleware's wrappers) cost more than the SQLite read
they wrap: about 95 µs per GET against a 15 µs read, measured in-process.
So ``KeyValueFront`` answers them before any of that runs, with the same
parsing (``parsing.py``), the same error table (``errors.py``) and the same
metrics as every other route.  Everything else goes on to the Starlette app,
where the route of ``/v1/kv/{key}`` stays registered, so that other methods
get 405 with ``Allow`` and the route appears in metrics and the OpenAPI document
(``kv_route``, with the description of each method).
"""

from __future__ import annotations

import json
from time import perf_counter
from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..entry_metadata import check_content_type, stored_extra_size
from ..errors import InvalidArgument, PluginKVError
from ..models import Entry, EntryMeta, shown_expiry
from ..services.readers import Readers
from ..services.write_groups import WriteQueue
from ..storage import Storage
from ..store import Store
from .describe import (
    VALUE_LIMIT,
    ApiRoute,
    Operation,
    code_header,
    errors,
    query,
    ref,
    write_errors,
)
from .errors import CODE_HEADER, error_response, http_error_response, not_found
from .hints import route_hint
from .metrics import Metrics
from .parsing import (
    ClientGone,
    conditions,
    grant,
    key_from_path,
    query_flag,
    query_number,
    query_params,
    read_body,
    unchanged,
)

__all__ = ["KV_PREFIX", "KV_ROUTE", "KeyValueFront", "key_value_endpoint", "kv_route"]

KV_PREFIX = "/v1/kv/"
KV_ROUTE = "/v1/kv/{key:path}"
METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE"})
# What each method takes and answers, in the OpenAPI document.
_BINARY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
_ENTRY_HEADERS = {
    "ETag": ref("headers", "ETag"),
    "X-Created-At": ref("headers", "X-Created-At"),
    "X-Updated-At": ref("headers", "X-Updated-At"),
    "X-Expires-At": ref("headers", "X-Expires-At"),
    "Pluginkv-Metadata": ref("headers", "Pluginkv-Metadata"),
}
# A GET answers with the content type its PUT stored.
_STORED_TYPE = {**_BINARY, "*/*": {"schema": {"type": "string", "format": "binary"}}}
_READ_PARAMETERS = [ref("parameters", "Meta"), ref("parameters", "IfNoneMatchVersion")]
PUT_VALUE = Operation(
    "putValue",
    "keys",
    "Store a value",
    description="The body is the value, raw bytes. " + VALUE_LIMIT + " The request's "
    "`Content-Type` is stored with it (and a GET answers with it), unless it is absent, "
    "`application/octet-stream` or `application/x-www-form-urlencoded` (what curl's "
    "`--data-binary` and urllib send by default); at most `PLUGINKV_MAX_CONTENT_TYPE_BYTES`.",
    parameters=[
        query(
            "ttl",
            {"type": "number", "exclusiveMinimum": 0, "maximum": "{settings.max_ttl_seconds}"},
            "Seconds until the entry expires, at most `PLUGINKV_MAX_TTL_SECONDS` "
            "({settings.max_ttl_seconds}; `nan` and `inf` are refused too); without it the "
            "entry is kept forever, also when it replaces one that had a TTL.",
        ),
        ref("parameters", "IfMatch"),
        ref("parameters", "IfNoneMatch"),
        ref("parameters", "Metadata"),
    ],
    body={"required": True, "content": _BINARY},
    responses={"204": ref("responses", "Written"), **write_errors(400, 408, 412, 413, 507)},
)
GET_VALUE = Operation(
    "getValue",
    "keys",
    "Read a value",
    parameters=_READ_PARAMETERS,
    responses={
        "304": ref("responses", "NotModified"),
        "200": {
            "description": "The value, raw bytes, with the content type its write stored "
            "(`application/octet-stream` when none).",
            "headers": _ENTRY_HEADERS,
            "content": _STORED_TYPE,
        },
        **errors(400),
        "404": ref("responses", "KeyNotFound"),
    },
)
VALUE_EXISTS = Operation(
    "valueExists",
    "keys",
    "Tell whether a key holds a value, and its metadata",
    description="The headers a GET would send, with no body: the value is not read. "
    "`Content-Length` is the value's length.",
    parameters=_READ_PARAMETERS,
    responses={
        "304": ref("responses", "NotModified"),
        "200": {"description": "The key holds a value.", "headers": _ENTRY_HEADERS},
        "404": {
            "description": "The key holds no value (`no_such_route`: the key is empty, `/v1/kv/`).",
            "headers": {"X-Error-Code": code_header(["not_found", "no_such_route"])},
        },
        **errors(400),
    },
)
DELETE_VALUE = Operation(
    "deleteValue",
    "keys",
    "Remove a key",
    description="Removing an absent key is not an error (204).",
    parameters=[ref("parameters", "IfMatch")],
    responses={"204": ref("responses", "NoContent"), **write_errors(400, 412)},
)

# The query parameters each method takes; any other is a 400 that names it.
# Checked only when a query string is there: the common request has none.
_READ_PARAMS = frozenset({"meta"})
_PUT_PARAMS = frozenset({"ttl"})
_NO_PARAMS: frozenset[str] = frozenset()

# A PUT whose value is at most this may commit on the event loop (write_groups.py);
# a larger one copies and writes long enough to stall every other request.
_QUICK_VALUE_BYTES = 64 * 1024
_OCTETS = (b"content-type", b"application/octet-stream")
METADATA_HEADER_NAME = "Pluginkv-Metadata"
METADATA_HEADER = METADATA_HEADER_NAME.lower().encode("ascii")
_ABSENT = (CODE_HEADER.lower().encode("latin-1"), b"not_found")


class _Headers:
    """The request headers this path reads, in one pass over the ASGI list."""

    __slots__ = (
        "authorization",
        "content_length",
        "content_type",
        "if_match",
        "if_none_match",
        "metadata",
    )

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self.authorization: str | None = None
        self.content_length: str | None = None
        self.if_match: str | None = None
        self.if_none_match: str | None = None
        # Kept as bytes: only a PUT that sends them pays for parsing them.
        self.content_type: bytes | None = None
        self.metadata: bytes | None = None
        for name, value in raw:
            # The first of repeated headers wins, as in Starlette's Headers.get.
            if name == b"authorization":
                if self.authorization is None:
                    self.authorization = value.decode("latin-1")
            elif name == b"content-length":
                if self.content_length is None:
                    self.content_length = value.decode("latin-1")
            elif name == b"content-type":
                if self.content_type is None:
                    self.content_type = value
            elif name == b"if-match":
                if self.if_match is None:
                    self.if_match = value.decode("latin-1")
            elif name == b"if-none-match":
                if self.if_none_match is None:
                    self.if_none_match = value.decode("latin-1")
            elif name == METADATA_HEADER and self.metadata is None:
                self.metadata = value


async def key_value_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer one GET, HEAD, PUT or DELETE of ``/v1/kv/{key}``; errors become their responses."""
    state = scope["app"].state
    headers = _Headers(scope["headers"])
    try:
        method = scope["method"]
        if method in ("GET", "HEAD") and _route_path(scope) == KV_PREFIX:
            # GET /v1/kv/ is what listing looks like elsewhere: point to /v1/keys.
            raise HTTPException(404, "Not Found")
        if method == "GET":
            await _get(state, scope, headers, send)
        elif method == "HEAD":
            await _head(state, scope, headers, send)
        elif method == "PUT":
            await _put(state, scope, headers, receive, send)
        else:
            await _delete(state, scope, headers, send)
    except PluginKVError as exc:
        await error_response(exc)(scope, receive, send)
    except HTTPException as exc:
        hint = route_hint(scope) if exc.status_code == 404 else None
        await http_error_response(exc, hint)(scope, receive, send)
    except ClientGone:
        # As errors.py answers it on the other routes: nobody reads this, and
        # metrics count it as nginx's "client closed request", not as a 500.
        await Response(status_code=499)(scope, receive, send)


class KeyValueFront:
    """Pure-ASGI middleware: serves the single-key methods, passes everything else on."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in METHODS
            or not _route_path(scope).startswith(KV_PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        status = 500  # unless a response starts, ServerErrorMiddleware sends 500
        received = 0
        sent = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            return message

        async def counting_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            else:
                sent += len(message.get("body", b""))
            await send(message)

        start = perf_counter()
        try:
            await key_value_endpoint(scope, counting_receive, counting_send)
        finally:
            method = scope["method"]
            self.metrics.observe(
                KV_ROUTE,
                method,
                status,
                perf_counter() - start,
                received,
                0 if method == "HEAD" else sent,
            )


def _route_path(scope: Scope) -> str:
    """The path as the router sees it: without the app's ``root_path``."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _storage(state: Any, headers: _Headers, *, write: bool) -> Storage:
    bound = grant(state.tokens, headers.authorization).require_scope(write=write)
    store: Store = state.store
    return store.storage(workspace=bound.workspace, plugin=bound.plugin)


async def _get(state: Any, scope: Scope, headers: _Headers, send: Send) -> None:
    storage = _storage(state, headers, write=False)
    key = key_from_path(scope, KV_PREFIX)
    with_times = _wants_times(scope)
    readers: Readers = state.readers
    if headers.if_none_match is not None:
        # A conditional GET: the client holds a version; if it is the current
        # one, 304 and the value is never read.
        meta = await readers.run(state.store.backend, storage.get_meta, key)
        if meta is not None and unchanged(headers.if_none_match, meta.version):
            await _not_modified(meta, send)
            return
    entry = await readers.run(state.store.backend, storage.get_entry, key)
    if entry is None:
        await not_found(key)(scope, _no_body, send)
        return
    response_headers = _entry_headers(len(entry.value), entry, with_times)
    await send({"type": "http.response.start", "status": 200, "headers": response_headers})
    await send({"type": "http.response.body", "body": entry.value})


def _wants_times(scope: Scope) -> bool:
    """``?meta=1``: the entry's timestamps too.

    They are off by default because every response header costs each read:
    a Python client parses each one through ``http.client``'s email parser.
    Two headers fewer took a 100 B GET from 140 to 132 µs round trip here.
    """
    if not scope.get("query_string"):
        return False
    return query_flag(query_params(scope, _READ_PARAMS), "meta")


def _entry_headers(
    length: int, entry: Entry | EntryMeta, with_times: bool
) -> list[tuple[bytes, bytes]]:
    """A GET's headers, and a HEAD's: ``length`` is the value's, sent or not."""
    headers = [
        (b"content-length", b"%d" % length),
        _OCTETS if entry.content_type is None else (b"content-type", entry.content_type.encode()),
        (b"etag", b'"%d"' % entry.version),
    ]
    if entry.metadata is not None:
        # Compact ASCII JSON: one header line, whatever the metadata holds.
        text = json.dumps(entry.metadata, separators=(",", ":"))
        headers.append((METADATA_HEADER, text.encode("ascii")))
    if with_times:
        headers.append((b"x-created-at", repr(entry.created_at).encode()))
        headers.append((b"x-updated-at", repr(entry.updated_at).encode()))
    # No header for an expiry that is no finite number: such a row never expires.
    if entry.expires_at is not None and shown_expiry(entry.expires_at) is not None:
        headers.append((b"x-expires-at", repr(entry.expires_at).encode()))
    return headers


async def _head(state: Any, scope: Scope, headers: _Headers, send: Send) -> None:
    storage = _storage(state, headers, write=False)
    key = key_from_path(scope, KV_PREFIX)
    with_times = _wants_times(scope)
    readers: Readers = state.readers
    meta = await readers.run(state.store.backend, storage.get_meta, key)
    if meta is not None and unchanged(headers.if_none_match, meta.version):
        await _not_modified(meta, send)
        return
    if meta is None:
        start = {"type": "http.response.start", "status": 404, "headers": [_ABSENT]}
    else:
        # The headers a GET would send, as HTTP asks of a HEAD; the value is never
        # read: its length is the entry's size less the key's, metadata's and type's bytes.
        extra = stored_extra_size(meta.metadata, meta.content_type)
        length = meta.size - len(key.encode("utf-8")) - extra
        start = {
            "type": "http.response.start",
            "status": 200,
            "headers": _entry_headers(length, meta, with_times),
        }
    await send(start)
    await send({"type": "http.response.body", "body": b""})


async def _not_modified(meta: EntryMeta, send: Send) -> None:
    """304: the headers a 200 would have that describe the entry, no body."""
    headers = [(b"etag", b'"%d"' % meta.version)]
    if meta.expires_at is not None and shown_expiry(meta.expires_at) is not None:
        headers.append((b"x-expires-at", repr(meta.expires_at).encode()))
    await send({"type": "http.response.start", "status": 304, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


async def _put(state: Any, scope: Scope, headers: _Headers, receive: Receive, send: Send) -> None:
    storage = _storage(state, headers, write=True)
    key = key_from_path(scope, KV_PREFIX)
    ttl = _ttl(scope)
    wanted = conditions(headers.if_match, headers.if_none_match)
    store: Store = state.store
    metadata = None if headers.metadata is None else _metadata(headers.metadata)
    content_type = None
    if headers.content_type is not None:
        content_type = _content_type(headers.content_type, store.settings.max_content_type_bytes)
    value = await read_body(
        receive,
        headers.content_length,
        store.settings.max_value_bytes,
        "PLUGINKV_MAX_VALUE_BYTES",
        state.settings.request_timeout_seconds,
    )
    writer: WriteQueue = state.writer

    def write() -> int:
        return storage.set(
            key,
            value,
            ttl=ttl,
            if_version=wanted.if_version,
            if_absent=wanted.if_absent,
            if_exists=wanted.if_exists,
            metadata=metadata,
            content_type=content_type,
        )

    # One small entry may commit on the event loop when nothing else waits (write_groups.py).
    version = await writer.run(store.backend, write, quick=len(value) <= _QUICK_VALUE_BYTES)
    await send({"type": "http.response.start", "status": 204, "headers": [_etag(version)]})
    await send({"type": "http.response.body", "body": b""})


async def _delete(state: Any, scope: Scope, headers: _Headers, send: Send) -> None:
    storage = _storage(state, headers, write=True)
    key = key_from_path(scope, KV_PREFIX)
    if scope.get("query_string"):
        query_params(scope, _NO_PARAMS)
    wanted = conditions(headers.if_match, headers.if_none_match)
    if wanted.if_absent:
        raise InvalidArgument("If-None-Match has no meaning on DELETE")
    writer: WriteQueue = state.writer
    store: Store = state.store

    def delete() -> None:
        storage.delete(key, if_version=wanted.if_version, if_exists=wanted.if_exists)

    await writer.run(store.backend, delete, quick=True)
    await _no_content(send)


def _metadata(raw: bytes) -> dict[str, Any]:
    """The ``Pluginkv-Metadata`` header: a JSON object (its size the engine checks)."""
    try:
        metadata = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested too deep
        metadata = None
    if not isinstance(metadata, dict):
        raise InvalidArgument(f"header {METADATA_HEADER_NAME} must be a JSON object")
    return metadata


# Types a PUT does not store: raw bytes, and the form type that curl's -d/--data-binary
# and urllib send by default with any body, which says nothing of the value.
_UNTYPED = frozenset({"application/octet-stream", "application/x-www-form-urlencoded"})


def _content_type(raw: bytes, limit: int) -> str | None:
    """The type a PUT stores: the request's ``Content-Type``, but none for raw bytes."""
    text = raw.decode("latin-1").strip()
    if not text or text.lower() in _UNTYPED:
        return None
    try:
        return check_content_type(text, limit)
    except InvalidArgument as exc:
        raise InvalidArgument(f"header Content-Type: {exc}") from None


def _etag(version: int) -> tuple[bytes, bytes]:
    return (b"etag", b'"%d"' % version)


def _ttl(scope: Scope) -> float | None:
    if not scope.get("query_string"):
        return None
    return query_number(query_params(scope, _PUT_PARAMS), "ttl", float)


async def _no_content(send: Send) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


# Served by KeyValueFront before the router; on the router for 405s, metrics and OpenAPI.
kv_route = ApiRoute(
    KV_ROUTE,
    parameters=[ref("parameters", "Key")],
    PUT=(key_value_endpoint, PUT_VALUE),
    GET=(key_value_endpoint, GET_VALUE),
    HEAD=(key_value_endpoint, VALUE_EXISTS),
    DELETE=(key_value_endpoint, DELETE_VALUE),
)
