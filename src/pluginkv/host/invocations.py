"""Answering a backwards invocation: storage and file uploads are served, the rest refused.

A host that does not answer leaves the plugin waiting out its 250-second
``MAX_INVOCATION_TIMEOUT``, so an unsupported type (``llm``, ``app``,
``tool``, ...: Dify's own services) gets ``error`` and ``end`` straight away,
as does a call on a session the host no longer tracks.  Each refusal is
logged with the plugin, the type and the session, so an operator sees what a
plugin expected of the host.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..dify import messages
from ..errors import PluginKVError
from ..services.readers import Readers
from ..services.write_groups import WriteQueue
from ..store import Store
from .files import PluginFiles
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
        files: PluginFiles,
    ) -> None:
        self._store = store
        self._writer = writer
        self._readers = readers
        self._files = files

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
        if kind == "upload_file":
            try:
                url = self._files.upload_url(
                    invoke.get("request"), workspace=workspace, plugin=manifest.plugin_id
                )
            except PluginKVError as exc:
                return messages.backwards_error(
                    session_id, request_id, f"upload file failed: {exc}"
                )
            return messages.backwards_reply(session_id, request_id, url)
        if kind != "storage":
            logger.warning(
                "%s: refused a backwards %r call in session %s (workspace %s): "
                "this host serves storage and upload_file only",
                manifest.plugin_id,
                kind,
                session_id,
                workspace,
            )
            text = (
                f"backwards invocation {kind!r} is not supported by this host: pluginkv serves "
                "storage and upload_file only; LLM, tool, app and other calls need Dify"
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
