"""An in-process backend on dicts: real semantics, nothing on disk.

Used for tests and for ``memory://`` stores.  One lock serialises every
transaction; a write transaction keeps an undo log and replays it backwards
if the block raises, so batches stay all-or-nothing here too.  Every row
change goes through ``_set_row``, which keeps the scope's counters, as SQL
triggers do for the SQLite backend, and logs the change.
"""

from __future__ import annotations

import bisect
import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from ..entry_metadata import load_metadata
from ..keys import Scope
from ..models import Change, ChangeKind, Entry, EntryMeta
from .base import Backend, ReadTx, ScopeState, Stored, WriteTx
from .migrations import MIGRATIONS

__all__ = ["MemoryBackend"]

_Item = tuple[bytes, Stored, float]  # (value, row, updated_at)
_Undo = list[Callable[[], None]]
V = TypeVar("V")


class _MemoryTx(WriteTx):
    def __init__(self, backend: MemoryBackend, undo: _Undo | None) -> None:
        self._rows = backend._rows
        self._states = backend._states
        self._revocations = backend._revocations
        self._changes = backend._changes
        self._undo = undo

    # -- reads -----------------------------------------------------------------
    def get_many(self, scope: Scope, keys: Sequence[str], now: float) -> list[Entry]:
        rows = self._rows.get(scope, {})
        found = []
        for key in dict.fromkeys(keys):
            item = rows.get(key)
            if item is not None and item[1].live(now):
                found.append(_entry(key, item))
        return found

    def scan(
        self, scope: Scope, prefix: str, after: str | None, limit: int, now: float
    ) -> list[EntryMeta]:
        rows = self._rows.get(scope, {})
        floor = after.encode() if after is not None else None
        page: list[EntryMeta] = []
        for key in sorted(rows, key=str.encode):
            if not key.startswith(prefix) or (floor is not None and key.encode() <= floor):
                continue
            _, row, updated_at = rows[key]
            if row.live(now):
                page.append(_meta(key, row, updated_at))
                if len(page) == limit:
                    break
        return page

    def scope_state(self, scope: Scope) -> ScopeState:
        state = self._states.get(scope)
        return ScopeState() if state is None else _copy(state)

    def expired_totals(self, scope: Scope, now: float) -> tuple[int, int]:
        rows = self._rows.get(scope, {}).values()
        sizes = [row.size for _, row, _ in rows if not row.live(now)]
        return len(sizes), sum(sizes)

    def scopes(self) -> list[tuple[Scope, ScopeState]]:
        ordered = sorted(self._states, key=lambda s: (s.workspace, s.plugin))
        return [(scope, _copy(self._states[scope])) for scope in ordered]

    def token_revocations(self) -> dict[Scope, float]:
        return dict(self._revocations)

    def oldest_change(self, scope: Scope) -> int | None:
        log = self._changes.get(scope)
        return log[0].seq if log else None

    def changes(self, scope: Scope, prefix: str, after: int, upto: int, limit: int) -> list[Change]:
        log = self._changes.get(scope, [])
        start = bisect.bisect_right(log, after, key=lambda change: change.seq)
        found: list[Change] = []
        for change in log[start:]:
            if change.seq > upto or len(found) == limit:
                break
            if change.key.startswith(prefix):
                found.append(change)
        return found

    # -- writes ----------------------------------------------------------------
    def _log(self, action: Callable[[], None]) -> None:
        assert self._undo is not None, "write in a read transaction"
        self._undo.append(action)

    def _set_row(
        self, scope: Scope, key: str, item: _Item | None, kind: ChangeKind, at: float
    ) -> None:
        """Insert, replace (``item``) or delete (``None``) a row, keeping the counters and
        logging the change as ``kind``."""
        rows = self._rows.setdefault(scope, {})
        previous = rows.get(key)
        if previous is None and item is None:
            return
        old_state = self._states.get(scope)
        state = ScopeState() if old_state is None else _copy(old_state)
        if previous is not None:
            state.bytes_used -= previous[1].size
            state.key_count -= 1
            del rows[key]
        if item is not None:
            rows[key] = item
            state.bytes_used += item[1].size
            state.key_count += 1
            state.last_version = max(state.last_version, item[1].version)
        state.last_seq += 1
        self._states[scope] = state
        changed = item if item is not None else previous
        assert changed is not None
        log = self._changes.setdefault(scope, [])
        log.append(Change(state.last_seq, key, kind, changed[1].version, at))

        def undo() -> None:
            log.pop()
            if previous is None:
                rows.pop(key, None)
            else:
                rows[key] = previous
            if old_state is None:
                self._states.pop(scope, None)
            else:
                self._states[scope] = old_state

        self._log(undo)

    def lookup(
        self, scope: Scope, keys: Sequence[str], *, with_values: bool = False
    ) -> tuple[ScopeState, dict[str, Stored]]:
        rows = self._rows.get(scope, {})
        found = {}
        for key in keys:
            item = rows.get(key)
            if item is not None:
                value, row, _ = item
                found[key] = row._replace(value=value if with_values else None)
        return self.scope_state(scope), found

    def put(self, scope: Scope, key: str, value: bytes, row: Stored, updated_at: float) -> None:
        previous = self._rows.get(scope, {}).get(key)
        if previous is not None and not previous[1].live(updated_at):
            # The old entry ended before this write: a watcher sees it expire, then the set.
            self._set_row(scope, key, None, "expire", updated_at)
        self._set_row(scope, key, (value, row._replace(value=None), updated_at), "set", updated_at)

    def remove(self, scope: Scope, keys: Sequence[str], now: float) -> None:
        # As the SQL backends log a statement's deletes: in key order, an expired row
        # as ``expire`` (backends/change_log.py).
        rows = self._rows.get(scope, {})
        for key in sorted({key for key in keys if key in rows}, key=str.encode):
            row = rows[key][1]
            self._set_row(scope, key, None, "delete" if row.live(now) else "expire", now)

    def _remove_where(
        self, scope: Scope, now: float, doomed: Callable[[str, Stored], bool]
    ) -> list[Stored]:
        """Delete the rows ``doomed`` picks, in key order (UTF-8 bytes), as the SQL backends
        do; a row that had expired is logged as ``expire``, any other as ``delete``."""
        rows = self._rows.get(scope, {})
        removed = [
            (key, rows[key][1]) for key in sorted(rows, key=str.encode) if doomed(key, rows[key][1])
        ]
        for key, row in removed:
            self._set_row(scope, key, None, "delete" if row.live(now) else "expire", now)
        return [row for _, row in removed]

    def remove_prefix(self, scope: Scope, prefix: str, now: float) -> int:
        removed = self._remove_where(scope, now, lambda key, _: key.startswith(prefix))
        return sum(1 for row in removed if row.live(now))

    def purge_expired(self, scope: Scope, now: float) -> int:
        return len(self._remove_where(scope, now, lambda _, row: not row.live(now)))

    def sweep_expired(self, now: float, limit: int) -> int:
        swept = 0
        for scope, rows in list(self._rows.items()):
            doomed = sorted(
                (key for key, item in rows.items() if not item[1].live(now)), key=str.encode
            )
            for key in doomed[: limit - swept]:
                self._set_row(scope, key, None, "expire", now)
                swept += 1
            if swept >= limit:
                break
        return swept

    def prune_changes(self, before: float, keep: int, limit: int) -> int:
        pruned = 0
        for log in list(self._changes.values()):
            if pruned >= limit:
                break
            drop = max(len(log) - keep, 0)
            while drop < len(log) and log[drop].at < before:
                drop += 1
            drop = min(drop, limit - pruned)
            if drop:
                dropped = log[:drop]
                del log[:drop]
                pruned += drop
                self._log(functools.partial(_unprune, log, dropped))
        return pruned

    def set_quota_override(self, scope: Scope, quota_bytes: int | None) -> None:
        self._change_state(scope, quota_override=quota_bytes)

    def revoke_tokens(self, scope: Scope, at: float) -> float:
        old = self._revocations.get(scope)
        recorded = at if old is None else max(old, at)
        self._revocations[scope] = recorded
        self._log(functools.partial(_restore, self._revocations, scope, old))
        return recorded

    def raise_last_version(self, scope: Scope, version: int) -> None:
        old = self._states.get(scope)
        if old is None or old.last_version < version:
            self._change_state(scope, last_version=version)

    def _change_state(self, scope: Scope, **fields: int | None) -> None:
        old_state = self._states.get(scope)
        state = ScopeState() if old_state is None else _copy(old_state)
        for name, value in fields.items():
            setattr(state, name, value)
        self._states[scope] = state
        self._log(functools.partial(_restore, self._states, scope, old_state))

    def drop_scope(self, scope: Scope, now: float) -> int:
        rows = self._rows.get(scope, {})
        count = len(rows)
        self.remove(scope, list(rows), now)
        if scope in self._states:
            self._change_state(scope, quota_override=None)
        return count


class MemoryBackend(Backend):
    """Every scope's rows in a dict, guarded by one lock."""

    name = "memory"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._rows: dict[Scope, dict[str, _Item]] = {}
        self._states: dict[Scope, ScopeState] = {}
        self._revocations: dict[Scope, float] = {}
        self._changes: dict[Scope, list[Change]] = {}

    def _live(self, scope: Scope, key: str, now: float) -> _Item | None:
        with self._lock:
            item = self._rows.get(scope, {}).get(key)
        return item if item is not None and item[1].live(now) else None

    def get(self, scope: Scope, key: str, now: float) -> Entry | None:
        item = self._live(scope, key, now)
        return None if item is None else _entry(key, item)

    def get_value(self, scope: Scope, key: str, now: float) -> bytes | None:
        item = self._live(scope, key, now)
        return None if item is None else item[0]

    def exists(self, scope: Scope, key: str, now: float) -> bool:
        return self._live(scope, key, now) is not None

    def put_now(
        self,
        scope: Scope,
        key: str,
        value: bytes,
        size: int,
        now: float,
        expires_at: float | None,
        quota: int,
    ) -> int | None:
        with self.write() as tx:
            state, rows = tx.lookup(scope, [key])
            old = rows.get(key)
            growth = size - (0 if old is None else old.size)
            limit = quota if state.quota_override is None else state.quota_override
            if growth > 0 and state.bytes_used + growth > limit:
                return None
            created_at = old.created_at if old is not None and old.live(now) else now
            row = Stored(size, state.last_version + 1, created_at, expires_at, None)
            tx.put(scope, key, value, row, now)
        return row.version

    def delete_now(self, scope: Scope, key: str, now: float) -> None:
        with self.write() as tx:
            tx.remove(scope, [key], now)

    @contextmanager
    def read(self) -> Iterator[ReadTx]:
        with self._lock:
            yield _MemoryTx(self, None)

    @contextmanager
    def write(self) -> Iterator[_MemoryTx]:
        with self._lock:
            undo: _Undo = []
            try:
                yield _MemoryTx(self, undo)
            except BaseException:
                for action in reversed(undo):
                    action()
                raise

    def applied_migrations(self) -> list[str]:
        # Nothing outlives the process: the rows are born in the latest layout.
        return [migration.name for migration in MIGRATIONS]

    def close(self) -> None:
        pass


def _restore(mapping: dict[Scope, V], scope: Scope, old: V | None) -> None:
    """Undo a change of ``mapping[scope]``: put ``old`` back, or remove the scope if none."""
    if old is None:
        mapping.pop(scope, None)
    else:
        mapping[scope] = old


def _unprune(log: list[Change], dropped: list[Change]) -> None:
    log[:0] = dropped


def _copy(state: ScopeState) -> ScopeState:
    return ScopeState(
        state.bytes_used,
        state.key_count,
        state.last_version,
        state.quota_override,
        state.last_seq,
    )


def _meta(key: str, row: Stored, updated_at: float) -> EntryMeta:
    return EntryMeta(
        key,
        row.size,
        row.version,
        row.created_at,
        updated_at,
        row.expires_at,
        load_metadata(row.metadata),
        row.content_type,
    )


def _entry(key: str, item: _Item) -> Entry:
    value, row, updated_at = item
    return Entry(
        key,
        value,
        row.version,
        row.size,
        row.created_at,
        updated_at,
        row.expires_at,
        load_metadata(row.metadata),
        row.content_type,
    )
