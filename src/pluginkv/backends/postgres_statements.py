"""The SQL statements of the PostgreSQL backend.

The statements SQLite runs too come from ``sql_templates.py``, rendered here
once with psycopg's markers; the rest are PostgreSQL's own, each saying why.
The hot statements take positional parameters (a mapping costs more per
call), repeated where a statement needs one twice.
"""

from __future__ import annotations

from dataclasses import replace

from .migrations import LISTENED, MIGRATIONS_TABLE
from .postgres_listen import CHANNEL
from .sql_templates import (
    DROP_ENTRIES,
    EXPIRED,
    KEY,
    META_COLUMNS,
    PURGE_EXPIRED,
    REMOVE_PREFIX,
    REMOVE_PREFIX_BELOW,
    render,
    render_statements,
)
from .sql_templates import STATE_COLUMNS as _STATE_COLUMNS

_POSITIONAL = {"ws": "%s", "pl": "%s", "notice": "%s", "now": "%s"}
_NAMED = {name: f"%({name})s" for name in _POSITIONAL}


def _counted(delete: str, marks: dict[str, str] = _POSITIONAL, first: str = "") -> str:
    """``delete`` as one statement that also moves its scope's counters, logs its changes
    and sends the notice, returning what it removed (``change_log.Removed``).

    The scope's row is updated once per statement (migration 0004): the row
    trigger this replaces updated it once per deleted row, and each update in a
    transaction steps over every row version the earlier ones left, so a delete
    of n rows cost n^2.  The changes take the numbers after the scope's
    ``last_seq`` in key order (``COLLATE "C"``: UTF-8 bytes), as
    ``change_log.log_removed`` numbers them on SQLite.  A statement that removed
    nothing touches neither the row nor the log.  Positional parameters: the
    delete's, then workspace, plugin, notice, workspace, plugin, now, now
    (``marks`` may name them instead); ``first``, a query the others may read,
    comes before them all.
    """
    ws, pl, now = marks["ws"], marks["pl"], marks["now"]
    return (
        f"WITH {first}removed AS ({delete} RETURNING key, version, expires_at, size), "
        "totals AS (SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes FROM removed), "
        "counted AS (UPDATE pluginkv_scopes AS s SET bytes_used = s.bytes_used - t.bytes, "
        "key_count = s.key_count - t.n, last_seq = s.last_seq + t.n FROM totals AS t "
        f"WHERE s.workspace = {ws} AND s.plugin = {pl} AND t.n > 0 "
        f"RETURNING s.last_seq - t.n AS base, CASE WHEN {LISTENED} "
        f"THEN pg_notify('{CHANNEL}', {marks['notice']}) END), "
        "logged AS (INSERT INTO pluginkv_changes "
        "(workspace, plugin, seq, key, kind, version, changed_at) "
        f'SELECT {ws}, {pl}, c.base + row_number() OVER (ORDER BY r.key COLLATE "C"), r.key, '
        f"CASE WHEN r.expires_at <= {now} THEN 'expire' ELSE 'delete' END, r.version, {now} "
        "FROM removed AS r CROSS JOIN counted AS c) "
        "SELECT key, version, expires_at FROM removed"
    )


_SQL = replace(
    render_statements("postgres"),
    remove_prefix=_counted(render(REMOVE_PREFIX, "postgres")),
    remove_prefix_below=_counted(render(REMOVE_PREFIX_BELOW, "postgres")),
    purge_expired=_counted(render(PURGE_EXPIRED, "postgres")),
    drop_entries=_counted(render(DROP_ENTRIES, "postgres")),
)
_LIVE = _SQL.live
_GET_META = _SQL.get_meta
_EXISTS = _SQL.exists
_STATE = _SQL.state
_PUT = _SQL.put
_SET_QUOTA = _SQL.set_quota
_KEY = render(KEY, "postgres")
_EXPIRED = render(EXPIRED, "postgres")
# SQLite reads a large value through its blob API, so its reads return the
# value only when it is small; here a value always comes with the row.
_GET = f"SELECT value, {META_COLUMNS} FROM pluginkv_entries WHERE {_KEY} AND {_LIVE}"
_GET_VALUE = f"SELECT value FROM pluginkv_entries WHERE {_KEY} AND {_LIVE}"
# Row locks are PostgreSQL's (a SQLite writer holds the whole file).
_LOCK = _STATE + " FOR UPDATE"
# The scope's first write: create its row (another writer may be creating it
# at the same moment, hence the upsert) and hold it, in one statement.
_CREATE_AND_LOCK = (
    "INSERT INTO pluginkv_scopes AS s (workspace, plugin) VALUES (%s, %s) "
    "ON CONFLICT (workspace, plugin) DO UPDATE SET key_count = s.key_count "
    f"RETURNING {_STATE_COLUMNS}"
)
# A transaction that locked a scope with no row and stored nothing leaves no row,
# as on SQLite, where only a write or a quota override creates one.
_DROP_IF_UNUSED = (
    "DELETE FROM pluginkv_scopes WHERE workspace = %s AND plugin = %s "
    "AND key_count = 0 AND last_version = 0 AND quota_override IS NULL"
)
_COLUMNS = "(workspace, plugin, key, size, version, created_at, updated_at, expires_at, value)"
# A plain set in one statement, like SQLite's _PUT_NOW: ``s`` locks the scope's
# row (waiting for any writer of the scope; in READ COMMITTED the locked row is
# its latest version), the quota check and the next version come from that
# row, and the upsert writes the entry; the trigger then moves the counters of
# the row this statement holds.  Nothing is written when the scope has no row
# yet or the entry might not fit (the key counts as new, so an overwrite near
# the quota may decline): Storage then takes the transactional path, which
# creates the row and reclaims expired entries before refusing.
_PUT_NOW = (
    "WITH s AS (SELECT last_version, bytes_used, quota_override FROM pluginkv_scopes "
    "WHERE workspace = %s AND plugin = %s FOR UPDATE) "
    f"INSERT INTO pluginkv_entries AS e {_COLUMNS} "
    "SELECT %s, %s, %s, %s, s.last_version + 1, %s, %s, %s::double precision, %b FROM s "
    "WHERE s.bytes_used + %s <= coalesce(s.quota_override, %s) "
    "ON CONFLICT (workspace, plugin, key) DO UPDATE SET size = excluded.size, "
    "version = excluded.version, created_at = CASE WHEN e.expires_at IS NOT NULL "
    "AND e.expires_at <= excluded.updated_at THEN excluded.created_at ELSE e.created_at END, "
    "updated_at = excluded.updated_at, expires_at = excluded.expires_at, "
    "metadata = NULL, content_type = NULL, value = excluded.value "
    "RETURNING e.version"
)
_READ = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
# A standby may serve a read once it has applied all the WAL it has received:
# a synchronous standby has received every commit acknowledged so far, so the
# read then sees every write acknowledged before it began.  A standby that is
# not streaming (its primary gone, or it lost the connection) serves nothing.
# The first column tells a primary (a standby promoted since) from a standby.
_CAUGHT_UP = (
    "SELECT pg_is_in_recovery(), coalesce(pg_last_wal_replay_lsn() >= "
    "pg_last_wal_receive_lsn() AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver "
    "WHERE status = 'streaming'), false)"
)
# The sweeper finds scopes with expired rows (a read across workspaces), then
# works scope by scope: it locks the scope's row with SKIP LOCKED — a scope
# another replica's sweeper or a writer holds is left for later, so sweepers
# never wait for each other — and deletes in that scope.  A row is deleted by
# one transaction only, and the statement that deletes it counts it.
_EXPIRED_SCOPES = (
    "SELECT workspace, plugin, count(*) FROM (SELECT workspace, plugin FROM pluginkv_entries "
    f"WHERE {_EXPIRED} LIMIT %s) AS expired GROUP BY workspace, plugin ORDER BY workspace, plugin"
)
_TRY_LOCK = (
    "SELECT 1 FROM pluginkv_scopes WHERE workspace = %s AND plugin = %s FOR UPDATE SKIP LOCKED"
)
_SWEEP_SCOPE = _counted(
    "DELETE FROM pluginkv_entries WHERE workspace = %(ws)s AND plugin = %(pl)s "
    "AND key IN (SELECT key FROM pluginkv_entries WHERE workspace = %(ws)s AND plugin = %(pl)s "
    "AND expires_at IS NOT NULL AND expires_at <= %(now)s LIMIT %(limit)s) "
    "AND expires_at IS NOT NULL AND expires_at <= %(now)s",
    _NAMED,
)
# A plain delete in one statement and one round trip, in autocommit, like
# _PUT_NOW: ``held`` locks the scope's row first (the delete runs only once it
# holds it; no row, no entries), so writers still lock the scope before its
# entries; then the delete counts, logs and announces itself (_counted).
# Parameters: workspace, plugin, then _REMOVE's with one key.
_DELETE_NOW = _counted(
    "DELETE FROM pluginkv_entries WHERE workspace = %s AND plugin = %s AND key = %s "
    "AND EXISTS (SELECT 1 FROM held)",
    first="held AS MATERIALIZED (SELECT 1 FROM pluginkv_scopes "
    "WHERE workspace = %s AND plugin = %s FOR UPDATE), ",
)
# PostgreSQL has arrays: a list of keys is one parameter, where SQLite
# needs an IN list of markers or an executemany.
_GET_MANY = (
    f"SELECT key, value, {META_COLUMNS} "
    f"FROM pluginkv_entries WHERE workspace = %s AND plugin = %s AND key = ANY(%s) AND {_LIVE}"
)
_LOOKUP = (
    "SELECT key, size, version, created_at, expires_at, {value}, metadata, content_type "
    "FROM pluginkv_entries WHERE workspace = %s AND plugin = %s AND key = ANY(%s)"
)
_LOOKUP_WITH_VALUES = _LOOKUP.format(value="value")
_LOOKUP = _LOOKUP.format(value="NULL::bytea")  # a NULL typed as the value column
_REMOVE = _counted(
    "DELETE FROM pluginkv_entries WHERE workspace = %s AND plugin = %s AND key = ANY(%s)"
)
# greatest() is SQLite's scalar max(); the ``AS r`` alias because PostgreSQL
# needs the table named where SQLite takes the bare column.
_REVOKE = (
    "INSERT INTO pluginkv_token_revocations AS r (workspace, plugin, revoked_at) "
    "VALUES (%s, %s, %s) ON CONFLICT (workspace, plugin) DO UPDATE SET "
    "revoked_at = greatest(r.revoked_at, excluded.revoked_at) RETURNING revoked_at"
)
# The writer holds the scope's row already (SQLite's upserts it, not needing a lock).
_RAISE_LAST_VERSION = (
    "UPDATE pluginkv_scopes SET last_version = greatest(last_version, %s) "
    "WHERE workspace = %s AND plugin = %s"
)
# DOUBLE PRECISION is SQLite's REAL; the rest of the migration record is shared.
_CREATE_MIGRATIONS = (
    f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} "
    "(name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
)
