"""``RemoteStorage``: the ``Storage`` API over HTTP, on ``http.client``.

Connections are kept alive, one per thread.  Before reusing one, a zero-time
``select`` tells whether the server closed it while idle (what urllib3 does),
so a stale connection is replaced instead of failing a request.  Requests that
are safe to repeat — reads, deletes, unconditional sets — are retried with
exponential backoff on connection errors and ``503``; ``incr``, conditional
writes, atomic commits and calls that return counts are sent once.

``watch()`` long-polls ``GET /v1/changes?wait=``: each request waits on the
service until a change comes (or ``WATCH_WAIT`` seconds pass), then the next
one continues from the page's ``next``.  It outlives a service restart: while
the service is away it polls again with backoff, however long that takes
(``Reconnects``).
"""

from __future__ import annotations

import http.client
import select
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
)

from .. import __version__
from ..errors import InvalidArgument
from ..keys import check_key, check_keys, check_prefix
from ..models import (
    Change,
    ChangePage,
    CommitResult,
    Entry,
    EntryMeta,
    JSONHelpers,
    KeyPages,
    Page,
    Usage,
)
from ._changes import (
    ATOMIC_PATH,
    CHECK_FAILED,
    Reconnects,
    RemoteCommit,
    change_page_from_json,
    changes_path,
    commit_result,
    shorter_wait,
    watch_wait,
)
from ._http import Connection, TLSConnection
from ._wire import (
    DEFAULT_RETRIES,
    JSON_HEADERS,
    Retryable,
    delete_headers,
    delete_prefix_path,
    dumps,
    entry_from_reply,
    entry_path,
    incr_request,
    keys_path,
    kv_path,
    meta_from_reply,
    page_from_json,
    parse_json,
    parse_service_url,
    reply_error,
    retry_after,
    retry_wait,
    retryable,
    set_many_body,
    set_request,
    usage_from_json,
    values_from_json,
    version_from_etag,
    versions_from_reply,
)
from .errors import ServiceUnreachable

__all__ = ["RemoteStorage"]


class _Reply(NamedTuple):
    status: int
    headers: http.client.HTTPMessage
    body: bytes


class RemoteStorage(JSONHelpers, KeyPages):
    """The storage of the scope a token grants, on a pluginkv service.

    Args:
        url: the service, e.g. ``http://127.0.0.1:8787`` (a path prefix is kept).
        token: a scope token from ``pluginkv token create``.
        timeout: seconds to connect, and to wait for each read from the socket.
        retries: extra attempts for requests that are safe to repeat; the default,
            with the backoff, keeps trying for about 30 s (a database failover).
    """

    def __init__(
        self, url: str, token: str, *, timeout: float = 30.0, retries: int = DEFAULT_RETRIES
    ) -> None:
        service = parse_service_url(url)
        self.url = service.url
        self._https = service.https
        self._host = service.host
        self._port = service.port
        self._prefix = service.prefix
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
        reply = self._call("GET", kv_path(key), safe=True, absent_ok=True)
        return None if reply.status == 404 else reply.body

    def exist(self, key: str) -> bool:
        check_key(key)
        return self._call("HEAD", kv_path(key), safe=True, absent_ok=True).status == 200

    def set(
        self,
        key: str,
        val: bytes,
        *,
        ttl: float | None = None,
        if_version: int | None = None,
        if_absent: bool = False,
        if_exists: bool = False,
        metadata: dict[str, Any] | None = None,
        content_type: str | None = None,
    ) -> int:
        """Store ``val`` under ``key``; returns the new version (see ``Storage.set``).

        ``metadata`` (a JSON object) and ``content_type`` are kept with the value.
        """
        put = set_request(key, val, ttl, if_version, if_absent, if_exists, metadata, content_type)
        reply = self._call("PUT", put.path, put.data, put.headers, safe=put.safe)
        return version_from_etag(reply.headers.get("ETag"))

    def delete(self, key: str, *, if_version: int | None = None, if_exists: bool = False) -> None:
        headers = delete_headers(key, if_version, if_exists)
        self._call("DELETE", kv_path(key), None, headers, safe=not headers)

    # -- entries and listing -----------------------------------------------------
    def get_entry(self, key: str) -> Entry | None:
        check_key(key)
        reply = self._call("GET", entry_path(key), safe=True, absent_ok=True)
        if reply.status == 404:
            return None
        return entry_from_reply(key, reply.body, reply.headers.get)

    def get_meta(self, key: str) -> EntryMeta | None:
        check_key(key)
        reply = self._call("HEAD", entry_path(key), safe=True, absent_ok=True)
        if reply.status == 404:
            return None
        return meta_from_reply(key, reply.headers.get)

    def keys(
        self, prefix: str = "", *, limit: int | None = None, cursor: str | None = None
    ) -> Page:
        return page_from_json(self._json("GET", keys_path(prefix, limit, cursor), safe=True))

    # -- batches -------------------------------------------------------------------
    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        wanted = check_keys(keys)
        return values_from_json(self._json("POST", "/v1/batch/get", {"keys": wanted}, safe=True))

    def set_many(self, mapping: Mapping[str, bytes], *, ttl: float | None = None) -> dict[str, int]:
        body = set_many_body(mapping, ttl)
        reply = self._call("POST", "/v1/batch/set", body, JSON_HEADERS, safe=True)
        return versions_from_reply(reply.body, mapping)

    def delete_many(self, keys: Iterable[str]) -> int:
        wanted = check_keys(keys)
        return int(self._json("POST", "/v1/batch/delete", {"keys": wanted})["deleted"])

    def delete_prefix(self, prefix: str, *, all: bool = False) -> int:
        return int(self._json("DELETE", delete_prefix_path(prefix, all))["deleted"])

    def incr(self, key: str, delta: int = 1) -> int:
        path, body = incr_request(key, delta)
        return int(self._json("POST", path, body)["value"])

    def usage(self) -> Usage:
        return usage_from_json(self._json("GET", "/v1/usage", safe=True))

    # -- atomic commits and the change feed ------------------------------------------------
    def atomic(self) -> RemoteCommit:
        """A commit of many operations, all or nothing, as ``Storage.atomic()``: chain
        ``check``/``set``/``delete``/``incr``, then ``commit()`` -> ``CommitResult``."""
        return RemoteCommit(self._commit)

    def _commit(self, body: bytes) -> CommitResult:
        # Sent once: a commit that may have reached the service is not repeated.
        reply = self._call(
            "POST", ATOMIC_PATH, body, JSON_HEADERS, safe=False, expected=CHECK_FAILED
        )
        return commit_result(reply.status, reply.body)

    def changes(
        self,
        prefix: str = "",
        *,
        since: int | None = None,
        limit: int | None = None,
        wait: float | None = None,
    ) -> ChangePage:
        """One page of changes after ``since``, as ``Storage.changes()``; with ``wait``
        seconds, the service waits that long for one when none is there yet.

        Raises ``ChangesExpired`` when the changes after ``since`` are no longer kept.
        """
        path = changes_path(prefix, since, limit, wait)
        return change_page_from_json(self._json("GET", path, safe=True))

    def watch(
        self, prefix: str = "", *, since: int | None = None, page_size: int | None = None
    ) -> Iterator[Change]:
        """Every change whose key starts with ``prefix``, as it is committed; blocks between.

        As ``Storage.watch()``: ``since=None`` follows from now on, else from the
        change after ``since``; raises ``ChangesExpired`` if it falls behind the
        service's retention window.  Each wait is one long poll.

        The start is read when called, with the client's ``retries``.  After that
        the watch survives the service going away (a restart, a failover): it
        reconnects with backoff for as long as the service is unreachable or
        answers 502/503/504, and resumes after the last change it delivered, so
        none is lost or repeated.  Any other error ends it, e.g. ``Unauthorized``
        or ``ChangesExpired``.
        """
        check_prefix(prefix)
        if since is None:
            since = self._latest(prefix, page_size)
        else:
            self.changes(prefix, since=since, limit=page_size)  # a bad or expired since raises
        return self._follow(prefix, since, page_size)

    def _latest(self, prefix: str, page_size: int | None) -> int:
        """The sequence number of the scope's last change (the feed has no "now": read to
        its end)."""
        since: int | None = None
        while True:
            page = self.changes(prefix, since=since, limit=page_size)
            if not page.changes:
                return page.next
            since = page.next

    def _follow(self, prefix: str, since: int, page_size: int | None) -> Iterator[Change]:
        wait = watch_wait(self._timeout)
        reconnects = Reconnects(self.url)
        while True:
            path = changes_path(prefix, since, page_size, wait)
            try:
                reply = self._attempt("GET", path, None, None, absent_ok=False)
            except Retryable as failure:
                time.sleep(reconnects.failed(failure))
                continue
            except InvalidArgument as refusal:
                wait = shorter_wait(wait, refusal)  # the service allows less
                continue
            reconnects.answered()
            page = change_page_from_json(parse_json(reply.body))
            since = page.next
            yield from page.changes

    # -- the wire ------------------------------------------------------------------------
    def _json(
        self, method: str, path: str, body: Any = None, *, safe: bool = False
    ) -> dict[str, Any]:
        payload = None if body is None else dumps(body)
        reply = self._call(method, path, payload, JSON_HEADERS if payload else {}, safe=safe)
        return parse_json(reply.body)

    def _call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        safe: bool,
        absent_ok: bool = False,
        expected: int | None = None,
    ) -> _Reply:
        """One request; answers or raises the mapped ``PluginKVError``.

        ``expected`` is an error status that is an answer here (a failed check's 412).
        """
        try:
            return self._attempt(method, path, body, headers, absent_ok, expected)
        except Retryable as failure:
            if not safe or self._retries < 1:
                raise failure.error from None
        # Only a safe request gets here, and only after a first failure: the
        # retry machinery costs nothing on the hot path.
        retrying = Retrying(
            stop=stop_after_attempt(self._retries),
            wait=retry_wait,
            retry=retry_if_exception_type(Retryable),
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._attempt(method, path, body, headers, absent_ok, expected)
        except RetryError as exhausted:
            last = exhausted.last_attempt.exception()
            assert isinstance(last, Retryable)
            raise last.error from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: Mapping[str, str] | None,
        absent_ok: bool,
        expected: int | None = None,
    ) -> _Reply:
        conn = self._connection()
        try:
            sent = {**self._headers, **headers} if headers else self._headers
            try:
                conn.request(method, self._prefix + path, body=body, headers=sent)
            except (BrokenPipeError, ConnectionResetError):
                if not body:
                    raise
                # The service answered before it read the whole body (a 413 for a
                # value over its limit) and closed: that answer, still in the
                # socket's buffer, says more than the broken pipe.
            response = conn.getresponse()
            reply = _Reply(response.status, response.headers, response.read())
        except (OSError, http.client.HTTPException) as exc:
            self._discard(conn)
            raise Retryable(
                ServiceUnreachable(f"cannot reach the pluginkv service at {self.url}: {exc!r}")
            ) from None
        if response.will_close:
            self._discard(conn)
        if reply.status == expected:
            return reply
        error = reply_error(reply.status, reply.headers.get, reply.body, absent_ok)
        if error is None:
            return reply
        if retryable(reply.status, error):
            raise Retryable(error, retry_after(reply.headers.get))
        raise error

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None and conn.sock is not None and _dropped(conn):
            self._discard(conn)
            conn = None
        if conn is None:
            cls = TLSConnection if self._https else Connection
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


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """Whether the server closed an idle keep-alive connection (readable = EOF or junk)."""
    try:
        readable, _, _ = select.select([conn.sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


if TYPE_CHECKING:  # mypy holds the class to the Protocol of the API (api.py)
    from ..api import ChangesAPI, StorageAPI

    def _meets_the_protocol(storage: RemoteStorage) -> StorageAPI:
        return storage

    def _meets_the_changes_protocol(storage: RemoteStorage) -> ChangesAPI:
        return storage
