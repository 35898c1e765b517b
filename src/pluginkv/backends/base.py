"""The backend contract: the only code that talks to a database implements this.

A backend stores rows ``(scope, key) -> Stored`` and one ``ScopeState`` per
scope, and offers two kinds of transactions:

* ``read()`` yields a ``ReadTx`` that sees one consistent snapshot;
* ``write()`` yields a ``WriteTx``; writes are serialised per backend (or at
  least per scope) so that a read-check-write inside one transaction is
  atomic, and the transaction commits when the block ends normally and rolls
  back on any exception, ``BaseException`` included.

Single-statement reads (``get``, ``exists``) are also offered outside a
transaction, because they are the hot path.

A backend keeps each scope's counters (``ScopeState``) equal to what it
stores: every row it inserts, replaces or deletes — by any call, sweeps and
purges included — moves ``bytes_used``, ``key_count`` and ``last_version`` in
the same transaction (SQL backends do it with triggers).  ``Storage`` decides
what may be written (quota, conditions, versions, TTL); the backend makes the
bookkeeping impossible to forget.

The two ``*_now`` methods are single-step fast paths for the commonest writes
(one statement, one round trip); ``Storage`` falls back to a transaction
whenever they decline.

Every row change is also recorded in the scope's change log, in the same
transaction: an insert or replace as ``set``, a delete as ``delete``, a row
reclaimed because it expired (``purge_expired``, ``sweep_expired``, the
expired rows under a prefix) as ``expire``.  Each change takes the scope's
next sequence number (``ScopeState.last_seq``), so the log of a scope is
gap-free and in commit order; a transaction rolled back takes its numbers
back with it.  ``at`` of a change is the engine's ``now`` (``updated_at`` of
a put).

``group()`` lets one thread run many writes in a single commit (the service's
writer thread does, so concurrent requests share one fsync).  Inside it every
write of that thread joins one transaction and ``write()`` becomes a nested
savepoint, so each call still succeeds or fails alone.
Every driver error leaves a backend as a ``BackendUnavailable`` (or another
``PluginKVError``), never as a driver exception and never as "absent": the SQL
backends run their driver calls inside one translating context manager each
(``driver_errors.py``), and take the statements their dialects share from
``sql_templates.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from ..errors import DiskFull
from ..keys import Scope
from ..models import Change, Entry, EntryMeta

__all__ = [
    "Backend",
    "ChangeListener",
    "ReadTx",
    "Reads",
    "ScopeState",
    "Stored",
    "WakeScopes",
    "WriteTx",
]


class Stored(NamedTuple):
    """A stored row as a write sees it, expired or not; ``value`` only when asked for.

    ``metadata`` is the entry's metadata as compact JSON text (``None``: none),
    as the backends store it; ``size`` counts it and ``content_type`` too.
    """

    size: int
    version: int
    created_at: float
    expires_at: float | None
    value: bytes | None
    metadata: str | None = None
    content_type: str | None = None

    def live(self, now: float) -> bool:
        return self.expires_at is None or self.expires_at > now


@dataclass(slots=True)
class ScopeState:
    """Counters of one scope, kept by the backend.

    ``bytes_used``/``key_count`` include expired rows not yet reclaimed.

    ``last_version`` only grows, so versions are never reused within a scope,
    not even after a delete: compare-and-set cannot be fooled by a re-created key.
    ``last_seq`` is the sequence number of the scope's latest change; it only
    grows too, purges included.
    """

    bytes_used: int = 0
    key_count: int = 0
    last_version: int = 0
    quota_override: int | None = None
    last_seq: int = 0


class ReadTx(ABC):
    @abstractmethod
    def get_many(self, scope: Scope, keys: Sequence[str], now: float) -> list[Entry]:
        """The live entries among ``keys``, in any order."""

    @abstractmethod
    def scan(
        self, scope: Scope, prefix: str, after: str | None, limit: int, now: float
    ) -> list[EntryMeta]:
        """Up to ``limit`` live entries whose key starts with ``prefix`` and sorts
        after ``after``, in UTF-8 byte order of the keys."""

    @abstractmethod
    def scope_state(self, scope: Scope) -> ScopeState:
        """The scope's counters (zeros for a scope that never stored anything)."""

    @abstractmethod
    def expired_totals(self, scope: Scope, now: float) -> tuple[int, int]:
        """``(count, bytes)`` of rows in the scope that have expired but are still stored."""

    @abstractmethod
    def scopes(self) -> list[tuple[Scope, ScopeState]]:
        """Every scope with a state row, ordered by workspace then plugin."""

    @abstractmethod
    def token_revocations(self) -> dict[Scope, float]:
        """Every scope whose tokens were revoked, with the moment of its latest revocation."""

    @abstractmethod
    def oldest_change(self, scope: Scope) -> int | None:
        """The sequence number of the scope's oldest change still kept; ``None``: none kept."""

    @abstractmethod
    def changes(self, scope: Scope, prefix: str, after: int, upto: int, limit: int) -> list[Change]:
        """Up to ``limit`` changes of the scope with ``after < seq <= upto`` whose key
        starts with ``prefix``, in ``seq`` order."""


class WriteTx(ReadTx):
    @abstractmethod
    def lookup(
        self, scope: Scope, keys: Sequence[str], *, with_values: bool = False
    ) -> tuple[ScopeState, dict[str, Stored]]:
        """The scope's state and the stored rows among ``keys`` (expired ones included)."""

    @abstractmethod
    def put(self, scope: Scope, key: str, value: bytes, row: Stored, updated_at: float) -> None:
        """Insert or replace one row (``row.value`` is ignored; ``value`` is stored, and
        ``row.metadata`` and ``row.content_type`` with it); logs a ``set`` at ``updated_at``."""

    @abstractmethod
    def remove(self, scope: Scope, keys: Sequence[str], now: float) -> None:
        """Delete these rows, each logged as a ``delete`` at ``now``; absent ones are ignored."""

    @abstractmethod
    def remove_prefix(self, scope: Scope, prefix: str, now: float) -> int:
        """Delete every row under ``prefix``; returns how many of them were live."""

    @abstractmethod
    def purge_expired(self, scope: Scope, now: float) -> int:
        """Delete the scope's expired rows; returns how many."""

    @abstractmethod
    def sweep_expired(self, now: float, limit: int) -> int:
        """Delete up to ``limit`` expired rows of any scope; returns how many."""

    @abstractmethod
    def set_quota_override(self, scope: Scope, quota_bytes: int | None) -> None:
        """Record (or with ``None`` clear) the scope's own quota."""

    @abstractmethod
    def prune_changes(self, before: float, keep: int, limit: int) -> int:
        """Drop up to ``limit`` logged changes of any scope committed before ``before`` or
        older than the ``keep`` latest of their scope; returns how many."""

    @abstractmethod
    def drop_scope(self, scope: Scope, now: float) -> int:
        """Delete every row (each logged as a ``delete`` at ``now``) and the quota override
        of the scope; returns how many rows.

        The version counter stays: versions handed out before are never handed
        out again, so an ETag or ``if_version`` from before cannot match after.
        """

    @abstractmethod
    def revoke_tokens(self, scope: Scope, at: float) -> float:
        """Record that the scope's tokens issued at or before ``at`` are revoked.

        The recorded moment never moves back (a replica with a slower clock
        cannot un-revoke a token); returns the moment now recorded.
        """

    @abstractmethod
    def raise_last_version(self, scope: Scope, version: int) -> None:
        """Raise the scope's ``last_version`` to ``version`` if it is below; never lower it.

        An import needs it: the store it came from may have given out versions
        to keys deleted since, and the next write here must not give them again.
        """


class Backend(ABC):
    """A database holding every scope's entries."""

    name: str
    # True when a read waits on another machine (a database server): the
    # service then runs reads on worker threads, so a slow or unreachable
    # database never stalls its event loop.  An embedded database answers a
    # point read in microseconds, less than a hop to a thread costs.
    reads_block: bool = False
    # True when the database itself orders concurrent writes from several
    # connections (a server with row locks): the service then runs writes on
    # several threads.  An embedded file admits one writer at a time, so there
    # they go to one thread, which commits the writes that queue up together.
    concurrent_writes: bool = False

    @abstractmethod
    def get(self, scope: Scope, key: str, now: float) -> Entry | None:
        """The live entry, or ``None`` when absent or expired."""

    @abstractmethod
    def get_value(self, scope: Scope, key: str, now: float) -> bytes | None:
        """The live entry's value only: the hot path of ``get``."""

    def get_meta(self, scope: Scope, key: str, now: float) -> EntryMeta | None:
        """The live entry without its value, or ``None`` when absent or expired.

        Backends whose values live in the database override it so that no
        value is read; this default suits values already in memory.
        """
        entry = self.get(scope, key, now)
        if entry is None:
            return None
        return EntryMeta(
            entry.key,
            entry.size,
            entry.version,
            entry.created_at,
            entry.updated_at,
            entry.expires_at,
            entry.metadata,
            entry.content_type,
        )

    @abstractmethod
    def exists(self, scope: Scope, key: str, now: float) -> bool:
        """Whether a live entry exists, without reading its value."""

    @abstractmethod
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
        """Store one entry unconditionally in a single step, if it fits; its new version.

        The entry gets the scope's next version; ``created_at`` is kept when it
        replaces a live row.  It fits when it does not grow the scope's stored
        bytes (expired rows included) or when those bytes plus the growth stay
        within the scope's quota override, else ``quota``.  Returns ``None``,
        having changed nothing, when it does not fit.
        """

    @abstractmethod
    def delete_now(self, scope: Scope, key: str, now: float) -> None:
        """Delete one row, if present, in a single step (logged as a ``delete`` at ``now``)."""

    @abstractmethod
    def applied_migrations(self) -> list[str]:
        """The versions (names, ``backends/migrations.py``) of the schema migrations this
        database has, in the order applied; ``[]`` for a database never migrated.

        A backend without a schema of its own has every migration's layout from birth
        and lists them all.
        """

    @abstractmethod
    def read(self) -> AbstractContextManager[ReadTx]:
        """A read-only transaction over one snapshot."""

    @abstractmethod
    def write(self) -> AbstractContextManager[WriteTx]:
        """A serialised read-write transaction; commits on success, rolls back on error."""

    def group(self) -> AbstractContextManager[None]:
        """Run this thread's writes inside the block in one transaction, committed at its end.

        Each write still succeeds or fails alone (``write()`` nests as a
        savepoint; a ``*_now`` statement is atomic by itself), and nothing is
        durable before the block ends.  When the block raises, or its commit
        fails, none of its writes remain: the caller must not report any of
        them as done.  The default runs each write as its own transaction,
        which satisfies the same contract.
        """
        return nullcontext()

    def disk_full(self) -> DiskFull | None:
        """Why writes that add data are refused now (the disk is full), else ``None``."""
        return None

    def listen_for_changes(self, wake: WakeScopes) -> ChangeListener | None:
        """Start telling ``wake`` of commits made through other connections to this database.

        Called once per store, when its first watch waits: ``wake(scopes)``
        names scopes that changed, ``wake(None)`` says "some scopes may have
        changed" (the caller then reads the ``last_seq`` of those it watches).
        ``None`` (the default): no other process can reach this database, so
        the store's own notices are all there is.  One listener per process,
        whatever the number of waiters.
        """
        return None

    @property
    def reads(self) -> Reads:
        """What serves the data path's reads (get, exist, listing, get_many): this backend,
        or a standby of its database when one is configured."""
        return self

    @abstractmethod
    def close(self) -> None:
        """Release connections and files; idempotent."""


WakeScopes = Callable[[Collection[Scope] | None], None]


class ChangeListener(Protocol):
    """What ``listen_for_changes`` starts: closed with the store."""

    def close(self) -> None: ...


class Reads(Protocol):
    """The reads a standby may serve in place of the backend (``Backend.reads``)."""

    def get(self, scope: Scope, key: str, now: float) -> Entry | None: ...
    def get_value(self, scope: Scope, key: str, now: float) -> bytes | None: ...
    def get_meta(self, scope: Scope, key: str, now: float) -> EntryMeta | None: ...
    def exists(self, scope: Scope, key: str, now: float) -> bool: ...
    def read(self) -> AbstractContextManager[ReadTx]: ...


def prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix``.

    UTF-8 byte order equals code point order, so incrementing the last code
    point that can be incremented gives the exclusive upper bound of a prefix
    range; ``None`` means "no upper bound".
    """
    chars = list(prefix)
    while chars:
        last = ord(chars.pop()) + 1
        if last == 0xD800:  # surrogates cannot be encoded; skip past them
            last = 0xE000
        if last <= 0x10FFFF:
            return "".join(chars) + chr(last)
    return None


def iter_chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    """Split ``items`` for statements with a bounded number of parameters."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
