"""Writers of one SQLite file take turns through an ``flock``, not through SQLite's busy handler.

SQLite lets one connection write at a time.  One that finds the file's write
lock taken waits in its busy handler, which sleeps in whole milliseconds and
backs off up to 100 ms a sleep: two ``pluginkv serve`` processes writing one
file measured a p99 of 710 ms instead of 3.4 ms for one alone (docs/benchmarks.md,
"several processes").  Waiting for a turn here instead wastes at most half a
millisecond after the previous writer lets go, so several processes
(``pluginkv serve --workers N``, or the CLI beside the service) share the
file's write lock without that stall.

The turn is taken before ``BEGIN IMMEDIATE`` and given back after ``COMMIT``
or ``ROLLBACK``.  A writer that finds it taken asks again after 50 µs, then
ever less often but at least every 0.5 ms: a commit takes about that long, so
a waiter starts at most that late, and ``flock`` has no timeout of its own.
Past the busy timeout (``PLUGINKV_SQLITE_BUSY_TIMEOUT_MS``) it gives up with
the error SQLite's own lock would give: a process stopped in the middle of a
write (SIGSTOP, a debugger) makes writes fail, never hang.

It only orders writers that take it: any other program writing the file
still meets SQLite's own lock, which stays the guarantee.
Within a process the threads queue on a ``threading.Lock`` first, as one
open file's ``flock`` would not keep them apart.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable
from types import TracebackType

__all__ = ["TURNS_SUFFIX", "WriteTurns"]

TURNS_SUFFIX = "-turns"  # beside the database: pluginkv.db-turns
_FIRST_WAIT = 0.00005  # seconds
_LONGEST_WAIT = 0.0005


class WriteTurns:
    """An exclusive turn at writing ``path``, among threads and processes."""

    __slots__ = ("_fd", "_path", "_thread", "_timed_out", "_timeout")

    def __init__(
        self, database: str | None, timeout: float, timed_out: Callable[[], Exception]
    ) -> None:
        # None: a database no other process can write (in memory, or read-only here).
        self._path = None if database is None else database + TURNS_SUFFIX
        self._thread = threading.Lock()
        self._fd = -1  # opened on first use, and again in a forked child
        self._timeout = timeout
        self._timed_out = timed_out  # the error to raise past the timeout

    def __enter__(self) -> None:
        if not self._thread.acquire(timeout=self._timeout):
            raise self._timed_out()
        try:
            if self._path is not None:
                if self._fd < 0:
                    self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                self._take(self._fd)
        except BaseException:
            self._thread.release()
            raise

    def _take(self, fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        deadline = time.monotonic() + self._timeout
        wait = _FIRST_WAIT
        while True:
            time.sleep(wait)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise self._timed_out() from None
            wait = min(wait * 2, _LONGEST_WAIT)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._fd >= 0:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread.release()

    def forget(self) -> None:
        """In a forked child: the parent's descriptor shares the parent's lock; open anew."""
        self._fd = -1
        self._thread = threading.Lock()

    def close(self) -> None:
        with self._thread:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
