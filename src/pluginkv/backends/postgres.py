"""The PostgreSQL backend: psycopg 3 with a ``psycopg_pool`` connection pool.

Any number of processes (``pluginkv serve`` replicas) may share one database.
Why it looks the way it does:

* **One lock per scope: its row in ``pluginkv_scopes``.**  Every write locks
  the scope's row before it touches the scope's entries, so a read-check-write
  (quota, compare-and-set, set-if-absent, incr) is atomic across processes, and
  locks are always taken in the same order (scope, then entries): the trigger
  and the deletes that move the counters update a row the writer already
  holds, so writers never deadlock.  A row lock rather than an advisory lock
  because it lives with the data: on a distributed PostgreSQL (Citus) it sits
  on the shard of the workspace.
* **Transactions run in READ COMMITTED**: after the lock each statement takes
  a fresh snapshot, so it sees everything committed by the writers that held
  the lock before.  Reads of several statements (``read()``) run in one
  REPEATABLE READ snapshot.
* **The hot path is one statement, one round trip, in autocommit**: ``get``,
  ``exist``, a plain ``set`` (``_PUT_NOW`` locks the scope row, checks the
  quota and upserts in one statement) and a plain ``delete`` (``_DELETE_NOW``
  locks it, deletes, counts and logs).  They are prepared on the server,
  values travel as binary ``bytea``.
* **Fork-safe**: a forked child opens a pool of its own and never touches
  (nor closes) the parent's connections.
* **Driver errors become ``BackendUnavailable``**.  A connection that broke is
  discarded by the pool when it comes back; on the first such error the pool
  also checks its idle connections, so after the database restarted or killed
  the sessions, later calls get fresh connections instead of dead ones.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from ..errors import BackendUnavailable, DiskFull, PluginKVError
from ..keys import Scope
from ..models import Change, Entry, EntryMeta
from .base import Backend, ChangeListener, ScopeState, Stored, WakeScopes, WriteTx
from .change_log import Removed, changes_statement, to_changes
from .driver_errors import Translated
from .migrations import MIGRATIONS
from .postgres_connections import (
    Connection,
    _configure,
    _detach,
    _left_the_primary,
    _liveness,
    _session_options,
    describe_url,
)
from .postgres_listen import NotifyListener, notify_payload
from .postgres_statements import (
    _CAUGHT_UP,
    _CREATE_AND_LOCK,
    _CREATE_MIGRATIONS,
    _DELETE_NOW,
    _DROP_IF_UNUSED,
    _EXISTS,
    _EXPIRED_SCOPES,
    _GET,
    _GET_MANY,
    _GET_META,
    _GET_VALUE,
    _LOCK,
    _LOOKUP,
    _LOOKUP_WITH_VALUES,
    _PUT,
    _PUT_NOW,
    _RAISE_LAST_VERSION,
    _READ,
    _REMOVE,
    _REVOKE,
    _SET_QUOTA,
    _SQL,
    _STATE,
    _SWEEP_SCOPE,
    _TRY_LOCK,
)
from .read_only import check_schema
from .sql_rows import entry, entry_meta
from .sql_templates import remove_prefix_statement, render, scan_statement

__all__ = ["PostgresBackend", "describe_url"]


# Taken (per database) while migrations are checked and applied, so that two
# processes opening one fresh database never both apply one.
_MIGRATION_LOCK = 0x706C7567696E6B76  # "pluginkv"
_LARGE_RESULT = 64 * 1024  # bytes of a value past which a fresh cursor reads faster

_STANDBY_PAUSE = 1.0  # seconds the primary serves every read after the standby failed one


class _PostgresTx(WriteTx):
    """One transaction on one connection, sparing round trips where it can.

    ``BEGIN`` travels with the first statement, and rows to store wait until
    the next statement or the ``COMMIT`` and travel with it (pipeline mode):
    a conditional set or an ``incr`` is three round trips, not five, and
    the scope's lock is held for two of them.
    """

    def __init__(self, conn: Connection, begin: str) -> None:
        self._conn = conn
        self._begin: str | None = begin  # None once sent
        self._pending: list[tuple[Any, ...]] = []  # rows to store
        self._locked: set[Scope] = set()
        self._created: set[Scope] = set()

    def _execute(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> psycopg.Cursor[Any]:
        conn = self._conn
        if self._begin is None and not self._pending:
            return conn.execute(sql, params, prepare=True, binary=True)
        with conn.pipeline():  # one round trip; the results are read at the end of the block
            self._send_queued()
            cursor = conn.execute(sql, params, prepare=True, binary=True)
        return cursor

    def _send_queued(self) -> None:
        conn = self._conn
        if self._begin is not None:
            conn.execute(self._begin)
            self._begin = None
        for params in self._pending:
            conn.execute(_PUT, params, prepare=True)
        self._pending.clear()

    def commit(self) -> None:
        """Store the pending rows, drop unused scope rows and COMMIT, in one round trip."""
        if self._begin is not None and not self._pending:
            return  # nothing was sent: there is no transaction to commit
        conn = self._conn
        with conn.pipeline():
            self._send_queued()
            for scope in self._created:
                conn.execute(_DROP_IF_UNUSED, (scope.workspace, scope.plugin), prepare=True)
            conn.execute("COMMIT")

    def rollback(self) -> None:
        if self._begin is None:
            self._conn.execute("ROLLBACK")

    # -- reads -----------------------------------------------------------------
    def get_many(self, scope: Scope, keys: Sequence[str], now: float) -> list[Entry]:
        cursor = self._execute(_GET_MANY, (scope.workspace, scope.plugin, list(keys), now))
        return [entry(key, value, rest) for key, value, *rest in cursor]

    def scan(
        self, scope: Scope, prefix: str, after: str | None, limit: int, now: float
    ) -> list[EntryMeta]:
        sql, params = scan_statement(_SQL, scope, prefix, after, limit, now)
        return [entry_meta(key, rest) for key, *rest in self._execute(sql, params)]

    def scope_state(self, scope: Scope) -> ScopeState:
        row = self._execute(_STATE, (scope.workspace, scope.plugin)).fetchone()
        return ScopeState() if row is None else ScopeState(*row)

    def expired_totals(self, scope: Scope, now: float) -> tuple[int, int]:
        count, size = self._execute(
            _SQL.expired_totals, (scope.workspace, scope.plugin, now)
        ).fetchone() or (0, 0)
        return int(count), int(size)

    def scopes(self) -> list[tuple[Scope, ScopeState]]:
        cursor = self._execute(_SQL.scopes, ())
        return [(Scope(ws, plugin), ScopeState(*rest)) for ws, plugin, *rest in cursor]

    def token_revocations(self) -> dict[Scope, float]:
        cursor = self._execute(_SQL.token_revocations, ())
        return {Scope(ws, plugin): at for ws, plugin, at in cursor}

    def oldest_change(self, scope: Scope) -> int | None:
        row = self._execute(_SQL.oldest_change, (scope.workspace, scope.plugin)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def changes(self, scope: Scope, prefix: str, after: int, upto: int, limit: int) -> list[Change]:
        sql, params = changes_statement(scope, prefix, after, upto, limit)
        return to_changes(self._execute(render(sql, "postgres"), params))

    # -- the scope lock --------------------------------------------------------
    def _lock(self, scope: Scope) -> ScopeState:
        """Lock the scope's row (creating it if needed) and return its state."""
        params = (scope.workspace, scope.plugin)
        row = self._execute(_LOCK, params).fetchone()
        if row is None:
            row = self._execute(_CREATE_AND_LOCK, params).fetchone()
            assert row is not None, "an upsert with RETURNING returns its row"
            self._created.add(scope)
        self._locked.add(scope)
        return ScopeState(*row)

    def _ensure_locked(self, scope: Scope) -> None:
        if scope not in self._locked:
            self._lock(scope)

    # -- writes ----------------------------------------------------------------
    def lookup(
        self, scope: Scope, keys: Sequence[str], *, with_values: bool = False
    ) -> tuple[ScopeState, dict[str, Stored]]:
        state = self._lock(scope)
        cursor = self._execute(
            _LOOKUP_WITH_VALUES if with_values else _LOOKUP,
            (scope.workspace, scope.plugin, list(keys)),
        )
        return state, {key: Stored(*row) for key, *row in cursor}

    def put(self, scope: Scope, key: str, value: bytes, row: Stored, updated_at: float) -> None:
        self._ensure_locked(scope)
        self._pending.append(
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
            )
        )

    def remove(self, scope: Scope, keys: Sequence[str], now: float) -> None:
        if not keys:
            return
        self._ensure_locked(scope)
        self._remove(scope, _REMOVE, [scope.workspace, scope.plugin, list(keys)], now)

    def remove_prefix(self, scope: Scope, prefix: str, now: float) -> int:
        self._ensure_locked(scope)
        removed = self._remove(scope, *remove_prefix_statement(_SQL, scope, prefix), now)
        return sum(1 for _, _, expires_at in removed if expires_at is None or expires_at > now)

    def purge_expired(self, scope: Scope, now: float) -> int:
        self._ensure_locked(scope)
        params = [scope.workspace, scope.plugin, now]
        return len(self._remove(scope, _SQL.purge_expired, params, now))

    def prune_changes(self, before: float, keep: int, limit: int) -> int:
        pruned = self._execute(_SQL.prune_by_time, (before, limit, before, limit)).rowcount
        if pruned < limit:
            pruned += self._execute(_SQL.prune_by_count, (keep, limit - pruned)).rowcount
        return pruned

    def _remove(self, scope: Scope, sql: str, params: list[Any], now: float) -> list[Removed]:
        """Run one of the deletes, which count, log and announce what they remove
        (``postgres_statements._counted``); the rows removed."""
        ws, pl = scope.workspace, scope.plugin
        return self._execute(
            sql, [*params, ws, pl, notify_payload(scope), ws, pl, now, now]
        ).fetchall()

    def sweep_expired(self, now: float, limit: int) -> int:
        swept = 0
        for workspace, plugin, count in self._execute(_EXPIRED_SCOPES, (now, limit)).fetchall():
            scope = Scope(workspace, plugin)
            if scope not in self._locked:
                if self._execute(_TRY_LOCK, (workspace, plugin)).fetchone() is None:
                    continue  # busy: another sweeper or a writer has it; it is swept later
                self._locked.add(scope)
            params = {
                "ws": workspace,
                "pl": plugin,
                "now": now,
                "limit": count,
                "notice": notify_payload(scope),
            }
            swept += len(self._execute(_SWEEP_SCOPE, params).fetchall())
        return swept

    def set_quota_override(self, scope: Scope, quota_bytes: int | None) -> None:
        self._execute(_SET_QUOTA, (scope.workspace, scope.plugin, quota_bytes))

    def revoke_tokens(self, scope: Scope, at: float) -> float:
        row = self._execute(_REVOKE, (scope.workspace, scope.plugin, at)).fetchone()
        assert row is not None, "an upsert with RETURNING returns its row"
        return float(row[0])

    def raise_last_version(self, scope: Scope, version: int) -> None:
        self._ensure_locked(scope)  # creates the scope's row when it has none
        self._execute(_RAISE_LAST_VERSION, (version, scope.workspace, scope.plugin))

    def drop_scope(self, scope: Scope, now: float) -> int:
        self._ensure_locked(scope)
        params = [scope.workspace, scope.plugin]
        removed = self._remove(scope, _SQL.drop_entries, params, now)
        self._execute(_SQL.clear_quota, params)
        return len(removed)


class _Transaction:
    """A transaction over the block: COMMIT on a normal exit, ROLLBACK on any exception.

    Holds one pooled connection for the life of the block: ``conn`` if given
    (a standby's, already checked), else one of the backend's.
    """

    __slots__ = ("_backend", "_begin", "_conn", "_tx")

    def __init__(
        self, backend: PostgresBackend | _StandbyReads, begin: str, conn: Connection | None = None
    ) -> None:
        self._backend = backend
        self._begin = begin
        if conn is not None:
            self._conn = conn

    def __enter__(self) -> _PostgresTx:
        if not hasattr(self, "_conn"):
            self._conn = self._backend._getconn()
        self._tx = _PostgresTx(self._conn, self._begin)
        return self._tx

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        backend, tx = self._backend, self._tx
        try:
            if exc is None:
                try:
                    tx.commit()
                    return
                except psycopg.Error as commit_error:
                    exc = commit_error
            try:
                tx.rollback()
            except psycopg.Error:
                pass  # the connection is gone; the server rolled back already
        finally:
            backend._putconn(self._conn, exc)
        backend._errors.raise_translated(exc)


class _Borrowed:
    """One of the backend's pooled connections for the block, given back at its end
    (with the error, if the driver raised one); driver errors leave translated.

    A class rather than a generator context manager: it is on every call's path.
    """

    __slots__ = ("_backend", "_conn")

    def __init__(self, backend: PostgresBackend) -> None:
        self._backend = backend

    def __enter__(self) -> Connection:
        self._conn = conn = self._backend._getconn()
        return conn

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        backend = self._backend
        backend._putconn(self._conn, exc if isinstance(exc, psycopg.Error) else None)
        backend._errors.raise_translated(exc)


class PostgresBackend(Backend):
    """Entries in one PostgreSQL database, shared by any number of processes."""

    name = "postgres"
    reads_block = True
    concurrent_writes = True

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        pool_timeout: float = 5.0,
        connect_timeout: int = 5,
        statement_timeout: float = 30.0,
        tcp_timeout: int = 30,
        read_only: bool = False,
        read_url: str = "",
        read_wait: float = 0.5,
    ) -> None:
        self.url = url
        self.read_only = read_only
        self._where = describe_url(url)
        self._pool_timeout = pool_timeout
        self._statement_timeout = statement_timeout
        # Every psycopg error leaves this backend through _unavailable.
        self._errors = Translated(psycopg.Error, self._unavailable)
        try:
            given = conninfo_to_dict(url)
        except psycopg.Error as exc:  # the URL's error, not the database's: a message of its own
            raise BackendUnavailable(f"PostgreSQL URL {self._where} is not valid: {exc}") from exc
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": connect_timeout,
            **_session_options(given, statement_timeout),
            **_liveness(given, tcp_timeout),
        }
        if "application_name" not in given:
            kwargs["application_name"] = "pluginkv"
        self._pool_settings: dict[str, Any] = {
            "kwargs": kwargs,
            "min_size": min_size,
            "max_size": max_size,
            "timeout": pool_timeout,
            # The pool retries a failed connection attempt with a doubling
            # delay (1, 2, 4, 8 s...).  During a failover that delay, not the
            # failover, would decide when service resumes; an attempt given up
            # after as long as a call waits is started afresh by the next call.
            "reconnect_timeout": pool_timeout,
        }
        self._pid = os.getpid()
        self._fork_lock = threading.Lock()
        self._pool = self._new_pool()
        self._pool.open(wait=False)
        try:
            self._migrate()
        except BaseException:
            self._pool.close()
            raise
        self._standby = _StandbyReads(self, read_url, read_wait) if read_url else None

    # -- connections -----------------------------------------------------------
    def _getconn(self) -> Connection:
        if self._pid != os.getpid():
            self._after_fork()
        with self._errors:
            return self._pool.getconn()

    def _after_fork(self) -> None:
        """In a forked child: leave the parent's connections alone, open our own.

        The parent's sockets are shared with the child; a query, or even the
        goodbye message libpq sends when a connection is closed or collected,
        would corrupt or end the parent's session.  So the inherited idle
        connections get their socket pointed at /dev/null (in this process
        only), the inherited pool is kept referenced and never closed, and a
        new pool is opened.
        """
        with self._fork_lock:
            if self._pid == os.getpid():
                return
            inherited = self._pool
            _INHERITED_POOLS.append(inherited)
            for conn in list(getattr(inherited, "_pool", ())):  # its idle connections
                _detach(conn)
            self._pool = self._new_pool()
            self._pool.open(wait=False)
            self._pid = os.getpid()

    def _putconn(self, conn: Connection, failure: BaseException | None = None) -> None:
        if failure is not None and _left_the_primary(failure):
            conn.close()
            self._pool.putconn(conn)
            # Replace them all, idle or in use: they lead to the old primary.
            self._pool.drain()
            return
        broken = conn.broken
        self._pool.putconn(conn)  # the pool discards a broken connection and opens another
        if broken:
            # The others may be dead too (the server restarted, or killed the
            # sessions): check the idle ones now rather than fail a call on each.
            self._pool.check()

    def _unavailable(self, exc: psycopg.Error) -> PluginKVError:
        if isinstance(exc, PoolClosed):
            return BackendUnavailable(f"the store on PostgreSQL {self._where} is closed")
        if isinstance(exc, PoolTimeout):
            return BackendUnavailable(
                f"no connection to PostgreSQL {self._where} within {self._pool_timeout:g} s "
                "(setting PLUGINKV_POSTGRES_POOL_TIMEOUT_SECONDS): the database is down, "
                "unreachable or every connection is busy"
            )
        text = str(exc).strip() or type(exc).__name__
        if isinstance(exc, psycopg.errors.DiskFull):  # SQLSTATE 53100: the table could not grow
            return DiskFull(
                f"the disk of PostgreSQL {self._where} is full: {text} (docs/security.md, "
                "A full disk)"
            )
        if _left_the_primary(exc):
            return BackendUnavailable(
                f"PostgreSQL {self._where}: the server no longer takes writes ({text}); "
                "reconnecting to the one that does"
            )
        if isinstance(exc, psycopg.errors.QueryCanceled) and "statement timeout" in text:
            return BackendUnavailable(
                f"PostgreSQL {self._where} did not finish a statement within "
                f"{self._statement_timeout:g} s (setting "
                "PLUGINKV_POSTGRES_STATEMENT_TIMEOUT_SECONDS): a lock held elsewhere, or an "
                "overloaded database"
            )
        return BackendUnavailable(f"PostgreSQL {self._where} failed: {text}")

    def _one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """One row of one prepared statement, in autocommit."""
        with _Borrowed(self) as conn:
            row = conn.kept.execute(sql, params, prepare=True).fetchone()
            if row is not None and type(row[0]) is bytes and len(row[0]) > _LARGE_RESULT:
                # Measured: a cursor that has held a large result reads the next
                # large one about a third slower than a new cursor does.
                conn.kept = conn.cursor(binary=True)
            return row

    def _count(self, sql: str, params: tuple[Any, ...]) -> int:
        """The rows one prepared writing statement changed, in autocommit."""
        with _Borrowed(self) as conn:
            return conn.kept.execute(sql, params, prepare=True).rowcount

    # -- migrations ------------------------------------------------------------
    def _migrate(self) -> None:
        names = [migration.name for migration in MIGRATIONS]
        with _Borrowed(self) as conn:
            encoding = conn.execute("SHOW server_encoding").fetchone()
            if encoding is None or encoding[0] != "UTF8":
                raise BackendUnavailable(
                    f"PostgreSQL database {self._where} is not UTF8 (server_encoding "
                    f"{encoding and encoding[0]}): create it with ENCODING 'UTF8'"
                )
            applied = self._applied(conn)
            if self.read_only:
                check_schema(f"PostgreSQL database {self._where}", applied)
                return
            if applied == names:
                return
            for migration in MIGRATIONS:
                with conn.transaction():
                    # Waiting for another process's migration, or migrating a big
                    # table, may take longer than any statement of normal work.
                    conn.execute("SET LOCAL statement_timeout = 0")
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                    conn.execute(_CREATE_MIGRATIONS)
                    done = conn.execute(_SQL.migration_done, (migration.name,)).fetchone()
                    if done is None:
                        for statement in migration.postgres:
                            conn.execute(statement)
                        conn.execute(_SQL.record_migration, (migration.name, time.time()))

    def _applied(self, conn: Connection) -> list[str]:
        try:
            rows = conn.execute(_SQL.applied_migrations).fetchall()
        except psycopg.errors.UndefinedTable:
            return []
        return [name for (name,) in rows]

    def applied_migrations(self) -> list[str]:
        with _Borrowed(self) as conn:
            return self._applied(conn)

    # -- the contract ----------------------------------------------------------
    def get(self, scope: Scope, key: str, now: float) -> Entry | None:
        row = self._one(_GET, (scope.workspace, scope.plugin, key, now))
        return None if row is None else entry(key, row[0], row[1:])

    def get_value(self, scope: Scope, key: str, now: float) -> bytes | None:
        row = self._one(_GET_VALUE, (scope.workspace, scope.plugin, key, now))
        return None if row is None else row[0]

    def get_meta(self, scope: Scope, key: str, now: float) -> EntryMeta | None:
        row = self._one(_GET_META, (scope.workspace, scope.plugin, key, now))
        return None if row is None else entry_meta(key, row)

    def exists(self, scope: Scope, key: str, now: float) -> bool:
        return self._one(_EXISTS, (scope.workspace, scope.plugin, key, now)) is not None

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
        ws, pl = scope.workspace, scope.plugin
        params = (ws, pl, ws, pl, key, size, now, now, expires_at, value, size, quota)
        row = self._one(_PUT_NOW, params)
        return None if row is None else int(row[0])

    def delete_now(self, scope: Scope, key: str, now: float) -> None:
        ws, pl = scope.workspace, scope.plugin
        self._one(
            _DELETE_NOW, (ws, pl, ws, pl, key, ws, pl, notify_payload(scope), ws, pl, now, now)
        )

    def listen_for_changes(self, wake: WakeScopes) -> ChangeListener | None:
        with self._errors:
            return NotifyListener(self.url, self._pool_settings["kwargs"], wake)

    def read(self) -> _Transaction:
        return _Transaction(self, _READ)

    def write(self) -> _Transaction:
        return _Transaction(self, "BEGIN ISOLATION LEVEL READ COMMITTED")

    @property
    def reads(self) -> PostgresBackend | _StandbyReads:
        return self if self._standby is None else self._standby

    def _new_pool(self, url: str | None = None) -> ConnectionPool[Connection]:
        url = url or self.url
        return ConnectionPool(
            url,
            connection_class=Connection,
            configure=_configure,
            open=False,
            name=f"pluginkv {describe_url(url)}",
            **self._pool_settings,
        )

    def close(self) -> None:
        if self._pid != os.getpid():
            self._after_fork()  # never close the parent's connections from a child
        if self._standby is not None:
            self._standby.close()
        self._pool.close()


class _StandbyReads:
    """The data path's reads on a standby (setting ``postgres_read_url``), the primary's
    load lightened.

    Each read asks the standby whether it has applied all the WAL it has
    received (``_CAUGHT_UP``), waiting up to ``wait`` seconds for it; the read
    then sees every write acknowledged before it began — the client's own
    included — as long as the standby is synchronous.  The question and the
    read are two statements, the read's snapshot taken after the answer, so
    a "yes" covers it; one statement would take its snapshot before asking.
    (Sent together in pipeline mode they took longer on one machine than two
    round trips.)  A standby that is behind, not streaming, or unreachable
    leaves the read to the primary, so a standby never makes a call fail or a
    key look absent.
    """

    def __init__(self, backend: PostgresBackend, url: str, wait: float) -> None:
        self._backend = backend
        self._url = url
        self._wait = wait
        self._where = describe_url(url)
        self.served = 0  # reads the standby answered (for tests and benchmarks)
        self._skip_until = 0.0
        self._pid = os.getpid()
        self._pool = backend._new_pool(url)
        self._pool.open(wait=False)
        self._errors = Translated(psycopg.Error, self._unavailable)

    def _getconn(self) -> Connection:
        raise AssertionError("a standby's transaction is given its connection")

    def _connection(self) -> Connection | None:
        """One of the standby's connections, or ``None`` while it is left alone."""
        if self._pid != os.getpid():  # forked: the parent's connections are not ours
            _INHERITED_POOLS.append(self._pool)
            for conn in list(getattr(self._pool, "_pool", ())):
                _detach(conn)
            self._pool = self._backend._new_pool(self._url)
            self._pool.open(wait=False)
            self._pid = os.getpid()
        if time.monotonic() < self._skip_until:
            return None
        try:
            return self._pool.getconn(timeout=self._wait)
        except psycopg.Error:
            self._skip()
            return None

    def _skip(self) -> None:
        """Leave the reads to the primary for a while: the standby is away or behind,
        and every read would otherwise wait for it first."""
        self._skip_until = time.monotonic() + _STANDBY_PAUSE

    def _putconn(self, conn: Connection, failure: BaseException | None = None) -> None:
        broken = conn.broken
        self._pool.putconn(conn)
        if broken or (failure is not None and _left_the_primary(failure)):
            self._pool.check()

    def _unavailable(self, exc: psycopg.Error) -> BackendUnavailable:
        return BackendUnavailable(f"PostgreSQL standby {self._where} failed: {exc}")

    def _one(self, sql: str, params: tuple[Any, ...]) -> tuple[bool, tuple[Any, ...] | None]:
        """``(True, row)`` from the standby, or ``(False, None)`` to ask the primary."""
        conn = self._caught_up()
        if conn is None:
            return False, None
        failure: psycopg.Error | None = None
        try:
            row = conn.kept.execute(sql, params, prepare=True).fetchone()
            if row is not None and type(row[0]) is bytes and len(row[0]) > _LARGE_RESULT:
                conn.kept = conn.cursor(binary=True)  # as PostgresBackend._one does
        except psycopg.Error as exc:
            failure = exc
            self._skip()
            return False, None
        finally:
            self._putconn(conn, failure)
        self.served += 1
        return True, row

    def _caught_up(self) -> Connection | None:
        """A connection to a standby that has caught up, or ``None``."""
        conn = self._connection()
        if conn is None:
            return None
        deadline = time.monotonic() + self._wait
        try:
            while True:
                row = conn.kept.execute(_CAUGHT_UP, prepare=True).fetchone()
                if row is not None and not row[0]:
                    # A primary (the standby was promoted): the primary's own
                    # pool serves the reads for a while; then this pool
                    # connects afresh and may find a standby again.
                    conn.close()
                    break
                if row is not None and row[1]:
                    return conn
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.001)
        except psycopg.Error as exc:
            self._putconn(conn, exc)
            self._skip()
            return None
        self._pool.putconn(conn)
        self._skip()
        return None

    def get(self, scope: Scope, key: str, now: float) -> Entry | None:
        done, row = self._one(_GET, (scope.workspace, scope.plugin, key, now))
        if not done:
            return self._backend.get(scope, key, now)
        return None if row is None else entry(key, row[0], row[1:])

    def get_value(self, scope: Scope, key: str, now: float) -> bytes | None:
        done, row = self._one(_GET_VALUE, (scope.workspace, scope.plugin, key, now))
        if not done:
            return self._backend.get_value(scope, key, now)
        return None if row is None else row[0]

    def get_meta(self, scope: Scope, key: str, now: float) -> EntryMeta | None:
        done, row = self._one(_GET_META, (scope.workspace, scope.plugin, key, now))
        if not done:
            return self._backend.get_meta(scope, key, now)
        return None if row is None else entry_meta(key, row)

    def exists(self, scope: Scope, key: str, now: float) -> bool:
        done, row = self._one(_EXISTS, (scope.workspace, scope.plugin, key, now))
        if not done:
            return self._backend.exists(scope, key, now)
        return row is not None

    def read(self) -> _Transaction:
        """A snapshot on the standby (failing, once begun, with ``BackendUnavailable``)."""
        conn = self._caught_up()
        if conn is None:
            return self._backend.read()
        self.served += 1
        return _Transaction(self, _READ, conn)

    def close(self) -> None:
        if self._pid == os.getpid():
            self._pool.close()


_INHERITED_POOLS: list[ConnectionPool[Connection]] = []
