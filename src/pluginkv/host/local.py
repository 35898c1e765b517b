"""Local plugins: launched by the host over stdio (``INSTALL_METHOD=local``) and kept running.

The host runs ``<env>/bin/python -m <entrypoint>`` in the plugin's directory
(the SDK reads its YAML files and ``_assets/`` relative to it).  The first
stdout line is the bare manifest, then come ``log`` events and heartbeats;
the plugin is ready at its first heartbeat.  One process serves every
workspace that installed the plugin.  A process that exits, or stops sending
heartbeats, is started again, after a pause that doubles up to 30 seconds
while it keeps failing; whatever goes wrong while launching one (an
interpreter that cannot run included) is a failed start like any other,
never the end of the supervision.  ``stop`` kills it: the SDK does not exit
when its stdin closes.  Its ``status`` says where it stands, for ``pluginkv
plugins``.  What it prints to stderr, the lines of its stdout that are not
protocol messages and its ``log`` events go to its log file
(``plugin_logs``), along with each start and exit.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PluginFailed, PluginKVError
from .connection import PluginConnection
from .framing import LineReader, Lines, read_messages
from .invocations import Invocations
from .plugin_dir import PluginDirectory
from .plugin_logs import PluginLog
from .tracebacks import ExceptionCatcher

__all__ = ["LocalPlugin", "Status", "failure_reason"]

logger = logging.getLogger("pluginkv.dify")

START_TIMEOUT = 120.0  # the daemon's wait for the first heartbeat
_MAX_PAUSE = 30.0
# After its exit, how long the rest of a process's stderr may take to arrive
# (a grandchild that kept the pipe open would hold it forever).
_STDERR_GRACE = 2.0


def failure_reason(exc: BaseException) -> str:
    """What to tell about an error that stopped a plugin's start: ours as is, others by type."""
    if isinstance(exc, PluginKVError):
        return str(exc) or exc.code
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


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
        log: PluginLog,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.directory = directory
        self.python = python
        self.workspaces = workspaces
        self.log = log
        self._invocations = invocations
        self._limit = line_limit
        self._on_change = on_change  # the host's waiters look again at each change of state
        self.connection: _CountedConnection | None = None
        self.process: asyncio.subprocess.Process | None = None
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        self._exception = ExceptionCatcher()  # of the current process's stderr
        self._stderr: asyncio.Task[None] | None = None
        self._status = Status("starting")
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self._killed_because: str | None = None

    @property
    def status(self) -> Status:
        return self._status

    @status.setter
    def status(self, status: Status) -> None:
        self._status = status
        self._on_change()

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
        if self.process is not None and self.process.returncode is None:
            self.log.write("host", f"pid {self.process.pid} stopped by the host")
        await self._kill()
        if self._stderr is not None:
            self._stderr.cancel()
        self._set_connection(None)

    async def retire(self, grace: float) -> None:
        """``stop``, once the calls open on the process have ended or ``grace`` seconds passed.

        For a process another one has replaced: no new call reaches it.
        """
        connection = self.connection
        if connection is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(connection.idle.wait(), grace)
        await self.stop()

    def restart(self, reason: str) -> None:
        """Kill the process; the supervisor starts a new one (for a plugin gone silent)."""
        if self.process is not None and self.process.returncode is None:
            self._killed_because = reason
            self.process.kill()

    # -- the process ---------------------------------------------------------------------------
    async def _launch(self) -> asyncio.Task[None]:
        """Start the process; once it is ready, the task that reads it (ends when it does).

        Whatever stops it from getting ready raises ``PluginFailed`` saying why.
        """
        env = {**os.environ, "INSTALL_METHOD": "local"}
        for name in ("REMOTE_INSTALL_KEY", "REMOTE_INSTALL_URL"):
            env.pop(name, None)
        entrypoint = self.directory.entrypoint
        try:
            process = await asyncio.create_subprocess_exec(
                str(self.python),
                "-m",
                entrypoint,
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
        except OSError as exc:  # a missing or non-executable interpreter, a folder gone
            raise PluginFailed(
                f"{self.plugin_id} cannot start: running {self.python} -m {entrypoint} "
                f"in {self.directory.path} failed: {exc}"
            ) from None
        self.process = process
        source = f"pid {process.pid}"
        self.log.write("host", f"{source} started: {self.python} -m {entrypoint}")
        self.stderr_tail.clear()  # the errors it reports are this process's
        self._exception = ExceptionCatcher()
        assert process.stdin is not None and process.stdout is not None
        assert process.stderr is not None
        self._stderr = asyncio.create_task(self._drain_stderr(process.stderr, source))
        # LineReader drops an over-long line whole (the stream's own readline
        # would read its tail as a line of its own); _Stdout copies prints to the log.
        stdout = _Stdout(LineReader(process.stdout, self._limit), self.log, source)
        process_events = read_messages(stdout, f"{self.plugin_id} (pid {process.pid})")
        connection = _CountedConnection(
            manifest=self.directory.manifest,
            declarations=self.directory.declarations,
            transport="stdio",
            workspaces=self.workspaces,
            events=_plugin_events(process_events, self.log, source),
            writer=process.stdin,
            invocations=self._invocations,
            peer=source,
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
            self._stderr.cancel()
            await asyncio.shield(self._kill())
            raise
        if ready not in done:
            ready.cancel()
            serving.cancel()
            await self._kill()
            await self._stderr_drained()
            why = "exited" if serving in done else f"sent no heartbeat in {START_TIMEOUT:g} s"
            reason = f"{self.plugin_id} {why} at start-up{self._stderr_says()}"
            self.log.write("host", f"{source} {why} at start-up (code {process.returncode})")
            raise PluginFailed(reason)
        self._set_connection(connection)
        self.log.write("host", f"{source} is running, version {self.directory.manifest.version}")
        logger.info("started %r", self)
        return serving

    async def _supervise(self, running: asyncio.Task[None]) -> None:
        pause = 1.0
        serving: asyncio.Task[None] | None = running  # None after a failed start
        while not self._stopping:
            if serving is not None:
                try:
                    await serving  # ends when stdout closes
                except Exception:  # a reader that failed: the process is done with too
                    logger.exception("reading from %s failed", self.plugin_id)
                serving = None
            await self._kill()
            await self._stderr_drained()
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
            except Exception as exc:  # whatever it is, the next try may do better
                reason = failure_reason(exc)
                self.log.write("host", f"could not start again: {reason}")
                if isinstance(exc, PluginKVError):
                    logger.warning("%s", reason)
                else:
                    logger.exception("starting %s again failed", self.plugin_id)
                self.status = Status("restarting", reason, self.status.since)
                pause = min(pause * 2, _MAX_PAUSE)
                continue
            if time.monotonic() - started > 60:
                pause = 1.0

    def _why_it_ended(self) -> str:
        reason, self._killed_because = self._killed_because, None
        code = self.process.returncode if self.process is not None else None
        if self.process is not None:
            self.log.write("host", f"pid {self.process.pid} exited with code {code}")
        if reason is None:
            reason = f"exited with code {code}"
        # A traceback explains an exit of its own accord; one printed earlier
        # and handled says nothing about a kill.
        return reason + self._stderr_says(exception=code is not None and code > 0)

    def _stderr_says(self, *, exception: bool = True) -> str:
        """Why stderr says the process ended: its exception, or else its last KiB."""
        raised = self._exception.reason() if exception else None
        if raised is not None:
            return f": {raised}"
        if not self.stderr_tail:
            return ""
        text = " | ".join(self.stderr_tail)  # as much as the daemon keeps of a failed instance's
        return "; its stderr ends: " + (text if len(text) <= 1024 else "..." + text[-1024:])

    async def _stderr_drained(self) -> None:
        """Let the reader of an ended process's stderr take in its last lines."""
        if self._stderr is not None:
            await asyncio.wait({self._stderr}, timeout=_STDERR_GRACE)
            self._stderr.cancel()

    async def _kill(self) -> None:
        process = self.process
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        await process.wait()

    async def _drain_stderr(self, stream: asyncio.StreamReader, source: str) -> None:
        """Keep stderr flowing (a full pipe would block the plugin) into the log file."""
        while True:
            try:
                line = await stream.readline()
            except ValueError:
                continue  # a line over the limit: dropped
            if not line:
                return
            text = line.decode(errors="replace").rstrip()
            self._exception.feed(text)
            if text:
                self.log.write(f"{source} stderr", text)
                self.stderr_tail.append(text[:500])
                logger.debug("%s stderr: %s", self.plugin_id, text)

    def _set_connection(self, connection: _CountedConnection | None) -> None:
        self.connection = connection
        if connection is not None:
            self.status = Status("running")


class _CountedConnection(PluginConnection):
    """A local plugin's channel, which knows when no call is open on it (``retire``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._open = 0
        self.idle = asyncio.Event()
        self.idle.set()

    async def stream(self, data: dict[str, Any], **kwargs: Any) -> AsyncGenerator[Any, None]:
        self._open += 1
        self.idle.clear()
        try:
            async with contextlib.aclosing(super().stream(data, **kwargs)) as chunks:
                async for chunk in chunks:
                    yield chunk
        finally:
            self._open -= 1
            if not self._open:
                self.idle.set()


class _Stdout:
    """The plugin's stdout, its lines that are not protocol messages copied to its log.

    Plugin code may ``print``: such a line is no JSON object, and the
    protocol reader skips it (``framing``).
    """

    def __init__(self, reader: Lines, log: PluginLog, source: str) -> None:
        self._reader = reader
        self._log = log
        self._source = f"{source} stdout"

    async def readline(self) -> bytes:
        line = await self._reader.readline()
        if line[:1] != b"{" and line.strip():
            self._log.write(self._source, line.decode(errors="replace"))
        return line


async def _plugin_events(
    events: AsyncIterator[dict[str, Any]], log: PluginLog, source: str
) -> AsyncIterator[dict[str, Any]]:
    """The events after the bare manifest line (it has no ``event``; the host has the file).

    ``log`` events (the SDK's ``plugin_logger_handler``) go to the log file too.
    """
    async for event in events:
        kind = event.get("event")
        if kind is None:
            continue
        if kind == "log":
            data = event.get("data")
            if isinstance(data, dict):
                log.write(
                    f"{source} log {data.get('level', '')}".rstrip(), str(data.get("message"))
                )
            else:
                log.write(f"{source} log", str(data))
        yield event
