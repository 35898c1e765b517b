"""``AdminClient``: calls to a service's admin API (``/v1/admin/...``) with an admin token.

On the same ``http.client`` connection as ``RemoteStorage``; errors are the
exceptions an in-process call raises, and no answer at all is
``ServiceUnreachable``.  An answer can be read as it arrives (``open``): a tool's
streamed output comes line by line.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .. import __version__
from ._http import Connection, TLSConnection
from ._wire import parse_service_url
from .errors import ServiceUnreachable, error_from_response

__all__ = ["AdminClient"]


class AdminClient:
    """The admin API of the service at ``url``.

    Args:
        url: the service, e.g. ``http://127.0.0.1:8787``.
        token: an admin token (``pluginkv token create --admin``).
        timeout: seconds to connect, and to wait for each read from the socket.
    """

    def __init__(self, url: str, token: str, *, timeout: float = 30.0) -> None:
        service = parse_service_url(url)
        self.url = service.url
        self._service = service
        self._timeout = timeout
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "User-Agent": f"pluginkv-client/{__version__}",
        }

    def __repr__(self) -> str:
        return f"<AdminClient {self.url}>"

    def call(
        self, method: str, path: str, body: Any = None, *, timeout: float | None = None
    ) -> Any:
        """The decoded JSON answer (None for an empty one)."""
        with self.open(method, path, body, timeout=timeout) as response:
            data = self._read(response)
        return json.loads(data) if data else None

    @contextmanager
    def open(
        self, method: str, path: str, body: Any = None, *, timeout: float | None = None
    ) -> Iterator[http.client.HTTPResponse]:
        """A successful answer, open for reading as it arrives; the connection closes after."""
        service = self._service
        cls = TLSConnection if service.https else Connection
        conn = cls(service.host, service.port, timeout=timeout or self._timeout)
        try:
            try:
                conn.request(
                    method,
                    service.prefix + path,
                    body=None if body is None else json.dumps(body).encode(),
                    headers=self._headers,
                )
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                raise ServiceUnreachable(
                    f"cannot reach the pluginkv service at {self.url}: {exc}"
                ) from None
            if response.status >= 300:
                raise error_from_response(response.status, self._read(response))
            yield response
        finally:
            conn.close()

    def _read(self, response: http.client.HTTPResponse) -> bytes:
        try:
            return response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ServiceUnreachable(f"the answer of {self.url} broke off: {exc}") from None
