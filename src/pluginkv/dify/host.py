"""``PluginHost``: the running Dify plugins of a service, and the requests it sends them.

One host per service (``app.state.host``), running in the service's event
loop.  Remote-debug plugins are registered by ``(author/name, workspace)``:
a connection serves the one workspace of its debug key, and a plugin that
registers again replaces its old registration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config import Settings
from ..errors import PluginNotFound
from ..keys import check_scope
from ..server.auth import Tokens
from ..server.writer import WriteQueue
from ..store import Store
from .connection import PluginConnection
from .framing import line_limit
from .invocations import Invocations
from .remote import DebugListener

__all__ = ["PluginHost", "PluginInfo"]

logger = logging.getLogger("pluginkv.dify")


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """One registered plugin, as ``pluginkv plugins`` lists it."""

    plugin: str
    version: str
    transport: str
    workspaces: list[str]
    peer: str
    since: float
    last_heartbeat: float


class PluginHost:
    """Registry of running plugins; serves their backwards invocations from the store."""

    def __init__(
        self,
        settings: Settings,
        tokens: Tokens,
        *,
        store: Callable[[], Store],
        writer: Callable[[], WriteQueue],
    ) -> None:
        self._settings = settings
        self._tokens = tokens
        self._store = store
        self.invocations = Invocations(store, writer)
        self._connections: dict[tuple[str, str], PluginConnection] = {}
        self._listener: DebugListener | None = None
        self._monitor: asyncio.Task[None] | None = None

    @property
    def debug_port(self) -> int | None:
        """The port remote-debug plugins connect to, while the listener runs."""
        return self._listener.port if self._listener is not None else None

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self, *, listen: bool) -> None:
        """Start the heartbeat monitor and, with ``listen``, the remote-debug listener."""
        if listen:
            listener = DebugListener(
                self,
                self._tokens,
                self._settings.debug_host,
                self._settings.debug_port,
                line_limit(self._settings.max_value_bytes),
            )
            await listener.start()
            self._listener = listener
        self._monitor = asyncio.create_task(self._watch_heartbeats())

    async def stop(self) -> None:
        """Stop listening and disconnect every plugin."""
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
        for connection in list(self._connections.values()):
            connection.close()
        if self._listener is not None:
            await self._listener.stop()
            self._listener = None

    async def _watch_heartbeats(self) -> None:
        while True:
            limit = self._settings.heartbeat_timeout_seconds
            await asyncio.sleep(min(1.0, limit / 4))
            now = time.time()
            for connection in list(self._connections.values()):
                if now - connection.last_heartbeat > limit:
                    logger.warning(
                        "%r sent no heartbeat for %.0f s (setting "
                        "PLUGINKV_HEARTBEAT_TIMEOUT_SECONDS): disconnected",
                        connection,
                        now - connection.last_heartbeat,
                    )
                    connection.close()
                    self.unregister(connection)

    # -- the registry -------------------------------------------------------------------------
    def register(self, connection: PluginConnection) -> None:
        manifest = connection.manifest
        self._store().declare_quota(
            manifest.plugin_id,
            manifest.storage_bytes,
            f"the manifest of {manifest.plugin_id} (resource.permission.storage.size)",
        )
        (workspace,) = connection.workspaces
        slot = (manifest.plugin_id, workspace)
        old = self._connections.get(slot)
        self._connections[slot] = connection
        if old is not None and old is not connection:
            logger.info("%r replaces %r", connection, old)
            old.close()
        logger.info("registered %r", connection)

    def unregister(self, connection: PluginConnection) -> None:
        for workspace in connection.workspaces:
            slot = (connection.plugin_id, workspace)
            if self._connections.get(slot) is connection:
                del self._connections[slot]
                logger.info("unregistered %r", connection)

    def plugins(self) -> list[PluginInfo]:
        return [
            PluginInfo(
                plugin=c.plugin_id,
                version=c.manifest.version,
                transport=c.transport,
                workspaces=sorted(c.workspaces),
                peer=c.peer,
                since=c.connected_at,
                last_heartbeat=c.last_heartbeat,
            )
            for c in sorted(self._connections.values(), key=lambda c: (c.plugin_id, c.peer))
        ]

    def find(self, plugin: str, workspace: str) -> PluginConnection:
        check_scope(workspace, plugin)
        connection = self._connections.get((plugin, workspace))
        if connection is None or connection.closed:
            raise PluginNotFound(f"no running plugin {plugin} serves workspace {workspace}")
        return connection

    # -- requests -----------------------------------------------------------------------------
    async def invoke_tool(
        self,
        *,
        workspace: str,
        plugin: str,
        provider: str,
        tool: str,
        parameters: dict[str, Any],
        user: str = "",
        credentials: dict[str, Any] | None = None,
    ) -> list[Any]:
        """Invoke a tool for ``workspace``; returns its messages (``ToolInvokeMessage`` dicts)."""
        connection = self.find(plugin, workspace)
        _check_tool(connection, provider, tool)
        data = {
            "user_id": user,
            "type": "tool",
            "action": "invoke_tool",
            "provider": provider,
            "tool": tool,
            "credentials": credentials or {},
            "tool_parameters": parameters,
        }
        return await connection.request(
            data,
            workspace=workspace,
            timeout=self._settings.session_timeout_seconds,
            what=f"tool {provider}/{tool} of {plugin}",
        )


def _check_tool(connection: PluginConnection, provider: str, tool: str) -> None:
    """Refuse a provider or tool the plugin did not declare: its SDK would answer only ``end``."""
    providers = connection.declarations.get("tool", [])
    for entry in providers:
        identity = entry.get("identity", {}) if isinstance(entry, dict) else {}
        if identity.get("name") != provider:
            continue
        names = [t.get("identity", {}).get("name") for t in entry.get("tools", [])]
        if tool in names:
            return
        raise PluginNotFound(
            f"{connection.plugin_id} has no tool {tool!r} in provider {provider!r} "
            f"(it has {', '.join(map(repr, names)) or 'none'})"
        )
    declared = [e.get("identity", {}).get("name") for e in providers if isinstance(e, dict)]
    raise PluginNotFound(
        f"{connection.plugin_id} has no tool provider {provider!r} "
        f"(it has {', '.join(map(repr, declared)) or 'none'})"
    )
