"""The embedded default backend: one SQLite file in WAL mode.

Why it looks the way it does:

* One connection per thread (``sqlite3`` connections must not be shared while
  in use) and per process: after ``fork`` the child opens its own, because a
  SQLite connection must never cross a fork.
* Pragmas are applied to every new connection; ``synchronous`` is a setting
  (``FULL`` by default: a write that returned survives power loss), and so is
  ``mmap_size`` (reads of large values through mmap).
* Writes run in ``BEGIN IMMEDIATE`` so the write lock is taken before the
  first read; the read-check-write of quota and compare-and-set is therefore
  atomic across threads and processes.  Waiting for the lock is bounded by
  ``busy_timeout``; past it the caller gets ``BackendUnavailable``.
* Single-row reads run in autocommit; multi-statement reads in a deferred
  transaction, which in WAL mode is one snapshot.
* A full disk must not lock the data in: the store holds a reserve file
  beside the database and releases it at the first SQLITE_FULL, so deletes
  have room; writes that add data get ``DiskFull`` (``full_disk.py``).
* The database, its ``-wal``, ``-shm`` and reserve are 0600, its new directory
  0700 (``private_files.py``): SQLite gives ``-wal`` and ``-shm`` the mode of
  the database file, so creating that one 0600 is enough.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from ..errors import BackendUnavailable, DiskFull, PluginKVError, ReadOnly
from ..keys import Scope
from ..models import Change, Entry, EntryMeta
from ..private_files import FILE_MODE, create_private_file, private_dir, tighten
from . import change_log
from .base import Backend, ChangeListener, ScopeState, Stored, WakeScopes, WriteTx, iter_chunks
from .change_log import Removed, changes_statement, log_removed, to_changes
from .driver_errors import Translated
from .full_disk import SUFFIX as RESERVE_SUFFIX
from .full_disk import FullDisk
from .migrations import MIGRATIONS, MIGRATIONS_TABLE, Migration
from .read_only import SETTING as READ_ONLY_SETTING
from .read_only import check_schema
from .sql_rows import entry, entry_meta
from .sql_templates import (
    remove_prefix_statement,
    scan_statement,
)
from .sqlite_statements import (
    CHUNK as _CHUNK,
)
from .sqlite_statements import (
    CREATE_MIGRATIONS as _CREATE_MIGRATIONS,
)
from .sqlite_statements import (
    DELETE_ONE as _DELETE_ONE,
)
from .sqlite_statements import (
    EXISTS as _EXISTS,
)
from .sqlite_statements import (
    GET as _GET,
)
from .sqlite_statements import (
    GET_LARGE as _GET_LARGE,
)
from .sqlite_statements import (
    GET_MANY as _GET_MANY,
)
from .sqlite_statements import (
    GET_META as _GET_META,
)
from .sqlite_statements import (
    GET_VALUE as _GET_VALUE,
)
from .sqlite_statements import (
    HAS_MIGRATIONS as _HAS_MIGRATIONS,
)
from .sqlite_statements import (
    LOOKUP_MANY as _LOOKUP_MANY,
)
from .sqlite_statements import (
    LOOKUP_ONE as _LOOKUP_ONE,
)
from .sqlite_statements import (
    LOOKUP_ONE_WITH_VALUE as _LOOKUP_ONE_WITH_VALUE,
)
from .sqlite_statements import (
    PRUNE_BY_TIME as _PRUNE_BY_TIME,
)
from .sqlite_statements import (
    PUT as _PUT,
)
from .sqlite_statements import (
    PUT_NOW as _PUT_NOW,
)
from .sqlite_statements import (
    RAISE_LAST_VERSION as _RAISE_LAST_VERSION,
)
from .sqlite_statements import (
    RELEASE as _RELEASE,
)
from .sqlite_statements import (
    REMOVE as _REMOVE,
)
from .sqlite_statements import (
    REVOKE as _REVOKE,
)
from .sqlite_statements import (
    ROLLBACK_TO as _ROLLBACK_TO,
)
from .sqlite_statements import (
    SAVEPOINT as _SAVEPOINT,
)
from .sqlite_statements import (
    SET_QUOTA as _SET_QUOTA,
)
from .sqlite_statements import (
    SQL as _SQL,
)
from .sqlite_statements import (
    SQLITE_FULL as _SQLITE_FULL,
)
from .sqlite_statements import (
    STATE as _STATE,
)
from .sqlite_statements import (
    SWEEP as _SWEEP,
)
from .sqlite_turns import TURNS_SUFFIX, WriteTurns
from .sqlite_watch import DataVersionPoller

__all__ = ["SQLiteBackend"]

logger = logging.getLogger(__name__)


class _SQLiteTx(WriteTx):
    def __init__(self, conn: sqlite3.Connection, backend: SQLiteBackend) -> None:
        self._conn = conn
        self._backend = backend

    # -- reads -----------------------------------------------------------------
    def get_many(self, scope: Scope, keys: Sequence[str], now: float) -> list[Entry]:
        found: list[Entry] = []
        for chunk in iter_chunks(list(dict.fromkeys(keys)), _CHUNK):
            marks = ",".join("?" * len(chunk))
            cursor = self._conn.execute(
                _GET_MANY.format(marks=marks), (scope.workspace, scope.plugin, *chunk, now)
            )
            found.extend(entry(key, value, rest) for key, value, *rest in cursor)
        return found

    def scan(
        self, scope: Scope, prefix: str, after: str | None, limit: int, now: float
    ) -> list[EntryMeta]:
        sql, params = scan_statement(_SQL, scope, prefix, after, limit, now)
        return [entry_meta(key, rest) for key, *rest in self._conn.execute(sql, params)]

    def scope_state(self, scope: Scope) -> ScopeState:
        row = self._conn.execute(_STATE, (scope.workspace, scope.plugin)).fetchone()
        return ScopeState() if row is None else ScopeState(*row)

    def expired_totals(self, scope: Scope, now: float) -> tuple[int, int]:
        count, size = self._conn.execute(
            _SQL.expired_totals, (scope.workspace, scope.plugin, now)
        ).fetchone()
        return int(count), int(size)

    def scopes(self) -> list[tuple[Scope, ScopeState]]:
        cursor = self._conn.execute(_SQL.scopes)
        return [(Scope(ws, plugin), ScopeState(*rest)) for ws, plugin, *rest in cursor]

    def token_revocations(self) -> dict[Scope, float]:
        cursor = self._conn.execute(_SQL.token_revocations)
        return {Scope(ws, plugin): at for ws, plugin, at in cursor}

    def oldest_change(self, scope: Scope) -> int | None:
        row = self._conn.execute(_SQL.oldest_change, (scope.workspace, scope.plugin)).fetchone()
        return None if row[0] is None else int(row[0])

    def changes(self, scope: Scope, prefix: str, after: int, upto: int, limit: int) -> list[Change]:
        sql, params = changes_statement(scope, prefix, after, upto, limit)
        return to_changes(self._conn.execute(sql, params))

    # -- writes ----------------------------------------------------------------
    def lookup(
        self, scope: Scope, keys: Sequence[str], *, with_values: bool = False
    ) -> tuple[ScopeState, dict[str, Stored]]:
        if len(keys) == 1:
            sql = _LOOKUP_ONE_WITH_VALUE if with_values else _LOOKUP_ONE
            workspace, plugin = scope.workspace, scope.plugin
            row = self._conn.execute(
                sql, (workspace, plugin, workspace, plugin, keys[0])
            ).fetchone()
            state = ScopeState() if row[0] is None else ScopeState(*row[:5])
            if row[5] is None:
                return state, {}
            return state, {keys[0]: Stored(*row[5:])}
        state = self.scope_state(scope)
        found: dict[str, Stored] = {}
        value_column = "value" if with_values else "NULL"
        for chunk in iter_chunks(list(dict.fromkeys(keys)), _CHUNK):
            marks = ",".join("?" * len(chunk))
            cursor = self._conn.execute(
                _LOOKUP_MANY.format(value=value_column, marks=marks),
                (scope.workspace, scope.plugin, *chunk),
            )
            for key, *row in cursor:
                found[key] = Stored(*row)
        return state, found

    def put(self, scope: Scope, key: str, value: bytes, row: Stored, updated_at: float) -> None:
        self._backend._before_add()
        self._conn.execute(
            _PUT,
            (
                scope.workspace,
                scope.plugin,
                key,
                row.size,
                row.version,
                row.created_at,
                updated_at,
                row.expires_at,
                row.metadata,
                row.content_type,
                value,
            ),
        )

    def remove(self, scope: Scope, keys: Sequence[str], now: float) -> None:
        self._backend._before_delete()
        removed: list[Removed] = []
        for chunk in iter_chunks(list(dict.fromkeys(keys)), _CHUNK):
            marks = ",".join("?" * len(chunk))
            sql = _REMOVE.format(marks=marks)
            removed += self._conn.execute(sql, (scope.workspace, scope.plugin, *chunk)).fetchall()
        self._log(scope, removed, now)

    def remove_prefix(self, scope: Scope, prefix: str, now: float) -> int:
        self._backend._before_delete()
        sql, params = remove_prefix_statement(_SQL, scope, prefix)
        removed = self._conn.execute(sql, params).fetchall()
        self._log(scope, removed, now)
        return sum(1 for _, _, expires_at in removed if expires_at is None or expires_at > now)

    def purge_expired(self, scope: Scope, now: float) -> int:
        self._backend._before_delete()
        params = (scope.workspace, scope.plugin, now)
        removed = self._conn.execute(_SQL.purge_expired, params).fetchall()
        self._log(scope, removed, now)
        return len(removed)

    def sweep_expired(self, now: float, limit: int) -> int:
        self._backend._before_delete()
        by_scope: dict[Scope, list[Removed]] = {}
        rows = self._conn.execute(_SWEEP, (now, limit)).fetchall()
        for workspace, plugin, key, version, expires_at in rows:
            by_scope.setdefault(Scope(workspace, plugin), []).append((key, version, expires_at))
        for scope, removed in by_scope.items():
            self._log(scope, removed, now)
        return len(rows)

    def prune_changes(self, before: float, keep: int, limit: int) -> int:
        pruned = self._conn.execute(_PRUNE_BY_TIME, (before, limit)).rowcount
        if pruned < limit:
            pruned += self._conn.execute(_SQL.prune_by_count, (keep, limit - pruned)).rowcount
        return pruned

    def _log(self, scope: Scope, removed: list[Removed], now: float) -> None:
        if self._backend._lossy_log():
            if removed:
                self._conn.execute(change_log.FORGET_LOG, (scope.workspace, scope.plugin))
                self._bump(scope, len(removed))
            return
        log_removed(self._bump, self._insert_changes, scope, removed, now)

    def _bump(self, scope: Scope, count: int) -> int:
        params = (count, scope.workspace, scope.plugin)
        return int(self._conn.execute(_SQL.bump_seq, params).fetchone()[0])

    def _insert_changes(self, rows: list[tuple[object, ...]]) -> None:
        self._conn.executemany(_SQL.insert_change, rows)

    def set_quota_override(self, scope: Scope, quota_bytes: int | None) -> None:
        self._conn.execute(_SET_QUOTA, (scope.workspace, scope.plugin, quota_bytes))

    def revoke_tokens(self, scope: Scope, at: float) -> float:
        row = self._conn.execute(_REVOKE, (scope.workspace, scope.plugin, at)).fetchone()
        return float(row[0])

    def raise_last_version(self, scope: Scope, version: int) -> None:
        self._conn.execute(_RAISE_LAST_VERSION, (scope.workspace, scope.plugin, version))

    def drop_scope(self, scope: Scope, now: float) -> int:
        self._backend._before_delete()
        params = (scope.workspace, scope.plugin)
        removed = self._conn.execute(_SQL.drop_entries, params).fetchall()
        self._log(scope, removed, now)
        self._conn.execute(_SQL.clear_quota, params)
        return len(removed)


class _Transaction:
    """BEGIN on enter; COMMIT on a normal exit, ROLLBACK on any exception.

    Inside ``SQLiteBackend.group()`` the transaction is already open: this is
    then a savepoint, released on success and rolled back to on error, so the
    block still succeeds or fails alone.

    A class rather than a generator context manager: it is on every write's path.
    """

    __slots__ = ("_backend", "_begin", "_conn", "_nested", "_turn")

    def __init__(self, backend: SQLiteBackend, begin: str) -> None:
        self._backend = backend
        self._begin = begin

    def __enter__(self) -> _SQLiteTx:
        backend = self._backend
        self._conn = conn = backend._write_conn()
        self._nested = nested = conn.in_transaction
        # A write's own transaction takes its turn among writers first (sqlite_turns.py).
        self._turn = turn = None if nested or self._begin == "BEGIN" else backend._turns
        if turn is not None:
            turn.__enter__()
        try:
            with backend._errors:
                conn.execute(_SAVEPOINT if nested else self._begin)
        except BaseException:
            if turn is not None:
                turn.__exit__(None, None, None)
            raise
        return _SQLiteTx(conn, backend)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn = self._conn
        turn = self._turn
        if exc is None:
            try:
                conn.execute(_RELEASE if self._nested else "COMMIT")
            except sqlite3.Error as commit_error:
                exc = commit_error
            else:
                if turn is not None:
                    turn.__exit__(None, None, None)
                    # Writes only: reads run on the service's event loop, where a
                    # checkpoint must not wait for the writer.
                    self._backend._after_commit(conn)
                return
        try:
            if self._nested:
                conn.execute(_ROLLBACK_TO)
                conn.execute(_RELEASE)
            else:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite may have rolled back already (e.g. after SQLITE_FULL)
        finally:
            if turn is not None:
                turn.__exit__(None, None, None)
        self._backend._errors.raise_translated(exc)


class SQLiteBackend(Backend):
    """Entries in one SQLite database file."""

    name = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        busy_timeout_ms: int = 10_000,
        mmap_bytes: int = 0,
        read_only: bool = False,
        disk_reserve_bytes: int = 0,
        watch_poll_seconds: float = 0.2,
    ) -> None:
        self.path = str(path)
        self.read_only = read_only
        self._watch_poll_seconds = watch_poll_seconds
        self._synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._mmap_bytes = int(mmap_bytes)
        self._closed = False
        # Every sqlite3 error leaves this backend through _unavailable.
        self._errors = Translated(sqlite3.Error, self._unavailable)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._connections: list[tuple[weakref.ref[threading.Thread], sqlite3.Connection]] = []
        self._full_disk: FullDisk | None = None
        shared = not read_only and self.path != ":memory:"
        self._turns = WriteTurns(
            self.path if shared else None, busy_timeout_ms / 1000, self._locked_too_long
        )
        if read_only:
            if not Path(self.path).is_file():
                raise ReadOnly(
                    f"SQLite database {self.path} does not exist, and a read-only store "
                    f"cannot create it: start pluginkv once without {READ_ONLY_SETTING}"
                )
        elif self.path != ":memory:":
            database = Path(self.path)
            try:
                private_dir(database.parent)
                create_private_file(database)
                self._tighten_files()
            except OSError as exc:
                raise BackendUnavailable(
                    f"cannot create SQLite database {self.path} or its directory: {exc}"
                ) from exc
            self._full_disk = FullDisk(self.path, disk_reserve_bytes)
        _forget_after_fork.add(self)
        if read_only:
            check_schema(f"SQLite database {self.path}", self.applied_migrations())
        else:
            self._migrate()
        if self._full_disk is not None:
            self._full_disk.open(self._conn())

    def _tighten_files(self) -> None:
        names = ("", "-wal", "-shm", RESERVE_SUFFIX, TURNS_SUFFIX)
        changed = tighten((Path(self.path + name), FILE_MODE) for name in names)
        if changed:
            logger.warning(
                "tightened the files of SQLite database %s so only their owner can read them: %s",
                self.path,
                ", ".join(changed),
            )

    # -- connections -----------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        try:
            conn: sqlite3.Connection = self._local.conn
        except AttributeError:
            conn = self._connect()
        return conn

    def _write_conn(self) -> sqlite3.Connection:
        """This thread's connection for a write; refuses once a group's transaction is lost."""
        conn = self._conn()
        state = self._local.__dict__
        if self._full_disk is not None and state.get("cap", 0) != self._full_disk.cap:
            with self._errors:
                self._full_disk.apply(conn)
            state["cap"] = self._full_disk.cap
        if state.get("grouped") and not conn.in_transaction:
            # SQLite rolled the group back (an I/O error, a full disk): a write
            # now would commit on its own, outside the group, and a retry of
            # the group would then apply it twice.
            raise BackendUnavailable(
                f"SQLite database {self.path} rolled back the transaction of this group of writes"
            )
        return conn

    def _connect(self) -> sqlite3.Connection:
        if self._closed:
            raise BackendUnavailable(f"the store on {self.path} is closed")
        try:
            return self._open_connection()
        except DiskFull:
            # Opening may need room (the -shm file, recovering the WAL): the
            # reserve released by the failure gives it that room.
            return self._open_connection()

    def _open_connection(self) -> sqlite3.Connection:
        # Read-only, SQLite itself refuses any write: a second guarantee
        # beside ReadOnlyBackend, and the file keeps its bytes and mtime.
        where = self._where()
        with self._errors:
            conn = sqlite3.connect(
                where,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # only so close() may close it from another thread
                timeout=self._busy_timeout_ms / 1000,
                uri=self.read_only,
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            # Setting the journal mode writes the file's header; a read-only
            # connection reads whatever mode the file is in.
            query = "PRAGMA journal_mode" if self.read_only else "PRAGMA journal_mode = WAL"
            mode = conn.execute(query).fetchone()[0]
            if mode.lower() != "wal" and self.path != ":memory:" and not self.read_only:
                raise BackendUnavailable(f"SQLite database {self.path} refuses WAL mode ({mode})")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            # Reads through mmap skip a read() call per page: a 10 MiB value
            # spans 2,560 pages of 4 KiB, and SQLite's own cache holds 2 MiB.
            # Writes still go through write() and fsync.
            conn.execute(f"PRAGMA mmap_size = {self._mmap_bytes}")
        with self._lock:
            # Connections of threads that have ended are closed here, not leaked.
            alive = []
            for thread_ref, other in self._connections:
                thread = thread_ref()
                if thread is not None and thread.is_alive():
                    alive.append((thread_ref, other))
                else:
                    other.close()
            alive.append((weakref.ref(threading.current_thread()), conn))
            self._connections = alive
        self._local.conn = conn
        return conn

    def _forget_connections(self) -> None:
        # In a forked child the parent's connections are not ours to use, nor
        # to close (closing may checkpoint or unlink the parent's WAL): keep them
        # referenced for the life of the child and open fresh ones.
        _INHERITED_CONNECTIONS.extend(conn for _, conn in self._connections)
        inherited = getattr(self._local, "conn", None)
        if inherited is not None:
            _INHERITED_CONNECTIONS.append(inherited)
        self._local = threading.local()
        self._connections = []
        self._lock = threading.Lock()
        self._turns.forget()

    def _migrate(self) -> None:
        conn = self._conn()
        with self._errors:
            conn.execute(_CREATE_MIGRATIONS)
            for migration in MIGRATIONS:
                with self._turns:
                    self._migrate_one(conn, migration)

    def _migrate_one(self, conn: sqlite3.Connection, migration: Migration) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            done = conn.execute(_SQL.migration_done, (migration.name,)).fetchone()
            if done is None:
                for statement in migration.sqlite:
                    conn.execute(statement)
                conn.execute(_SQL.record_migration, (migration.name, time.time()))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def applied_migrations(self) -> list[str]:
        conn = self._conn()
        with self._errors:
            if not conn.execute(_HAS_MIGRATIONS, (MIGRATIONS_TABLE,)).fetchone():
                return []
            rows = conn.execute(_SQL.applied_migrations).fetchall()
        return [name for (name,) in rows]

    # -- the contract ----------------------------------------------------------
    # Point reads catch the driver's error themselves, for the translation ``self._errors``
    # applies elsewhere: a ``with`` took get from 0.77x to 0.72x of raw sqlite3 and exist
    # from 0.71x to 0.67x (bench_engine.py, quiet machine; docs/benchmarks.md).
    def get(self, scope: Scope, key: str, now: float) -> Entry | None:
        params = (scope.workspace, scope.plugin, key, now)
        try:
            conn = self._conn()
            row = conn.execute(_GET, params).fetchone()
            if row is not None and row[0] is None:
                row = self._read_large(conn, params)
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from exc
        return None if row is None else entry(key, row[0], row[1:8])

    def _point(self, sql: str, params: tuple[object, ...]) -> Any:
        try:
            return self._conn().execute(sql, params).fetchone()
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from exc

    def get_meta(self, scope: Scope, key: str, now: float) -> EntryMeta | None:
        row = self._point(_GET_META, (scope.workspace, scope.plugin, key, now))
        return None if row is None else entry_meta(key, row)

    def get_value(self, scope: Scope, key: str, now: float) -> bytes | None:
        row = self._point(_GET_VALUE, (scope.workspace, scope.plugin, key, now))
        if row is None:
            return None
        if row[0] is not None:
            return row[0]  # type: ignore[no-any-return]
        entry = self.get(scope, key, now)  # a large value
        return None if entry is None else entry.value

    def _read_large(
        self, conn: sqlite3.Connection, params: tuple[object, ...]
    ) -> tuple[object, ...] | None:
        """The row with its value read through the blob API, all in one snapshot."""
        own = not conn.in_transaction
        if own:
            conn.execute("BEGIN")
        try:
            row = conn.execute(_GET_LARGE, params).fetchone()  # again: it may have changed
            if row is None:
                return None
            with conn.blobopen("pluginkv_entries", "value", row[-1], readonly=True) as blob:
                return (blob.read(), *row[1:])
        finally:
            if own:
                conn.execute("COMMIT")

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
        workspace, plugin = scope.workspace, scope.plugin
        params = (
            workspace,
            plugin,
            key,
            size,
            size,
            quota,
            workspace,
            plugin,
            now,
            now,
            expires_at,
            value,
        )
        if self._full_disk is not None and self._full_disk.full:
            self._full_disk.before_add()
        conn = self._write_conn()
        with self._errors:
            try:
                # fetchall: the statement runs to its end before the call returns.
                if conn.in_transaction:  # a group's: its turn is taken
                    rows = conn.execute(_PUT_NOW, params).fetchall()
                else:
                    with self._turns:
                        rows = conn.execute(_PUT_NOW, params).fetchall()
            except sqlite3.IntegrityError:
                return None  # the NULL version of a write that does not fit
        return int(rows[0][0])

    def delete_now(self, scope: Scope, key: str, now: float) -> None:
        # One statement: the view's trigger deletes the row and logs its change
        # (migration 0005), so both commit together without a BEGIN and COMMIT
        # of our own.  Within a group, or while a full disk makes deletes drop the
        # log, the transactional path does what it does for any delete.
        conn = self._write_conn()
        if not conn.in_transaction:
            self._before_delete()
            if not self._lossy_log():
                with self._errors, self._turns:
                    conn.execute(_DELETE_ONE, (scope.workspace, scope.plugin, key, now))
                self._after_commit(conn)
                return
        with self.write() as tx:
            tx.remove(scope, [key], now)

    def exists(self, scope: Scope, key: str, now: float) -> bool:
        return self._point(_EXISTS, (scope.workspace, scope.plugin, key, now)) is not None

    def read(self) -> _Transaction:
        return _Transaction(self, "BEGIN")

    @contextmanager
    def group(self) -> Iterator[None]:
        conn = self._write_conn()
        if conn.in_transaction:  # inside another group: that one commits
            yield
            return
        turn = self._turns
        turn.__enter__()
        try:
            with self._errors:
                conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            turn.__exit__(None, None, None)
            raise
        self._local.grouped = True
        try:
            yield
            if not conn.in_transaction:
                raise BackendUnavailable(
                    f"SQLite database {self.path} rolled back the transaction of this group "
                    "of writes"
                )
            conn.execute("COMMIT")
        except BaseException as exc:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # already rolled back
            self._errors.raise_translated(exc)
            raise
        finally:
            self._local.grouped = False
            turn.__exit__(None, None, None)
        self._after_commit(conn)

    def write(self) -> _Transaction:
        return _Transaction(self, "BEGIN IMMEDIATE")

    def _where(self) -> str:
        """What ``sqlite3.connect`` opens: read-only, a URI that says so."""
        return f"{Path(self.path).absolute().as_uri()}?mode=ro" if self.read_only else self.path

    def listen_for_changes(self, wake: WakeScopes) -> ChangeListener | None:
        if self.path == ":memory:":
            return None  # no other connection can reach it
        where = self._where()
        with self._errors:
            return DataVersionPoller(where, self._watch_poll_seconds, wake, uri=self.read_only)

    def _unavailable(self, exc: sqlite3.Error) -> PluginKVError:
        """What a ``sqlite3`` error leaves this backend as (``self._errors`` raises it)."""
        full = getattr(exc, "sqlite_errorcode", 0) & 0xFF == _SQLITE_FULL
        if full and self._full_disk is not None:
            return self._full_disk.on_full()
        text = str(exc)
        if "locked" in text or "busy" in text:
            return self._locked_too_long()
        return BackendUnavailable(f"SQLite database {self.path} failed: {text}")

    def _locked_too_long(self) -> BackendUnavailable:
        return BackendUnavailable(
            f"SQLite database {self.path} is locked by another writer for longer than "
            f"{self._busy_timeout_ms} ms (setting PLUGINKV_SQLITE_BUSY_TIMEOUT_MS)"
        )

    # -- a full disk (full_disk.py) ---------------------------------------------
    def disk_full(self) -> DiskFull | None:
        return None if self._full_disk is None else self._full_disk.status()

    def _before_add(self) -> None:
        if self._full_disk is not None and self._full_disk.full:
            self._full_disk.before_add()
            self._write_conn()  # applies the page limit, which may have changed with the state

    def _lossy_log(self) -> bool:
        """Whether deletes drop their scope's change log rather than add to it: while the
        disk is full, as a change row may need a page the disk cannot give, and deletes
        must still run.  The scope's numbers move on, so a reader behind them gets
        ``ChangesExpired`` and reads again: changes are lost, never skipped unseen."""
        return self._full_disk is not None and self._full_disk.full

    def _before_delete(self) -> None:
        if self._full_disk is not None:
            self._full_disk.before_delete()

    def _after_commit(self, conn: sqlite3.Connection) -> None:
        if self._full_disk is not None and self._full_disk.full:
            self._full_disk.after_commit(conn)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for _, conn in connections:
            conn.close()
        self._local = threading.local()
        self._turns.close()


class _ForkRegistry:
    """Backends to reset in a forked child, held weakly so they can be collected."""

    def __init__(self) -> None:
        self._backends: weakref.WeakSet[SQLiteBackend] = weakref.WeakSet()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork)

    def add(self, backend: SQLiteBackend) -> None:
        self._backends.add(backend)

    def _after_fork(self) -> None:
        for backend in list(self._backends):
            backend._forget_connections()


_INHERITED_CONNECTIONS: list[sqlite3.Connection] = []
_forget_after_fork = _ForkRegistry()
