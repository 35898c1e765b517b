"""``Storage``: the plugin-facing handle bound to one scope, and the semantics of every verb.

The four verbs Dify documents (``set``, ``get``, ``delete``, ``exist``) behave
exactly as documented; the rest is what plugin authors keep asking for.  All
rules — validation, quota, TTL, versions, compare-and-set — are written here
once, on top of any backend.

Accounting: the scope's counters count every stored row, expired or not; what
``usage()`` reports and what a quota check needs is that minus the expired
rows, which a write reclaims as soon as they stand in its way.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .backends.base import ScopeState, Stored, WriteTx
from .change_feed import read_changes, wait_for_changes
from .commits import Commit
from .entry_metadata import check_content_type, check_metadata, extra_size
from .errors import (
    InvalidArgument,
    InvalidKey,
    QuotaExceeded,
    VersionConflict,
)
from .keys import (
    Scope,
    check_conditions,
    check_key,
    check_keys,
    check_prefix,
    check_prefix_delete,
    check_ttl,
    check_value,
)
from .models import Change, ChangePage, Entry, EntryMeta, JSONHelpers, KeyPages, Page, Usage
from .writes import Put, check_delta, incremented

if TYPE_CHECKING:
    from .store import Store
    from .watching import ChangeWaiter

__all__ = ["Storage"]

DEFAULT_PAGE_SIZE = 100


class Storage(JSONHelpers, KeyPages):
    """Key-value storage of one plugin in one workspace.

    Get one from ``Store.storage(workspace=..., plugin=...)``.  Thread-safe.
    """

    __slots__ = ("_backend", "_clock", "_quota", "_reads", "_scope", "_settings", "_store")

    def __init__(self, store: Store, scope: Scope) -> None:
        self._store = store
        self._backend = store.backend
        self._reads = store.backend.reads  # a standby's, when one serves reads
        self._settings = store.settings
        self._clock = store.clock
        self._scope = scope
        self._quota = store.settings_quota(scope)[0]

    def __repr__(self) -> str:
        return f"<Storage workspace={self._scope.workspace!r} plugin={self._scope.plugin!r}>"

    @property
    def workspace(self) -> str:
        return self._scope.workspace

    @property
    def plugin(self) -> str:
        return self._scope.plugin

    # -- the documented four ---------------------------------------------------
    def get(self, key: str) -> bytes | None:
        """The value of ``key``, or ``None`` only when the key is absent (or expired)."""
        check_key(key)
        return self._reads.get_value(self._scope, key, self._clock())

    def exist(self, key: str) -> bool:
        """Whether ``key`` holds a value."""
        check_key(key)
        return self._reads.exists(self._scope, key, self._clock())

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
        """Store ``val`` under ``key``; returns the entry's new version.

        Code written for Dify's ``set(key, val) -> None`` ignores the version
        and is unaffected; compare-and-set passes it back as ``if_version``.

        Args:
            ttl: seconds until the entry expires; ``None`` (default) keeps it
                forever, also when it replaces an entry that had a TTL.
            if_version: only replace the entry if its version is this one.
            if_absent: only store if the key holds no value.
            if_exists: only replace a value the key holds (HTTP's ``If-Match: *``).
            metadata: a JSON object kept with the value (at most
                ``max_metadata_bytes`` as compact JSON), counted in the quota.
            content_type: how to read the value, e.g. ``application/json``.

        A write replaces the whole entry: metadata and content type it does not
        give are gone, as a TTL it does not give is.

        Raises:
            VersionConflict: a condition failed; nothing was stored.
            QuotaExceeded: the scope's quota would be passed; nothing was stored.
            ValueTooLarge, InvalidKey, InvalidValueType, InvalidArgument.
        """
        key_size = check_key(key)
        data = check_value(val, self._settings.max_value_bytes)
        check_conditions(if_version, if_absent, if_exists)
        ttl_seconds = check_ttl(ttl, self._settings.max_ttl_seconds)
        meta = check_metadata(metadata, self._settings.max_metadata_bytes)
        kind = check_content_type(content_type, self._settings.max_content_type_bytes)
        now = self._clock()
        expires_at = None if ttl_seconds is None else now + ttl_seconds
        size = key_size + len(data) + extra_size(meta, kind)
        # The one-statement path stores no metadata; a write with some takes a transaction.
        plain = (
            if_version is None and not (if_absent or if_exists) and meta is None and kind is None
        )
        version = (
            self._backend.put_now(self._scope, key, data, size, now, expires_at, self._quota)
            if plain
            else None
        )
        if version is None:
            with self._backend.write() as tx:
                state, rows = tx.lookup(self._scope, [key])
                _require(key, rows.get(key), now, if_version, if_absent, if_exists)
                put = Put(data, size, expires_at, meta, kind)
                version = self._write_rows(tx, state, now, {key: put}, rows)[key]
        self._after_write(now)
        return version

    def delete(self, key: str, *, if_version: int | None = None, if_exists: bool = False) -> None:
        """Remove ``key``; removing an absent key is not an error.

        With ``if_version``, remove it only if its version is that one, with
        ``if_exists`` only if it holds a value; else raise ``VersionConflict``.
        """
        check_key(key)
        check_conditions(if_version, False, if_exists)
        now = self._clock()
        if if_version is None and not if_exists:
            self._backend.delete_now(self._scope, key, now)
        else:
            with self._backend.write() as tx:
                _, rows = tx.lookup(self._scope, [key])
                _require(key, rows.get(key), now, if_version, False, if_exists)
                tx.remove(self._scope, [key], now)
        self._after_write(now)

    # -- entries and listing -------------------------------------------------------
    def get_entry(self, key: str) -> Entry | None:
        """The entry of ``key`` with what is known of it (version, size, times, metadata,
        content type), or ``None``."""
        check_key(key)
        return self._reads.get(self._scope, key, self._clock())

    def get_meta(self, key: str) -> EntryMeta | None:
        """What ``get_entry`` tells of ``key`` but its value (which is never read), or ``None``."""
        check_key(key)
        return self._reads.get_meta(self._scope, key, self._clock())

    def keys(
        self, prefix: str = "", *, limit: int | None = None, cursor: str | None = None
    ) -> Page:
        """One page of entries (metadata only) whose key starts with ``prefix``, in key order.

        Pass the page's ``next_cursor`` back for the next page; it is ``None``
        on the last one.  ``limit`` is 1 to ``max_page_size`` (1000 by
        default); without it, a page holds up to 100 (or ``max_page_size`` if lower).
        """
        check_prefix(prefix)
        limit = self._page_limit(limit)
        after = _decode_cursor(cursor)
        with self._reads.read() as tx:
            rows = tx.scan(self._scope, prefix, after, limit + 1, self._clock())
        if len(rows) > limit:
            return Page(rows[:limit], _encode_cursor(rows[limit - 1].key))
        return Page(rows, None)

    # -- batches -----------------------------------------------------------------
    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """The values of those of ``keys`` that are present."""
        wanted = self._check_batch(keys)
        with self._reads.read() as tx:
            entries = tx.get_many(self._scope, wanted, self._clock())
        return {entry.key: entry.value for entry in entries}

    def set_many(self, mapping: Mapping[str, bytes], *, ttl: float | None = None) -> dict[str, int]:
        """Store every pair in one transaction: all of them, or none (on any error).

        Returns each key's new version.
        """
        if not isinstance(mapping, Mapping):
            raise InvalidArgument(
                f"set_many takes a mapping of key to bytes, not {type(mapping).__name__}"
            )
        keys = self._check_batch(mapping.keys())
        items = {
            key: (check_value(mapping[key], self._settings.max_value_bytes), check_key(key))
            for key in keys
        }
        ttl_seconds = check_ttl(ttl, self._settings.max_ttl_seconds)
        if not items:
            return {}
        now = self._clock()
        expires_at = None if ttl_seconds is None else now + ttl_seconds
        puts = {key: Put(data, size + len(data), expires_at) for key, (data, size) in items.items()}
        with self._backend.write() as tx:
            state, rows = tx.lookup(self._scope, keys)
            versions = self._write_rows(tx, state, now, puts, rows)
        self._after_write(now)
        return versions

    def delete_many(self, keys: Iterable[str]) -> int:
        """Remove these keys in one transaction; returns how many held a value."""
        wanted = self._check_batch(keys)
        now = self._clock()
        with self._backend.write() as tx:
            _, rows = tx.lookup(self._scope, wanted)
            tx.remove(self._scope, list(rows), now)
        self._after_write(now)
        return sum(1 for row in rows.values() if row.live(now))

    def delete_prefix(self, prefix: str, *, all: bool = False) -> int:
        """Remove every key starting with ``prefix``; returns how many held a value.

        The empty prefix removes every key of the scope, and only with
        ``all=True`` (which takes no other prefix): ``delete_prefix("", all=True)``.
        """
        check_prefix_delete(prefix, all)
        now = self._clock()
        with self._backend.write() as tx:
            live = tx.remove_prefix(self._scope, prefix, now)
        self._after_write(now)
        return live

    # -- counters and JSON -------------------------------------------------------------
    def incr(self, key: str, delta: int = 1) -> int:
        """Add ``delta`` to the integer stored at ``key`` (absent counts as 0); returns the sum.

        The value is stored as ASCII decimal, so ``get`` returns e.g. ``b"42"``.
        Atomic under any concurrency.  A TTL on the entry is kept, and so are its
        metadata and content type.

        Raises:
            WrongValueType: the stored value is not a decimal integer.
            InvalidArgument: ``delta`` or the result leaves the signed 64-bit range.
        """
        return self.incr_versioned(key, delta)[0]

    def incr_versioned(self, key: str, delta: int = 1) -> tuple[int, int]:
        """``incr``, returning ``(sum, the entry's new version)``."""
        key_size = check_key(key)
        check_delta(delta)
        now = self._clock()
        with self._backend.write() as tx:
            state, rows = tx.lookup(self._scope, [key], with_values=True)
            result, put = incremented(key, key_size, rows.get(key), delta, now)
            version = self._write_rows(tx, state, now, {key: put}, rows)[key]
        self._after_write(now)
        return result, version

    # -- usage -------------------------------------------------------------------
    def usage(self) -> Usage:
        """Bytes used (keys plus values), live keys, and the quota of this scope."""
        with self._backend.read() as tx:
            state = tx.scope_state(self._scope)
            count, size = tx.expired_totals(self._scope, self._clock())
        quota, _ = self._store.quota_for(self._scope, state)
        return Usage(state.bytes_used - size, state.key_count - count, quota)

    # -- atomic commits and the change log --------------------------------------------
    def atomic(self) -> Commit:
        """A commit of many operations on this scope, all or nothing, built up then committed.

        ::

            res = (storage.atomic()
                   .check("a", version=3)          # "a" must be at version 3
                   .check("lock", version=None)    # "lock" must be absent
                   .set("a", b"x", ttl=60).delete("b").incr("n", 5)
                   .commit())                      # CommitResult(ok, versions, failed)

        A failed check is no error: ``ok`` is ``False``, ``failed`` names the
        keys, and nothing changed.  See ``pluginkv.commits.Commit``.
        """
        return Commit(self)

    def changes(
        self, prefix: str = "", *, since: int | None = None, limit: int | None = None
    ) -> ChangePage:
        """One page of the scope's changes whose key starts with ``prefix``, oldest first.

        ``since=None`` starts from the oldest change kept; else the page holds
        changes with ``seq > since``.  Pass the page's ``next`` as ``since`` to
        continue.  ``limit`` is 1 to ``max_page_size`` (default 100).

        Raises:
            ChangesExpired: changes after ``since`` are no longer kept (the
                retention window passed them); ``oldest`` says where the log
                starts now.  Re-read what you follow, then continue from there.
            InvalidArgument: ``since`` is negative or past the scope's last change.
        """
        check_prefix(prefix)
        limit = self._page_limit(limit)
        if since is not None and (type(since) is not int or since < 0):
            raise InvalidArgument(f"since must be a sequence number (an int >= 0), got {since!r}")
        return read_changes(self._backend, self._scope, prefix, since, limit)

    def change_waiter(self) -> ChangeWaiter:
        """A registration for this scope's commits: register, read the changes, then wait.

        The building block of ``watch`` and of long polls::

            with storage.change_waiter() as waiter:
                page = storage.changes(prefix, since=since)
                if not page.changes:
                    waiter.wait(timeout)            # or: await waiter.wait_async(timeout)

        Any commit after the registration wakes it (sometimes one outside the
        prefix: read again).  No thread and no query per waiter.
        """
        return self._store.notifier.waiter(self._scope)

    def watch(
        self, prefix: str = "", *, since: int | None = None, page_size: int | None = None
    ) -> Iterator[Change]:
        """Every change whose key starts with ``prefix``, as it is committed; blocks between.

        ``since=None`` follows from now on; else from the change after ``since``
        (see ``changes``).  Each change comes exactly once, in order, also those
        committed by other processes on the same database.  Stop by leaving the
        loop.  Raises ``ChangesExpired`` if the watcher falls behind the
        retention window.
        """
        check_prefix(prefix)
        page_size = self._page_limit(page_size)
        if since is None:
            since = self._last_seq()
        else:
            self.changes(prefix, since=since, limit=1)  # a bad or expired since raises here
        return wait_for_changes(self, prefix, since, page_size)

    def _page_limit(self, limit: int | None) -> int:
        """``limit`` of a page of keys or changes, checked; ``None`` is the default."""
        maximum = self._settings.max_page_size
        if limit is None:
            return min(DEFAULT_PAGE_SIZE, maximum)
        if type(limit) is not int or not 1 <= limit <= maximum:
            raise InvalidArgument(
                f"limit must be an int from 1 to {maximum} (setting PLUGINKV_MAX_PAGE_SIZE), "
                f"got {limit!r}"
            )
        return limit

    def _last_seq(self) -> int:
        with self._backend.read() as tx:
            return tx.scope_state(self._scope).last_seq

    def _after_write(self, now: float) -> None:
        """What follows every committed write: its watchers woken, the sweeper run if due."""
        self._store.notifier.changed((self._scope,))
        self._store.after_write(now)

    # -- the write path, shared ----------------------------------------------------------
    def _write_rows(
        self,
        tx: WriteTx,
        state: ScopeState,
        now: float,
        puts: Mapping[str, Put | None],
        rows: dict[str, Stored],
    ) -> dict[str, int]:
        """Store ``puts`` (or delete, where ``None``) over ``rows``, within the quota.

        Returns each stored key's new version.  The quota is checked once, on
        what the whole write adds (deletes give back what they free).

        ``state`` and ``rows`` come from ``tx.lookup`` in the same transaction.
        The backend moves the counters; this decides whether the write may happen.
        """
        growth = _growth(puts, rows)
        if growth > 0:
            quota, source = self._store.quota_for(self._scope, state)
            if state.bytes_used + growth > quota and tx.purge_expired(self._scope, now):
                # Expired rows still counted; now reclaimed, they no longer stand in the way.
                state, rows = tx.lookup(self._scope, list(puts))
                growth = _growth(puts, rows)
            if state.bytes_used + growth > quota:
                raise QuotaExceeded(
                    f"quota exceeded for {self._scope}: {state.bytes_used} of {quota} bytes "
                    f"used, this write needs {growth} more (limit from {source})",
                    used=state.bytes_used,
                    limit=quota,
                    needed=growth,
                )
        version = state.last_version
        versions = {}
        for key, put in puts.items():
            if put is None:
                if key in rows:
                    tx.remove(self._scope, [key], now)
                continue
            old = rows.get(key)
            version += 1
            row = Stored(
                size=put.size,
                version=version,
                created_at=old.created_at if old is not None and old.live(now) else now,
                expires_at=put.expires_at,
                value=None,
                metadata=put.metadata,
                content_type=put.content_type,
            )
            tx.put(self._scope, key, put.value, row, now)
            versions[key] = version
        return versions

    def _check_batch(self, keys: Iterable[str]) -> list[str]:
        wanted = check_keys(keys)
        maximum = self._settings.max_batch_items
        if len(wanted) > maximum:
            raise InvalidArgument(
                f"a batch holds at most {maximum} keys (setting PLUGINKV_MAX_BATCH_ITEMS), "
                f"got {len(wanted)}"
            )
        return wanted


def _growth(puts: Mapping[str, Put | None], rows: Mapping[str, Stored]) -> int:
    """Bytes a write adds over what is stored (overwrites count the difference, deletes
    what they free)."""
    return sum(
        (0 if put is None else put.size) - (0 if key not in rows else rows[key].size)
        for key, put in puts.items()
    )


def _require(
    key: str,
    row: Stored | None,
    now: float,
    if_version: int | None,
    if_absent: bool,
    if_exists: bool,
) -> None:
    actual = row.version if row is not None and row.live(now) else None
    if if_exists and actual is None:
        raise VersionConflict(
            f"key {key!r} is absent; if_exists refused the write",
            key=key,
            expected=None,
            actual=None,
        )
    if if_absent and actual is not None:
        raise VersionConflict(
            f"key {key!r} already holds a value (version {actual}); if_absent refused the write",
            key=key,
            expected=None,
            actual=actual,
        )
    if if_version is not None and actual != if_version:
        state = "is absent" if actual is None else f"is at version {actual}"
        raise VersionConflict(
            f"key {key!r} {state}, not version {if_version}; nothing was changed",
            key=key,
            expected=if_version,
            actual=actual,
        )


def _encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode("utf-8")).decode("ascii").rstrip("=")


def _decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = raw.decode("utf-8")
        check_key(key)
    except (binascii.Error, ValueError, TypeError, InvalidKey):
        raise InvalidArgument(f"cursor {cursor!r} is not one that keys() returned") from None
    return key


if TYPE_CHECKING:  # mypy holds the class to the Protocol of the API (api.py)
    from .api import ChangesAPI, StorageAPI

    def _meets_the_protocol(storage: Storage) -> StorageAPI:
        return storage

    def _meets_the_changes_protocol(storage: Storage) -> ChangesAPI:
        return storage
