"""Thin handlers: authorise, parse, call ``Storage``, serialise.

Batches travel as JSON with base64 values; single-key values as raw bytes
bodies (``kv.py``).  Reads run inline on the event loop for SQLite and the
memory backend and on reader threads for PostgreSQL (``_read``); writes go to
the writer (``_write``).
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
from .parsing import grant, key_from_path, query_flag, query_number, read_body

__all__ = ["admin_json", "by_method", "field", "routes"]

Endpoint = Callable[[Request], Awaitable[Response]]
T = TypeVar("T")

INCR_PREFIX = "/v1/incr/"


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


async def _json(request: Request) -> dict[str, Any]:
    store: Store = request.app.state.store
    raw = await read_body(
        request.receive,
        request.headers.get("content-length"),
        store.settings.max_batch_bytes,
        "PLUGINKV_MAX_BATCH_BYTES",
        request.app.state.settings.request_timeout_seconds,
    )
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


field = _field


async def admin_json(request: Request, *, body: bool = True) -> dict[str, Any]:
    """Refuse all but the admin token; then the JSON body (``{}`` with ``body=False``)."""
    _grant(request).require_admin()
    return await _json(request) if body else {}


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


# -- single keys (GET, HEAD, PUT and DELETE are in kv.py) ---------------------------------
async def incr(request: Request) -> Response:
    storage = _storage(request, write=True)
    key = key_from_path(request.scope, INCR_PREFIX)
    body = await _json(request)
    delta = _field(body, "delta", int, required=False)
    value = await _write(request, storage.incr, key, 1 if delta is None else delta)
    return JSONResponse({"value": value})


# -- listing, batches, usage ------------------------------------------------------------------
async def list_keys(request: Request) -> Response:
    storage = _storage(request, write=False)
    limit = query_number(request.query_params, "limit", int)
    page = await _read(
        request,
        storage.keys,
        request.query_params.get("prefix", ""),
        limit=limit,
        cursor=request.query_params.get("cursor"),
    )
    return JSONResponse(
        {"entries": [e.as_dict() for e in page.entries], "next_cursor": page.next_cursor}
    )


async def delete_prefix(request: Request) -> Response:
    storage = _storage(request, write=True)
    prefix = request.query_params.get("prefix")
    everything = query_flag(request.query_params, "all")
    if prefix is None:
        raise InvalidArgument("DELETE /v1/keys needs ?prefix=P (every key: ?prefix=&all=true)")
    deleted = await _write(request, storage.delete_prefix, prefix, all=everything)
    return JSONResponse({"deleted": deleted})


async def batch_get(request: Request) -> Response:
    storage = _storage(request, write=False)
    keys = _key_list(await _json(request))
    found = await _read(request, storage.get_many, keys)
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
    used = await _read(request, storage.usage)
    return JSONResponse(
        {"bytes_used": used.bytes_used, "keys": used.keys, "quota_bytes": used.quota_bytes}
    )


# -- administration --------------------------------------------------------------------------
async def admin_scopes(request: Request) -> Response:
    _grant(request).require_admin()
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
    body = await _json(request)
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
    body = await admin_json(request)
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
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
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
    Route("/v1/admin/tokens/revoke", admin_revoke_tokens, methods=["POST"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
