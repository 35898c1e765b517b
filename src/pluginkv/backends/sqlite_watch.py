"""How a SQLite store learns of commits made by other processes on its file.

SQLite tells no one of a commit, but each connection can ask whether the
file changed since it last asked: ``PRAGMA data_version`` moves whenever
another connection (of this process or another) has committed.  One thread
per store asks, every ``watch_poll_seconds``, on a connection of its own, and
only while some watch waits; when the answer moves, the store reads the
``last_seq`` of the scopes it watches, once, and wakes those that moved
(``watching.py``).  Asking costs a read of the shared-memory index, no disk
and no lock: a thousand waiters cost what one does.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

from .base import WakeScopes

__all__ = ["DataVersionPoller"]

logger = logging.getLogger(__name__)


class DataVersionPoller:
    """A thread that calls ``wake(None)`` whenever the database file's data changed."""

    def __init__(self, path: str, interval: float, wake: WakeScopes, *, uri: bool = False) -> None:
        self._interval = interval
        self._wake = wake
        self._stop = threading.Event()
        # Opened and read here, before the caller reads any change: a commit
        # after this first answer moves the next one.
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, uri=uri)
        self._version = self._data_version()
        self._thread = threading.Thread(
            target=self._run, name=f"pluginkv-watch {path}", daemon=True
        )
        self._thread.start()

    def _data_version(self) -> int:
        row = self._conn.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                version = self._data_version()
            except sqlite3.Error as exc:
                logger.warning("watching the SQLite file for changes failed: %s", exc)
                version = -1  # wake the waiters: their read says what is wrong
            if version != self._version:
                self._version = version
                try:
                    self._wake(None)
                except Exception:  # the thread must outlive one failed wake
                    logger.exception("waking the watchers failed")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        self._conn.close()
