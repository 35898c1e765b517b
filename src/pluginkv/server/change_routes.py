"""``POST /v1/atomic`` and ``GET /v1/changes``: commits of many keys, and following changes.

A long poll (``?wait=``) and an event stream (``Accept: text/event-stream``)
wait the same way: a ``ChangeWaiter`` registered before each read of the log,
then ``await wait_async``.  A waiting request is a coroutine and a future on
the event loop, woken by the store's one notifier when its scope commits: no
thread and no query while nothing changes, however many wait
(``docs/benchmarks.md``, ``bench_watchers.py``).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from ..errors import ChangesExpired, InvalidArgument
from ..models import Change, ChangePage
from ..storage import Storage
from .answers import ChangeList, CommitDone
from .bodies import (
    COMMIT_OPERATIONS,
    AtomicRequest,
    CommitCheck,
    DeleteOperation,
    SetOperation,
    parse,
)
from .describe import (
    CHECK_FAILED,
    ApiRoute,
    Operation,
    errors,
    json_body,
    json_content,
    model_ref,
    ok,
    prefix_schema,
    query,
    ref,
    write_errors,
)
from .errors import CODE_HEADER, error_body, exception_body
from .listener_limits import STOPPING, WAITING
from .parsing import query_number
from .routes import _json, _query, _read, _storage, _value, _write

__all__ = ["change_routes"]

EVENT_STREAM = "text/event-stream"
KEEP_ALIVE = b": keep-alive\n\n"

# -- atomic commits ----------------------------------------------------------------------------
ATOMIC = Operation(
    "atomic",
    "batches",
    "Check versions, then write many keys, all or nothing",
    description="Every check is read first; if one fails nothing is written (412, `failed` "
    "names the keys). Then the operations apply in order, each over what the earlier ones "
    "left, in one transaction. Bad input (a key, a value, a TTL, metadata, the limits "
    "`PLUGINKV_MAX_COMMIT_OPERATIONS` and `PLUGINKV_MAX_COMMIT_BYTES`) is the error a plain "
    "write gives, and nothing is written.",
    body=json_body(AtomicRequest),
    responses={
        "200": ok("Committed.", CommitDone),
        "412": ref("responses", "CheckFailedError"),
        **write_errors(400, 408, 413, 507),
    },
)


async def atomic(request: Request) -> Response:
    storage = _storage(request, write=True)
    _query(request)
    body = await _json(request, AtomicRequest)
    commit = storage.atomic()
    for i, item in enumerate(body.checks):
        check = _item(CommitCheck, item, f"checks[{i}]")
        commit.check(check.key, version=check.version)
    for i, item in enumerate(body.operations):
        where = f"operations[{i}]"
        kind = item.get("op") if isinstance(item, dict) else None
        model = COMMIT_OPERATIONS.get(kind) if isinstance(kind, str) else None
        if model is None:
            raise InvalidArgument(
                f"{where} must be an object whose field 'op' is 'set', 'delete' or 'incr'"
            )
        operation = _item(model, item, where)
        if isinstance(operation, SetOperation):
            commit.set(
                operation.key,
                _value(operation.key, operation.value),
                ttl=operation.ttl,
                metadata=operation.metadata,
                content_type=operation.content_type,
            )
        elif isinstance(operation, DeleteOperation):
            commit.delete(operation.key)
        else:
            commit.incr(operation.key, 1 if operation.delta is None else operation.delta)
    result = await _write(request, commit.commit)
    if not result.ok:
        message = f"check failed for {', '.join(map(repr, result.failed))}: nothing was changed"
        return JSONResponse(
            error_body(CHECK_FAILED, message, failed=result.failed),
            status_code=412,
            headers={CODE_HEADER: CHECK_FAILED},
        )
    return JSONResponse({"ok": True, "versions": result.versions, "counters": result.counters})


def _item(model: type[Any], item: object, where: str) -> Any:
    """One check or operation as ``model``; what is wrong is named with its position."""
    if not isinstance(item, dict):
        raise InvalidArgument(f"{where} must be a JSON object")
    try:
        parsed: BaseModel = parse(model, item)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{where}: {exc}") from None
    return parsed


# -- the change feed -----------------------------------------------------------------------
_STREAM = {
    "schema": {
        "type": "string",
        "description": "With `Accept: text/event-stream`: one event per change, "
        '`id: <seq>`, `event: <kind>`, `data: {"seq", "key", "kind", "version"}`, and a '
        "`: keep-alive` comment every `PLUGINKV_CHANGES_KEEPALIVE_SECONDS` while nothing "
        "changes; it ends when the client goes away or the service stops.",
    }
}
CHANGES = Operation(
    "changes",
    "keys",
    "The scope's changes after a position: a page, a long poll, or an event stream",
    description="Changes of keys that start with `prefix`, oldest first. With `wait` and "
    "nothing after `since`, the request waits until a change comes or `wait` passes, then "
    "answers (an empty page, `next` = `since`, when none came). With "
    "`Accept: text/event-stream` the answer is a stream of Server-Sent Events, from after "
    "`Last-Event-ID` (which wins) or `since`, else from now on.",
    parameters=[
        query("prefix", prefix_schema(), "Only keys that start with it."),
        query(
            "since",
            {"type": "integer", "minimum": 0},
            "The `next` of the previous page (or the `seq` last seen): changes after it. "
            "Absent: from the oldest change kept.",
        ),
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
            "wait",
            {
                "type": "number",
                "minimum": 0,
                "maximum": "{settings.max_changes_wait_seconds}",
                "default": 0,
            },
            "Seconds to wait for a change when there is none yet; at most "
            "`PLUGINKV_MAX_CHANGES_WAIT_SECONDS` ({settings.max_changes_wait_seconds}).",
        ),
    ],
    responses={
        "200": {
            "description": "One page of changes, or the event stream.",
            "content": {
                **json_content(model_ref(ChangeList)),
                EVENT_STREAM: _STREAM,
            },
        },
        **errors(400),
        "410": ref("responses", "ChangesExpiredError"),
    },
)


async def changes(request: Request) -> Response:
    storage = _storage(request, write=False)
    params = _query(request, CHANGES.query_names)
    prefix: str = params.get("prefix", "")
    since = query_number(params, "since", int)
    limit = query_number(params, "limit", int)
    wait = _wait(request, query_number(params, "wait", float))
    if EVENT_STREAM in request.headers.get("accept", ""):
        return await _event_stream(request, storage, prefix, since, limit)
    page = await _read(request, storage.changes, prefix, since=since, limit=limit)
    if not page.changes and wait > 0:
        page = await _long_poll(request, storage, prefix, page.next, limit, wait)
    return JSONResponse(_page(page))


def _wait(request: Request, wait: float | None) -> float:
    maximum: float = request.app.state.settings.max_changes_wait_seconds
    if wait is None:
        return 0.0
    if not (math.isfinite(wait) and 0 <= wait <= maximum):
        raise InvalidArgument(
            f"query parameter wait={wait!r} must be 0 to {maximum} seconds "
            "(setting PLUGINKV_MAX_CHANGES_WAIT_SECONDS)"
        )
    return wait


async def _long_poll(
    request: Request, storage: Storage, prefix: str, since: int, limit: int | None, wait: float
) -> ChangePage:
    """The first page with a change after ``since``, or the empty one when ``wait`` passes.

    It ends early, with what it has, when the client goes away or the service stops.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    # Only reads from here on: a stopping service may cut the request (listener_limits).
    request.scope[WAITING] = True
    gone = asyncio.ensure_future(_client_gone(request))
    try:
        while True:
            # Registered before the read: a commit after the read wakes the wait.  On a
            # database server the first registration starts the store's listener, which
            # may wait for a connection: a reader thread does it, not the event loop.
            waiter = await _read(request, storage.change_waiter)
            with waiter:
                page = await _read(request, storage.changes, prefix, since=since, limit=limit)
                remaining = deadline - loop.time()
                if page.changes or remaining <= 0 or gone.done() or request.scope.get(STOPPING):
                    return page
                since = page.next
                woken = asyncio.ensure_future(waiter.wait_async(remaining))
                await asyncio.wait((woken, gone), return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()  # when the client went first: the waiter is released
    finally:
        gone.cancel()


async def _client_gone(request: Request) -> None:
    """Return once the client has gone: a GET has no body, so the next message says so."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _event_stream(
    request: Request, storage: Storage, prefix: str, since: int | None, limit: int | None
) -> Response:
    last_event = request.headers.get("last-event-id")
    if last_event is not None:
        since = _event_id(last_event)
    if since is None:
        since = await _read(request, storage._last_seq)  # from now on
    else:
        # A position the log no longer holds is a 410 before the stream starts.
        await _read(request, storage.changes, prefix, since=since, limit=1)
    settings = request.app.state.settings
    request.scope[WAITING] = True  # a stopping service ends it
    events = _events(request, storage, prefix, since, limit, settings.changes_keepalive_seconds)
    return StreamingResponse(
        events,
        media_type=EVENT_STREAM,
        # No cache may keep it, and no proxy buffer it (nginx's header).
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _event_id(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 19):
        raise InvalidArgument(
            f"header Last-Event-ID={text!r} must be the id of an event: a sequence number"
        )
    return int(text)


async def _events(
    request: Request,
    storage: Storage,
    prefix: str,
    since: int,
    limit: int | None,
    keepalive: float,
) -> AsyncIterator[bytes]:
    """The stream: the changes after ``since`` as they come, a comment while none does.

    It ends when the client goes away (Starlette cancels it) or the log drops what it
    has not sent yet: then a last ``error`` event carries the 410's body.
    """
    while not request.scope.get(STOPPING):
        waiter = await _read(request, storage.change_waiter)
        with waiter:
            try:
                page = await _read(request, storage.changes, prefix, since=since, limit=limit)
            except ChangesExpired as exc:
                yield b"event: error\ndata: " + _json_line(exception_body(exc)) + b"\n\n"
                return
            since = page.next
            if not page.changes:
                if not await waiter.wait_async(keepalive):
                    yield KEEP_ALIVE
                continue
        yield b"".join(_event(change) for change in page.changes)


def _event(change: Change) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (
        change.seq,
        change.kind.encode("ascii"),
        _json_line(_change(change)),
    )


def _json_line(body: object) -> bytes:
    # Compact and ASCII: one line, whatever the key holds.
    return json.dumps(body, separators=(",", ":")).encode("ascii")


def _change(change: Change) -> dict[str, Any]:
    return {"seq": change.seq, "key": change.key, "kind": change.kind, "version": change.version}


def _page(page: ChangePage) -> dict[str, Any]:
    return {"changes": [_change(change) for change in page.changes], "next": page.next}


change_routes = [
    ApiRoute("/v1/atomic", POST=(atomic, ATOMIC)),
    ApiRoute("/v1/changes", GET=(changes, CHANGES)),
]
