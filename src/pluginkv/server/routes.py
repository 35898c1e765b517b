"""Thin handlers: authorise, parse, call ``Storage``, serialise.

Batches travel as JSON, each value base64 or UTF-8 text (``_value``);
single-key values as raw bytes bodies (``kv.py``).  Reads run inline on the
event loop for SQLite and the memory backend and on reader threads for
PostgreSQL (``_read``); writes go to the writer (``_write``).  Every handler
names the query parameters (its ``Operation``'s) and body fields (its body's model,
``bodies.py``) it takes: anything else is a 400 that names it.  Each handler's
description in the OpenAPI document is the ``Operation`` just above it.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import InvalidArgument, PluginKVError
from ..keys import Scope
from ..services.readers import Readers
from ..services.tokens import Grant, Tokens
from ..services.write_groups import WriteQueue
from ..storage import Storage
from ..store import Store
from .answers import (
    Alive,
    BatchValues,
    BatchVersions,
    IncrResult,
    KeyPage,
    Ready,
    Revoked,
    ScopeList,
    Usage,
)
from .bodies import (
    VALUE_FORMS,
    BatchGetRequest,
    BatchSetRequest,
    IncrRequest,
    KeyList,
    QuotaRequest,
    ScopeRef,
    parse,
)
from .describe import (
    BATCH_LIMIT,
    ApiRoute,
    Operation,
    errors,
    json_body,
    json_content,
    ok,
    prefix_schema,
    query,
    ref,
    write_errors,
)
from .errors import error_body
from .kv import kv_route
from .parsing import (
    grant,
    key_from_path,
    known_fields,
    query_flag,
    query_number,
    query_params,
    read_body,
)

__all__ = ["admin_json", "admin_only", "routes"]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

INCR_PREFIX = "/v1/incr/"
INCR_ROUTE = "/v1/incr/{key:key}"
_NONE: frozenset[str] = frozenset()


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


async def _json(request: Request, model: type[M], *, optional: bool = False) -> M:
    """The body, a JSON object, as ``model`` (``bodies.py``): what it does not take is refused.

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
        return parse(model, {})
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise InvalidArgument(f"request body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidArgument("request body must be a JSON object")
    return parse(model, body)


def admin_only(request: Request, params: frozenset[str] = _NONE) -> Any:
    """Refuse all but the admin token, and query parameters not in ``params``; return them."""
    _grant(request).require_admin()
    return _query(request, params)


async def admin_json(request: Request, model: type[M]) -> M:
    """Refuse all but the admin token and any query parameter; then the body as ``model``."""
    admin_only(request)
    return await _json(request, model)


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
        known_fields(item, VALUE_FORMS)
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
INCR = Operation(
    "incr",
    "keys",
    "Add to an integer counter",
    description="Adds `delta` to the decimal integer stored at the key (an absent key counts "
    "as 0), atomically, and keeps its TTL. The value is stored as ASCII decimal. `delta` and "
    "the result must stay in the signed 64-bit range (else 400).",
    body={
        "required": False,
        "description": "Optional: no body, or `{}`, adds 1.",
        "content": json_content(ref("schemas", "IncrRequest")),
    },
    responses={
        "200": ok(
            "The new value; `ETag` is the entry's new version.",
            IncrResult,
            ETag=ref("headers", "ETag"),
        ),
        **write_errors(400, 408, 413, 507),
    },
)


async def incr(request: Request) -> Response:
    storage = _storage(request, write=True)
    key = key_from_path(request.scope, INCR_PREFIX)
    _query(request)
    body = await _json(request, IncrRequest, optional=True)
    delta = 1 if body.delta is None else body.delta
    value, version = await _write(request, storage.incr_versioned, key, delta)
    return JSONResponse({"value": value}, headers={"ETag": f'"{version}"'})


# -- listing, batches, usage ------------------------------------------------------------------
LIST_KEYS = Operation(
    "listKeys",
    "keys",
    "One page of entries, in key order",
    parameters=[
        query("prefix", prefix_schema(), "Only keys that start with it."),
        query(
            "limit",
            {
                "type": "integer",
                "minimum": 1,
                "maximum": "{settings.max_page_size}",
                "default": 100,
            },
            "Page size (setting `PLUGINKV_MAX_PAGE_SIZE` bounds it).",
        ),
        query(
            "cursor",
            {"type": "string", "minLength": 1},
            "The `next_cursor` of the previous page; opaque.",
        ),
    ],
    responses={"200": ok("One page.", KeyPage), **errors(400)},
)


async def list_keys(request: Request) -> Response:
    storage = _storage(request, write=False)
    params = _query(request, LIST_KEYS.query_names)
    limit = query_number(params, "limit", int)
    page = await _read(
        request,
        storage.keys,
        params.get("prefix", ""),
        limit=limit,
        cursor=params.get("cursor"),
    )
    entries = [
        {**e.as_dict(), "metadata": e.metadata, "content_type": e.content_type}
        for e in page.entries
    ]
    return JSONResponse({"entries": entries, "next_cursor": page.next_cursor})


_DELETED = ref("responses", "Deleted")
DELETE_PREFIX = Operation(
    "deletePrefix",
    "keys",
    "Remove every key with a prefix",
    parameters=[
        query(
            "prefix",
            prefix_schema(),
            "Required. The empty prefix, every key of the scope, only with `all=true`: a "
            "missing or empty prefix without it is 400.",
            required=True,
        ),
        query(
            "all",
            {"type": "string", "enum": ["true", "false", "1", "0"]},
            "`true` with `prefix=` (and only with it): delete every key of the scope.",
        ),
    ],
    responses={"200": _DELETED, **write_errors(400)},
)


async def delete_prefix(request: Request) -> Response:
    storage = _storage(request, write=True)
    params = _query(request, DELETE_PREFIX.query_names)
    prefix = params.get("prefix")
    everything = query_flag(params, "all")
    if prefix is None:
        raise InvalidArgument("DELETE /v1/keys needs ?prefix=P (every key: ?prefix=&all=true)")
    deleted = await _write(request, storage.delete_prefix, prefix, all=everything)
    return JSONResponse({"deleted": deleted})


BATCH_GET = Operation(
    "batchGet",
    "batches",
    "Read many keys",
    body=json_body(BatchGetRequest),
    responses={"200": ok("The present keys only.", BatchValues), **errors(400, 408, 413)},
)


async def batch_get(request: Request) -> Response:
    storage = _storage(request, write=False)
    _query(request)
    body = await _json(request, BatchGetRequest)
    _check_batch_size(request, len(body.keys))
    encoding = "base64" if body.encoding is None else body.encoding
    if encoding not in ("base64", "text"):
        raise InvalidArgument(f"field 'encoding' must be 'base64' or 'text', got {encoding!r}")
    found = await _read(request, storage.get_many, body.keys)
    as_text = encoding == "text"
    return JSONResponse({"values": {key: _shown(v, as_text) for key, v in found.items()}})


BATCH_SET = Operation(
    "batchSet",
    "batches",
    "Store many values, all or nothing",
    description=BATCH_LIMIT + " Each value is also bound by `PLUGINKV_MAX_VALUE_BYTES`.",
    body=json_body(BatchSetRequest),
    responses={
        "200": ok("Stored, each key with its new version.", BatchVersions),
        **write_errors(400, 408, 413, 507),
    },
)


async def batch_set(request: Request) -> Response:
    storage = _storage(request, write=True)
    _query(request)
    body = await _json(request, BatchSetRequest)
    _check_batch_size(request, len(body.items))
    mapping = {key: _value(key, item) for key, item in body.items.items()}
    versions = await _write(request, storage.set_many, mapping, ttl=body.ttl)
    return JSONResponse({"versions": versions})


BATCH_DELETE = Operation(
    "batchDelete",
    "batches",
    "Remove many keys",
    body=json_body(KeyList),
    responses={"200": _DELETED, **write_errors(400, 408, 413)},
)


async def batch_delete(request: Request) -> Response:
    storage = _storage(request, write=True)
    _query(request)
    body = await _json(request, KeyList)
    _check_batch_size(request, len(body.keys))
    deleted = await _write(request, storage.delete_many, body.keys)
    return JSONResponse({"deleted": deleted})


USAGE = Operation(
    "usage",
    "keys",
    "The scope's usage and quota",
    responses={"200": ok("Usage.", Usage), **errors()},
)


async def usage(request: Request) -> Response:
    storage = _storage(request, write=False)
    _query(request)
    used = await _read(request, storage.usage)
    return JSONResponse(
        {"bytes_used": used.bytes_used, "keys": used.keys, "quota_bytes": used.quota_bytes}
    )


# -- administration --------------------------------------------------------------------------
ADMIN_SCOPES = Operation(
    "adminScopes",
    "admin",
    "Every scope that stores something, with its usage",
    description="Needs an admin token.",
    responses={"200": ok("By workspace, then plugin.", ScopeList), **errors()},
)


async def admin_scopes(request: Request) -> Response:
    admin_only(request)
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


ADMIN_QUOTA = Operation(
    "adminSetQuota",
    "admin",
    "Override one scope's quota",
    description="Needs an admin token. A quota below the current usage refuses further growth "
    "but deletes nothing.",
    body=json_body(QuotaRequest),
    responses={"204": ref("responses", "NoContent"), **write_errors(400, 408, 413)},
)


async def admin_quota(request: Request) -> Response:
    body = await admin_json(request, QuotaRequest)
    store: Store = request.app.state.store
    await _write(
        request,
        lambda: store.set_quota(
            workspace=body.workspace, plugin=body.plugin, quota_bytes=body.quota_bytes
        ),
    )
    return Response(status_code=204)


ADMIN_PURGE = Operation(
    "adminPurge",
    "admin",
    "Delete every entry of one scope and its quota override",
    description="Needs an admin token. What an uninstall does.",
    body=json_body(ScopeRef),
    responses={"200": _DELETED, **write_errors(400, 408, 413)},
)


async def admin_purge(request: Request) -> Response:
    body = await admin_json(request, ScopeRef)
    store: Store = request.app.state.store
    deleted = await _write(
        request, lambda: store.purge(workspace=body.workspace, plugin=body.plugin)
    )
    return JSONResponse({"deleted": deleted})


ADMIN_REVOKE_TOKENS = Operation(
    "adminRevokeTokens",
    "admin",
    "Revoke every token of one scope issued until now",
    description="Needs an admin token. The scope's tokens issued until now answer 401 from "
    "then on, on this replica at once and on the others sharing the database within "
    "`PLUGINKV_TOKEN_REVOCATION_REFRESH_SECONDS`; tokens created afterwards work. Admin "
    "tokens are not revocable: rotate the secret.",
    body=json_body(ScopeRef),
    responses={"200": ok("Revoked.", Revoked), **write_errors(400, 408, 413)},
)


async def admin_revoke_tokens(request: Request) -> Response:
    body = await admin_json(request, ScopeRef)
    workspace, plugin = body.workspace, body.plugin
    store: Store = request.app.state.store
    revoked_at = await _write(
        request, lambda: store.revoke_tokens(workspace=workspace, plugin=plugin)
    )
    tokens: Tokens = request.app.state.tokens
    tokens.revoked(Scope(workspace, plugin), revoked_at)  # the ids passed revoke_tokens' check
    return JSONResponse({"workspace": workspace, "plugin": plugin, "revoked_at": revoked_at})


# -- health --------------------------------------------------------------------------------
HEALTHZ = Operation(
    "healthz",
    "health",
    "Liveness: 200 while the process runs",
    public=True,
    responses={"200": ok('`{"status": "ok"}`', Alive)},
)


async def healthz(request: Request) -> Response:
    _query(request)
    return JSONResponse({"status": "ok"})


READYZ = Operation(
    "readyz",
    "health",
    "Readiness: 200 when the database answers a query",
    description="Still 200 on a full disk, with `status` `disk_full` and the reason: reads "
    "and deletes are served, and deletes are what make room.",
    public=True,
    responses={
        "200": ok('`{"status": "ready"}`', Ready),
        "503": ref("responses", "BackendUnavailableError"),
    },
)


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


_KEY = [ref("parameters", "Key")]

routes = [
    kv_route,  # served by kv.KeyValueFront before the router; here for 405s, metrics, OpenAPI
    ApiRoute(INCR_ROUTE, parameters=_KEY, POST=(incr, INCR)),
    ApiRoute("/v1/keys", GET=(list_keys, LIST_KEYS), DELETE=(delete_prefix, DELETE_PREFIX)),
    ApiRoute("/v1/batch/get", POST=(batch_get, BATCH_GET)),
    ApiRoute("/v1/batch/set", POST=(batch_set, BATCH_SET)),
    ApiRoute("/v1/batch/delete", POST=(batch_delete, BATCH_DELETE)),
    ApiRoute("/v1/usage", GET=(usage, USAGE)),
    ApiRoute("/v1/admin/scopes", GET=(admin_scopes, ADMIN_SCOPES)),
    ApiRoute("/v1/admin/quota", PUT=(admin_quota, ADMIN_QUOTA)),
    ApiRoute("/v1/admin/purge", POST=(admin_purge, ADMIN_PURGE)),
    ApiRoute("/v1/admin/tokens/revoke", POST=(admin_revoke_tokens, ADMIN_REVOKE_TOKENS)),
    ApiRoute("/healthz", GET=(healthz, HEALTHZ)),
    ApiRoute("/readyz", GET=(readyz, READYZ)),
]
