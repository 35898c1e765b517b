"""One running plugin's channel: the events it sends, the sessions open on it.

Transport-agnostic: a TCP connection (remote debugging) and a child's
stdin/stdout (a local plugin) carry the same events once start-up is over.  One task reads
(``serve``); each backwards invocation is answered in a task of its own, so a
write waiting for its commit never holds up the other sessions on the channel.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

from ..dify import messages
from ..errors import PluginNotFound
from .framing import encode
from .invocations import Invocations
from .manifest import Manifest
from .sessions import Session

__all__ = ["PluginConnection"]

logger = logging.getLogger("pluginkv.dify")


class PluginConnection:
    """A running plugin, reachable through ``stream``.

    ``workspaces`` are those it serves: the one of a remote-debug
    connection's debug key, or those that installed a local plugin.
    ``declarations`` are the expanded ``*_declaration`` arrays, by kind
    (``tool``, ``endpoint``, ...): sent by a remote plugin, read from the
    YAML files of a local one.
    """

    def __init__(
        self,
        *,
        manifest: Manifest,
        declarations: dict[str, list[Any]],
        transport: str,
        workspaces: set[str],
        events: AsyncIterator[dict[str, Any]],
        writer: asyncio.StreamWriter,
        invocations: Invocations,
        peer: str,
        after_send: Callable[[], None] | None = None,
    ) -> None:
        self.manifest = manifest
        self.declarations = declarations
        self.transport = transport
        self.workspaces = workspaces
        self.peer = peer
        self.connected_at = time.time()
        self.last_heartbeat = self.connected_at
        self.alive = asyncio.Event()  # set by the first heartbeat: a local plugin is ready
        self._events = events
        self._writer = writer
        self._invocations = invocations
        self._after_send = after_send
        self._sessions: dict[str, Session] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"<PluginConnection {self.manifest.plugin_id} {self.manifest.version} "
            f"{self.transport} workspaces={sorted(self.workspaces)} peer={self.peer}>"
        )

    @property
    def plugin_id(self) -> str:
        return self.manifest.plugin_id

    @property
    def closed(self) -> bool:
        return self._closed

    # -- requests ----------------------------------------------------------------------------
    async def stream(
        self,
        data: dict[str, Any],
        *,
        workspace: str,
        timeout: float,
        what: str,
        **ids: str | None,
    ) -> AsyncGenerator[Any, None]:
        """Open a session for ``workspace`` with ``data``; its stream chunks as they arrive.

        The workspace stays here: the plugin never sees it, and its storage
        calls on the session are served in it.  ``ids`` are the envelope's
        (``endpoint_id``, ``conversation_id``, ``message_id``, ``app_id``).
        Close the generator to stop listening (there is no cancel message).
        """
        if self._closed:
            raise PluginNotFound(f"{self.plugin_id} has disconnected")
        session = Session(workspace)
        self._sessions[session.id] = session
        try:
            await self._send(messages.request(session.id, data, **ids))
            async for chunk in session.chunks(timeout, what):
                yield chunk
        finally:
            self._sessions.pop(session.id, None)

    async def _send(self, *lines: dict[str, Any]) -> None:
        self._writer.write(b"".join(encode(line) for line in lines))
        await self._writer.drain()
        if self._after_send is not None:
            self._after_send()

    # -- the reader --------------------------------------------------------------------------
    async def serve(self) -> None:
        """Read the plugin's events until the channel closes, then fail what is still open."""
        try:
            async for event in self._events:
                self._on_event(event)
        finally:
            self.close()
            for session in list(self._sessions.values()):
                session.on_lost(f"{self.plugin_id} disconnected")
            for task in list(self._tasks):
                task.cancel()

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "heartbeat":
            self.last_heartbeat = time.time()
            self.alive.set()
        elif kind == "session":
            self._on_session(event.get("session_id"), event.get("data"))
        elif kind == "log":
            data = event.get("data")
            text = data.get("message") if isinstance(data, dict) else data
            logger.info("%s: %s", self.plugin_id, text)
        elif kind == "error":
            logger.warning("%s: error event: %r", self.plugin_id, event.get("data"))
        else:
            logger.warning("%s: ignored an event of unknown kind: %r", self.plugin_id, event)

    def _on_session(self, session_id: object, message: object) -> None:
        if not isinstance(session_id, str) or not isinstance(message, dict):
            logger.warning("%s: malformed session event", self.plugin_id)
            return
        session = self._sessions.get(session_id)
        kind, data = message.get("type"), message.get("data")
        if kind == "invoke":
            workspace = session.workspace if session is not None else None
            task = asyncio.create_task(self._answer(session_id, data, workspace))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif session is None:
            logger.debug("%s: %s for a session no longer open", self.plugin_id, kind)
        elif kind == "stream":
            session.on_stream(data)
        elif kind == "end":
            session.on_end()
        elif kind == "error":
            session.on_error(data)
        else:
            logger.warning("%s: ignored a session message of type %r", self.plugin_id, kind)

    async def _answer(self, session_id: str, invoke: object, workspace: str | None) -> None:
        try:
            lines = await self._invocations.answer(
                session_id, invoke, workspace=workspace, manifest=self.manifest
            )
        except Exception as exc:  # never leave the plugin waiting out its timeout
            logger.exception("%s: answering a backwards invocation failed", self.plugin_id)
            request_id = invoke.get("backwards_request_id") if isinstance(invoke, dict) else None
            if not isinstance(request_id, str):
                return
            lines = messages.backwards_error(session_id, request_id, f"host error: {exc}")
        if lines and not self._closed:
            try:
                await self._send(*lines)
            except (ConnectionError, RuntimeError):
                pass  # the channel closed meanwhile; the reader cleans up

    def close(self) -> None:
        """Close the channel (idempotent); ``serve`` then ends."""
        if not self._closed:
            self._closed = True
            self._writer.close()
