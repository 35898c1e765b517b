"""pluginkv's storage operations beyond Dify's four, served on the host's threads.

The calls, their arguments and answers are the plugin channel's
(``dify/extended_calls.py``).  A host that does not know the operation
(Dify's daemon) answers with an ``error`` event, which the plugin side turns
into ``NotSupported``.
"""

from __future__ import annotations

import functools
from typing import Any

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
        if writes:
            result = await writer.run(
                store.backend, functools.partial(run_call, name, storage, args)
            )
        else:
            result = await readers.run(store.backend, run_call, name, storage, args)
    except PluginKVError as exc:
        return error_answer(exc)
    return {"data": "ok", "result": result}
