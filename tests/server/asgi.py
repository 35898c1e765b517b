"""Driving the app with raw ASGI messages, for what an HTTP client cannot send."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
from starlette.types import ASGIApp, Message


def call(
    app: ASGIApp,
    method: str,
    path: str,
    headers: Sequence[tuple[bytes, bytes]],
    incoming: Sequence[Message] = ({"type": "http.request", "body": b"v", "more_body": False},),
    *,
    raw_path: bytes | None = None,
    query: bytes = b"",
) -> list[Message]:
    """Send one request as raw ASGI (header bytes reach the app as given); the messages sent back.

    ``incoming`` are the messages ``receive`` gives, in order, then ``http.disconnect``.
    """
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode() if raw_path is None else raw_path,
        "root_path": "",
        "query_string": query,
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("testclient", 50000),
        "server": ("testserver", 80),
    }
    pending = list(incoming)
    sent: list[Message] = []

    async def receive() -> Message:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    async def run() -> None:
        await app(scope, receive, send)

    anyio.run(run)
    return sent
