"""The TCP listener for remote-debug plugins (``INSTALL_METHOD=remote``).

A plugin connects, sends ``handshake`` with its ``REMOTE_INSTALL_KEY``, then
its registration: ``manifest_declaration``, the ``*_declaration`` arrays,
``asset_chunk``s and ``end`` (``docs/dify-protocol.md`` §2.2).  The host never
acknowledges; a refusal is one plain-text line, e.g. ``handshake failed,
invalid key``, and the connection closes (the SDK logs it and retries).
Each new connection is a fresh registration: a plugin that reconnects
replaces its old one.

Until its key is checked a connection is anyone's, so it may hold little:
one handshake line of at most ``debug_handshake_max_bytes``, sent within
``debug_handshake_timeout_seconds``, and at most
``debug_max_pending_connections`` such connections at once.  Only an
authenticated plugin may send the long lines a large value needs.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ..config import Settings, env_name
from ..errors import InvalidArgument, Unauthorized
from ..services.tokens import Tokens
from .connection import PluginConnection
from .framing import LineReader, LineTooLong, line_limit, quick_ack, read_messages
from .manifest import Manifest, parse_manifest

if TYPE_CHECKING:
    from .plugin_host import PluginHost

__all__ = ["DebugListener"]

logger = logging.getLogger("pluginkv.dify")

REGISTRATION_TIMEOUT = 60.0  # declarations and assets, which can be megabytes
_DECLARATIONS = {
    f"{kind}_declaration": kind
    for kind in ("tool", "model", "endpoint", "agent_strategy", "datasource", "trigger")
}


class Refused(Exception):
    """A connection that may not register; the text goes to the plugin."""


class DebugListener:
    """Accepts remote-debug plugins on the settings' ``debug_host:debug_port`` for ``host``."""

    def __init__(self, host: PluginHost, tokens: Tokens, settings: Settings) -> None:
        self._host = host
        self._tokens = tokens
        self._address = settings.debug_host
        self._port = settings.debug_port
        self._line_limit = line_limit(settings.max_value_bytes)
        self._handshake_limit = settings.debug_handshake_max_bytes
        self._handshake_timeout = settings.debug_handshake_timeout_seconds
        self._max_pending = settings.debug_max_pending_connections
        self._pending = 0  # connections whose key is not checked yet
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    @property
    def port(self) -> int:
        """The bound port (the real one when the setting was 0)."""
        assert self._server is not None, "the listener has not started"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        # asyncio's buffer stops reading at twice this limit: the small one keeps
        # it small before the key check and after (LineReader gathers long lines).
        self._server = await asyncio.start_server(
            self._on_connect, self._address, self._port, limit=self._handshake_limit
        )
        logger.info("accepting remote-debug plugins on %s:%d", self._address, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._server.wait_closed()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        peer = "{}:{}".format(*writer.get_extra_info("peername", ("?", 0))[:2])
        rearm = quick_ack(writer)
        lines = LineReader(reader, self._handshake_limit)
        events = read_messages(lines, f"remote plugin at {peer}", rearm)
        try:
            try:
                workspace = await self._authenticate(lines)
                rearm()
                lines.limit = self._line_limit
                manifest, declarations = await asyncio.wait_for(
                    _registration(events), REGISTRATION_TIMEOUT
                )
            except Refused as exc:
                logger.warning("refused the remote plugin at %s: %s", peer, exc)
                writer.write(f"{exc}\n".encode())
                await writer.drain()
                writer.close()
                return
            except TimeoutError:
                logger.warning("the remote plugin at %s did not finish registering", peer)
                writer.close()
                return
            connection = PluginConnection(
                manifest=manifest,
                declarations=declarations,
                transport="tcp",
                workspaces={workspace},
                events=events,
                writer=writer,
                invocations=self._host.invocations,
                peer=peer,
                after_send=rearm,
            )
            self._host.register(connection)
            try:
                await connection.serve()
            finally:
                self._host.unregister(connection)
        except (ConnectionError, asyncio.IncompleteReadError):
            writer.close()
        except asyncio.CancelledError:
            # Only stop() cancels a handler, and it waits for them all; ending
            # normally keeps asyncio from printing the cancellation at shutdown.
            writer.close()
        finally:
            self._handlers.discard(task)

    async def _authenticate(self, lines: LineReader) -> str:
        """The workspace of the key in the connection's first line, read under the small limits."""
        if self._pending >= self._max_pending:
            raise Refused(
                f"handshake failed, {self._pending} connections are already waiting for "
                f"their handshake (setting {env_name('debug_max_pending_connections')})"
            )
        self._pending += 1
        try:
            line = await asyncio.wait_for(lines.readline(), self._handshake_timeout)
        except TimeoutError:
            raise Refused(
                f"handshake failed, no handshake within {self._handshake_timeout:g} seconds "
                f"(setting {env_name('debug_handshake_timeout_seconds')})"
            ) from None
        except LineTooLong:
            raise Refused(
                f"handshake failed, the handshake line is over {self._handshake_limit} bytes "
                f"(setting {env_name('debug_handshake_max_bytes')})"
            ) from None
        finally:
            self._pending -= 1
        if not line:
            raise ConnectionResetError("closed before its handshake")
        return self._workspace_of(line)

    def _workspace_of(self, line: bytes) -> str:
        try:
            first = json.loads(line)
        except (ValueError, RecursionError):
            first = None
        data = first.get("data") if isinstance(first, dict) else None
        if (
            not isinstance(first, dict)
            or first.get("type") != "handshake"
            or not isinstance(data, dict)
        ):
            raise Refused("handshake failed, the first message must be the handshake")
        key = data.get("key")
        try:
            if not isinstance(key, str):
                raise Unauthorized("no key")
            return self._tokens.debug_workspace(key)
        except Unauthorized:
            raise Refused("handshake failed, invalid key") from None


async def _registration(
    events: AsyncIterator[dict[str, Any]],
) -> tuple[Manifest, dict[str, list[Any]]]:
    """The manifest and declarations, read up to the registration's ``end``."""
    manifest: Manifest | None = None
    declarations: dict[str, list[Any]] = {}
    async for message in events:
        kind, data = message.get("type"), message.get("data")
        if kind == "manifest_declaration":
            try:
                manifest = parse_manifest(data)
            except InvalidArgument as exc:
                raise Refused(f"register failed, invalid manifest: {exc}") from None
        elif kind in _DECLARATIONS:
            if isinstance(data, list) and data:
                declarations[_DECLARATIONS[str(kind)]] = data
        elif kind == "asset_chunk":
            pass  # icons: nothing here shows them
        elif kind == "end":
            if manifest is None:
                raise Refused("register failed, no manifest declaration")
            if not declarations:
                raise Refused("register failed, the plugin declares nothing")
            return manifest, declarations
        else:
            logger.warning("ignored a registration message of type %r", kind)
    raise Refused("register failed, the connection closed during registration")
