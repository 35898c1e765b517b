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
from typing import Any

__all__ = ["encode", "line_limit", "quick_ack", "read_messages"]

logger = logging.getLogger("pluginkv.dify")


def line_limit(max_value_bytes: int) -> int:
    """The longest line to accept: a largest value, hex-encoded, plus room for the envelope."""
    return 2 * max_value_bytes + 1024 * 1024


def encode(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


async def read_messages(
    reader: asyncio.StreamReader, source: str, on_line: Callable[[], None] | None = None
) -> AsyncIterator[dict[str, Any]]:
    """Every JSON object the plugin writes, until the channel closes.

    ``on_line`` runs after each line is read (``quick_ack`` for TCP).
    """
    skipping = False  # inside a line over the limit: its rest is dropped too
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as exc:
            # Drop what is buffered and keep dropping up to the line's end.
            # (readline() would clear the buffer and then read the rest of
            # the line as a line of its own: a frame could hide in the tail.)
            if not skipping:
                logger.warning("%s: dropped a line over the length limit", source)
            skipping = True
            await reader.readexactly(exc.consumed)
            continue
        except asyncio.IncompleteReadError as exc:
            line = exc.partial  # the last line, without its newline
            if not line:
                return
        except ConnectionError:
            return
        if skipping:
            skipping = False
            continue
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
