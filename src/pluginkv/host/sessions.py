"""One host-to-plugin request (a session) and what the plugin sends back on it.

The plugin answers a session with any number of ``stream`` chunks and
backwards ``invoke`` calls, then exactly one ``end``; a failure is one
``error`` before the ``end``.  The SDK enforces no time limit, so the host
does (setting ``PLUGINKV_SESSION_TIMEOUT_SECONDS``); there is no cancel
message, the host just stops listening.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from ..errors import PluginFailed, PluginTimeout

__all__ = ["Session"]

_END = object()


class Session:
    """A request in flight: its workspace (kept host-side) and the chunks coming back."""

    __slots__ = ("_lost", "_queue", "error", "id", "started", "workspace")

    def __init__(self, workspace: str) -> None:
        self.id = uuid.uuid4().hex
        self.workspace = workspace
        self.started = time.time()
        self.error: dict[str, Any] | None = None
        self._lost = False
        self._queue: asyncio.Queue[Any] = asyncio.Queue()

    def __repr__(self) -> str:
        return f"<Session {self.id} workspace={self.workspace!r}>"

    # -- fed by the connection's reader --------------------------------------------------------
    def on_stream(self, chunk: Any) -> None:
        self._queue.put_nowait(chunk)

    def on_error(self, data: Any) -> None:
        if self.error is None:  # the first one says what went wrong
            self.error = data if isinstance(data, dict) else {"message": str(data)}

    def on_end(self) -> None:
        self._queue.put_nowait(_END)

    def on_lost(self, reason: str) -> None:
        """The channel closed before the session ended."""
        self._lost = self.error is None
        self.on_error({"error_type": "ConnectionLost", "message": reason})
        self._queue.put_nowait(_END)

    # -- the caller -------------------------------------------------------------------------------
    async def chunks(self, timeout: float, what: str) -> AsyncIterator[Any]:
        """The chunks as they come, until the end; ``PluginFailed``/``PluginTimeout`` otherwise.

        ``timeout`` bounds the whole session, from now.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                chunk = await asyncio.wait_for(self._queue.get(), deadline - loop.time())
            except TimeoutError:
                raise PluginTimeout(
                    f"{what} did not finish within {timeout:g} seconds "
                    "(setting PLUGINKV_SESSION_TIMEOUT_SECONDS)"
                ) from None
            if chunk is _END:
                if self.error is not None:
                    kind = self.error.get("error_type") or "Error"
                    message = self.error.get("message") or self.error.get("error") or ""
                    raise PluginFailed(
                        f"{what} failed: {kind}: {message}",
                        error_type=None if self._lost else str(kind),
                    )
                return
            yield chunk
