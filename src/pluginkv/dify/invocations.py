"""Answering a backwards invocation: storage is served, every other type refused at once.

A host that does not answer leaves the plugin waiting out its 250-second
``MAX_INVOCATION_TIMEOUT``, so an unsupported type gets ``error`` and ``end``
straight away, as does a call on a session the host no longer tracks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..server.readers import Readers
from ..server.writer import WriteQueue
from ..store import Store
from . import messages
from .manifest import Manifest
from .storage_handler import StorageRefused, serve_storage

__all__ = ["Invocations"]

logger = logging.getLogger("pluginkv.dify")


class Invocations:
    """Serves backwards invocations on the service's store, through its writer and readers.

    ``store``, ``writer`` and ``readers`` are looked up at each call: the
    service replaces them when it starts.
    """

    def __init__(
        self,
        store: Callable[[], Store],
        writer: Callable[[], WriteQueue],
        readers: Callable[[], Readers],
    ) -> None:
        self._store = store
        self._writer = writer
        self._readers = readers

    async def answer(
        self, session_id: str, invoke: object, *, workspace: str | None, manifest: Manifest
    ) -> list[dict[str, Any]]:
        """The lines that answer one ``invoke`` session message."""
        if not isinstance(invoke, dict):
            logger.warning("%s: an invoke message without data: %r", manifest.plugin_id, invoke)
            return []
        request_id = invoke.get("backwards_request_id")
        if not isinstance(request_id, str):
            logger.warning("%s: an invoke without backwards_request_id", manifest.plugin_id)
            return []
        kind = invoke.get("type")
        if workspace is None:
            text = f"session {session_id} is not open on this host (timed out or unknown)"
            return messages.backwards_error(session_id, request_id, text)
        if kind != "storage":
            text = (
                f"backwards invocation {kind!r} is not supported by this host "
                "(pluginkv serves storage only)"
            )
            return messages.backwards_error(session_id, request_id, text)
        try:
            data = await serve_storage(
                invoke.get("request"),
                store=self._store(),
                writer=self._writer(),
                readers=self._readers(),
                workspace=workspace,
                manifest=manifest,
            )
        except StorageRefused as exc:
            return messages.backwards_error(session_id, request_id, str(exc))
        return messages.backwards_reply(session_id, request_id, data)
