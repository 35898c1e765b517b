"""An in-process backend on dicts: real semantics, nothing on disk.

Used for tests and for ``memory://`` stores.  One lock serialises every
transaction; a write transaction keeps an undo log and replays it backwards
if the block raises, so batches stay all-or-nothing here too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from ..keys import Scope
from ..models import Entry, EntryMeta
from .base import Backend, ReadTx, ScopeState, Stored, WriteTx

__all__ = ["MemoryBackend"]

_Rows = dict[str, tuple[bytes, Stored, float]]  # key -> (value, row, updated_at)


class _MemoryTx(WriteTx):
    def __init__(self, backend: MemoryBackend, undo: list[Callable[[], None]] | None) -> None:
        self._rows = backend._rows
        self._states = backend._states
        self._undo = undo

    def _scope_rows(self, scope: Scope) -> _Rows:
        rows = self._rows.get(scope)
        if rows is None:
            rows = self._rows[scope] = {}
        return rows

    # -- reads -----------------------------------------------------------------
    def get_many(self, scope: Scope, keys: Sequence[str], now: float) -> list[Entry]:
        rows = self._rows.get(scope, {})
        found = []
        for key in dict.fromkeys(keys):
            item = rows.get(key)
            if item is not None and item[1].live(now):
                found.append(_entry(key, *item))
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
        sizes = [row.size for _, row, _ in self._rows.get(scope, {}).values() if not row.live(now)]
        return len(sizes), sum(sizes)

    def scopes(self) -> list[tuple[Scope, ScopeState]]:
        ordered = sorted(self._states, key=lambda s: (s.workspace, s.plugin))
        return [(scope, _copy(self._states[scope])) for scope in ordered]

    # -- writes ----------------------------------------------------------------
    def _log(self, action: Callable[[], None]) -> None:
        assert self._undo is not None, "write in a read transaction"
        self._undo.append(action)

    def _set_row(self, scope: Scope, key: str, item: tuple[bytes, Stored, float] | None) -> None:
        rows = self._scope_rows(scope)
        previous = rows.get(key)
        if item is None:
            rows.pop(key, None)
        else:
            rows[key] = item

        def undo() -> None:
            if previous is None:
                rows.pop(key, None)
            else:
                rows[key] = previous

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
        self._set_row(scope, key, (value, row._replace(value=None), updated_at))

    def remove(self, scope: Scope, keys: Sequence[str]) -> None:
        for key in keys:
            self._set_row(scope, key, None)

    def remove_prefix(self, scope: Scope, prefix: str, now: float) -> tuple[int, int, int]:
        rows = self._rows.get(scope, {})
        doomed = [(k, item[1]) for k, item in rows.items() if k.startswith(prefix)]
        self.remove(scope, [k for k, _ in doomed])
        live = sum(1 for _, row in doomed if row.live(now))
        return live, len(doomed), sum(row.size for _, row in doomed)

    def purge_expired(self, scope: Scope, now: float) -> tuple[int, int]:
        rows = self._rows.get(scope, {})
        doomed = [(k, item[1].size) for k, item in rows.items() if not item[1].live(now)]
        self.remove(scope, [k for k, _ in doomed])
        return len(doomed), sum(size for _, size in doomed)

    def sweep_expired(self, now: float, limit: int) -> dict[Scope, tuple[int, int]]:
        freed: dict[Scope, tuple[int, int]] = {}
        budget = limit
        for scope in list(self._rows):
            if budget <= 0:
                break
            doomed = [
                (k, item[1].size) for k, item in self._rows[scope].items() if not item[1].live(now)
            ][:budget]
            if doomed:
                self.remove(scope, [k for k, _ in doomed])
                freed[scope] = (len(doomed), sum(size for _, size in doomed))
                budget -= len(doomed)
        return freed

    def save_scope(self, scope: Scope, state: ScopeState) -> None:
        previous = self._states.get(scope)
        self._states[scope] = _copy(state)

        def undo() -> None:
            if previous is None:
                self._states.pop(scope, None)
            else:
                self._states[scope] = previous

        self._log(undo)

    def drop_scope(self, scope: Scope) -> tuple[int, int]:
        rows = self._rows.get(scope, {})
        count, size = len(rows), sum(item[1].size for item in rows.values())
        self.remove(scope, list(rows))
        previous = self._states.pop(scope, None)
        if previous is not None:
            self._log(lambda: self._states.__setitem__(scope, previous))
        return count, size


class MemoryBackend(Backend):
    """Every scope's rows in a dict, guarded by one lock."""

    name = "memory"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._rows: dict[Scope, _Rows] = {}
        self._states: dict[Scope, ScopeState] = {}

    def get(self, scope: Scope, key: str, now: float) -> Entry | None:
        with self._lock:
            item = self._rows.get(scope, {}).get(key)
        if item is None or not item[1].live(now):
            return None
        return _entry(key, *item)

    def exists(self, scope: Scope, key: str, now: float) -> bool:
        with self._lock:
            item = self._rows.get(scope, {}).get(key)
        return item is not None and item[1].live(now)

    @contextmanager
    def read(self) -> Iterator[ReadTx]:
        with self._lock:
            yield _MemoryTx(self, None)

    @contextmanager
    def write(self) -> Iterator[WriteTx]:
        with self._lock:
            undo: list[Callable[[], None]] = []
            try:
                yield _MemoryTx(self, undo)
            except BaseException:
                for action in reversed(undo):
                    action()
                raise

    def close(self) -> None:
        pass


def _copy(state: ScopeState) -> ScopeState:
    return ScopeState(state.bytes_used, state.key_count, state.last_version, state.quota_override)


def _entry(key: str, value: bytes, row: Stored, updated_at: float) -> Entry:
    return Entry(key, value, row.version, row.size, row.created_at, updated_at, row.expires_at)


def _meta(key: str, row: Stored, updated_at: float) -> EntryMeta:
    return EntryMeta(key, row.size, row.version, row.created_at, updated_at, row.expires_at)
