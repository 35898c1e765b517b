"""Newline-delimited JSON, as ``dify_plugin`` frames it in both directions.

The plugin ends each event with ``"\\n\\n"`` (so blank lines are skipped) and
its code may ``print`` anything into a stdio channel, so a line that is not a
JSON object is logged and skipped, never fatal.  The host writes one compact
JSON object and exactly one ``"\\n"`` per message: the SDK's TCP reader logs a
parse error for a blank line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

__all__ = [
    "Bytes",
    "LineReader",
    "LineTooLong",
    "Lines",
    "encode",
    "line_limit",
    "quick_ack",
    "read_messages",
]

logger = logging.getLogger("pluginkv.dify")

_CHUNK = 256 * 1024  # what one read takes from the stream: asyncio's own largest receive


class Lines(Protocol):
    """Where lines come from: an ``asyncio.StreamReader`` or a ``LineReader``."""

    async def readline(self) -> bytes: ...


class Bytes(Protocol):
    """What a ``LineReader`` reads from: an ``asyncio.StreamReader``."""

    async def read(self, n: int) -> bytes: ...


def line_limit(max_value_bytes: int) -> int:
    """The longest line to accept: a largest value, hex-encoded, plus room for the envelope."""
    return 2 * max_value_bytes + 1024 * 1024


def encode(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


class LineTooLong(ValueError):
    """A line over a ``LineReader``'s limit; the reader skips the rest of it."""


class LineReader:
    """The lines of a stream, each at most ``limit`` bytes, a limit that may change between lines.

    asyncio's ``StreamReader`` fixes its line limit when the connection is
    accepted and buffers up to twice that before it stops reading.  The debug
    port needs a small limit until the plugin's key is checked and a large one
    after (a value travels hex-encoded in one line), so the ``StreamReader``
    under this one gets the small limit, which bounds its buffer, and this
    reader gathers lines itself.
    """

    def __init__(self, reader: Bytes, limit: int) -> None:
        self.limit = limit
        self._reader = reader
        self._buffer = bytearray()
        self._scanned = 0  # the start of _buffer that holds no newline
        self._skipping = False  # inside a line over the limit: drop up to its newline

    async def readline(self) -> bytes:
        """The next line with its newline (none at the end of the stream); ``b""`` at the end.

        A line over the limit raises ``LineTooLong`` as soon as the limit is
        passed, holding no more than the limit; the next call first skips
        the rest of that line.
        """
        while True:
            end = self._buffer.find(b"\n", self._scanned)
            if end >= 0:
                with memoryview(self._buffer) as view:
                    line = bytes(view[: end + 1])
                del self._buffer[: end + 1]
                self._scanned = 0
                if self._skipping:
                    self._skipping = False
                    continue
                if end > self.limit:
                    raise LineTooLong(f"a line of {end} bytes, over the limit of {self.limit}")
                return line
            if self._skipping:
                self._buffer.clear()
            elif len(self._buffer) > self.limit:
                self._buffer.clear()
                self._skipping = True
                raise LineTooLong(f"a line of more than {self.limit} bytes")
            self._scanned = len(self._buffer)
            # Never more than the limit allows: before a key is checked, this is what one
            # connection may make the service hold.
            chunk = await self._reader.read(min(_CHUNK, self.limit + 1 - len(self._buffer)))
            if not chunk:
                line = b"" if self._skipping else bytes(self._buffer)
                self._buffer.clear()
                self._scanned = 0
                return line
            self._buffer += chunk


async def read_messages(
    reader: Lines, source: str, on_line: Callable[[], None] | None = None
) -> AsyncIterator[dict[str, Any]]:
    """Every JSON object the plugin writes, until the channel closes.

    ``on_line`` runs after each line is read (``quick_ack`` for TCP).
    """
    while True:
        try:
            line = await reader.readline()
        except ValueError as exc:  # a line over the reader's limit, which it dropped
            logger.warning("%s: dropped a line over the length limit (%s)", source, exc)
            continue
        except ConnectionError:
            return
        if not line:
            return
        if on_line is not None:
            on_line()
        line = line.strip()
        if not line:
            continue
        try:
            message = json.loads(line)
        except (ValueError, RecursionError):
            logger.warning("%s: ignored a line that is not JSON: %r", source, line[:300])
            continue
        if not isinstance(message, dict):
            logger.warning("%s: ignored a JSON line that is not an object: %r", source, line[:300])
            continue
        yield message


def quick_ack(writer: asyncio.StreamWriter) -> Callable[[], None]:
    """A call that makes the kernel acknowledge the plugin's next segment at once.

    The SDK writes each event in two ``send`` calls, the JSON and then
    ``"\n\n"``, on a socket with Nagle's algorithm on: the second waits for
    the acknowledgement of the first, which a receiver delays by up to 40 ms.
    That made every storage call over TCP take 40 ms.  Linux's
    ``TCP_QUICKACK`` turns the delay off, but only until the kernel decides
    otherwise, so the host sets it again after every line it reads and
    every message it sends.  Elsewhere this does nothing.
    """
    sock = writer.get_extra_info("socket")
    option = getattr(socket, "TCP_QUICKACK", None)
    if sock is None or option is None:
        return lambda: None

    def arm() -> None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, option, 1)
        except (OSError, ValueError):
            pass  # the socket has closed

    arm()
    return arm
