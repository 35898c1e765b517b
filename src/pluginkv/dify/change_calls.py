"""The plugin channel's ``atomic``, ``changes`` and ``last_seq`` calls: arguments and answers.

``atomic`` carries a whole commit in one call::

    {"checks": [{"key": "a", "version": 3}, {"key": "lock", "version": null}],
     "operations": [{"op": "set", "key": "a", "value": "<hex>", "ttl": 60,
                     "metadata": {...}, "content_type": "..."},
                    {"op": "delete", "key": "b"}, {"op": "incr", "key": "n", "delta": 5}]}

and answers ``{"ok", "versions", "failed", "counters"}``: a failed check is an
answer (``ok: false``), not an error, as in process.  Keys are cleaned as
Dify's four verbs clean them (``key_paths.py``).  ``changes`` takes
``prefix``, ``since``, ``limit`` and ``wait`` and answers a page
(``{"changes": [...], "next"}``); the wait itself is the server's
(``host/extended_storage.py``, or ``wait_here`` for an in-process fake).
``last_seq`` answers the scope's last sequence number, where ``watch()``
starts when it follows from now on.

The scope is never an argument: the host takes it from the session.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ..errors import InvalidArgument
from ..keys import check_prefix
from ..models import Change, ChangePage, CommitResult
from ..storage import Storage
from .key_paths import clean_key

__all__ = [
    "WAIT_SETTING",
    "change_page",
    "changes_args",
    "checked_wait",
    "commit_result",
    "run_atomic",
    "run_changes",
    "run_last_seq",
    "wait_here",
]

WAIT_SETTING = "PLUGINKV_MAX_CHANGES_WAIT_SECONDS"


# -- atomic ----------------------------------------------------------------------------------
def run_atomic(
    storage: Storage, args: dict[str, Any], unhex: Callable[[object], bytes]
) -> dict[str, Any]:
    """Build the engine's commit from the call's checks and operations, and commit it;
    ``unhex`` decodes a value as the channel carries it."""
    checks, operations = args.get("checks", []), args.get("operations", [])
    if not isinstance(checks, list) or not isinstance(operations, list):
        raise InvalidArgument("atomic takes lists of checks and operations")
    commit = storage.atomic()
    for i, check in enumerate(checks):
        if not isinstance(check, dict) or "key" not in check:
            raise InvalidArgument(f"checks[{i}] must be an object with a key and a version")
        commit.check(_key(check["key"]), version=check.get("version"))
    for i, operation in enumerate(operations):
        op = operation.get("op") if isinstance(operation, dict) else None
        if op not in ("set", "delete", "incr") or "key" not in operation:
            raise InvalidArgument(
                f"operations[{i}] must be an object with a key, whose field 'op' is "
                "'set', 'delete' or 'incr'"
            )
        key = _key(operation["key"])
        if op == "set":
            commit.set(
                key,
                unhex(operation.get("value")),
                ttl=operation.get("ttl"),
                metadata=operation.get("metadata"),
                content_type=operation.get("content_type"),
            )
        elif op == "delete":
            commit.delete(key)
        else:
            commit.incr(key, operation.get("delta", 1))
    result = commit.commit()
    return {
        "ok": result.ok,
        "versions": result.versions,
        "failed": result.failed,
        "counters": result.counters,
    }


def _key(key: object) -> Any:
    # A key that is no string stays as it is, for the engine to refuse.
    return clean_key(key) if isinstance(key, str) else key


def commit_result(answer: dict[str, Any]) -> CommitResult:
    """The ``CommitResult`` an ``atomic`` answer holds."""
    return CommitResult(
        bool(answer["ok"]),
        {str(key): int(version) for key, version in answer["versions"].items()},
        [str(key) for key in answer["failed"]],
        {str(key): int(value) for key, value in answer["counters"].items()},
    )


# -- the change feed -------------------------------------------------------------------------
def run_changes(storage: Storage, args: dict[str, Any]) -> dict[str, Any]:
    """One page of changes at once: ``wait`` is the server's to honour (``wait_here``)."""
    page = storage.changes(args.get("prefix", ""), since=args.get("since"), limit=args.get("limit"))
    return _page(page)


def run_last_seq(storage: Storage, args: dict[str, Any]) -> int:
    return storage._last_seq()


def _page(page: ChangePage) -> dict[str, Any]:
    return {"changes": [change.as_dict() for change in page.changes], "next": page.next}


def change_page(answer: dict[str, Any]) -> ChangePage:
    """The ``ChangePage`` a ``changes`` answer holds."""
    return ChangePage(
        [
            Change(item["seq"], item["key"], item["kind"], item["version"], item["at"])
            for item in answer["changes"]
        ],
        int(answer["next"]),
    )


def changes_args(
    prefix: str, since: int | None, limit: int | None, wait: float | None
) -> dict[str, Any]:
    """The arguments of a ``changes`` call, checked as far as the plugin's side can: the
    host's settings bound ``limit`` and ``wait``."""
    check_prefix(prefix)
    if since is not None and (type(since) is not int or since < 0):
        raise InvalidArgument(f"since must be a sequence number (an int >= 0), got {since!r}")
    if limit is not None and (type(limit) is not int or limit < 1):
        raise InvalidArgument(
            f"limit must be an int from 1 up (setting PLUGINKV_MAX_PAGE_SIZE bounds it), "
            f"got {limit!r}"
        )
    if wait is not None:
        checked_wait({"wait": wait}, math.inf)
    return {"prefix": prefix, "since": since, "limit": limit, "wait": wait}


def checked_wait(args: dict[str, Any], maximum: float) -> float:
    """The seconds a ``changes`` call may wait for a change (0: none), at most ``maximum``."""
    wait = args.get("wait")
    if wait is None:
        return 0.0
    if type(wait) not in (int, float) or not (math.isfinite(wait) and 0 <= wait <= maximum):
        if maximum == math.inf:  # the plugin's side: the host's setting is not known here
            raise InvalidArgument(
                f"wait must be a number of seconds >= 0 (setting {WAIT_SETTING} bounds it), "
                f"got {wait!r}"
            )
        raise InvalidArgument(
            f"wait={wait!r} must be 0 to {maximum} seconds (setting {WAIT_SETTING})"
        )
    return float(wait)


def wait_here(storage: Storage, args: dict[str, Any], maximum: float) -> dict[str, Any]:
    """``changes`` with its wait, on this thread: the first page that has a change, or the
    empty one when the wait passed.  For a server with threads to spare (a test's fake)."""
    wait = checked_wait(args, maximum)
    if wait == 0:
        return run_changes(storage, args)
    with storage.change_waiter() as waiter:
        # Registered before the read: a commit after the read wakes the wait.
        answer = run_changes(storage, args)
        if answer["changes"] or not waiter.wait(wait):
            return answer
        return run_changes(storage, {**args, "since": answer["next"]})
