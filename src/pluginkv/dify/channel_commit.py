"""What ``ChannelStorage.atomic()`` returns: the engine's ``Commit``, sent as one call.

The checks and writes are checked as they are given, as far as this process
can (a key as the channel cleans it, a value's type, a TTL, metadata, a
delta), and raise the engine's exceptions there, as ``Storage.atomic()``
does.  What depends on the host's settings (sizes, the quota, the commit's
own limits) is the host's to refuse, from ``commit()``.  ``commit()`` sends
the whole commit as one ``atomic`` call (``change_calls.py``), once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Self

from ..entry_metadata import check_content_type, check_metadata
from ..errors import InvalidArgument
from ..keys import check_key, check_ttl, check_value
from ..models import CommitResult
from ..writes import check_delta
from .key_paths import clean_key

__all__ = ["ChannelCommit"]

_NO_LIMIT = 2**63  # the host enforces the size limits; its settings may differ from here


class ChannelCommit:
    """Checks and writes on the plugin's scope, applied together by ``commit()`` on the
    host; each method returns the commit, so calls chain."""

    def __init__(self, send: Callable[[dict[str, Any]], CommitResult]) -> None:
        self._send = send
        self._checks: list[dict[str, Any]] = []
        self._operations: list[dict[str, Any]] = []
        self._committed = False

    def __repr__(self) -> str:
        return f"<ChannelCommit of {len(self._checks) + len(self._operations)} operations>"

    def check(self, key: str, *, version: int | None) -> Self:
        """Require ``key`` to be at ``version``, or with ``version=None`` to hold no value."""
        _check_key(key)
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
        _check_key(key)
        data = check_value(val, _NO_LIMIT)
        seconds = check_ttl(ttl)
        check_metadata(metadata, _NO_LIMIT)
        kind = check_content_type(content_type, _NO_LIMIT)
        self._open()
        operation: dict[str, Any] = {"op": "set", "key": key, "value": data.hex()}
        if seconds is not None:
            operation["ttl"] = seconds
        if metadata is not None:
            operation["metadata"] = metadata
        if kind is not None:
            operation["content_type"] = kind
        self._operations.append(operation)
        return self

    def delete(self, key: str) -> Self:
        """Remove ``key``; an absent key is no error."""
        _check_key(key)
        self._open()
        self._operations.append({"op": "delete", "key": key})
        return self

    def incr(self, key: str, delta: int = 1) -> Self:
        """Add ``delta`` to the integer at ``key``; the sum is in the result's ``counters``."""
        _check_key(key)
        check_delta(delta)
        self._open()
        self._operations.append({"op": "incr", "key": key, "delta": delta})
        return self

    def commit(self) -> CommitResult:
        """Run the checks, then, if all hold, every write, in one transaction on the host.

        A failed check is ``CommitResult(ok=False, failed=[keys])``, having
        changed nothing; the host's refusals (``QuotaExceeded``,
        ``ValueTooLarge``, ...) raise as the engine's exceptions.
        """
        self._open()
        self._committed = True
        if not self._checks and not self._operations:
            return CommitResult(True, {}, [])
        return self._send({"checks": self._checks, "operations": self._operations})

    def _open(self) -> None:
        if self._committed:
            raise InvalidArgument("this commit was committed already: start another one")


def _check_key(key: object) -> None:
    """Refuse a key as the host would: as Dify's daemon cleans it, then by the engine's rules."""
    if not isinstance(key, str):
        check_key(key)  # raises InvalidKey naming the type
        return
    check_key(clean_key(key))
