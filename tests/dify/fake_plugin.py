"""A plugin speaking the remote protocol by hand over a socket, for the host's edge cases.

What the real SDK would never send (garbage lines, a second registration of
the same plugin, silence) is easiest to produce here; everything a real
plugin does is tested with the real SDK.
"""

from __future__ import annotations

import json
import socket
from typing import Any


def manifest(author: str = "fake", name: str = "plugin", storage: bool = True) -> dict[str, Any]:
    return {
        "version": "0.0.1",
        "type": "plugin",
        "author": author,
        "name": name,
        "resource": {"memory": 1, "permission": {"storage": {"enabled": storage, "size": 4096}}},
        "plugins": {"tools": ["provider/fake.yaml"]},
    }


TOOL_DECLARATION = [
    {
        "identity": {"author": "fake", "name": "fake"},
        "tools": [{"identity": {"author": "fake", "name": "echo"}}],
    }
]


class FakePlugin:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")

    def send(self, message: dict[str, Any] | bytes) -> None:
        raw = message if isinstance(message, bytes) else json.dumps(message).encode() + b"\n"
        self.sock.sendall(raw)

    def register(self, key: str, **kwargs: Any) -> None:
        self.send({"type": "handshake", "data": {"key": key}})
        self.send({"type": "manifest_declaration", "data": manifest(**kwargs)})
        self.send({"type": "tool_declaration", "data": TOOL_DECLARATION})
        self.send({"type": "end", "data": {}})

    def heartbeat(self) -> None:
        self.send({"event": "heartbeat", "session_id": None, "data": {}})

    def read_line(self) -> bytes:
        line: bytes = self.file.readline()
        return line

    def closed_by_host(self) -> bool:
        """True once the host closed the connection (reads end)."""
        try:
            return self.file.read() == b""
        except OSError:
            return True

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def __enter__(self) -> FakePlugin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
