"""``AsyncRemoteStorage``: the ``Storage`` API over HTTP for asyncio, on aiohttp.

The async twin of ``RemoteStorage``: the same methods (``async def``), the
same local validation, the same requests on the wire (see ``_wire``), the same
exceptions and the same retry policy — requests that are safe to repeat are
retried with exponential backoff on connection errors and ``503``; ``incr``,
conditional writes, atomic commits and calls that return counts are sent once.
``watch()`` is an async iterator on long polls of ``GET /v1/changes?wait=``, which
reconnects with backoff while the service is away (``Reconnects``).

One ``aiohttp.ClientSession`` per client, created on first use inside the
running event loop and bound to it; its pool keeps connections alive, so many
concurrent calls on one client share a few connections.  aiohttp was chosen
by measurement (``docs/benchmarks.md``): over one keep-alive connection it did
2.25 times the GETs per second of ``httpx.Client``, and over 4 times those of
``httpx.AsyncClient``.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

import aiohttp
from multidict import CIMultiDictProxy
from tenacity import AsyncRetrying, RetryError, retry_if_exception_type, stop_after_attempt
from yarl import URL

from .. import __version__
from ..errors import InvalidArgument
from ..keys import check_key, check_keys, check_prefix
from ..models import Change, ChangePage, CommitResult, Entry, EntryMeta, Page, Usage
from ._changes import (
    ATOMIC_PATH,
    CHECK_FAILED,
    AsyncRemoteCommit,
    Reconnects,
    change_page_from_json,
    changes_path,
    commit_result,
    shorter_wait,
    watch_wait,
)
from ._wire import (
    DEFAULT_RETRIES,
    JSON_HEADERS,
    Retryable,
    decode_json,
    delete_headers,
    delete_prefix_path,
    dumps,
    encode_json,
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

__all__ = ["AsyncRemoteStorage"]

_STREAM_BODY_OVER = 1024 * 1024  # aiohttp's own threshold for its large-body warning


class _Reply(NamedTuple):
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


class AsyncRemoteStorage:
    """The storage of the scope a token grants, on a pluginkv service, for asyncio.

    Args:
        url: the service, e.g. ``http://127.0.0.1:8787`` (a path prefix is kept).
        token: a scope token from ``pluginkv token create``.
        timeout: seconds to connect, and to wait for each read from the socket
            (waiting for a free pooled connection is not bounded).
        retries: extra attempts for requests that are safe to repeat; the default,
            with the backoff, keeps trying for about 30 s (a database failover).

    Use it as ``async with AsyncRemoteStorage(url, token) as storage:`` or call
    ``await storage.aclose()`` when done.  A client is bound to the event loop
    that first uses it until it is closed.
    """

    def __init__(
        self, url: str, token: str, *, timeout: float = 30.0, retries: int = DEFAULT_RETRIES
    ) -> None:
        service = parse_service_url(url)
        self.url = service.url
        host = f"[{service.host}]" if ":" in service.host else service.host
        port = "" if service.port is None else f":{service.port}"
        scheme = "https" if service.https else "http"
        self._base = f"{scheme}://{host}{port}{service.prefix}"
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
        self._read_timeout = timeout
        self._retries = retries
        self._headers = {
            "Authorization": f"Bearer {token}",
            "User-Agent": f"pluginkv-client/{__version__}",
        }
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"<AsyncRemoteStorage {self.url}>"

    async def __aenter__(self) -> AsyncRemoteStorage:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session and its connections; a later call opens a new one."""
        session, self._session, self._loop = self._session, None, None
        if session is not None:
            await session.close()

    # -- the documented four ---------------------------------------------------
    async def get(self, key: str) -> bytes | None:
        check_key(key)
        reply = await self._call("GET", kv_path(key), safe=True, absent_ok=True)
        return None if reply.status == 404 else reply.body

    async def exist(self, key: str) -> bool:
        check_key(key)
        reply = await self._call("HEAD", kv_path(key), safe=True, absent_ok=True)
        return reply.status == 200

    async def set(
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
        reply = await self._call("PUT", put.path, put.data, put.headers, safe=put.safe)
        return version_from_etag(reply.headers.get("ETag"))

    async def delete(
        self, key: str, *, if_version: int | None = None, if_exists: bool = False
    ) -> None:
        headers = delete_headers(key, if_version, if_exists)
        await self._call("DELETE", kv_path(key), None, headers, safe=not headers)

    # -- entries and listing -----------------------------------------------------
    async def get_entry(self, key: str) -> Entry | None:
        check_key(key)
        reply = await self._call("GET", entry_path(key), safe=True, absent_ok=True)
        if reply.status == 404:
            return None
        return entry_from_reply(key, reply.body, reply.headers.get)

    async def get_meta(self, key: str) -> EntryMeta | None:
        check_key(key)
        reply = await self._call("HEAD", entry_path(key), safe=True, absent_ok=True)
        if reply.status == 404:
            return None
        return meta_from_reply(key, reply.headers.get)

    async def keys(
        self, prefix: str = "", *, limit: int | None = None, cursor: str | None = None
    ) -> Page:
        path = keys_path(prefix, limit, cursor)
        return page_from_json(await self._json("GET", path, safe=True))

    async def iter_keys(
        self, prefix: str = "", *, page_size: int | None = None
    ) -> AsyncIterator[EntryMeta]:
        """Every entry whose key starts with ``prefix``, page after page (``async for``)."""
        cursor: str | None = None
        while True:
            page = await self.keys(prefix, limit=page_size, cursor=cursor)
            for entry in page.entries:
                yield entry
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    # -- batches -------------------------------------------------------------------
    async def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        body = {"keys": check_keys(keys)}
        return values_from_json(await self._json("POST", "/v1/batch/get", body, safe=True))

    async def set_many(
        self, mapping: Mapping[str, bytes], *, ttl: float | None = None
    ) -> dict[str, int]:
        body = set_many_body(mapping, ttl)
        reply = await self._call("POST", "/v1/batch/set", body, JSON_HEADERS, safe=True)
        return versions_from_reply(reply.body, mapping)

    async def delete_many(self, keys: Iterable[str]) -> int:
        body = {"keys": check_keys(keys)}
        return int((await self._json("POST", "/v1/batch/delete", body))["deleted"])

    async def delete_prefix(self, prefix: str, *, all: bool = False) -> int:
        return int((await self._json("DELETE", delete_prefix_path(prefix, all)))["deleted"])

    # -- counters, JSON and usage --------------------------------------------------------
    async def incr(self, key: str, delta: int = 1) -> int:
        path, body = incr_request(key, delta)
        return int((await self._json("POST", path, body))["value"])

    async def set_json(self, key: str, obj: Any, *, ttl: float | None = None) -> int:
        """Store ``obj`` as compact UTF-8 JSON (the encoding ``Storage.set_json`` uses)."""
        return await self.set(key, encode_json(key, obj), ttl=ttl)

    async def get_json(self, key: str, default: Any = None) -> Any:
        """The decoded JSON stored at ``key``, or ``default`` when absent."""
        return decode_json(key, await self.get(key), default)

    async def usage(self) -> Usage:
        return usage_from_json(await self._json("GET", "/v1/usage", safe=True))

    # -- atomic commits and the change feed ------------------------------------------------
    def atomic(self) -> AsyncRemoteCommit:
        """A commit of many operations, all or nothing, as ``Storage.atomic()``: chain
        ``check``/``set``/``delete``/``incr``, then ``await commit()`` -> ``CommitResult``."""
        return AsyncRemoteCommit(self._commit)

    async def _commit(self, body: bytes) -> CommitResult:
        # Sent once: a commit that may have reached the service is not repeated.
        reply = await self._call(
            "POST", ATOMIC_PATH, body, JSON_HEADERS, safe=False, expected=CHECK_FAILED
        )
        return commit_result(reply.status, reply.body)

    async def changes(
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
        return change_page_from_json(await self._json("GET", path, safe=True))

    def watch(
        self, prefix: str = "", *, since: int | None = None, page_size: int | None = None
    ) -> AsyncIterator[Change]:
        """Every change whose key starts with ``prefix``, as it is committed (``async for``).

        As ``Storage.watch()``: ``since=None`` follows from now on, else from the
        change after ``since``; raises ``ChangesExpired`` (from the loop) if it
        falls behind the service's retention window.  Each wait is one long poll,
        which holds no thread.

        As ``RemoteStorage.watch()``, it reconnects with backoff, for as long as
        the service is unreachable or answers 502/503/504, and resumes after the
        last change it delivered; ``Unauthorized``, ``ChangesExpired`` and any
        other error end it.
        """
        check_prefix(prefix)
        changes_path(prefix, since, page_size, None)  # bad arguments raise here, not in the loop
        return self._follow(prefix, since, page_size)

    async def _follow(
        self, prefix: str, since: int | None, page_size: int | None
    ) -> AsyncIterator[Change]:
        if since is None:
            since = await self._latest(prefix, page_size)
        else:
            await self.changes(prefix, since=since, limit=page_size)  # an expired since raises
        wait = watch_wait(self._read_timeout)
        reconnects = Reconnects(self.url)
        while True:
            url = URL(self._base + changes_path(prefix, since, page_size, wait), encoded=True)
            try:
                reply = await self._attempt("GET", url, None, None, absent_ok=False)
            except Retryable as failure:
                await asyncio.sleep(reconnects.failed(failure))
                continue
            except InvalidArgument as refusal:
                wait = shorter_wait(wait, refusal)  # the service allows less
                continue
            reconnects.answered()
            page = change_page_from_json(parse_json(reply.body))
            since = page.next
            for change in page.changes:
                yield change

    async def _latest(self, prefix: str, page_size: int | None) -> int:
        """The sequence number of the scope's last change (the feed has no "now": read to
        its end)."""
        since: int | None = None
        while True:
            page = await self.changes(prefix, since=since, limit=page_size)
            if not page.changes:
                return page.next
            since = page.next

    # -- the wire ------------------------------------------------------------------------
    async def _json(
        self, method: str, path: str, body: Any = None, *, safe: bool = False
    ) -> dict[str, Any]:
        payload = None if body is None else dumps(body)
        headers = JSON_HEADERS if payload else {}
        reply = await self._call(method, path, payload, headers, safe=safe)
        return parse_json(reply.body)

    async def _call(
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
        # Already percent-encoded by ``_wire``: ``encoded=True`` keeps yarl from
        # re-quoting it or removing dot segments (the key "." stays ".").
        url = URL(self._base + path, encoded=True)
        try:
            return await self._attempt(method, url, body, headers, absent_ok, expected)
        except Retryable as failure:
            if not safe or self._retries < 1:
                raise failure.error from None
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._retries),
            wait=retry_wait,
            retry=retry_if_exception_type(Retryable),
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(method, url, body, headers, absent_ok, expected)
        except RetryError as exhausted:
            last = exhausted.last_attempt.exception()
            assert isinstance(last, Retryable)
            raise last.error from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(
        self,
        method: str,
        url: URL,
        body: bytes | None,
        headers: Mapping[str, str] | None,
        absent_ok: bool,
        expected: int | None = None,
    ) -> _Reply:
        session = self._client()
        # aiohttp writes a bytes body in one go and warns past 1 MiB; from a
        # file-like object it streams it in chunks, yielding to the loop between.
        data: bytes | io.BytesIO | None = body
        if body is not None and len(body) > _STREAM_BODY_OVER:
            data = io.BytesIO(body)
        try:
            async with session.request(
                method, url, data=data, headers=headers, allow_redirects=False
            ) as response:
                reply = _Reply(response.status, response.headers, await response.read())
        except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
            raise Retryable(
                ServiceUnreachable(f"cannot reach the pluginkv service at {self.url}: {exc!r}")
            ) from None
        if reply.status == expected:
            return reply
        error = reply_error(reply.status, reply.headers.get, reply.body, absent_ok)
        if error is None:
            return reply
        if retryable(reply.status, error):
            raise Retryable(error, retry_after(reply.headers.get))
        raise error

    def _client(self) -> aiohttp.ClientSession:
        """The session, made on first use in the running loop (it must not outlive it)."""
        loop = asyncio.get_running_loop()
        if self._session is not None and not self._session.closed:
            if self._loop is not loop:
                raise RuntimeError(
                    f"{self!r} is in use on another event loop; use one client per loop "
                    "(or aclose() it before moving it)"
                )
            return self._session
        self._session = aiohttp.ClientSession(
            headers=self._headers,
            timeout=self._timeout,
            connector=aiohttp.TCPConnector(limit=100),
        )
        self._loop = loop
        return self._session


if TYPE_CHECKING:  # mypy holds the class to the Protocol of the API (api.py)
    from ..api import AsyncChangesAPI, AsyncStorageAPI

    def _meets_the_protocol(storage: AsyncRemoteStorage) -> AsyncStorageAPI:
        return storage

    def _meets_the_changes_protocol(storage: AsyncRemoteStorage) -> AsyncChangesAPI:
        return storage
