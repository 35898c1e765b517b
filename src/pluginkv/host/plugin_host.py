"""``PluginHost``: the running Dify plugins of a service, and the requests it sends them.

One host per service (``app.state.host``), running in the service's event
loop.  Remote-debug plugins are registered by ``(author/name, workspace)``:
a connection serves the one workspace of its debug key, and a plugin that
registers again replaces its old registration.  Installed (local) plugins
run one process per ``author/name``, serving every workspace that installed
them.  Where both serve a workspace, the remote-debug one answers, as a
plugin under debugging should.  An installed plugin is listed whatever its
state, so an operator sees one that is starting, restarting or failed; a
call for one that is starting or restarting waits for it a while.

Every path the host builds is absolute, resolved once from the data
directory: a plugin runs in its own folder, where a relative one would
point elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import Forbidden, InvalidArgument, PluginFailed, PluginKVError, PluginNotFound
from ..keys import check_scope
from ..services.readers import Readers
from ..services.tokens import Tokens
from ..services.write_groups import WriteQueue
from ..store import Store
from .connection import PluginConnection
from .difypkg import Packages
from .endpoint_settings import checked_settings
from .endpoints import Endpoint, Endpoints
from .envs import Environments
from .files import PluginFiles
from .framing import line_limit
from .installs import Install, Installs
from .invocations import Invocations
from .local import LocalPlugin, Status, failure_reason
from .manifest import Manifest
from .offer import describe
from .plugin_dir import PluginDirectory, read_plugin_directory
from .plugin_logs import LogPage, PluginLogs
from .remote import DebugListener
from .tools import (
    check_credentials,
    find_provider,
    find_tool,
    with_declared_credentials,
    with_defaults,
)

__all__ = ["PluginHost", "PluginInfo"]

logger = logging.getLogger("pluginkv.dify")

# At shutdown, how long remote-debug connections may take to end once closed.
_DISCONNECT_GRACE = 5.0


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """One plugin, as ``pluginkv plugins`` lists it.

    A remote-debug plugin is listed while it is connected, so it is always
    ``running``; an installed one may also be ``starting``, ``restarting`` or
    ``failed`` (``local.Status``), with no ``peer`` or ``last_heartbeat``
    while no process of it runs, and since when it is in that state.
    """

    plugin: str
    version: str
    transport: str
    workspaces: list[str]
    peer: str
    since: float
    last_heartbeat: float | None
    state: str = "running"
    error: str | None = None


@dataclass(slots=True)
class _Pending:
    """An installed plugin no process of which serves yet: being started, or failed."""

    version: str
    workspaces: set[str]
    status: Status = field(default_factory=lambda: Status("starting"))


class PluginHost:
    """Registry of running plugins; serves their backwards invocations from the store."""

    def __init__(
        self,
        settings: Settings,
        tokens: Tokens,
        *,
        store: Callable[[], Store],
        writer: Callable[[], WriteQueue],
        readers: Callable[[], Readers],
    ) -> None:
        self._settings = settings
        self._tokens = tokens
        self._store = store
        self.files = PluginFiles(settings, tokens, store, writer, readers)
        self.invocations = Invocations(store, writer, readers, self.files)
        self._connections: dict[tuple[str, str], PluginConnection] = {}
        self._listener: DebugListener | None = None
        self._monitor: asyncio.Task[None] | None = None
        data_dir = Path(settings.data_dir).resolve()
        self._installs = Installs(data_dir)
        # What is installed (the file's list, kept current); _local is what runs of it.
        self._wanted: dict[str, Install] | None = None
        self.endpoints = Endpoints(data_dir)
        envs = Path(settings.plugin_envs_dir).resolve() if settings.plugin_envs_dir else None
        self._envs = Environments(envs or data_dir / "plugin-envs", settings.plugin_pythons)
        self._packages = Packages(
            data_dir / "dify-packages",
            max_bytes=settings.difypkg_max_bytes,
            max_unpacked_bytes=settings.difypkg_max_unpacked_bytes,
            max_files=settings.difypkg_max_files,
        )
        self.logs = PluginLogs(
            data_dir,
            max_bytes=settings.plugin_log_max_bytes,
            backups=settings.plugin_log_backups,
        )
        # Set, and replaced by a fresh one, whenever a plugin starts, stops or changes state.
        self._changed = asyncio.Event()
        self._local: dict[str, LocalPlugin] = {}
        # Replaced processes that serve their open calls to the end, then stop.
        self._retiring: dict[LocalPlugin, asyncio.Task[None]] = {}
        self._pending: dict[str, _Pending] = {}  # installed, but not in _local
        self._install_lock = asyncio.Lock()
        self._starting: asyncio.Task[None] | None = None

    @property
    def debug_port(self) -> int | None:
        """The port remote-debug plugins connect to, while the listener runs."""
        return self._listener.port if self._listener is not None else None

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self, *, listen: bool) -> None:
        """Start the heartbeat monitor; with ``listen``, also the remote-debug listener and
        (in the background, so the service answers meanwhile) the installed plugins."""
        if listen:
            listener = DebugListener(self, self._tokens, self._settings)
            await listener.start()
            self._listener = listener
            self._starting = asyncio.create_task(self._start_installed())
        self._monitor = asyncio.create_task(self._watch_heartbeats())

    async def stop(self) -> None:
        """Stop listening, disconnect every plugin and kill every process the host started.

        Nothing that went wrong with a plugin stops the rest of the shutdown.
        """
        tasks = [task for task in (self._monitor, self._starting) if task is not None]
        for task in tasks:
            task.cancel()
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(outcome, Exception):
                logger.error("the plugin host's background work failed: %r", outcome)
        retiring = dict(self._retiring)
        for task in retiring.values():
            task.cancel()
        await asyncio.gather(*retiring.values(), return_exceptions=True)
        stopping = [*self._local.values(), *retiring]
        results = await asyncio.gather(
            *(local.stop() for local in stopping), return_exceptions=True
        )
        for local, result in zip(stopping, results, strict=True):
            if isinstance(result, Exception):
                logger.error("stopping %r failed: %s", local, failure_reason(result))
        self._local.clear()
        for connection in list(self._connections.values()):
            connection.close()
        # Each connection's reader ends by itself once its socket is closed;
        # the listener would cancel it otherwise, which Python 3.11's asyncio
        # reports with a traceback.
        await self._until(lambda: not self._connections, _DISCONNECT_GRACE)
        if self._listener is not None:
            await self._listener.stop()
            self._listener = None
        self.logs.close()

    def _notify(self) -> None:
        """Wake whoever waits for a plugin's state to change."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def _until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``condition`` holds, looking again at each change; whether it does."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition():
            changed = self._changed
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)
        return True

    async def _watch_heartbeats(self) -> None:
        while True:
            limit = self._settings.heartbeat_timeout_seconds
            await asyncio.sleep(min(1.0, limit / 4))
            now = time.time()
            for local in self._local.values():
                running = local.connection
                if running is not None and now - running.last_heartbeat > limit:
                    logger.warning("%r sent no heartbeat for %.0f s: restarting it", local, limit)
                    local.restart(
                        f"sent no heartbeat for {limit:g} s "
                        "(setting PLUGINKV_HEARTBEAT_TIMEOUT_SECONDS)"
                    )
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
        """Serve the one workspace of a remote-debug ``connection`` with it, until ``unregister``.

        Its manifest's quota applies in that workspace only, as long as the registration lasts.
        """
        manifest = connection.manifest
        (workspace,) = connection.workspaces
        self._declare_quota(manifest, connection.workspaces, by=connection)
        slot = (manifest.plugin_id, workspace)
        old = self._connections.get(slot)
        self._connections[slot] = connection
        if old is not None and old is not connection:
            logger.info("%r replaces %r", connection, old)
            old.close()
        logger.info("registered %r", connection)
        self._notify()

    def unregister(self, connection: PluginConnection) -> None:
        self._store().withdraw_quota(connection)
        for workspace in connection.workspaces:
            slot = (connection.plugin_id, workspace)
            if self._connections.get(slot) is connection:
                del self._connections[slot]
                logger.info("unregistered %r", connection)
                self._notify()

    def plugins(self) -> list[PluginInfo]:
        """Every connected remote-debug plugin and every installed plugin, whatever its state."""
        infos = [_connection_info(c) for c in self._connections.values()]
        infos += [_local_info(local) for local in self._local.values()]
        infos += [
            _idle_info(plugin, pending.version, pending.workspaces, pending.status)
            for plugin, pending in self._pending.items()
            if plugin not in self._local
        ]
        return sorted(infos, key=lambda i: (i.plugin, i.transport, i.peer))

    def find(self, plugin: str, workspace: str) -> PluginConnection:
        """The connection serving ``plugin`` for ``workspace`` now; ``PluginNotFound`` if none."""
        found = self._lookup(plugin, workspace)
        if isinstance(found, PluginConnection):
            return found
        raise PluginNotFound(
            f"{plugin} is installed for workspace {workspace} but not running right now "
            f"({_why(found)})"
        )

    async def _serving(self, plugin: str, workspace: str) -> PluginConnection:
        """``find``, but an installed plugin that is starting or restarting is waited for.

        Up to ``PLUGINKV_PLUGIN_START_WAIT_SECONDS``; one that failed is not:
        only an install or a restart of the service starts it again.
        """
        loop = asyncio.get_running_loop()
        wait = self._settings.plugin_start_wait_seconds
        deadline = loop.time() + wait
        found = self._lookup(plugin, workspace)
        if not isinstance(found, PluginConnection) and found.state != "failed" and wait > 0:
            logger.info("a call for %s in %s waits for it (%s)", plugin, workspace, found.state)
        while not isinstance(found, PluginConnection) and found.state != "failed":
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)
            found = self._lookup(plugin, workspace)
        if isinstance(found, PluginConnection):
            return found
        why = f"{plugin} is installed for workspace {workspace} but not running ({_why(found)})"
        if found.state == "failed":
            raise PluginNotFound(f"{why}; install it again once that is fixed")
        raise PluginNotFound(
            f"{why}; waited {wait:g} s for it (setting PLUGINKV_PLUGIN_START_WAIT_SECONDS)"
        )

    def _lookup(self, plugin: str, workspace: str) -> PluginConnection | Status:
        """What serves ``plugin`` for ``workspace``, or the state of the installed one that
        does not yet; ``PluginNotFound`` if it is neither connected nor installed there."""
        check_scope(workspace, plugin)
        connection = self._connections.get((plugin, workspace))
        if connection is not None and not connection.closed:
            return connection
        local = self._local.get(plugin)
        pending = self._pending.get(plugin)
        if local is not None and workspace in local.workspaces:
            if local.connection is not None and not local.connection.closed:
                return local.connection
            return local.status
        if pending is not None and workspace in pending.workspaces:
            return pending.status
        raise PluginNotFound(f"no running plugin {plugin} serves workspace {workspace}")

    async def read_log(self, plugin: str, *, lines: int, cursor: str | None) -> LogPage:
        """A page of an installed plugin's log file (``plugin_logs``), read on a thread."""
        check_scope("logs", plugin)
        installed = plugin in self._wanted_installs() or plugin in self._local
        if not installed and not self.logs.exists(plugin):
            raise PluginNotFound(f"{plugin} is not installed and has no log")
        return await asyncio.to_thread(self.logs.read, plugin, lines=lines, cursor=cursor)

    def offer(self, plugin: str, workspace: str | None = None) -> dict[str, Any]:
        """What ``plugin`` offers (``offer.describe``), and where it runs.

        With ``workspace``, as the plugin serving it declared it; without, as
        the installed plugin's files declare it (whatever its state), else as
        its latest remote-debug connection did.
        """
        if workspace is not None:
            connection = self.find(plugin, workspace)
            manifest, declarations = connection.manifest, connection.declarations
        elif plugin in self._local:
            directory = self._local[plugin].directory
            manifest, declarations = directory.manifest, directory.declarations
        else:
            connected = [c for c in self._connections.values() if c.plugin_id == plugin]
            if not connected:
                raise PluginNotFound(f"no plugin {plugin} is installed or connected")
            latest = max(connected, key=lambda c: c.connected_at)
            manifest, declarations = latest.manifest, latest.declarations
        running = [
            {"transport": info.transport, "workspaces": info.workspaces, "state": info.state}
            for info in self.plugins()
            if info.plugin == plugin
        ]
        return {**describe(manifest, declarations), "running": running}

    # -- installed plugins --------------------------------------------------------------------
    async def install(self, directory: str, workspace: str) -> PluginInfo:
        """Install the plugin in ``directory`` (a folder or a .difypkg) for ``workspace``.

        The first install builds its environment and starts it; installing it
        for another workspace reuses the running process.  A directory with
        another version (or at another place) starts beside the running
        process, which serves until the new one is ready, then ends the calls
        open on it and stops; if the new one fails, the old one stays and
        nothing changes.  A first
        install that fails stays installed, listed as failed with why.
        Whatever goes wrong once the directory is read raises the
        ``PluginKVError`` it is, or ``PluginFailed`` saying what it was.
        """
        if Path(directory).is_file():  # a .difypkg: it runs from where it is unpacked
            directory = str(await asyncio.to_thread(self._packages.unpack, Path(directory)))
        plugin_dir = read_plugin_directory(directory)
        plugin = plugin_dir.manifest.plugin_id
        check_scope(workspace, plugin)
        async with self._install_lock:
            wanted = self._wanted_installs()
            before = set(wanted[plugin].workspaces) if plugin in wanted else set()
            local = self._local.get(plugin)
            same = local is not None and (
                local.directory.path == plugin_dir.path
                and local.directory.manifest.version == plugin_dir.manifest.version
            )
            if local is not None and same and local.connection is not None:
                local.workspaces.add(workspace)
                self._declare_quota(
                    local.directory.manifest, local.workspaces, by=_installs_of(plugin)
                )
            else:
                workspaces = {workspace} | before
                if local is None:  # listed as starting meanwhile
                    self._pending[plugin] = _Pending(plugin_dir.manifest.version, workspaces)
                    self._notify()
                try:
                    fresh = await self._started(plugin_dir, workspaces)
                except asyncio.CancelledError:  # the listing must not say starting
                    self._not_started(plugin, "its start was cancelled")
                    raise
                except Exception as exc:
                    reason = failure_reason(exc)
                    if local is None:
                        installed = tuple(sorted(workspaces))
                        wanted[plugin] = Install(plugin, str(plugin_dir.path), installed)
                        self._installs.save(list(wanted.values()))
                    self._not_started(plugin, reason)
                    if isinstance(exc, PluginKVError):
                        raise
                    raise PluginFailed(reason) from exc
                self._pending.pop(plugin, None)
                self._local[plugin] = fresh
                self._notify()
                if local is not None:
                    logger.info("%r replaces %r", fresh, local)
                    self._retire(local)
                local = fresh
            wanted[plugin] = Install(plugin, str(plugin_dir.path), tuple(sorted(local.workspaces)))
            self._installs.save(list(wanted.values()))
            return _local_info(local)

    async def uninstall(self, plugin: str, workspace: str) -> list[str]:
        """Stop serving ``plugin`` in ``workspace`` (its data stays); the workspaces left.

        The process stops with the last workspace.
        """
        check_scope(workspace, plugin)
        async with self._install_lock:
            wanted = self._wanted_installs()
            install = wanted.get(plugin)
            if install is None or workspace not in install.workspaces:
                raise PluginNotFound(f"{plugin} is not installed for workspace {workspace}")
            left = tuple(w for w in install.workspaces if w != workspace)
            local = self._local.get(plugin)
            if local is not None:
                local.workspaces.discard(workspace)
            pending = self._pending.get(plugin)
            if pending is not None:
                pending.workspaces.discard(workspace)
            if left:
                wanted[plugin] = Install(plugin, install.directory, left)
                if local is not None:
                    self._declare_quota(
                        local.directory.manifest, set(left), by=_installs_of(plugin)
                    )
                else:  # not running: its manifest's quota comes back with its next start
                    self._store().withdraw_quota(_installs_of(plugin))
            else:
                self._store().withdraw_quota(_installs_of(plugin))
                del wanted[plugin]
                self._pending.pop(plugin, None)
                if local is not None:
                    del self._local[plugin]
                    await local.stop()
            self._installs.save(list(wanted.values()))
            self._notify()  # a call waiting for it there waits no more
            return list(left)

    def _retire(self, local: LocalPlugin) -> None:
        """Stop a replaced process once the calls open on it have ended, in the background.

        They may take ``PLUGINKV_SESSION_TIMEOUT_SECONDS`` at most; the install
        does not wait for them.
        """
        task = asyncio.create_task(local.retire(self._settings.session_timeout_seconds))
        self._retiring[local] = task
        task.add_done_callback(lambda _: self._retiring.pop(local, None))

    async def _started(self, plugin_dir: PluginDirectory, workspaces: set[str]) -> LocalPlugin:
        """A new process of the plugin, running; its environment is built first if need be."""
        python = await self._envs.ensure(plugin_dir)
        local = self._local_plugin(plugin_dir, python, workspaces)
        await local.start()
        return local

    def _local_plugin(
        self, plugin_dir: PluginDirectory, python: Path, workspaces: set[str]
    ) -> LocalPlugin:
        self._declare_quota(
            plugin_dir.manifest, workspaces, by=_installs_of(plugin_dir.manifest.plugin_id)
        )
        return LocalPlugin(
            plugin_dir,
            python,
            workspaces,
            invocations=self.invocations,
            line_limit=line_limit(self._settings.max_value_bytes),
            log=self.logs.of(plugin_dir.manifest.plugin_id),
            on_change=self._notify,
        )

    def _declare_quota(self, manifest: Manifest, workspaces: set[str], *, by: Hashable) -> None:
        """The manifest's storage size as the plugin's quota in ``workspaces``, for ``by``: a
        remote-debug connection, or ``_installs_of(plugin)`` for the plugin's installs."""
        self._store().declare_quota(
            plugin=manifest.plugin_id,
            workspaces=workspaces,
            quota_bytes=manifest.storage_bytes,
            source=f"the manifest of {manifest.plugin_id} (resource.permission.storage.size)",
            by=by,
        )

    def _wanted_installs(self) -> dict[str, Install]:
        if self._wanted is None:
            self._wanted = {install.plugin: install for install in self._installs.load()}
        return self._wanted

    async def _start_installed(self) -> None:
        """Start the plugins the data directory lists; one that fails is marked failed."""
        directories: dict[str, PluginDirectory] = {}
        for listed in self._wanted_installs().values():
            if listed.plugin in self._local:
                continue
            pending = self._pending[listed.plugin] = _Pending("", set(listed.workspaces))
            try:
                directories[listed.plugin] = read_plugin_directory(listed.directory)
            except Exception as exc:
                self._not_started(listed.plugin, failure_reason(exc))
                continue
            pending.version = directories[listed.plugin].manifest.version
        for plugin, plugin_dir in directories.items():
            async with self._install_lock:  # install requests may have come meanwhile
                install = self._wanted_installs().get(plugin)
                if install is None or plugin in self._local:
                    continue  # uninstalled, or installed again: that took care of _pending
                try:
                    local = await self._started(plugin_dir, set(install.workspaces))
                except Exception as exc:  # of any kind: the next plugins still start
                    self._not_started(plugin, failure_reason(exc))
                    continue
                self._pending.pop(plugin, None)
                self._local[plugin] = local
                self._notify()

    def _not_started(self, plugin: str, error: str) -> None:
        """After a start that failed: an installed plugin that no process serves has failed."""
        logger.error("could not start the plugin %s: %s", plugin, error)
        self.logs.of(plugin).write("host", f"could not start: {error}")
        install = self._wanted_installs().get(plugin)
        pending = self._pending.get(plugin)
        if install is None or plugin in self._local or pending is None:
            # Never installed (the caller hears why), or its old process still serves.
            self._pending.pop(plugin, None)
            if install is None:
                self._store().withdraw_quota(_installs_of(plugin))
        else:
            pending.workspaces = set(install.workspaces)
            pending.status = Status("failed", error)
        self._notify()

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
        credential_type: str = "api-key",
        conversation_id: str | None = None,
        message_id: str | None = None,
        app_id: str | None = None,
    ) -> AsyncGenerator[Any]:
        """Invoke a tool for ``workspace``; its messages (``ToolInvokeMessage`` dicts) as they come.

        ``credentials`` are the provider's, as Dify's daemon sends them decrypted;
        the declared defaults of missing ``parameters`` are filled in and every
        declared one is cast to its type, as Dify's API does.  ``user`` and the
        ids reach plugin code as ``self.runtime.user_id`` and ``self.session``'s.
        What is wrong with the call is raised before anything goes to the plugin.
        """
        credentials = {} if credentials is None else credentials
        check_credentials(credentials, credential_type)
        connection = await self._serving(plugin, workspace)
        provider_declaration, declaration = find_tool(
            connection.declarations, plugin, provider, tool
        )
        what = f"tool {provider}/{tool} of {plugin}"
        if credential_type == "api-key":  # OAuth credentials come from the OAuth flow
            credentials = with_declared_credentials(provider_declaration, credentials, what)
        data = {
            "user_id": user,
            "type": "tool",
            "action": "invoke_tool",
            "provider": provider,
            "tool": tool,
            "credentials": credentials,
            "credential_type": credential_type,
            "tool_parameters": with_defaults(declaration, parameters, what),
        }
        stream = connection.stream(
            data,
            workspace=workspace,
            timeout=self._settings.session_timeout_seconds,
            what=what,
            conversation_id=conversation_id,
            message_id=message_id,
            app_id=app_id,
        )
        async with contextlib.aclosing(stream):
            async for message in stream:
                yield message

    async def validate_credentials(
        self,
        *,
        workspace: str,
        plugin: str,
        provider: str,
        credentials: dict[str, Any],
        user: str = "",
    ) -> None:
        """Have the tool provider check ``credentials``, as Dify does before it keeps them.

        The provider's ``_validate_credentials`` runs in the plugin; when it
        raises, ``InvalidArgument`` carries its exception's type and text.
        """
        check_credentials(credentials, "api-key")
        connection = self.find(plugin, workspace)
        declaration = find_provider(connection.declarations, plugin, provider)
        what = f"tool provider {provider} of {plugin}"
        data = {
            "user_id": user,
            "type": "tool",
            "action": "validate_tool_credentials",
            "provider": provider,
            "credentials": with_declared_credentials(declaration, credentials, what),
        }
        stream = connection.stream(
            data, workspace=workspace, timeout=self._settings.session_timeout_seconds, what=what
        )
        try:
            async with contextlib.aclosing(stream):
                answers = [chunk async for chunk in stream]
        except PluginFailed as exc:
            if exc.error_type is None:
                raise
            reason = str(exc).removeprefix(f"{what} failed: ")
            raise InvalidArgument(f"{what} refused the credentials: {reason}") from None
        if {"result": True} not in answers:
            # The SDK answers {"result": true} or raises; anything else is no answer.
            raise PluginFailed(f"{what} did not answer the credential check: {answers!r}")

    # -- endpoints ----------------------------------------------------------------------------
    def create_endpoint(self, *, workspace: str, plugin: str, settings: dict[str, Any]) -> Endpoint:
        """A new endpoint of ``plugin`` for ``workspace``; the plugin must run and have some.

        ``settings`` are checked against the endpoint group's (``endpoint_settings.py``).
        """
        connection = self.find(plugin, workspace)
        if not connection.declarations.get("endpoint"):
            raise PluginNotFound(f"{plugin} declares no endpoints")
        _check_endpoint_permission(connection)
        groups = connection.declarations["endpoint"]
        return self.endpoints.create(workspace, plugin, checked_settings(groups, settings, plugin))

    async def endpoint_stream(self, hook_id: str, raw_http_request: bytes) -> AsyncGenerator[Any]:
        """Send a request to the endpoint's plugin; the response chunks as they arrive."""
        endpoint = self.endpoints.get(hook_id)
        connection = await self._serving(endpoint.plugin, endpoint.workspace)
        # The registration that had the permission when the endpoint was made may be gone.
        _check_endpoint_permission(connection)
        data = {
            "user_id": "",
            "type": "endpoint",
            "action": "invoke_endpoint",
            "settings": endpoint.settings,
            "raw_http_request": raw_http_request.hex(),
        }
        stream = connection.stream(
            data,
            workspace=endpoint.workspace,
            timeout=self._settings.session_timeout_seconds,
            what=f"endpoint {hook_id} of {endpoint.plugin}",
            endpoint_id=hook_id,
        )
        async with contextlib.aclosing(stream):
            async for chunk in stream:
                yield chunk


def _check_endpoint_permission(connection: PluginConnection) -> None:
    if not connection.manifest.endpoint_enabled:
        # As the daemon: endpoints need the manifest's permission.
        raise Forbidden(
            f"permission denied: {connection.plugin_id} needs resource.permission.endpoint."
            "enabled: true in its manifest to have endpoints"
        )


def _installs_of(plugin: str) -> tuple[str, str]:
    """Who declares the quota of an installed plugin: its installs, whichever process runs."""
    return ("installed", plugin)


def _why(status: Status) -> str:
    return f"{status.state}: {status.error}" if status.error else status.state


def _connection_info(c: PluginConnection) -> PluginInfo:
    return PluginInfo(
        plugin=c.plugin_id,
        version=c.manifest.version,
        transport=c.transport,
        workspaces=sorted(c.workspaces),
        peer=c.peer,
        since=c.connected_at,
        last_heartbeat=c.last_heartbeat,
    )


def _local_info(local: LocalPlugin) -> PluginInfo:
    """A running installed plugin as its connection says, another as its status does."""
    if local.connection is not None and local.status.state == "running":
        return _connection_info(local.connection)
    version = local.directory.manifest.version
    return _idle_info(local.plugin_id, version, local.workspaces, local.status)


def _idle_info(plugin: str, version: str, workspaces: set[str], status: Status) -> PluginInfo:
    """An installed plugin no process of which runs: its state, since when, and why."""
    return PluginInfo(
        plugin=plugin,
        version=version,
        transport="stdio",
        workspaces=sorted(workspaces),
        peer="",
        since=status.since,
        last_heartbeat=None,
        state=status.state,
        error=status.error,
    )
