"""Thin handlers: authorise, parse, call ``Storage``, serialise.

Batches travel as JSON, each value base64 or UTF-8 text (``_value``);
single-key values as raw bytes bodies (``kv.py``).  Reads run inline on the
event loop for SQLite and the memory backend and on reader threads for
PostgreSQL (``_read``); writes go to the writer (``_write``).  Every handler
names the query parameters and body fields it takes: anything else is a 400
that names it.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import InvalidArgument, PluginKVError
from ..keys import Scope
from ..services.readers import Readers
from ..services.tokens import Grant, Tokens
from ..services.write_groups import WriteQueue
from ..storage import Storage
from ..store import Store
from .errors import error_body
from .kv import KV_ROUTE, key_value_endpoint
from .kv import METHODS as KV_METHODS
from .parsing import (
    grant,
    key_from_path,
    known_fields,
    query_flag,
    query_number,
    query_params,
    read_body,
)

__all__ = ["admin_json", "by_method", "field", "routes"]

Endpoint = Callable[[Request], Awaitable[Response]]
T = TypeVar("T")

INCR_PREFIX = "/v1/incr/"
INCR_ROUTE = "/v1/incr/{key:key}"
_NONE: frozenset[str] = frozenset()
_LIST_PARAMS = frozenset({"prefix", "limit", "cursor"})
_DELETE_PREFIX_PARAMS = frozenset({"prefix", "all"})
_INCR_FIELDS = frozenset({"delta"})
_KEYS_FIELDS = frozenset({"keys"})
_BATCH_GET_FIELDS = frozenset({"keys", "encoding"})
_BATCH_SET_FIELDS = frozenset({"items", "ttl"})
_QUOTA_FIELDS = frozenset({"workspace", "plugin", "quota_bytes"})
_SCOPE_FIELDS = frozenset({"workspace", "plugin"})
_VALUE_FIELDS = frozenset({"text", "base64"})


# -- where storage calls run ----------------------------------------------------------------
# Reads run inline on the event loop for an embedded database, on threads for
# a database server (``services/readers.py``).  Writes wait for their commit, so they
# go to the app's writer: on SQLite one thread, which commits the writes that
# arrive together in one transaction; on PostgreSQL several threads
# (``services/write_groups.py``).
async def _read(request: Request, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    store: Store = request.app.state.store
    readers: Readers = request.app.state.readers
    return await readers.run(store.backend, functools.partial(call, *args, **kwargs))


async def _write(request: Request, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    store: Store = request.app.state.store
    writer: WriteQueue = request.app.state.writer
    return await writer.run(store.backend, functools.partial(call, *args, **kwargs))


# -- request parsing -------------------------------------------------------------------------
def _grant(request: Request) -> Grant:
    tokens: Tokens = request.app.state.tokens
    return grant(tokens, request.headers.get("authorization"))


def _storage(request: Request, *, write: bool) -> Storage:
    scope = _grant(request).require_scope(write=write)
    store: Store = request.app.state.store
    return store.storage(workspace=scope.workspace, plugin=scope.plugin)


def _query(request: Request, allowed: frozenset[str] = _NONE) -> Any:
    """The query parameters, after refusing any this route does not take."""
    return query_params(request.scope, allowed) if request.scope.get("query_string") else {}


async def _json(
    request: Request, fields: frozenset[str] | None = None, *, optional: bool = False
) -> dict[str, Any]:
    """The JSON object of the body; with ``fields``, any other field is refused.

    With ``optional``, no body at all is ``{}`` (``POST /v1/incr/k`` adds 1).
    """
    store: Store = request.app.state.store
    raw = await read_body(
        request.receive,
        request.headers.get("content-length"),
        store.settings.max_batch_bytes,
        "PLUGINKV_MAX_BATCH_BYTES",
        request.app.state.settings.request_timeout_seconds,
    )
    if optional and not raw:
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise InvalidArgument(f"request body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidArgument("request body must be a JSON object")
    if fields is not None:
        known_fields(body, fields)
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


field = _field


async def admin_json(
    request: Request,
    *,
    body: bool = True,
    fields: frozenset[str] | None = None,
    params: frozenset[str] = _NONE,
) -> dict[str, Any]:
    """Refuse all but the admin token, and query parameters not in ``params``; then the
    JSON body (``{}`` with ``body=False``), refusing fields not in ``fields`` if given."""
    _grant(request).require_admin()
    _query(request, params)
    return await _json(request, fields) if body else {}


def _key_list(request: Request, body: dict[str, Any]) -> list[str]:
    keys: list[str] = _field(body, "keys", list)
    if not all(isinstance(key, str) for key in keys):
        raise InvalidArgument("field 'keys' must be a list of strings")
    _check_batch_size(request, len(keys))
    return keys


def _check_batch_size(request: Request, count: int) -> None:
    """Refuse a list longer than the setting, duplicates counted as JSON Schema's maxItems does."""
    store: Store = request.app.state.store
    maximum = store.settings.max_batch_items
    if count > maximum:
        raise InvalidArgument(
            f"a batch holds at most {maximum} keys (setting PLUGINKV_MAX_BATCH_ITEMS), got {count}"
        )


def _value(key: str, item: object) -> bytes:
    """A batch value: a base64 string, ``{"base64": "..."}`` or ``{"text": "..."}`` (UTF-8)."""
    if isinstance(item, dict):
        known_fields(item, _VALUE_FIELDS)
        if len(item) != 1:
            raise InvalidArgument(
                f'value of {key!r} must be one of {{"text": ...}} or {{"base64": ...}}'
            )
        ((form, text),) = item.items()
        if not isinstance(text, str):
            raise InvalidArgument(f"value of {key!r}: {form!r} must be a string")
        if form == "text":
            try:
                return text.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate (JSON's \ud800)
                raise InvalidArgument(f"value of {key!r} is not valid UTF-8 text") from None
        item = text
    if not isinstance(item, str):
        raise InvalidArgument(
            f'value of {key!r} must be a base64 string, {{"base64": ...}} or {{"text": ...}}'
        )
    try:
        return base64.b64decode(item, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument(f"value of {key!r} is not valid base64") from None


def _shown(value: bytes, as_text: bool) -> Any:
    """A batch value as ``batch/get`` answers it: base64, or tagged text where it is UTF-8."""
    encoded = base64.b64encode(value).decode("ascii")
    if not as_text:
        return encoded
    try:
        return {"text": value.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": encoded}


# -- single keys (GET, HEAD, PUT and DELETE are in kv.py) ---------------------------------
async def incr(request: Request) -> Response:
    storage = _storage(request, write=True)
    key = key_from_path(request.scope, INCR_PREFIX)
    _query(request)
    body = await _json(request, _INCR_FIELDS, optional=True)
    delta = _field(body, "delta", int, required=False)
    value, version = await _write(
        request, storage.incr_versioned, key, 1 if delta is None else delta
    )
    return JSONResponse({"value": value}, headers={"ETag": f'"{version}"'})


# -- listing, batches, usage ------------------------------------------------------------------
async def list_keys(request: Request) -> Response:
    storage = _storage(request, write=False)
    params = _query(request, _LIST_PARAMS)
    limit = query_number(params, "limit", int)
    page = await _read(
        request,
        storage.keys,
        params.get("prefix", ""),
        limit=limit,
        cursor=params.get("cursor"),
    )
    return JSONResponse(
        {"entries": [e.as_dict() for e in page.entries], "next_cursor": page.next_cursor}
    )


async def delete_prefix(request: Request) -> Response:
    storage = _storage(request, write=True)
    params = _query(request, _DELETE_PREFIX_PARAMS)
    prefix = params.get("prefix")
    everything = query_flag(params, "all")
    if prefix is None:
        raise InvalidArgument("DELETE /v1/keys needs ?prefix=P (every key: ?prefix=&all=true)")
    deleted = await _write(request, storage.delete_prefix, prefix, all=everything)
    return JSONResponse({"deleted": deleted})


async def batch_get(request: Request) -> Response:
    storage = _storage(request, write=False)
    _query(request)
    body = await _json(request, _BATCH_GET_FIELDS)
    keys = _key_list(request, body)
    encoding = _field(body, "encoding", str, required=False)
    encoding = "base64" if encoding is None else encoding
    if encoding not in ("base64", "text"):
        raise InvalidArgument(f"field 'encoding' must be 'base64' or 'text', got {encoding!r}")
    found = await _read(request, storage.get_many, keys)
    as_text = encoding == "text"
    return JSONResponse({"values": {key: _shown(v, as_text) for key, v in found.items()}})


async def batch_set(request: Request) -> Response:
    storage = _storage(request, write=True)
    _query(request)
    body = await _json(request, _BATCH_SET_FIELDS)
    items = _field(body, "items", dict)
    ttl = _field(body, "ttl", (int, float), required=False)
    _check_batch_size(request, len(items))
    mapping = {key: _value(key, item) for key, item in items.items()}
    versions = await _write(request, storage.set_many, mapping, ttl=ttl)
    return JSONResponse({"versions": versions})


async def batch_delete(request: Request) -> Response:
    storage = _storage(request, write=True)
    _query(request)
    keys = _key_list(request, await _json(request, _KEYS_FIELDS))
    deleted = await _write(request, storage.delete_many, keys)
    return JSONResponse({"deleted": deleted})


async def usage(request: Request) -> Response:
    storage = _storage(request, write=False)
    _query(request)
    used = await _read(request, storage.usage)
    return JSONResponse(
        {"bytes_used": used.bytes_used, "keys": used.keys, "quota_bytes": used.quota_bytes}
    )


# -- administration --------------------------------------------------------------------------
async def admin_scopes(request: Request) -> Response:
    _grant(request).require_admin()
    _query(request)
    store: Store = request.app.state.store
    listed = await _read(request, store.scopes)
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
    _query(request)
    body = await _json(request, _QUOTA_FIELDS)
    workspace = _field(body, "workspace", str)
    plugin = _field(body, "plugin", str)
    quota = _field(body, "quota_bytes", int, required=False)
    store: Store = request.app.state.store
    await _write(
        request, lambda: store.set_quota(workspace=workspace, plugin=plugin, quota_bytes=quota)
    )
    return Response(status_code=204)


async def _admin_scope(request: Request) -> tuple[str, str]:
    """Refuse all but the admin token; then the body's ``workspace`` and ``plugin``."""
    body = await admin_json(request, fields=_SCOPE_FIELDS)
    return _field(body, "workspace", str), _field(body, "plugin", str)


async def admin_purge(request: Request) -> Response:
    workspace, plugin = await _admin_scope(request)
    store: Store = request.app.state.store
    deleted = await _write(request, lambda: store.purge(workspace=workspace, plugin=plugin))
    return JSONResponse({"deleted": deleted})


async def admin_revoke_tokens(request: Request) -> Response:
    workspace, plugin = await _admin_scope(request)
    store: Store = request.app.state.store
    revoked_at = await _write(
        request, lambda: store.revoke_tokens(workspace=workspace, plugin=plugin)
    )
    tokens: Tokens = request.app.state.tokens
    tokens.revoked(Scope(workspace, plugin), revoked_at)  # the ids passed revoke_tokens' check
    return JSONResponse({"workspace": workspace, "plugin": plugin, "revoked_at": revoked_at})


# -- health --------------------------------------------------------------------------------
async def healthz(request: Request) -> Response:
    _query(request)
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    _query(request)
    store: Store = request.app.state.store
    try:
        await _read(request, store.ping)
    except PluginKVError as exc:
        return JSONResponse(error_body(exc.code, str(exc)), status_code=503)
    # Still ready on a full disk: reads and deletes are served, and deletes
    # are how the disk gets room again, so a balancer must keep sending them.
    disk_full = store.backend.disk_full()
    if disk_full is not None:
        return JSONResponse({"status": "disk_full", **error_body(disk_full.code, str(disk_full))})
    return JSONResponse({"status": "ready"})


def _by_method(**handlers: Endpoint) -> Endpoint:
    """One endpoint for several methods of one path, so a 405 lists them all in ``Allow``."""

    async def dispatch(request: Request) -> Response:
        return await handlers[request.method](request)

    # Read by the OpenAPI test: HEAD deserves its own entry only with its own handler.
    dispatch.head_handler = handlers.get("HEAD") not in (None, handlers.get("GET"))  # type: ignore[attr-defined]
    return dispatch


by_method = _by_method

routes = [
    # Served by kv.KeyValueFront before the router; here for 405s, metrics and OpenAPI.
    Route(KV_ROUTE, key_value_endpoint, methods=sorted(KV_METHODS)),
    Route(INCR_ROUTE, incr, methods=["POST"]),
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
    Route("/v1/admin/tokens/revoke", admin_revoke_tokens, methods=["POST"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
