"""What both clients send and read for atomic commits, the change feed and metadata.

Pure functions, one builder base and the count of a watch's failed attempts
(``Reconnects``), no I/O, like ``_wire``: the sync and the async client differ
only in how a request travels.  The wire is the one
``docs/http-api.md`` describes: ``POST /v1/atomic``, ``GET /v1/changes`` and
the ``Pluginkv-Metadata`` header of ``/v1/kv/{key}``.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from ..commit_operations import CommitOperations
from ..errors import InvalidArgument
from ..keys import check_key, check_prefix
from ..models import Change, ChangePage, CommitResult
from ._wire import Retryable, backoff, dumps, parse_json
from .errors import error_from_response

__all__ = [
    "ATOMIC_PATH",
    "CHECK_FAILED",
    "WATCH_WAIT",
    "AsyncRemoteCommit",
    "Reconnects",
    "RemoteCommit",
    "change_page_from_json",
    "changes_path",
    "commit_result",
    "shorter_wait",
    "watch_wait",
]

logger = logging.getLogger("pluginkv.client")

ATOMIC_PATH = "/v1/atomic"
CHECK_FAILED = 412  # /v1/atomic's answer when a check failed: a result, not an error

WATCH_WAIT = 20.0
"""Seconds one long poll of ``watch()`` asks the service to wait for a change: well
under the service's own bound (``PLUGINKV_MAX_CHANGES_WAIT_SECONDS``, 60 by default)
and under the client's read timeout (``watch_wait``)."""


# -- the change feed ---------------------------------------------------------------------------
def changes_path(prefix: str, since: int | None, limit: int | None, wait: float | None) -> str:
    """``GET /v1/changes`` for a page after ``since``, waiting up to ``wait`` seconds."""
    check_prefix(prefix)
    if since is not None and (type(since) is not int or since < 0):
        raise InvalidArgument(f"since must be a sequence number (an int >= 0), got {since!r}")
    if limit is not None and (type(limit) is not int or limit < 1):
        raise InvalidArgument(
            f"limit must be an int from 1 up (setting PLUGINKV_MAX_PAGE_SIZE bounds it), "
            f"got {limit!r}"
        )
    if wait is not None and (
        type(wait) not in (int, float) or not 0 <= wait < float("inf")  # NaN fails too
    ):
        raise InvalidArgument(
            f"wait must be a number of seconds >= 0 (setting PLUGINKV_MAX_CHANGES_WAIT_SECONDS "
            f"bounds it), got {wait!r}"
        )
    query: dict[str, str | int | float] = {"prefix": prefix}
    if since is not None:
        query["since"] = since
    if limit is not None:
        query["limit"] = limit
    if wait:
        query["wait"] = wait
    return "/v1/changes?" + urlencode(query)


def change_page_from_json(page: Mapping[str, Any]) -> ChangePage:
    """A ``ChangePage`` from the service's JSON (``at`` is 0.0 if the service sends none)."""
    return ChangePage(
        [
            Change(item["seq"], item["key"], item["kind"], item["version"], item.get("at", 0.0))
            for item in page["changes"]
        ],
        int(page["next"]),
    )


WAIT_SETTING = "PLUGINKV_MAX_CHANGES_WAIT_SECONDS"


def shorter_wait(wait: float, refusal: InvalidArgument) -> float:
    """The wait to ask for after the service refused ``wait``: half of it, if the refusal
    is about the wait (the service's setting is below it), else ``refusal`` is raised.

    The service's bound is above 0, so halving finds a wait it takes in a few requests.
    """
    if WAIT_SETTING not in str(refusal) or wait < 0.001:
        raise refusal
    return wait / 2


class Reconnects:
    """A watch's outages: it polls again after each failure that a restart or a failover
    explains (no answer, a broken connection, 502/503/504), waiting ``backoff`` between
    attempts, for as long as the service stays away; any other error ends the watch.

    The next poll asks from the last page's ``next``, so no change is lost or seen
    twice across the gap.  The first failure of an outage, and its end, are logged
    (logger ``pluginkv.client``, WARNING): a watch that waits silently on a service
    that is down looks like one that sees no changes.
    """

    def __init__(self, url: str) -> None:
        self._url = url
        self._failures = 0

    def failed(self, failure: Retryable) -> float:
        """Seconds to wait before the next attempt."""
        self._failures += 1
        if self._failures == 1:
            logger.warning(
                "watching %s: %s; reconnecting until it answers", self._url, failure.error
            )
        return backoff(self._failures, failure.retry_after)

    def answered(self) -> None:
        if self._failures:
            logger.warning(
                "watching %s: reconnected after %d failed attempt(s)", self._url, self._failures
            )
            self._failures = 0


def watch_wait(timeout: float) -> float:
    """The wait of one long poll: ``WATCH_WAIT``, or half the read timeout if shorter, so
    the service answers before the client gives up on the socket."""
    return min(WATCH_WAIT, timeout / 2)


# -- atomic commits ------------------------------------------------------------------------------
class _HttpCommit(CommitOperations):
    """The checks and writes of a commit over HTTP: values as ``/v1/atomic`` takes them."""

    def __init__(self) -> None:
        super().__init__(check_key, _value)

    def _body(self) -> bytes | None:
        """The request body, once (``None``: nothing to commit); the commit is spent."""
        payload = self._take()
        return None if payload is None else dumps(payload)


class RemoteCommit(_HttpCommit):
    """What ``RemoteStorage.atomic()`` returns: the engine's ``Commit`` over HTTP.

    ``commit()`` sends one ``POST /v1/atomic``, once: a commit is not repeated
    after a failure that may have reached the service (a broken connection).
    A failed check is a result (``ok=False``), as in process.
    """

    def __init__(self, send: Callable[[bytes], CommitResult]) -> None:
        super().__init__()
        self._send = send

    def commit(self) -> CommitResult:
        """Run the checks, then, if all hold, every write, in one transaction on the service."""
        body = self._body()
        return CommitResult(True, {}, []) if body is None else self._send(body)


class AsyncRemoteCommit(_HttpCommit):
    """What ``AsyncRemoteStorage.atomic()`` returns: ``RemoteCommit`` with ``commit()`` awaited."""

    def __init__(self, send: Callable[[bytes], Awaitable[CommitResult]]) -> None:
        super().__init__()
        self._send = send

    async def commit(self) -> CommitResult:
        """Run the checks, then, if all hold, every write, in one transaction on the service."""
        body = self._body()
        return CommitResult(True, {}, []) if body is None else await self._send(body)


def _value(data: bytes) -> dict[str, str]:
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def commit_result(status: int, body: bytes) -> CommitResult:
    """The ``CommitResult`` of a ``/v1/atomic`` answer: a 200, or a 412 naming failed checks."""
    if status == CHECK_FAILED:
        try:
            failed = json.loads(body)["error"]["failed"]
            if not isinstance(failed, list):
                raise TypeError("failed is not a list")
        except (ValueError, KeyError, TypeError):
            raise error_from_response(status, body) from None
        return CommitResult(False, {}, [str(key) for key in failed])
    answer = parse_json(body)
    versions = {str(key): int(version) for key, version in answer.get("versions", {}).items()}
    counters = {str(key): int(value) for key, value in answer.get("counters", {}).items()}
    return CommitResult(bool(answer.get("ok", True)), versions, [], counters)
