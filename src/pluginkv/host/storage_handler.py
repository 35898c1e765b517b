"""The storage verbs of a backwards invocation (``type: "storage"``), served from the ``Store``.

Answers as Dify's daemon does (``docs/dify-protocol.md`` §7.2), so the SDK's
``session.storage`` works unchanged: values travel as lowercase hex, ``set``
and ``del`` answer ``{"data": "ok"}``, ``exist`` a real boolean.  A missing
key on ``get`` is the daemon's error text, which plugin code sees as a plain
``Exception``.  Keys are cleaned as the daemon's file paths are
(``key_paths.py``); then keys, value limit and quota are the engine's, so
the same rules hold here as over HTTP and the CLI.

Writes and reads run where every other one of the service runs: writes
through its writer (one commit for the writes that arrive together on
SQLite), reads inline on SQLite and on reader threads on PostgreSQL.
"""

from __future__ import annotations

import functools
from typing import Any

from ..dify.key_paths import clean_key
from ..dify.messages import LOAD_FAILED, PERMISSION_DENIED
from ..errors import PluginKVError
from ..services.readers import Readers
from ..services.write_groups import WriteQueue
from ..store import Store
from .extended_storage import serve_extended, unhex
from .manifest import Manifest

__all__ = ["LOAD_FAILED", "PERMISSION_DENIED", "StorageRefused", "serve_storage"]


EXTENDED_OPT = "pluginkv"  # pluginkv's own operations (extended_storage.py)


class StorageRefused(Exception):
    """The call fails; its text goes to the plugin as the ``error`` answer."""


async def serve_storage(
    request: object,
    *,
    store: Store,
    writer: WriteQueue,
    readers: Readers,
    workspace: str,
    manifest: Manifest,
) -> dict[str, Any]:
    """The ``data`` of the ``response`` answer, or ``StorageRefused`` with the error's text."""
    if not manifest.storage_enabled:
        raise StorageRefused(PERMISSION_DENIED)
    if not isinstance(request, dict):
        raise StorageRefused("storage request is not an object")
    opt, key = request.get("opt"), request.get("key")
    if opt == EXTENDED_OPT:
        storage = store.storage(workspace=workspace, plugin=manifest.plugin_id)
        return await serve_extended(
            request, storage=storage, store=store, writer=writer, readers=readers
        )
    if not isinstance(key, str):
        raise StorageRefused(f"storage request needs a string key, got {key!r}")
    try:
        key = clean_key(key)
        storage = store.storage(workspace=workspace, plugin=manifest.plugin_id)
        if opt == "get":
            value = await readers.run(store.backend, storage.get, key)
            if value is None:
                raise StorageRefused(LOAD_FAILED)
            return {"data": value.hex()}
        if opt == "exist":
            found = await readers.run(store.backend, storage.exist, key)
            return {"data": found, "exist_num": int(found)}
        if opt == "set":
            value = unhex(request.get("value"))  # refused as "save data failed: ..." below
            call = functools.partial(storage.set, key, value)
            await writer.run(store.backend, call)
            return {"data": "ok"}
        if opt == "del":
            deleted = await writer.run(
                store.backend,
                functools.partial(storage.delete_many, [key]),
            )
            return {"data": "ok", "deleted_num": deleted}
    except PluginKVError as exc:
        verb = {"set": "save", "del": "delete", "exist": "exist"}.get(str(opt), "load")
        raise StorageRefused(f"{verb} data failed: {exc}") from None
    raise StorageRefused(f"unknown storage operation {opt!r} (served: get, set, exist, del)")
