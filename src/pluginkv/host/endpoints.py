"""Endpoints: public URLs ``/e/<hook_id>/...`` whose requests a plugin answers.

An endpoint binds a hook id to ``(workspace, plugin, settings)``; the list
lives in ``<data_dir>/dify-endpoints.json``, so URLs survive restarts.  A
request under the URL reaches the plugin as the daemon sends it
(``docs/dify-protocol.md`` §6.3): the raw HTTP/1.1 request, hex-encoded, with the
path rewritten to what follows the hook id, ``Dify-Hook-Id`` and
``Dify-Hook-Url`` set, the forwarding headers stripped, ``Host`` always
present, an exact ``Content-Length`` and the body de-chunked (SDK 0.10 parses
with h11, which insists on all of that).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import PluginNotFound
from ..private_files import write_private_text

__all__ = ["ENDPOINTS_FILE", "Endpoint", "Endpoints", "raw_request"]

ENDPOINTS_FILE = "dify-endpoints.json"

# Set by proxies; the daemon strips them so a caller cannot forge them.
_STRIPPED = {
    b"x-forwarded-for",
    b"x-real-ip",
    b"x-forwarded",
    b"x-original-forwarded-for",
    b"x-original-url",
    b"x-original-host",
    # framing and hop-by-hop: the host frames the body itself
    b"host",
    b"content-length",
    b"transfer-encoding",
    b"connection",
    b"keep-alive",
    b"dify-hook-id",
}


@dataclass(frozen=True, slots=True)
class Endpoint:
    hook_id: str
    workspace: str
    plugin: str
    settings: dict[str, Any]
    created_at: float


class Endpoints:
    """The endpoints of a service, kept in its data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / ENDPOINTS_FILE
        self._by_hook: dict[str, Endpoint] | None = None

    def _all(self) -> dict[str, Endpoint]:
        if self._by_hook is None:
            try:
                document = json.loads(self.path.read_text(encoding="utf-8"))
                self._by_hook = {
                    e["hook_id"]: Endpoint(
                        e["hook_id"], e["workspace"], e["plugin"], e["settings"], e["created_at"]
                    )
                    for e in document["endpoints"]
                }
            except FileNotFoundError:
                self._by_hook = {}
        return self._by_hook

    def create(self, workspace: str, plugin: str, settings: dict[str, Any]) -> Endpoint:
        endpoint = Endpoint(secrets.token_hex(16), workspace, plugin, settings, time.time())
        endpoints = self._all()
        endpoints[endpoint.hook_id] = endpoint
        self._save(endpoints.values())
        return endpoint

    def list(self, workspace: str | None = None) -> list[Endpoint]:
        """Every endpoint (of ``workspace``), oldest first."""
        found = [e for e in self._all().values() if workspace is None or e.workspace == workspace]
        return sorted(found, key=lambda e: e.created_at)

    def delete(self, hook_id: str) -> None:
        """Remove an endpoint: its URL answers 404 from now on."""
        endpoints = self._all()
        if endpoints.pop(hook_id, None) is None:
            raise PluginNotFound(f"no endpoint {hook_id!r}")
        self._save(endpoints.values())

    def get(self, hook_id: str) -> Endpoint:
        endpoint = self._all().get(hook_id)
        if endpoint is None:
            raise PluginNotFound(f"no endpoint {hook_id!r}")
        return endpoint

    def _save(self, endpoints: Iterable[Endpoint]) -> None:
        document = {
            "endpoints": [
                {
                    "hook_id": e.hook_id,
                    "workspace": e.workspace,
                    "plugin": e.plugin,
                    "settings": e.settings,
                    "created_at": e.created_at,
                }
                for e in endpoints
            ]
        }
        # 0600: endpoint settings hold the plugins' API keys.
        write_private_text(self.path, json.dumps(document, indent=2) + "\n")


def raw_request(
    *,
    method: str,
    target: bytes,
    headers: Iterable[tuple[bytes, bytes]],
    body: bytes,
    default_host: bytes,
    hook_id: str,
    hook_url: str,
) -> bytes:
    """The HTTP/1.1 request the plugin parses, as the daemon writes it.

    ``target`` is the path after the hook id plus the query string; ``headers``
    are the caller's, as received.
    """
    kept: list[tuple[bytes, bytes]] = []
    host = default_host
    original_host: bytes | None = None
    has_hook_url = False
    for name, value in headers:
        lower = name.lower()
        if lower == b"host":
            host = value
        elif lower == b"x-original-host":
            original_host = value
        if lower in _STRIPPED or b"_" in lower:  # h11 refuses '_' in header names
            continue
        has_hook_url = has_hook_url or lower == b"dify-hook-url"
        kept.append((name, value))
    lines = [b"%s %s HTTP/1.1" % (method.encode("ascii"), target)]
    lines.append(b"Host: " + (original_host or host))
    lines += [name + b": " + value for name, value in kept]
    lines.append(b"Dify-Hook-Id: " + hook_id.encode("ascii"))
    if not has_hook_url:
        lines.append(b"Dify-Hook-Url: " + hook_url.encode())
    lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
