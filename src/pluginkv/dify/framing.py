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
from collections.abc import AsyncIterator, Mapping
from typing import Any

__all__ = ["encode", "line_limit", "read_messages"]

logger = logging.getLogger("pluginkv.dify")


def line_limit(max_value_bytes: int) -> int:
    """The longest line to accept: a largest value, hex-encoded, plus room for the envelope."""
    return 2 * max_value_bytes + 1024 * 1024


def encode(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


async def read_messages(reader: asyncio.StreamReader, source: str) -> AsyncIterator[dict[str, Any]]:
    """Every JSON object the plugin writes, until the channel closes."""
    while True:
        try:
            line = await reader.readline()
        except ValueError as exc:  # over the reader's limit; asyncio dropped the line
            logger.warning("%s: dropped a line over the length limit (%s)", source, exc)
            continue
        except ConnectionError:
            return
        if not line:
            return
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
