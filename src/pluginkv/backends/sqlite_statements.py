"""SQLite's statements: the shared ones (``sql_templates.py``) rendered for it, and its own.

Its own use what PostgreSQL lacks or does otherwise: the rowid (blob reads of
large values, the sweeper), one statement for a plain set or delete, the
retention window walked per scope (its change log has no time index).
``postgres_statements.py`` is PostgreSQL's counterpart.
"""

from __future__ import annotations

from .migrations import MIGRATIONS_TABLE
from .sql_templates import META_COLUMNS, render_statements

__all__ = [
    "CHUNK",
    "CREATE_MIGRATIONS",
    "DELETE_ONE",
    "EXISTS",
    "GET",
    "GET_LARGE",
    "GET_MANY",
    "GET_META",
    "GET_VALUE",
    "HAS_MIGRATIONS",
    "INLINE_MAX",
    "LIVE",
    "LOOKUP_MANY",
    "LOOKUP_ONE",
    "LOOKUP_ONE_WITH_VALUE",
    "META",
    "PRUNE_BY_TIME",
    "PUT",
    "PUT_NOW",
    "RAISE_LAST_VERSION",
    "RELEASE",
    "REMOVE",
    "REVOKE",
    "ROLLBACK_TO",
    "SAVEPOINT",
    "SET_QUOTA",
    "SQL",
    "SQLITE_FULL",
    "STATE",
    "SWEEP",
]

SQL = render_statements("sqlite")
LIVE = SQL.live
GET_META = SQL.get_meta
EXISTS = SQL.exists
STATE = SQL.state
PUT = SQL.put
SET_QUOTA = SQL.set_quota
# The statements below are SQLite's own.
#
# Values up to this size (with the key) come back from the query itself; a
# larger one is read through the incremental blob API, which copies it once
# straight into the result, where a column read copies it twice and, past
# SQLite's page cache, page by page: about twice as fast for 10 MiB.  Hence
# the CASE and the rowid (the blob API's handle), which PostgreSQL lacks.
INLINE_MAX = 256 * 1024
META = f"{META_COLUMNS}, rowid"
GET = (
    f"SELECT CASE WHEN size <= {INLINE_MAX} THEN value END, {META} FROM pluginkv_entries "
    f"WHERE workspace = ? AND plugin = ? AND key = ? AND {LIVE}"
)
GET_VALUE = (
    f"SELECT CASE WHEN size <= {INLINE_MAX} THEN value END FROM pluginkv_entries "
    f"WHERE workspace = ? AND plugin = ? AND key = ? AND {LIVE}"
)
GET_LARGE = (
    f"SELECT NULL, {META} FROM pluginkv_entries "
    f"WHERE workspace = ? AND plugin = ? AND key = ? AND {LIVE}"
)
# The scope's state and one row in a single statement: the hot path of set/delete
# (PostgreSQL locks the scope's row first instead, in a statement of its own).
# Statements use plain ? placeholders and repeat a value where it is used twice:
# numbered ones (?1) bound from a sequence are deprecated since Python 3.12.
LOOKUP_ONE = (
    "SELECT s.bytes_used, s.key_count, s.last_version, s.quota_override, s.last_seq, "
    "e.size, e.version, e.created_at, e.expires_at, {value}, e.metadata, e.content_type "
    "FROM (SELECT 1) "
    "LEFT JOIN pluginkv_scopes AS s ON s.workspace = ? AND s.plugin = ? "
    "LEFT JOIN pluginkv_entries AS e ON e.workspace = ? AND e.plugin = ? AND e.key = ?"
)
LOOKUP_ONE_WITH_VALUE = LOOKUP_ONE.format(value="e.value")
LOOKUP_ONE = LOOKUP_ONE.format(value="NULL")
# One statement for a plain set: the next version, the quota check and the
# write happen under the write lock SQLite takes for the statement.  When the
# entry does not fit, the version comes out NULL and the NOT NULL constraint
# refuses the row before anything is written; Storage then takes the
# transactional path, which also reclaims expired rows before refusing.  (An
# INSERT ... SELECT ... WHERE would say it more plainly, but on a table with
# triggers SQLite runs it through a temporary table: a copy of every value.
# PostgreSQL's is that plainer statement, with a row lock.)
# The check counts the key as new, so an overwrite near the quota may take
# the slow path; it never lets a write past the quota.
PUT_NOW = (
    "INSERT INTO pluginkv_entries "
    "(workspace, plugin, key, size, version, created_at, updated_at, expires_at, value) "
    "VALUES (?, ?, ?, ?, (SELECT CASE WHEN coalesce(max(s.bytes_used), 0) + ?"
    " <= coalesce(max(s.quota_override), ?) THEN coalesce(max(s.last_version), 0) + 1 END"
    " FROM pluginkv_scopes AS s WHERE s.workspace = ? AND s.plugin = ?), ?, ?, ?, ?) "
    "ON CONFLICT (workspace, plugin, key) DO UPDATE SET size = excluded.size,"
    " version = excluded.version,"
    " created_at = CASE WHEN expires_at IS NOT NULL AND expires_at <= excluded.updated_at"
    " THEN excluded.created_at ELSE created_at END,"
    " updated_at = excluded.updated_at, expires_at = excluded.expires_at,"
    " metadata = NULL, content_type = NULL, value = excluded.value"
    " RETURNING version"
)
# SQLite's scalar max() is PostgreSQL's greatest(); and a writer here holds
# the whole file, so no scope row needs locking first.
RAISE_LAST_VERSION = (
    "INSERT INTO pluginkv_scopes (workspace, plugin, last_version) VALUES (?, ?, ?) "
    "ON CONFLICT (workspace, plugin) DO UPDATE SET "
    "last_version = max(last_version, excluded.last_version)"
)
REVOKE = (
    "INSERT INTO pluginkv_token_revocations (workspace, plugin, revoked_at) VALUES (?, ?, ?) "
    "ON CONFLICT (workspace, plugin) DO UPDATE SET "
    "revoked_at = max(revoked_at, excluded.revoked_at) RETURNING revoked_at"
)
# A plain delete and its change, in one statement (migration 0005's view).
DELETE_ONE = "INSERT INTO pluginkv_deletes (workspace, plugin, key, deleted_at) VALUES (?, ?, ?, ?)"
# SQLite has no arrays (PostgreSQL's key = ANY(%s)): several keys are an
# executemany of this, or an IN list of CHUNK markers.
REMOVE = (
    "DELETE FROM pluginkv_entries WHERE workspace = ? AND plugin = ? AND key IN ({marks}) "
    "RETURNING key, version, expires_at"
)
GET_MANY = (
    f"SELECT key, value, {META_COLUMNS} "
    "FROM pluginkv_entries WHERE workspace = ? AND plugin = ? AND key IN ({marks}) "
    f"AND {LIVE}"
)
LOOKUP_MANY = (
    "SELECT key, size, version, created_at, expires_at, {value}, metadata, content_type "
    "FROM pluginkv_entries WHERE workspace = ? AND plugin = ? AND key IN ({marks})"
)
# Through the rowid, which PostgreSQL lacks (its sweeper goes scope by scope).
SWEEP = (
    "DELETE FROM pluginkv_entries WHERE rowid IN (SELECT rowid FROM pluginkv_entries "
    "WHERE expires_at IS NOT NULL AND expires_at <= ? LIMIT ?) "
    "RETURNING workspace, plugin, key, version, expires_at"
)
# Older than the window, per scope: the changes before its first one inside
# it (all if none is), so a log is only cut at its oldest end, even where the
# clock stepped back; found through the key, as the log has no time index
# (0005).  CROSS JOIN keeps the scopes outside: the subquery bounds a range,
# once per scope.  PostgreSQL keeps its index and change_log.PRUNE_BY_TIME.
PRUNE_BY_TIME = (
    "DELETE FROM pluginkv_changes WHERE (workspace, plugin, seq) IN ("
    "SELECT c.workspace, c.plugin, c.seq FROM pluginkv_scopes AS s "
    "CROSS JOIN pluginkv_changes AS c WHERE c.workspace = s.workspace AND c.plugin = s.plugin "
    "AND c.seq < coalesce((SELECT min(n.seq) FROM pluginkv_changes AS n "
    "WHERE n.workspace = s.workspace AND n.plugin = s.plugin AND n.changed_at >= ?), "
    "s.last_seq + 1) LIMIT ?)"
)
# sqlite_master and REAL are SQLite's; the rest of the migration record is shared.
CREATE_MIGRATIONS = (
    f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} "
    "(name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
)
HAS_MIGRATIONS = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
CHUNK = 500  # keys per IN (...) list, well under SQLite's parameter limit
SAVEPOINT = "SAVEPOINT pluginkv_tx"
RELEASE = "RELEASE pluginkv_tx"
ROLLBACK_TO = "ROLLBACK TO pluginkv_tx"
SQLITE_FULL = 13  # the primary result code; extended codes keep it in the low byte
