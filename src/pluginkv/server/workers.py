"""``pluginkv serve --workers N``: N processes answer on one listening socket.

One event loop answers about one core's worth of requests: a GET costs some
45 µs of CPU, most of it HTTP parsing and the ASGI stack, so a single process
serves about 17,000 GETs a second on this project's 2-core test machine while
the other core idles.  Two processes sharing the listening socket measured
1.86x the GETs (``bench_processes.py``, docs/benchmarks.md).

The supervisor (the process ``pluginkv serve`` started) binds the socket,
then forks the workers; each opens its own store and serves the same app on
the inherited socket, the kernel handing every new connection to one of them.
Worker 0 also runs the plugin host; the others hand its routes to it over a
private Unix socket (``siblings.py``).  Every worker writes the database
itself: on SQLite the writers of all processes take turns through an
``flock`` (``backends/sqlite_turns.py``), so each commit is as durable as
with one process.

The supervisor does nothing else: it waits, passes SIGTERM and SIGINT on to
the workers, and starts a worker again when one dies on its own (a crash, an
out-of-memory kill).  A worker that keeps dying right after its start ends
the service: it would only die again.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

__all__ = ["Supervisor"]

logger = logging.getLogger("pluginkv.workers")

# A worker that dies this soon after it started, this many times in a row, ends the service.
QUICK_DEATH_SECONDS = 5.0
QUICK_DEATHS_TO_GIVE_UP = 3
# After SIGTERM, how long the workers get before SIGKILL: uvicorn's graceful shutdown
# (30 s) and the plugin host's, with a margin.
STOP_GRACE_SECONDS = 45.0


@dataclass
class _Slot:
    index: int
    pid: int = 0
    started: float = 0.0
    quick_deaths: int = 0


@dataclass
class Supervisor:
    """Fork ``count`` workers that each run ``work(index)``; keep them running until told to stop.

    ``work`` runs in the child and never returns normally (the child exits with its status).
    """

    count: int
    work: Callable[[int], None]
    _slots: list[_Slot] = field(default_factory=list)
    _stopping: int = 0  # the signal that asked us to stop, 0 while running

    def run(self) -> int:
        """Until every worker has stopped after a signal; the exit status of the service."""
        self._slots = [_Slot(index) for index in range(self.count)]
        previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            for slot in self._slots:
                self._start(slot)
            return self._wait()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _start(self, slot: _Slot) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            status = 1
            try:
                for signum in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(signum, signal.SIG_DFL)
                _end_with_parent(os.getppid())
                self.work(slot.index)
                status = 0
            except SystemExit as exc:
                status = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                logger.exception("worker %d failed", slot.index)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(status)
        slot.pid, slot.started = pid, time.monotonic()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stopping:
            return
        self._stopping = signum
        # SIGTERM to every worker, also for Ctrl-C, which the terminal sends the workers
        # too: uvicorn takes a second SIGINT as "quit now", skipping the app's shutdown
        # (queued writes, plugins); a SIGTERM after a SIGINT changes nothing.
        self._signal_all(signal.SIGTERM)

    def _signal_all(self, signum: int) -> None:
        for slot in self._slots:
            if slot.pid:
                try:
                    os.kill(slot.pid, signum)
                except ProcessLookupError:
                    pass

    def _wait(self) -> int:
        status = 0
        deadline: float | None = None
        while any(slot.pid for slot in self._slots):
            if self._stopping and deadline is None:
                deadline = time.monotonic() + STOP_GRACE_SECONDS
            if deadline is not None and time.monotonic() > deadline:
                logger.error(
                    "workers still running %.0f s after the signal: killing them",
                    STOP_GRACE_SECONDS,
                )
                self._signal_all(signal.SIGKILL)
                deadline = float("inf")
            try:
                pid, wait_status = os.waitpid(-1, 0 if deadline is None else os.WNOHANG)
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            if pid == 0:
                time.sleep(0.05)
                continue
            slot = next((s for s in self._slots if s.pid == pid), None)
            if slot is None:
                continue  # not a worker (nothing else is forked here)
            code = os.waitstatus_to_exitcode(wait_status)
            gave_up = not self._stopping and self._gave_up(slot, code)
            slot.pid = 0
            if self._stopping:
                continue
            if gave_up:
                status = 3
                self._stopping = signal.SIGTERM
                self._signal_all(signal.SIGTERM)
                continue
            self._start(slot)
        return status

    def _gave_up(self, slot: _Slot, code: int) -> bool:
        """Log a worker's death; whether it died too often too soon to start again."""
        how = f"signal {-code}" if code < 0 else f"exit status {code}"
        lived = time.monotonic() - slot.started
        slot.quick_deaths = slot.quick_deaths + 1 if lived < QUICK_DEATH_SECONDS else 0
        if slot.quick_deaths >= QUICK_DEATHS_TO_GIVE_UP:
            logger.error(
                "worker %d (pid %d) ended with %s %d times within %.0f s of its start; "
                "stopping the service",
                slot.index,
                slot.pid,
                how,
                slot.quick_deaths,
                QUICK_DEATH_SECONDS,
            )
            return True
        logger.error(
            "worker %d ended with %s after %.1f s; starting it again", slot.index, how, lived
        )
        return False


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _end_with_parent(parent: int) -> None:
    """Have the kernel send this worker SIGTERM when the supervisor dies, even by SIGKILL:
    workers left behind would hold the port and the database with nobody to stop them."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the supervisor died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
