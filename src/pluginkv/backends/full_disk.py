"""What a SQLite store does when its disk fills up: deletes keep running.

In WAL mode a delete is a write: its pages are appended to the ``-wal`` file,
and the WAL starts over only after a checkpoint has copied it into the
database file, extending that file for the pages that are new.  On a full
disk the checkpoint cannot extend the file, so the WAL cannot start over, and
every transaction, a delete included, needs room the disk no longer has:
measured on an 8 MiB tmpfs, every delete path failed with SQLITE_FULL, after a
restart too (docs/security.md, "A full disk").

So the store keeps a file of ``PLUGINKV_SQLITE_DISK_RESERVE_BYTES`` beside the
database (``<database>-reserve``, allocated, not sparse), and a full disk goes
through three states:

``held``
    The reserve is held; nothing is refused.  The first SQLITE_FULL (or a
    delete that finds less room on the disk than the reserve) releases it.
``released``
    Deletes run, with the reserve's room for their WAL pages and for the
    checkpoint; writes that add data are refused up front, so they cannot eat
    that room.  ``secure_delete`` drops to ``FAST``: where SQLite is built with
    it on (Debian's is), freed pages are zeroed through the WAL, and a purge
    of 24 MiB of 40 KB values wrote 24.7 MiB to the WAL; with ``FAST``, 62 KB.
    After each commit a checkpoint is tried; once one completes, the WAL
    starts over inside its own file, and the store goes to ``capped``.
``capped``
    Writes run again, but the database may not grow (SQLite's
    ``max_page_count`` is set to its size): they fill the pages deletes have
    freed, and a write that needs more is refused with SQLITE_FULL before it
    touches the disk.  The WAL is reused in place, so deletes keep their room.

Each state but ``held`` answers ``DiskFull``, and the store returns to
``held`` once the disk has room for the reserve and as much again (the
operator made room, or grew the volume): room for the reserve alone would be
filled by the next write.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import threading
from pathlib import Path

from ..errors import DiskFull
from ..private_files import FILE_MODE

__all__ = ["SUFFIX", "DiskReserve", "FullDisk"]

logger = logging.getLogger(__name__)

SUFFIX = "-reserve"
SETTING = "PLUGINKV_SQLITE_DISK_RESERVE_BYTES"


class DiskReserve:
    """A file of ``size`` bytes, released on demand and taken back when there is room."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size

    def free_bytes(self) -> int:
        """Bytes the filesystem of the reserve still gives to an ordinary user."""
        info = os.statvfs(self.path.parent)
        return info.f_bavail * info.f_frsize

    def held(self) -> int:
        """Bytes the reserve holds now."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def hold(self, *, beyond: int = 0) -> bool:
        """Allocate the reserve in full if the filesystem has room for it and ``beyond`` more.

        True once it is held.
        """
        missing = self.size - self.held()
        if missing <= 0:
            return True
        if self.free_bytes() < missing + beyond:
            return False
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
            # Allocated blocks, not a sparse file: truncating a sparse file frees nothing.
            os.posix_fallocate(fd, 0, self.size)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            os.ftruncate(fd, 0)  # what was allocated is the disk's again
            return False
        finally:
            os.close(fd)
        return True

    def release(self) -> int:
        """Give the reserve's space back to the filesystem; returns the bytes released."""
        held = self.held()
        if held:
            os.truncate(self.path, 0)
        return held


class FullDisk:
    """The state of the disk under one SQLite database (see the module docstring).

    ``cap`` changes with the state; each connection applies the state's
    pragmas (``apply``) before its next write.
    """

    def __init__(self, database: str, reserve_bytes: int) -> None:
        self.database = database
        self.reserve = DiskReserve(Path(database + SUFFIX), reserve_bytes)
        self.full = False  # released or capped; read on every write
        self.capped = False
        self.cap = 0
        self._max_pages: int | None = None  # the page limit while capped
        self._defaults: tuple[int, int] | None = None  # max_page_count, secure_delete
        self._lock = threading.Lock()

    # -- transitions -------------------------------------------------------------
    def open(self, conn: sqlite3.Connection) -> None:
        """At open: hold the reserve, or carry on a full disk an earlier run left."""
        released = self.reserve.path.exists() and self.reserve.held() < self.reserve.size
        if self._hold(beyond=self.reserve.size if released else 0):
            return
        self.full = True
        logger.warning("%s", self.error())
        self.after_commit(conn)

    def on_full(self) -> DiskFull:
        """SQLITE_FULL: release the reserve for the deletes to come; the error to raise."""
        with self._lock:
            released = self._release()
            entering, self.full = not self.full, True
            if entering:
                self.cap += 1
        error = self.error()
        if entering or released:
            logger.warning("%s (released the reserve: %d bytes)", error, released)
        return error

    def before_delete(self) -> None:
        """Release the reserve when the disk has less room than it holds.

        The disk may fill up without a write of this store failing (another
        program, another process): without this the delete would be the one to
        meet SQLITE_FULL, and fail once before the reserve is released.  One
        ``statvfs`` per delete, none per write.
        """
        if self.full or not self.reserve.size:
            return
        try:
            if self.reserve.free_bytes() >= self.reserve.size:
                return
        except OSError:
            return
        self.on_full()

    def before_add(self) -> None:
        """On a full disk: take the reserve back if there is room, else refuse unless capped.

        One ``statvfs`` per write while the disk is full, none otherwise.
        """
        if not self.full or self._hold(beyond=self.reserve.size):
            return
        if not self.capped:
            raise self.error()

    def after_commit(self, conn: sqlite3.Connection) -> None:
        """After a commit on a full disk: cap once the WAL can start over, or regain.

        Never inside a transaction (a checkpoint cannot run there).
        """
        if not self.full or conn.in_transaction:
            return
        if self._hold(beyond=self.reserve.size):
            return
        if self.capped:
            return
        try:
            busy, wal_pages, copied = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
        except sqlite3.Error as exc:
            logger.warning("checkpoint of %s on a full disk failed: %s", self.database, exc)
            return
        if busy or copied != wal_pages:
            return  # a reader still needs the WAL: the next commit tries again
        with self._lock:
            self.capped, self._max_pages, self.cap = True, int(pages), self.cap + 1
        logger.warning(
            "the disk of SQLite database %s is full: writes fill the room deletes have made "
            "(%d pages) and may not grow the database",
            self.database,
            int(pages),
        )

    def status(self) -> DiskFull | None:
        """What ``/readyz`` reports: ``None`` while the reserve is held."""
        if not self.full or self._hold(beyond=self.reserve.size):
            return None
        return self.error()

    def apply(self, conn: sqlite3.Connection) -> None:
        """Give this connection the state's page limit and ``secure_delete``."""
        if self._defaults is None:
            self._defaults = (
                int(conn.execute("PRAGMA max_page_count").fetchone()[0]),
                int(conn.execute("PRAGMA secure_delete").fetchone()[0]),
            )
        max_pages, secure_delete = self._defaults
        if self._max_pages is not None:
            max_pages = self._max_pages
        conn.execute(f"PRAGMA max_page_count = {max_pages}")
        mode = "FAST" if self.full or secure_delete == 2 else str(secure_delete)
        conn.execute(f"PRAGMA secure_delete = {mode}")

    def error(self) -> DiskFull:
        try:
            free = f"{self.reserve.free_bytes()} bytes free now"
        except OSError as exc:
            free = str(exc)
        if self.capped:
            refused = "writes fill only the room deletes have made"
        else:
            refused = "writes that add data wait for a delete to make room"
        return DiskFull(
            f"the disk of SQLite database {self.database} is full: {refused}; deletes still "
            f"run. The database grows again once the disk has room for the reserve of "
            f"{self.reserve.size} bytes (setting {SETTING}) and as much again ({free})"
        )

    # -- the reserve -------------------------------------------------------------
    def _hold(self, *, beyond: int) -> bool:
        try:
            held = self.reserve.hold(beyond=beyond)
        except OSError as exc:
            logger.error("cannot allocate the disk reserve %s: %s", self.reserve.path, exc)
            return False
        if held and self.full:
            with self._lock:
                if not self.full:
                    return True
                self.full = self.capped = False
                self._max_pages, self.cap = None, self.cap + 1
            logger.warning(
                "the disk of SQLite database %s has room again: the reserve is held, "
                "writes are accepted",
                self.database,
            )
        return held

    def _release(self) -> int:
        try:
            return self.reserve.release()
        except OSError as exc:
            logger.error("cannot release the disk reserve %s: %s", self.reserve.path, exc)
            return 0
