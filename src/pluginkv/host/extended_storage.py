"""pluginkv's storage operations beyond Dify's four, served on the host's threads.

The calls, their arguments and answers are the plugin channel's
(``dify/extended_calls.py``).  A host that does not know the operation
(Dify's daemon) answers with an ``error`` event, which the plugin side turns
into ``NotSupported``.

A ``changes`` call with ``wait`` is a long poll, as ``GET /v1/changes?wait=``
is: a ``ChangeWaiter`` registered before each read of the log, then
``await wait_async``, so a waiting plugin holds a coroutine and a future, no
thread and no query.  The wait is bounded by the store's
``max_changes_wait_seconds`` (60 s by default), well inside the SDK's own
250-second wait for an answer (``MAX_INVOCATION_TIMEOUT``); the plugin then
asks again.  The answer's scope is the session's: a plugin names none.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from ..dify.change_calls import checked_wait
from ..dify.extended_calls import CALLS, checked_call, error_answer, run_call, unhex
from ..errors import PluginKVError
from ..services.readers import Readers
from ..services.write_groups import WriteQueue
from ..storage import Storage
from ..store import Store

__all__ = ["CALLS", "serve_extended", "unhex"]


async def serve_extended(
    request: dict[str, Any],
    *,
    storage: Storage,
    store: Store,
    writer: WriteQueue,
    readers: Readers,
) -> dict[str, Any]:
    """The ``response`` data of one extended call; engine errors are part of it."""
    try:
        writes, name, args = checked_call(request)
        if name == "changes":
            wait = checked_wait(args, store.settings.max_changes_wait_seconds)
            result = await _changes(storage, store, readers, args, wait)
        elif writes:
            result = await writer.run(
                store.backend, functools.partial(run_call, name, storage, args)
            )
        else:
            result = await readers.run(store.backend, run_call, name, storage, args)
    except PluginKVError as exc:
        return error_answer(exc)
    return {"data": "ok", "result": result}


async def _changes(
    storage: Storage, store: Store, readers: Readers, args: dict[str, Any], wait: float
) -> Any:
    """The first page with a change after ``since``, or the empty one once ``wait`` passed.

    A plugin that goes away cancels the task that runs this (``connection.py``),
    which releases the waiter.
    """
    if wait == 0:
        return await readers.run(store.backend, run_call, "changes", storage, args)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        # On a database server the first registration starts the store's listener,
        # which may wait for a connection: a reader thread does it, not the event loop.
        waiter = await readers.run(store.backend, storage.change_waiter)
        with waiter:
            page = await readers.run(store.backend, run_call, "changes", storage, args)
            remaining = deadline - loop.time()
            if page["changes"] or remaining <= 0:
                return page
            args = {**args, "since": page["next"]}
            await waiter.wait_async(remaining)
