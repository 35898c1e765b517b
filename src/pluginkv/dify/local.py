"""Local plugins: launched by the host over stdio (``INSTALL_METHOD=local``) and kept running.

The host runs ``<env>/bin/python -m <entrypoint>`` in the plugin's directory
(the SDK reads its YAML files and ``_assets/`` relative to it).  The first
stdout line is the bare manifest, then come ``log`` events and heartbeats;
the plugin is ready at its first heartbeat.  One process serves every
workspace that installed the plugin.  A process that exits, or stops sending
heartbeats, is started again, after a pause that doubles up to 30 seconds
while it keeps failing.  ``stop`` kills it: the SDK does not exit when its
stdin closes.  Its ``status`` says where it stands, for ``pluginkv plugins``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PluginFailed
from .connection import PluginConnection
from .framing import LineReader, read_messages
from .invocations import Invocations
from .plugin_dir import PluginDirectory

__all__ = ["LocalPlugin", "Status"]

logger = logging.getLogger("pluginkv.dify")

START_TIMEOUT = 120.0  # the daemon's wait for the first heartbeat
_MAX_PAUSE = 30.0


@dataclass(slots=True)
class Status:
    """Where an installed plugin stands, and since when.

    ``starting`` (its environment is built or its process launched),
    ``running``, ``restarting`` (its process ended; another is launched after
    a pause, again and again) or ``failed`` (it could not start, and the host
    tries again only at the next install or service start).  ``error`` says
    why it is not running: the last failure.
    """

    state: str
    error: str | None = None
    since: float = field(default_factory=time.time)


class LocalPlugin:
    """One installed plugin's process, restarted when it dies."""

    def __init__(
        self,
        directory: PluginDirectory,
        python: Path,
        workspaces: set[str],
        *,
        invocations: Invocations,
        line_limit: int,
    ) -> None:
        self.directory = directory
        self.python = python
        self.workspaces = workspaces
        self._invocations = invocations
        self._limit = line_limit
        self.connection: PluginConnection | None = None
        self.process: asyncio.subprocess.Process | None = None
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        self.status = Status("starting")
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self._killed_because: str | None = None

    @property
    def plugin_id(self) -> str:
        return self.directory.manifest.plugin_id

    def __repr__(self) -> str:
        pid = self.process.pid if self.process is not None else None
        return f"<LocalPlugin {self.plugin_id} pid={pid} workspaces={sorted(self.workspaces)}>"

    async def start(self) -> None:
        """Launch the process and wait until it is ready; then keep it running."""
        serving = await self._launch()
        self._supervisor = asyncio.create_task(self._supervise(serving))

    async def stop(self) -> None:
        """Kill the process and stop restarting it."""
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        await self._kill()
        self._set_connection(None)

    def restart(self, reason: str) -> None:
        """Kill the process; the supervisor starts a new one (for a plugin gone silent)."""
        if self.process is not None and self.process.returncode is None:
            self._killed_because = reason
            self.process.kill()

    # -- the process ---------------------------------------------------------------------------
    async def _launch(self) -> asyncio.Task[None]:
        """Start the process; once it is ready, the task that reads it (ends when it does)."""
        env = {**os.environ, "INSTALL_METHOD": "local"}
        for name in ("REMOTE_INSTALL_KEY", "REMOTE_INSTALL_URL"):
            env.pop(name, None)
        process = await asyncio.create_subprocess_exec(
            str(self.python),
            "-m",
            self.directory.entrypoint,
            cwd=self.directory.path,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=self._limit,
            # Its own session: a Ctrl-C meant for the service must not kill it
            # behind the host's back; the host kills it on shutdown.
            start_new_session=True,
        )
        self.process = process
        self.stderr_tail.clear()  # the errors it reports are this process's
        assert process.stdin is not None and process.stdout is not None
        assert process.stderr is not None
        stderr = asyncio.create_task(self._drain_stderr(process.stderr))
        # LineReader drops an over-long line whole; the stream's own readline
        # would read its tail as a line of its own.
        lines = LineReader(process.stdout, self._limit)
        process_events = read_messages(lines, f"{self.plugin_id} (pid {process.pid})")
        connection = PluginConnection(
            manifest=self.directory.manifest,
            declarations=self.directory.declarations,
            transport="stdio",
            workspaces=self.workspaces,
            events=_skip_manifest_line(process_events),
            writer=process.stdin,
            invocations=self._invocations,
            peer=f"pid {process.pid}",
        )
        serving = asyncio.create_task(connection.serve())
        ready = asyncio.create_task(connection.alive.wait())
        try:
            done, _ = await asyncio.wait(
                {serving, ready}, timeout=START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
            )
        except BaseException:  # cancelled (the service stops): leave no process behind
            ready.cancel()
            serving.cancel()
            stderr.cancel()
            await asyncio.shield(self._kill())
            raise
        if ready not in done:
            ready.cancel()
            serving.cancel()
            await self._kill()
            stderr.cancel()
            why = "exited" if serving in done else f"sent no heartbeat in {START_TIMEOUT:g} s"
            raise PluginFailed(
                f"{self.plugin_id} {why} at start-up; its stderr ends: {self._stderr_end()}"
            )
        self._set_connection(connection)
        logger.info("started %r", self)
        return serving

    async def _supervise(self, serving: asyncio.Task[None]) -> None:
        pause = 1.0
        while not self._stopping:
            await serving  # ends when stdout closes
            await self._kill()
            self._set_connection(None)
            if self._stopping:
                return
            if self.status.state != "restarting":  # not after a failed start: keep its why
                self.status = Status("restarting", self._why_it_ended())
            logger.warning(
                "%s stopped (%s); starting it again in %g s",
                self.plugin_id,
                self.status.error,
                pause,
            )
            started = time.monotonic()
            await asyncio.sleep(pause)
            try:
                serving = await self._launch()
            except PluginFailed as exc:
                logger.warning("%s", exc)
                self.status.error = str(exc)
                pause = min(pause * 2, _MAX_PAUSE)
                continue
            if time.monotonic() - started > 60:
                pause = 1.0

    def _why_it_ended(self) -> str:
        reason, self._killed_because = self._killed_because, None
        if reason is None:
            code = self.process.returncode if self.process is not None else None
            reason = f"exited with code {code}"
        if self.stderr_tail:
            reason += f"; its stderr ends: {self._stderr_end()}"
        return reason

    def _stderr_end(self) -> str:
        """The last KiB of stderr, as much as the daemon keeps of a failed instance's."""
        text = " | ".join(self.stderr_tail)
        return text if len(text) <= 1024 else "..." + text[-1024:]

    async def _kill(self) -> None:
        process = self.process
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        await process.wait()

    async def _drain_stderr(self, stream: asyncio.StreamReader) -> None:
        """Keep stderr flowing (a full pipe would block the plugin) and its last lines."""
        while True:
            try:
                line = await stream.readline()
            except ValueError:
                continue  # a line over the limit: dropped
            if not line:
                return
            text = line.decode(errors="replace").rstrip()
            if text:
                self.stderr_tail.append(text[:500])
                logger.debug("%s stderr: %s", self.plugin_id, text)

    def _set_connection(self, connection: PluginConnection | None) -> None:
        self.connection = connection
        if connection is not None:
            self.status = Status("running")


async def _skip_manifest_line(
    events: AsyncIterator[dict[str, Any]],
) -> AsyncIterator[dict[str, Any]]:
    """The events after the bare manifest line, which has no ``event`` (the host has the file)."""
    async for event in events:
        if "event" not in event:
            continue
        yield event
