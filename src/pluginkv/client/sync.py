"""``RemoteStorage``: the ``Storage`` API over HTTP, on ``http.client``.

Connections are kept alive, one per thread.  Before reusing one, a zero-time
``select`` tells whether the server closed it while idle (what urllib3 does),
so a stale connection is replaced instead of failing a request.  Requests that
are safe to repeat — reads, deletes, unconditional sets — are retried with
exponential backoff on connection errors and ``503``; ``incr``, conditional
writes and calls that return counts are sent once.
"""

from __future__ import annotations

import base64
import http.client
import json
import select
import threading
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import quote, urlencode, urlsplit

from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from .. import __version__
from ..errors import BackendUnavailable, InvalidArgument, PluginKVError
from ..keys import check_conditions, check_key, check_prefix, check_ttl, check_value
from ..models import Entry, EntryMeta, JSONHelpers, Page, Usage
from .errors import error_from_response

__all__ = ["RemoteStorage"]

_NO_LIMIT = 2**63  # the service enforces the value limit; it may differ from local settings


class _Reply(NamedTuple):
    status: int
    headers: http.client.HTTPMessage
    body: bytes


class _Retryable(Exception):
    """A failure that repeating a safe request may cure."""

    def __init__(self, error: PluginKVError) -> None:
        super().__init__(str(error))
        self.error = error


class RemoteStorage(JSONHelpers):
    """The storage of the scope a token grants, on a pluginkv service.

    Args:
        url: the service, e.g. ``http://127.0.0.1:8787`` (a path prefix is kept).
        token: a scope token from ``pluginkv token create``.
        timeout: seconds to connect, and to wait for each read from the socket.
        retries: extra attempts for requests that are safe to repeat.
    """

    def __init__(self, url: str, token: str, *, timeout: float = 30.0, retries: int = 3) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidArgument(
                f"service URL must be http(s)://host[:port][/prefix], got {url!r}"
            )
        self.url = url.rstrip("/")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._retries = retries
        self._headers = {
            "Authorization": f"Bearer {token}",
            "User-Agent": f"pluginkv-client/{__version__}",
        }
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[http.client.HTTPConnection] = []

    def __repr__(self) -> str:
        return f"<RemoteStorage {self.url}>"

    def __enter__(self) -> RemoteStorage:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection this client opened."""
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()

    # -- the documented four ---------------------------------------------------
    def get(self, key: str) -> bytes | None:
        check_key(key)
        reply = self._call("GET", _kv(key), safe=True, absent_ok=True)
        return None if reply.status == 404 else reply.body

    def exist(self, key: str) -> bool:
        check_key(key)
        return self._call("HEAD", _kv(key), safe=True, absent_ok=True).status == 200

    def set(
        self,
        key: str,
        val: bytes,
        *,
        ttl: float | None = None,
        if_version: int | None = None,
        if_absent: bool = False,
    ) -> None:
        check_key(key)
        data = check_value(val, _NO_LIMIT)
        check_conditions(if_version, if_absent)
        seconds = check_ttl(ttl)
        headers = {"Content-Type": "application/octet-stream"}
        if if_version is not None:
            headers["If-Match"] = f'"{if_version}"'
        if if_absent:
            headers["If-None-Match"] = "*"
        path = _kv(key) if seconds is None else f"{_kv(key)}?ttl={seconds!r}"
        conditional = if_version is not None or if_absent
        self._call("PUT", path, data, headers, safe=not conditional)

    def delete(self, key: str, *, if_version: int | None = None) -> None:
        check_key(key)
        check_conditions(if_version, False)
        headers = {} if if_version is None else {"If-Match": f'"{if_version}"'}
        self._call("DELETE", _kv(key), None, headers, safe=if_version is None)

    # -- entries and listing -----------------------------------------------------
    def get_entry(self, key: str) -> Entry | None:
        check_key(key)
        reply = self._call("GET", _kv(key), safe=True, absent_ok=True)
        if reply.status == 404:
            return None
        expires = reply.headers.get("X-Expires-At")
        return Entry(
            key=key,
            value=reply.body,
            version=int(reply.headers.get("ETag", "0").strip('"')),
            size=len(key.encode("utf-8")) + len(reply.body),
            created_at=float(reply.headers.get("X-Created-At", "0")),
            updated_at=float(reply.headers.get("X-Updated-At", "0")),
            expires_at=None if expires is None else float(expires),
        )

    def keys(self, prefix: str = "", *, limit: int = 100, cursor: str | None = None) -> Page:
        check_prefix(prefix)
        if type(limit) is not int:
            raise InvalidArgument(
                f"limit must be an int (setting PLUGINKV_MAX_PAGE_SIZE bounds it), got {limit!r}"
            )
        query: dict[str, str | int] = {"prefix": prefix, "limit": limit}
        if cursor is not None:
            query["cursor"] = cursor
        page = self._json("GET", "/v1/keys?" + urlencode(query), safe=True)
        entries = [EntryMeta(**item) for item in page["entries"]]
        return Page(entries, page["next_cursor"])

    # -- batches -------------------------------------------------------------------
    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        wanted = _key_list(keys)
        found = self._json("POST", "/v1/batch/get", {"keys": wanted}, safe=True)["values"]
        return {key: base64.b64decode(text) for key, text in found.items()}

    def set_many(self, mapping: Mapping[str, bytes], *, ttl: float | None = None) -> None:
        if not isinstance(mapping, Mapping):
            raise InvalidArgument(
                f"set_many takes a mapping of key to bytes, not {type(mapping).__name__}"
            )
        items = {}
        for key in _key_list(mapping.keys()):
            data = check_value(mapping[key], _NO_LIMIT)
            items[key] = base64.b64encode(data).decode("ascii")
        body = {"items": items, "ttl": check_ttl(ttl)}
        self._call("POST", "/v1/batch/set", _dumps(body), _JSON, safe=True)

    def delete_many(self, keys: Iterable[str]) -> int:
        wanted = _key_list(keys)
        return int(self._json("POST", "/v1/batch/delete", {"keys": wanted})["deleted"])

    def delete_prefix(self, prefix: str) -> int:
        check_prefix(prefix)
        return int(self._json("DELETE", "/v1/keys?" + urlencode({"prefix": prefix}))["deleted"])

    def incr(self, key: str, delta: int = 1) -> int:
        check_key(key)
        if type(delta) is not int:
            raise InvalidArgument(f"incr delta must be an int, not {type(delta).__name__}")
        path = "/v1/incr/" + quote(key, safe="")
        return int(self._json("POST", path, {"delta": delta})["value"])

    def usage(self) -> Usage:
        used = self._json("GET", "/v1/usage", safe=True)
        return Usage(used["bytes_used"], used["keys"], used["quota_bytes"])

    # -- the wire ------------------------------------------------------------------------
    def _json(
        self, method: str, path: str, body: Any = None, *, safe: bool = False
    ) -> dict[str, Any]:
        payload = None if body is None else _dumps(body)
        reply = self._call(method, path, payload, _JSON if payload else {}, safe=safe)
        result: dict[str, Any] = json.loads(reply.body)
        return result

    def _call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        safe: bool,
        absent_ok: bool = False,
    ) -> _Reply:
        """One request; answers or raises the mapped ``PluginKVError``."""
        try:
            return self._attempt(method, path, body, headers, absent_ok)
        except _Retryable as failure:
            if not safe or self._retries < 1:
                raise failure.error from None
        # Only a safe request gets here, and only after a first failure: the
        # retry machinery costs nothing on the hot path.
        retrying = Retrying(
            stop=stop_after_attempt(self._retries),
            wait=wait_random_exponential(multiplier=0.05, max=2.0),
            retry=retry_if_exception_type(_Retryable),
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._attempt(method, path, body, headers, absent_ok)
        except RetryError as exhausted:
            last = exhausted.last_attempt.exception()
            assert isinstance(last, _Retryable)
            raise last.error from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: Mapping[str, str] | None,
        absent_ok: bool,
    ) -> _Reply:
        conn = self._connection()
        try:
            conn.request(
                method, self._prefix + path, body=body, headers={**self._headers, **(headers or {})}
            )
            response = conn.getresponse()
            reply = _Reply(response.status, response.headers, response.read())
        except (OSError, http.client.HTTPException) as exc:
            self._discard(conn)
            raise _Retryable(
                BackendUnavailable(f"cannot reach the pluginkv service at {self.url}: {exc!r}")
            ) from None
        if response.will_close:
            self._discard(conn)
        if reply.status < 400 or (absent_ok and reply.status == 404 and _absent(reply)):
            return reply
        error = error_from_response(reply.status, reply.body)
        if reply.status == 503:
            raise _Retryable(error)
        raise error

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None and conn.sock is not None and _dropped(conn):
            self._discard(conn)
            conn = None
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=self._timeout)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _discard(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        self._local.conn = None
        with self._lock:
            if conn in self._connections:
                self._connections.remove(conn)


_JSON = {"Content-Type": "application/json"}


def _kv(key: str) -> str:
    # Everything but unreserved characters is encoded, '/' included, so no
    # HTTP layer can normalise the path ('a/./b' stays one opaque key).
    return "/v1/kv/" + quote(key, safe="")


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def _absent(reply: _Reply) -> bool:
    """A 404 that means "no such key" (HEAD has no body; any other 404 is an error)."""
    return not reply.body or b'"not_found"' in reply.body


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """Whether the server closed an idle keep-alive connection (readable = EOF or junk)."""
    try:
        readable, _, _ = select.select([conn.sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _key_list(keys: Iterable[str]) -> list[str]:
    if isinstance(keys, (str, bytes)) or not isinstance(keys, Iterable):
        raise InvalidArgument(f"expected a collection of keys, not {type(keys).__name__}")
    wanted = list(dict.fromkeys(keys))
    for key in wanted:
        check_key(key)
    return wanted
