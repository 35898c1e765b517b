"""Thin handlers: authorise, parse, call ``Storage``, serialise.

Single-key values travel as raw bytes bodies; batches as JSON with base64
values.  Reads run on the event loop, writes on one writer thread (``_write``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import unquote_to_bytes

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import InvalidArgument, InvalidKey, PluginKVError, Unauthorized, ValueTooLarge
from ..keys import check_key
from ..models import EntryMeta
from ..storage import Storage
from ..store import Store
from .auth import Grant, Tokens
from .errors import CODE_HEADER, error_body, not_found

__all__ = ["routes"]

Endpoint = Callable[[Request], Awaitable[Response]]
T = TypeVar("T")

KV_PREFIX = "/v1/kv/"
INCR_PREFIX = "/v1/incr/"


# -- where storage calls run ----------------------------------------------------------------
# Reads run inline on the event loop: a SQLite read of a small value takes
# microseconds, a hop to a worker thread costs ten times that.  Writes wait for
# fsync, so they go to one writer thread per app: off the loop, and one at a
# time, which is what SQLite allows anyway — several threads would only queue
# inside SQLite's busy handler, which sleeps in whole milliseconds.
async def _write(request: Request, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    loop = asyncio.get_running_loop()
    writer = request.app.state.writer
    return await loop.run_in_executor(writer, functools.partial(call, *args, **kwargs))


# -- request parsing -------------------------------------------------------------------------
def _grant(request: Request) -> Grant:
    header = request.headers.get("authorization")
    if header is None:
        raise Unauthorized("missing Authorization header: send 'Authorization: Bearer <token>'")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    tokens: Tokens = request.app.state.tokens
    return tokens.verify(token.strip())


def _storage(request: Request, *, write: bool) -> Storage:
    scope = _grant(request).require_scope(write=write)
    store: Store = request.app.state.store
    return store.storage(workspace=scope.workspace, plugin=scope.plugin)


def _key(request: Request, prefix: str) -> str:
    """The key exactly as the client percent-encoded it (the raw path, not a decoded one)."""
    raw: bytes = request.scope.get("raw_path") or request.url.path.encode()
    root = request.scope.get("root_path", "").encode()
    route = root + prefix.encode()
    if not raw.startswith(route):
        # The router matched a decoded path whose prefix was percent-encoded
        # (/v1/k%76/x): where the key starts in the raw path is then ambiguous.
        raise InvalidArgument(f"the path must start with {prefix} literally, not percent-encoded")
    encoded = raw[len(route) :]
    try:
        key = unquote_to_bytes(encoded).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidKey("key is not valid UTF-8 once percent-decoded") from None
    check_key(key)
    return key


def _query_number(request: Request, name: str, kind: type[int] | type[float]) -> Any:
    text = request.query_params.get(name)
    if text is None:
        return None
    try:
        return kind(text)
    except ValueError:
        raise InvalidArgument(f"query parameter {name}={text!r} is not a number") from None


def _conditions(request: Request) -> tuple[int | None, bool]:
    if_version = None
    match = request.headers.get("if-match")
    if match is not None:
        tag = match.strip().removeprefix("W/").strip('"')
        # ASCII digits only ('²'.isdigit() is true, int('²') fails); 19 digits span int64.
        if not (tag.isascii() and tag.isdigit() and len(tag) <= 19):
            raise InvalidArgument(
                f"If-Match must be an entry version such as '\"3\"', got {match!r}"
            )
        if_version = int(tag)
    none_match = request.headers.get("if-none-match")
    if none_match is not None and none_match.strip() != "*":
        raise InvalidArgument("If-None-Match supports only '*' (set only if absent)")
    return if_version, none_match is not None


async def _body(request: Request, limit: int, setting: str) -> bytes:
    """The request body, refused with 413 as soon as it is known to pass ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise InvalidArgument(f"Content-Length {declared!r} is not a number")
        if int(declared) > limit:
            raise ValueTooLarge(
                f"body of {declared} bytes is over the limit of {limit} bytes (setting {setting})",
                size=int(declared),
                limit=limit,
            )
    chunks = []
    size = 0
    timeout = request.app.state.settings.request_timeout_seconds
    try:
        # A client that trickles its body must not hold a worker forever.
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ValueTooLarge(
                        f"body is over the limit of {limit} bytes (setting {setting})",
                        size=size,
                        limit=limit,
                    )
                chunks.append(chunk)
    except TimeoutError:
        raise HTTPException(
            408,
            f"the body did not arrive within {timeout} s "
            "(setting PLUGINKV_REQUEST_TIMEOUT_SECONDS)",
        ) from None
    return b"".join(chunks)


async def _json(request: Request) -> dict[str, Any]:
    store: Store = request.app.state.store
    raw = await _body(request, store.settings.max_batch_bytes, "PLUGINKV_MAX_BATCH_BYTES")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise InvalidArgument(f"request body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidArgument("request body must be a JSON object")
    return body


def _field(
    body: dict[str, Any], name: str, kind: type | tuple[type, ...], *, required: bool = True
) -> Any:
    if name not in body or body[name] is None:
        if required:
            raise InvalidArgument(f"request body needs the field {name!r}")
        return None
    value = body[name]
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON does not tell 5 from 5.0
    if not isinstance(value, kind) or isinstance(value, bool):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise InvalidArgument(f"field {name!r} must be a {names}")
    return value


def _key_list(body: dict[str, Any]) -> list[str]:
    keys: list[str] = _field(body, "keys", list)
    if not all(isinstance(key, str) for key in keys):
        raise InvalidArgument("field 'keys' must be a list of strings")
    return keys


def _b64(key: str, text: object) -> bytes:
    if not isinstance(text, str):
        raise InvalidArgument(f"value of {key!r} must be a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument(f"value of {key!r} is not valid base64") from None


def _meta(entry: EntryMeta) -> dict[str, Any]:
    return {
        "key": entry.key,
        "size": entry.size,
        "version": entry.version,
        "created_at": entry.created_at,
        "updated_at": entry.updated_at,
        "expires_at": entry.expires_at,
    }


# -- single keys -----------------------------------------------------------------------------
async def put_value(request: Request) -> Response:
    storage = _storage(request, write=True)
    key = _key(request, KV_PREFIX)
    ttl = _query_number(request, "ttl", float)
    if_version, if_absent = _conditions(request)
    store: Store = request.app.state.store
    value = await _body(request, store.settings.max_value_bytes, "PLUGINKV_MAX_VALUE_BYTES")
    await _write(
        request, storage.set, key, value, ttl=ttl, if_version=if_version, if_absent=if_absent
    )
    return Response(status_code=204)


async def get_value(request: Request) -> Response:
    storage = _storage(request, write=False)
    key = _key(request, KV_PREFIX)
    entry = storage.get_entry(key)
    if entry is None:
        return not_found(key)
    headers = {
        "ETag": f'"{entry.version}"',
        "X-Created-At": repr(entry.created_at),
        "X-Updated-At": repr(entry.updated_at),
    }
    if entry.expires_at is not None:
        headers["X-Expires-At"] = repr(entry.expires_at)
    return Response(entry.value, media_type="application/octet-stream", headers=headers)


async def head_value(request: Request) -> Response:
    storage = _storage(request, write=False)
    key = _key(request, KV_PREFIX)
    found = storage.exist(key)
    if found:
        return Response(status_code=200)
    return Response(status_code=404, headers={CODE_HEADER: "not_found"})


async def delete_value(request: Request) -> Response:
    storage = _storage(request, write=True)
    key = _key(request, KV_PREFIX)
    if_version, if_absent = _conditions(request)
    if if_absent:
        raise InvalidArgument("If-None-Match has no meaning on DELETE")
    await _write(request, storage.delete, key, if_version=if_version)
    return Response(status_code=204)


async def incr(request: Request) -> Response:
    storage = _storage(request, write=True)
    key = _key(request, INCR_PREFIX)
    body = await _json(request)
    delta = _field(body, "delta", int, required=False)
    value = await _write(request, storage.incr, key, 1 if delta is None else delta)
    return JSONResponse({"value": value})


# -- listing, batches, usage ------------------------------------------------------------------
async def list_keys(request: Request) -> Response:
    storage = _storage(request, write=False)
    limit = _query_number(request, "limit", int)
    page = storage.keys(
        request.query_params.get("prefix", ""),
        limit=limit,
        cursor=request.query_params.get("cursor"),
    )
    return JSONResponse(
        {"entries": [_meta(e) for e in page.entries], "next_cursor": page.next_cursor}
    )


async def delete_prefix(request: Request) -> Response:
    storage = _storage(request, write=True)
    prefix = request.query_params.get("prefix")
    if prefix is None:
        raise InvalidArgument("DELETE /v1/keys needs ?prefix= (an empty prefix deletes all)")
    deleted = await _write(request, storage.delete_prefix, prefix)
    return JSONResponse({"deleted": deleted})


async def batch_get(request: Request) -> Response:
    storage = _storage(request, write=False)
    keys = _key_list(await _json(request))
    found = storage.get_many(keys)
    values = {key: base64.b64encode(value).decode("ascii") for key, value in found.items()}
    return JSONResponse({"values": values})


async def batch_set(request: Request) -> Response:
    storage = _storage(request, write=True)
    body = await _json(request)
    items = _field(body, "items", dict)
    ttl = _field(body, "ttl", (int, float), required=False)
    mapping = {key: _b64(key, text) for key, text in items.items()}
    await _write(request, storage.set_many, mapping, ttl=ttl)
    return Response(status_code=204)


async def batch_delete(request: Request) -> Response:
    storage = _storage(request, write=True)
    keys = _key_list(await _json(request))
    deleted = await _write(request, storage.delete_many, keys)
    return JSONResponse({"deleted": deleted})


async def usage(request: Request) -> Response:
    storage = _storage(request, write=False)
    used = storage.usage()
    return JSONResponse(
        {"bytes_used": used.bytes_used, "keys": used.keys, "quota_bytes": used.quota_bytes}
    )


# -- administration --------------------------------------------------------------------------
async def admin_scopes(request: Request) -> Response:
    _grant(request).require_admin()
    store: Store = request.app.state.store
    listed = await _write(request, store.scopes)
    return JSONResponse(
        {
            "scopes": [
                {
                    "workspace": scope.workspace,
                    "plugin": scope.plugin,
                    "bytes_used": used.bytes_used,
                    "keys": used.keys,
                    "quota_bytes": used.quota_bytes,
                }
                for scope, used in listed
            ]
        }
    )


async def admin_quota(request: Request) -> Response:
    _grant(request).require_admin()
    body = await _json(request)
    workspace = _field(body, "workspace", str)
    plugin = _field(body, "plugin", str)
    quota = _field(body, "quota_bytes", int, required=False)
    store: Store = request.app.state.store
    await _write(
        request, lambda: store.set_quota(workspace=workspace, plugin=plugin, quota_bytes=quota)
    )
    return Response(status_code=204)


async def admin_purge(request: Request) -> Response:
    _grant(request).require_admin()
    body = await _json(request)
    workspace = _field(body, "workspace", str)
    plugin = _field(body, "plugin", str)
    store: Store = request.app.state.store
    deleted = await _write(request, lambda: store.purge(workspace=workspace, plugin=plugin))
    return JSONResponse({"deleted": deleted})


# -- health --------------------------------------------------------------------------------
async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    store: Store = request.app.state.store
    try:
        store.ping()
    except PluginKVError as exc:
        return JSONResponse(error_body(exc.code, str(exc)), status_code=503)
    return JSONResponse({"status": "ready"})


def _by_method(**handlers: Endpoint) -> Endpoint:
    """One endpoint for several methods of one path, so a 405 lists them all in ``Allow``."""

    async def dispatch(request: Request) -> Response:
        return await handlers[request.method](request)

    # Read by the OpenAPI test: HEAD deserves its own entry only with its own handler.
    dispatch.head_handler = handlers.get("HEAD") not in (None, handlers.get("GET"))  # type: ignore[attr-defined]
    return dispatch


routes = [
    Route(
        "/v1/kv/{key:path}",
        _by_method(GET=get_value, HEAD=head_value, PUT=put_value, DELETE=delete_value),
        methods=["GET", "HEAD", "PUT", "DELETE"],
    ),
    Route("/v1/incr/{key:path}", incr, methods=["POST"]),
    Route(
        "/v1/keys",
        _by_method(GET=list_keys, HEAD=list_keys, DELETE=delete_prefix),
        methods=["GET", "DELETE"],
    ),
    Route("/v1/batch/get", batch_get, methods=["POST"]),
    Route("/v1/batch/set", batch_set, methods=["POST"]),
    Route("/v1/batch/delete", batch_delete, methods=["POST"]),
    Route("/v1/usage", usage, methods=["GET"]),
    Route("/v1/admin/scopes", admin_scopes, methods=["GET"]),
    Route("/v1/admin/quota", admin_quota, methods=["PUT"]),
    Route("/v1/admin/purge", admin_purge, methods=["POST"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
