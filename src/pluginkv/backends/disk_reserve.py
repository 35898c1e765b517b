"""Space held beside a SQLite database so that deletes still run on a full disk.

In WAL mode a delete is a write: its pages are appended to the ``-wal`` file,
and the WAL is emptied only by a checkpoint, which copies its pages into the
database file and extends that file for pages that are new.  On a full disk
the checkpoint cannot extend the file, so the WAL cannot restart, and every
transaction, a delete included, needs space the disk no longer has: measured
on an 8 MiB tmpfs, every delete path failed with SQLITE_FULL, after a restart
too (docs/security.md, "A full disk").

So the store keeps a file of ``PLUGINKV_SQLITE_DISK_RESERVE_BYTES`` beside the
database (``<database>-reserve``, allocated, not sparse).  The first SQLITE_FULL
truncates it: the deletes that follow have room for their WAL pages and for
the checkpoint.  Until the filesystem has room for the whole reserve and as
much again, writes that add data are refused up front, so they cannot eat the
space the deletes need.  (Room for the reserve alone would not do: taking it
back would leave the disk full again, and the store would switch between
full and not full on every write.)
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from ..private_files import FILE_MODE

__all__ = ["SUFFIX", "DiskReserve"]

SUFFIX = "-reserve"


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

    def room_needed(self) -> int:
        """Free bytes the filesystem must have before the reserve is taken back."""
        return 2 * self.size

    def hold(self) -> bool:
        """Allocate the reserve in full if the filesystem has room for it and as much again.

        True once it is held.
        """
        missing = self.size - self.held()
        if missing <= 0:
            return True
        if self.free_bytes() < missing + self.size:
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
