"""The SQL both SQL backends run word for word, apart from the parameter marker.

SQLite's ``sqlite3`` marks a parameter ``?``; psycopg marks it ``%s``, and
``%b`` for one it sends in binary (a value).  The templates here are written
with ``?`` (and ``?blob`` for a value) and rendered once per dialect when a
backend module is imported (``render_statements``), never per call: a hot
statement is then a constant string, which is also what psycopg's prepared
statement cache keys on.

A statement that differs between the dialects in more than the marker stays
in its backend (``sqlite.py``, ``postgres_statements.py``), with a comment
saying why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Literal

from ..keys import Scope
from .base import prefix_upper_bound
from .change_log import BUMP_SEQ, INSERT_CHANGE, OLDEST_CHANGE, PRUNE_BY_COUNT, PRUNE_BY_TIME
from .migrations import MIGRATIONS_TABLE

__all__ = [
    "Dialect",
    "Statements",
    "remove_prefix_statement",
    "render",
    "render_statements",
    "scan_statement",
]

Dialect = Literal["sqlite", "postgres"]

_MARKERS: dict[Dialect, dict[str, str]] = {
    "sqlite": {"?": "?", "?blob": "?"},
    "postgres": {"?": "%s", "?blob": "%b"},
}
_MARKER = re.compile(r"\?(?:blob)?")


def render(template: str, dialect: Dialect) -> str:
    """``template`` with its markers in ``dialect``'s spelling."""
    # A literal % would mean a marker to psycopg, a literal ? one to sqlite3:
    # the shared templates hold neither, and no quoted text where a ? could hide.
    if "%" in template or "'" in template:
        raise ValueError(f"a shared SQL template holds % or a quoted literal: {template!r}")
    markers = _MARKERS[dialect]
    return _MARKER.sub(lambda match: markers[match.group()], template)


LIVE = "(expires_at IS NULL OR expires_at > ?)"
EXPIRED = "expires_at IS NOT NULL AND expires_at <= ?"
KEY = "workspace = ? AND plugin = ? AND key = ?"
SCOPE = "workspace = ? AND plugin = ?"
STATE_COLUMNS = "bytes_used, key_count, last_version, quota_override, last_seq"
ENTRY_COLUMNS = (
    "(workspace, plugin, key, size, version, created_at, updated_at, expires_at, metadata, "
    "content_type, value)"
)
# What the API shows of an entry besides its key and value (models.EntryMeta's order).
META_COLUMNS = "size, version, created_at, updated_at, expires_at, metadata, content_type"
_SCAN = (
    f"SELECT key, {META_COLUMNS} FROM pluginkv_entries "
    "WHERE workspace = ? AND plugin = ? AND key >= ?"
)
REMOVED = "RETURNING key, version, expires_at"
# The deletes without their RETURNING, which PostgreSQL wraps (postgres_statements.py).
REMOVE_PREFIX = "DELETE FROM pluginkv_entries WHERE workspace = ? AND plugin = ? AND key >= ?"
REMOVE_PREFIX_BELOW = f"{REMOVE_PREFIX} AND key < ?"
PURGE_EXPIRED = f"DELETE FROM pluginkv_entries WHERE {SCOPE} AND {EXPIRED}"
DROP_ENTRIES = f"DELETE FROM pluginkv_entries WHERE {SCOPE}"


@dataclass(frozen=True, slots=True)
class Statements:
    """Every shared statement, in one dialect."""

    live: str = LIVE
    get_meta: str = f"SELECT {META_COLUMNS} FROM pluginkv_entries WHERE {KEY} AND {LIVE}"
    exists: str = f"SELECT 1 FROM pluginkv_entries WHERE {KEY} AND {LIVE}"
    state: str = f"SELECT {STATE_COLUMNS} FROM pluginkv_scopes WHERE {SCOPE}"
    # Insert or replace one row as a transaction computed it.
    put: str = (
        f"INSERT INTO pluginkv_entries {ENTRY_COLUMNS} "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?blob) "
        "ON CONFLICT (workspace, plugin, key) DO UPDATE SET size = excluded.size, "
        "version = excluded.version, created_at = excluded.created_at, "
        "updated_at = excluded.updated_at, expires_at = excluded.expires_at, "
        "metadata = excluded.metadata, content_type = excluded.content_type, "
        "value = excluded.value"
    )
    set_quota: str = (
        "INSERT INTO pluginkv_scopes (workspace, plugin, quota_override) VALUES (?, ?, ?) "
        "ON CONFLICT (workspace, plugin) DO UPDATE SET quota_override = excluded.quota_override"
    )
    # A listing page, by whether the prefix has an upper bound and whether it
    # resumes after a key: four fixed statements rather than one built per call.
    scan: str = f"{_SCAN} AND {LIVE} ORDER BY key LIMIT ?"
    scan_below: str = f"{_SCAN} AND key < ? AND {LIVE} ORDER BY key LIMIT ?"
    scan_after: str = f"{_SCAN} AND key > ? AND {LIVE} ORDER BY key LIMIT ?"
    scan_below_after: str = f"{_SCAN} AND key < ? AND key > ? AND {LIVE} ORDER BY key LIMIT ?"
    # The sum of SQLite's INTEGER is an integer, of PostgreSQL's BIGINT a
    # NUMERIC: the cast makes both an integer.
    expired_totals: str = (
        "SELECT count(*), CAST(coalesce(sum(size), 0) AS BIGINT) FROM pluginkv_entries "
        f"WHERE {SCOPE} AND {EXPIRED}"
    )
    scopes: str = (
        f"SELECT workspace, plugin, {STATE_COLUMNS} FROM pluginkv_scopes ORDER BY workspace, plugin"
    )
    token_revocations: str = "SELECT workspace, plugin, revoked_at FROM pluginkv_token_revocations"
    # Deletes return what the change log needs of each row (change_log.py).
    remove_prefix: str = f"{REMOVE_PREFIX} {REMOVED}"
    remove_prefix_below: str = f"{REMOVE_PREFIX_BELOW} {REMOVED}"
    purge_expired: str = f"{PURGE_EXPIRED} {REMOVED}"
    drop_entries: str = f"{DROP_ENTRIES} {REMOVED}"
    oldest_change: str = OLDEST_CHANGE
    bump_seq: str = BUMP_SEQ
    insert_change: str = INSERT_CHANGE
    prune_by_time: str = PRUNE_BY_TIME
    prune_by_count: str = PRUNE_BY_COUNT
    clear_quota: str = f"UPDATE pluginkv_scopes SET quota_override = NULL WHERE {SCOPE}"
    migration_done: str = f"SELECT 1 FROM {MIGRATIONS_TABLE} WHERE name = ?"
    record_migration: str = f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES (?, ?)"
    applied_migrations: str = f"SELECT name FROM {MIGRATIONS_TABLE} ORDER BY name"


def render_statements(dialect: Dialect) -> Statements:
    """Every shared statement rendered for ``dialect``."""
    template = Statements()
    return Statements(
        **{field.name: render(getattr(template, field.name), dialect) for field in fields(template)}
    )


def scan_statement(
    sql: Statements, scope: Scope, prefix: str, after: str | None, limit: int, now: float
) -> tuple[str, list[object]]:
    """The statement and parameters of ``ReadTx.scan``."""
    params: list[object] = [scope.workspace, scope.plugin, prefix]
    upper = prefix_upper_bound(prefix)
    if upper is not None:
        params.append(upper)
    if after is not None:
        params.append(after)
    params += [now, limit]
    if upper is None:
        return (sql.scan if after is None else sql.scan_after), params
    return (sql.scan_below if after is None else sql.scan_below_after), params


def remove_prefix_statement(sql: Statements, scope: Scope, prefix: str) -> tuple[str, list[object]]:
    """The statement and parameters of ``WriteTx.remove_prefix`` (it returns the key,
    version and ``expires_at`` of each row it deletes)."""
    params: list[object] = [scope.workspace, scope.plugin, prefix]
    upper = prefix_upper_bound(prefix)
    if upper is None:
        return sql.remove_prefix, params
    params.append(upper)
    return sql.remove_prefix_below, params
