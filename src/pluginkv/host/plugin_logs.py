"""Each installed plugin's own log file: what it prints, what it logs, and its starts and exits.

``<data_dir>/plugin-logs/<author>/<name>.log``, one line per record
(``2026-12-04T20:30:00.123Z pid 4242 stderr: ...``), rotated by the standard
library's ``RotatingFileHandler`` at ``PLUGINKV_PLUGIN_LOG_MAX_BYTES`` with
``PLUGINKV_PLUGIN_LOG_BACKUPS`` older files kept (``.log.1`` the newest of
them).  Every process of a plugin (restarts, a new version started beside
the old one) writes to the same file, so the file tells its whole story.

Readers page through it with a cursor, ``<inode>:<offset>`` in the current
file: it survives a rotation (the old file is found again as ``.log.1``)
and a restart of the service, so ``pluginkv plugin logs --follow`` polls
with it instead of holding a connection open.
"""

from __future__ import annotations

import logging
import logging.handlers
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidArgument

__all__ = ["LogPage", "PluginLog", "PluginLogs"]

logger = logging.getLogger("pluginkv.dify")

_LOG_DIR = "plugin-logs"


@dataclass(frozen=True, slots=True)
class LogPage:
    """Lines of a plugin's log, and the cursor to read on from after them."""

    text: str
    cursor: str
    more: bool  # there is more after the cursor already (the page was full)


class PluginLog:
    """One plugin's log file, appended to line by line."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path = path
        self._max_bytes = max_bytes
        self._handler: logging.handlers.RotatingFileHandler | None = None
        self._backups = backups
        self._unwritable = False

    def write(self, source: str, text: str) -> None:
        """Append ``text`` (one line, or several for a traceback) under ``source``."""
        now = time.time()
        moment = (
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
        )
        line = f"{moment} {source}: {text.rstrip()}"
        if len(line) > self._max_bytes:  # one line never takes more than a file's worth
            line = line[: self._max_bytes] + " [cut]"
        if self._handler is None:
            if self._unwritable:
                return
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._handler = logging.handlers.RotatingFileHandler(
                    self.path, maxBytes=self._max_bytes, backupCount=self._backups, encoding="utf-8"
                )
            except OSError as exc:  # the plugin runs on without its log; said once
                self._unwritable = True
                logger.error("cannot write the plugin log %s: %s", self.path, exc)
                return
        self._handler.handle(logging.makeLogRecord({"msg": line, "levelno": logging.INFO}))

    def close(self) -> None:
        if self._handler is not None:
            self._handler.close()
            self._handler = None


class PluginLogs:
    """The log files of the installed plugins, under ``<data_dir>/plugin-logs``."""

    def __init__(self, data_dir: Path, *, max_bytes: int, backups: int) -> None:
        self.root = data_dir / _LOG_DIR
        self._max_bytes = max_bytes
        self._backups = backups
        self._open: dict[str, PluginLog] = {}

    def of(self, plugin: str) -> PluginLog:
        """The log of ``plugin`` (``author/name``), opened at its first line."""
        log = self._open.get(plugin)
        if log is None:
            log = self._open[plugin] = PluginLog(self.path(plugin), self._max_bytes, self._backups)
        return log

    def path(self, plugin: str) -> Path:
        author, _, name = plugin.partition("/")
        return self.root / author / f"{name}.log"

    def exists(self, plugin: str) -> bool:
        return self.path(plugin).exists()

    def read(self, plugin: str, *, lines: int, cursor: str | None) -> LogPage:
        """The last ``lines`` lines, or with ``cursor`` what was written after it.

        A page holds at most a file's worth (``PLUGINKV_PLUGIN_LOG_MAX_BYTES``);
        ``more`` says there is more to read at once.
        """
        path = self.path(plugin)
        current = _stat(path)
        if cursor is None:
            text = _last_lines([_with_suffix(path, ".1"), path], lines)
            return LogPage(text, _cursor(current, current[1] if current else 0), more=False)
        inode, offset = _parse_cursor(cursor)
        if current is not None and current[0] == inode and offset <= current[1]:
            return self._page(path, current, offset)
        rotated = _with_suffix(path, ".1")
        older = _stat(rotated)
        if older is not None and older[0] == inode and offset < older[1]:
            page = self._page(rotated, older, offset)
            if page.more:
                return page
            # The rest of the rotated file; the current one comes at the next call.
            return LogPage(page.text, _cursor(current, 0), more=current is not None)
        # Rotated further than one file, truncated, or a cursor from elsewhere: from the start.
        return self._page(path, current, 0) if current is not None else LogPage("", "0:0", False)

    def _page(self, path: Path, stat: tuple[int, int], offset: int) -> LogPage:
        with path.open("rb") as file:
            file.seek(offset)
            data = file.read(self._max_bytes)
        if offset + len(data) < stat[1] and b"\n" in data:
            data = data[: data.rindex(b"\n") + 1]  # whole lines, and never half a character
        end = offset + len(data)
        return LogPage(
            data.decode("utf-8", errors="replace"), _cursor(stat, end), more=end < stat[1]
        )

    def close(self) -> None:
        for log in self._open.values():
            log.close()
        self._open.clear()


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return status.st_ino, status.st_size


def _cursor(stat: tuple[int, int] | None, offset: int) -> str:
    return f"{stat[0]}:{offset}" if stat is not None else "0:0"


def _parse_cursor(cursor: str) -> tuple[int, int]:
    inode, _, offset = cursor.partition(":")
    if not (inode.isdigit() and offset.isdigit()):
        raise InvalidArgument(f"cursor {cursor!r} is not one a log page gave (<inode>:<offset>)")
    return int(inode), int(offset)


def _with_suffix(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _last_lines(paths: list[Path], count: int) -> str:
    """The last ``count`` lines of the files, read in order (the older first).

    Whole files are read: rotation keeps each about a setting's size.
    """
    kept: list[bytes] = []
    for path in reversed(paths):
        if len(kept) >= count:
            break
        try:
            found = path.read_bytes().splitlines(keepends=True)
        except FileNotFoundError:
            continue
        kept = found[max(0, len(found) - (count - len(kept))) :] + kept
    return b"".join(kept[max(0, len(kept) - count) :]).decode("utf-8", errors="replace")
