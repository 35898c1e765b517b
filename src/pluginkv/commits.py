"""``Storage.atomic()``: many operations on one scope, committed all or nothing.

A ``Commit`` collects checks and writes, then ``commit()`` runs them in one
write transaction: every check is read first, and if any fails nothing is
written and the result says which (``ok=False``, not an exception: losing
a race is an answer, as etcd's ``Txn`` returns ``succeeded=false``).  Then
the writes apply in order over what the earlier ones left, so
``set("n", b"1").incr("n")`` leaves ``2``; each key's final state is what is
stored, with one new version and one change in the log.  The quota is checked
once, on what the commit adds as a whole (a delete makes room for a set).

Bad input raises where it is given, as the plain verb does (a bad key, a
value too large, a bad TTL or metadata), and so do the commit's own limits:
``max_commit_operations`` operations, ``max_commit_bytes`` bytes.  What only
the stored data can refuse (the quota, ``incr`` of a non-integer or past 64
bits) raises from ``commit()``, and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .backends.base import Stored
from .entry_metadata import check_content_type, check_metadata, extra_size
from .errors import InvalidArgument
from .keys import check_key, check_ttl, check_value
from .models import CommitResult
from .writes import Put, check_delta, incremented

if TYPE_CHECKING:
    from .storage import Storage

__all__ = ["Commit"]


@dataclass(frozen=True, slots=True)
class _Check:
    key: str
    version: int | None  # None: the key must hold no value


@dataclass(frozen=True, slots=True)
class _Set:
    key: str
    value: bytes
    size: int
    ttl: float | None
    metadata: str | None
    content_type: str | None


@dataclass(frozen=True, slots=True)
class _Delete:
    key: str


@dataclass(frozen=True, slots=True)
class _Incr:
    key: str
    key_size: int
    delta: int


_Operation = _Check | _Set | _Delete | _Incr


class Commit:
    """Checks and writes on one scope, applied together by ``commit()``; each method
    returns the commit, so calls chain.  Not thread-safe: build it on one thread."""

    __slots__ = ("_bytes", "_committed", "_operations", "_storage")

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._operations: list[_Operation] = []
        self._bytes = 0
        self._committed = False

    def __repr__(self) -> str:
        return f"<Commit of {len(self._operations)} operations on {self._storage!r}>"

    def check(self, key: str, *, version: int | None) -> Commit:
        """Require ``key`` to be at ``version``, or with ``version=None`` to hold no value."""
        check_key(key)
        if version is not None and (type(version) is not int or version < 1):
            raise InvalidArgument(
                f"check version must be a positive int or None (absent), got {version!r}"
            )
        return self._add(_Check(key, version), 0)

    def set(
        self,
        key: str,
        val: bytes,
        *,
        ttl: float | None = None,
        metadata: dict[str, Any] | None = None,
        content_type: str | None = None,
    ) -> Commit:
        """Store ``val`` under ``key``, as ``Storage.set`` does (without its conditions:
        use ``check``)."""
        settings = self._storage._settings
        key_size = check_key(key)
        data = check_value(val, settings.max_value_bytes)
        seconds = check_ttl(ttl, settings.max_ttl_seconds)
        meta = check_metadata(metadata, settings.max_metadata_bytes)
        kind = check_content_type(content_type, settings.max_content_type_bytes)
        size = key_size + len(data) + extra_size(meta, kind)
        return self._add(_Set(key, data, size, seconds, meta, kind), size)

    def delete(self, key: str) -> Commit:
        """Remove ``key``; an absent key is no error."""
        check_key(key)
        return self._add(_Delete(key), 0)

    def incr(self, key: str, delta: int = 1) -> Commit:
        """Add ``delta`` to the integer at ``key``, as ``Storage.incr`` does; the sum is in
        the result's ``counters``."""
        key_size = check_key(key)
        check_delta(delta)
        return self._add(_Incr(key, key_size, delta), 0)

    def _add(self, operation: _Operation, size: int) -> Commit:
        settings = self._storage._settings
        if self._committed:
            raise InvalidArgument("this commit was committed already: start another one")
        if len(self._operations) >= settings.max_commit_operations:
            raise InvalidArgument(
                f"a commit holds at most {settings.max_commit_operations} operations "
                "(setting PLUGINKV_MAX_COMMIT_OPERATIONS)"
            )
        if self._bytes + size > settings.max_commit_bytes:
            raise InvalidArgument(
                f"a commit holds at most {settings.max_commit_bytes} bytes of keys, values "
                f"and metadata (setting PLUGINKV_MAX_COMMIT_BYTES); this one would hold "
                f"{self._bytes + size}"
            )
        self._operations.append(operation)
        self._bytes += size
        return self

    def commit(self) -> CommitResult:
        """Run the checks, then, if all hold, every write, in one transaction.

        Returns ``CommitResult(ok=False, failed=[keys])`` having changed nothing
        when a check fails.

        Raises:
            QuotaExceeded: the writes together would pass the scope's quota.
            WrongValueType, InvalidArgument: an ``incr`` the stored value refuses.
        """
        if self._committed:
            raise InvalidArgument("this commit was committed already: start another one")
        self._committed = True
        storage = self._storage
        keys = list(dict.fromkeys(op.key for op in self._operations))
        if not keys:
            return CommitResult(True, {}, [])
        now = storage._clock()
        with storage._backend.write() as tx:
            state, rows = tx.lookup(storage._scope, keys, with_values=True)
            failed = [
                op.key
                for op in self._operations
                if isinstance(op, _Check) and not _holds(op, rows.get(op.key), now)
            ]
            if failed:
                return CommitResult(False, {}, list(dict.fromkeys(failed)))
            puts, counters = self._final(rows, now)
            versions = storage._write_rows(tx, state, now, puts, rows)
        if puts:
            storage._after_write(now)
        return CommitResult(True, versions, [], counters)

    def _final(
        self, rows: dict[str, Stored], now: float
    ) -> tuple[dict[str, Put | None], dict[str, int]]:
        """Each written key's final state (``None``: deleted), and the sums of ``incr``."""
        final: dict[str, Put | None] = {}
        counters: dict[str, int] = {}
        for op in self._operations:
            if isinstance(op, _Set):
                expires_at = None if op.ttl is None else now + op.ttl
                final[op.key] = Put(op.value, op.size, expires_at, op.metadata, op.content_type)
            elif isinstance(op, _Delete):
                final[op.key] = None
            elif isinstance(op, _Incr):
                current = _current(op.key, final, rows.get(op.key), now)
                counters[op.key], final[op.key] = incremented(
                    op.key, op.key_size, current, op.delta, now
                )
        # A key deleted here that held nothing stays as it was: no change to log.
        return {key: put for key, put in final.items() if put is not None or key in rows}, counters


def _holds(check: _Check, row: Stored | None, now: float) -> bool:
    actual = row.version if row is not None and row.live(now) else None
    return actual == check.version


def _current(
    key: str, final: dict[str, Put | None], row: Stored | None, now: float
) -> Stored | None:
    """The row an ``incr`` starts from: what an earlier operation of the commit left, else the
    stored one (``None``: absent)."""
    if key not in final:
        return row
    put = final[key]
    if put is None:
        return None
    # Only the fields incremented() reads: value, size, expiry, metadata, liveness.
    return Stored(put.size, 0, now, put.expires_at, put.value, put.metadata, put.content_type)
