"""A remote commit's checks and writes, checked as given and kept as the JSON a commit call takes.

``Storage.atomic()`` runs in process (``commits.py``); a client of the HTTP
service (``POST /v1/atomic``) and a plugin over its storage channel build
the same commit remotely and send it whole.  Both record it here: each check
and write is refused where it is given as far as the caller can tell (a key,
a value's type, a TTL, metadata, a delta), with the engine's exceptions; what
depends on the far side's settings (sizes, the quota, the commit's own
limits) is that side's to refuse.  The two differ only in how a key is
checked (the plugin channel cleans keys as file paths first) and how a value
is written into the JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Self

from .entry_metadata import check_content_type, check_metadata
from .errors import InvalidArgument
from .keys import check_ttl, check_value
from .writes import check_delta

__all__ = ["CommitOperations"]

_NO_LIMIT = 2**63  # the far side enforces the size limits; its settings may differ from here


class CommitOperations:
    """Checks and writes on one scope, for one commit call; each method returns the commit,
    so calls chain.  Subclasses add ``commit()``, which sends ``_take()``."""

    def __init__(
        self, check_key: Callable[[object], object], encode_value: Callable[[bytes], Any]
    ) -> None:
        self._check_key = check_key
        self._encode_value = encode_value
        self._checks: list[dict[str, Any]] = []
        self._operations: list[dict[str, Any]] = []
        self._committed = False

    def __repr__(self) -> str:
        count = len(self._checks) + len(self._operations)
        return f"<{type(self).__name__} of {count} operations>"

    def check(self, key: str, *, version: int | None) -> Self:
        """Require ``key`` to be at ``version``, or with ``version=None`` to hold no value."""
        self._check_key(key)
        if version is not None and (type(version) is not int or version < 1):
            raise InvalidArgument(
                f"check version must be a positive int or None (absent), got {version!r}"
            )
        self._open()
        self._checks.append({"key": key, "version": version})
        return self

    def set(
        self,
        key: str,
        val: bytes,
        *,
        ttl: float | None = None,
        metadata: dict[str, Any] | None = None,
        content_type: str | None = None,
    ) -> Self:
        """Store ``val`` under ``key`` with its metadata and content type, as ``Storage.set``."""
        self._check_key(key)
        data = check_value(val, _NO_LIMIT)
        seconds = check_ttl(ttl)
        stored = check_metadata(metadata, _NO_LIMIT)
        kind = check_content_type(content_type, _NO_LIMIT)
        self._open()
        operation: dict[str, Any] = {"op": "set", "key": key, "value": self._encode_value(data)}
        if seconds is not None:
            operation["ttl"] = seconds
        if stored is not None:
            operation["metadata"] = metadata
        if kind is not None:
            operation["content_type"] = kind
        self._operations.append(operation)
        return self

    def delete(self, key: str) -> Self:
        """Remove ``key``; an absent key is no error."""
        self._check_key(key)
        self._open()
        self._operations.append({"op": "delete", "key": key})
        return self

    def incr(self, key: str, delta: int = 1) -> Self:
        """Add ``delta`` to the integer at ``key``; the sum is in the result's ``counters``."""
        self._check_key(key)
        check_delta(delta)
        self._open()
        self._operations.append({"op": "incr", "key": key, "delta": delta})
        return self

    def _open(self) -> None:
        if self._committed:
            raise InvalidArgument("this commit was committed already: start another one")

    def _take(self) -> dict[str, Any] | None:
        """The commit's JSON, once (``None``: nothing to commit); the commit is spent."""
        self._open()
        self._committed = True
        if not self._checks and not self._operations:
            return None
        return {"checks": self._checks, "operations": self._operations}
