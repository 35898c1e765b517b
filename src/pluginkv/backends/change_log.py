"""The change log in SQL: its statements (``?`` markers) and the logging of deletes.

A row inserted or replaced logs itself, through the trigger that keeps the
counters (``migrations.py``, 0003).  A delete is logged by the code that runs
it: the statement returns each removed row's key, version and expiry
(``DELETE ... RETURNING``), and ``log_removed`` takes the scope's next
sequence numbers for them and writes the changes, in the same transaction.
(On PostgreSQL the delete statement does all of it itself, counters included:
``postgres_statements._counted``.)
A row removed once its expiry had passed is an ``expire``, any other a
``delete``; the changes of one statement are logged in key order (UTF-8
bytes), which is the order a reader of a prefix delete expects.

The statements are written with ``?`` markers and no quoted literal, like
the shared templates of ``sql_templates.py``, and rendered per dialect.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..keys import Scope
from ..models import Change, ChangeKind
from .base import prefix_upper_bound

__all__ = [
    "BUMP_SEQ",
    "FORGET_LOG",
    "INSERT_CHANGE",
    "OLDEST_CHANGE",
    "PRUNE_BY_COUNT",
    "PRUNE_BY_TIME",
    "Removed",
    "changes_statement",
    "log_removed",
    "to_changes",
]

Removed = tuple[str, int, float | None]  # key, version, expires_at of a removed row

OLDEST_CHANGE = "SELECT min(seq) FROM pluginkv_changes WHERE workspace = ? AND plugin = ?"
BUMP_SEQ = (
    "UPDATE pluginkv_scopes SET last_seq = last_seq + ? WHERE workspace = ? AND plugin = ? "
    "RETURNING last_seq"
)
INSERT_CHANGE = (
    "INSERT INTO pluginkv_changes (workspace, plugin, seq, key, kind, version, changed_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
# Older than the window (PostgreSQL's; SQLite's log has no time index and prunes with
# sqlite_statements.py's PRUNE_BY_TIME): the time index finds the scopes of the oldest
# changes stamped before the window, and each loses only the changes before its first
# one stamped within it.  Never a change in the middle of a log: after the clock
# stepped back, a change stamped earlier than the one before it stays with the changes
# after it, and a reader asking from before it hears ChangesExpired, never a silent
# hole.  The ORDER BY keeps the first step a range of the time index: without
# statistics on the table (before its first ANALYZE, or with autovacuum off) the
# planner took a third of the rows to match and scanned the whole log, every sweep
# (0.6 s at 10^7 changes, none old enough).
PRUNE_BY_TIME = (
    "DELETE FROM pluginkv_changes WHERE (workspace, plugin, seq) IN ("
    "SELECT c.workspace, c.plugin, c.seq FROM "
    "(SELECT DISTINCT o.workspace, o.plugin FROM (SELECT workspace, plugin "
    "FROM pluginkv_changes WHERE changed_at < ? ORDER BY changed_at LIMIT ?) AS o) AS s "
    "CROSS JOIN LATERAL (SELECT min(n.seq) AS cut FROM pluginkv_changes AS n "
    "WHERE n.workspace = s.workspace AND n.plugin = s.plugin AND n.changed_at >= ?) AS k "
    "JOIN pluginkv_changes AS c ON c.workspace = s.workspace AND c.plugin = s.plugin "
    "AND c.seq < coalesce(k.cut, 9223372036854775807) LIMIT ?)"
)
# Past the count kept, per scope: for each scope, a range of its key up to
# last_seq - keep, so a scope within its count costs one probe.  CROSS JOIN
# keeps the scopes outside: SQLite, with no statistics, would otherwise scan
# the whole log (PostgreSQL reads it as a plain join).
PRUNE_BY_COUNT = (
    "DELETE FROM pluginkv_changes WHERE (workspace, plugin, seq) IN ("
    "SELECT c.workspace, c.plugin, c.seq FROM pluginkv_scopes AS s "
    "CROSS JOIN pluginkv_changes AS c WHERE c.workspace = s.workspace AND c.plugin = s.plugin "
    "AND c.seq <= s.last_seq - ? LIMIT ?)"
)
# What a delete logs instead while the disk is full (sqlite.py, _lossy_log).
FORGET_LOG = "DELETE FROM pluginkv_changes WHERE workspace = ? AND plugin = ?"
_CHANGES = (
    "SELECT seq, key, kind, version, changed_at FROM pluginkv_changes "
    "WHERE workspace = ? AND plugin = ? AND seq > ? AND seq <= ?"
)


def changes_statement(
    scope: Scope, prefix: str, after: int, upto: int, limit: int
) -> tuple[str, tuple[Any, ...]]:
    """The query of ``ReadTx.changes`` and its parameters (a prefix is a key range)."""
    sql, params = _CHANGES, [scope.workspace, scope.plugin, after, upto]
    if prefix:
        sql += " AND key >= ?"
        params.append(prefix)
        upper = prefix_upper_bound(prefix)
        if upper is not None:
            sql += " AND key < ?"
            params.append(upper)
    return sql + " ORDER BY seq LIMIT ?", (*params, limit)


def to_changes(rows: Iterable[Sequence[Any]]) -> list[Change]:
    """Rows of the changes query as ``Change``."""
    return [
        Change(int(seq), key, kind, int(version), float(at)) for seq, key, kind, version, at in rows
    ]


def log_removed(
    bump: Callable[[Scope, int], int],
    insert: Callable[[list[tuple[Any, ...]]], None],
    scope: Scope,
    removed: Iterable[Removed],
    now: float,
) -> None:
    """Log the rows a statement removed from ``scope``.

    ``bump(scope, n)`` raises the scope's ``last_seq`` by ``n`` and returns it
    (``BUMP_SEQ``); ``insert(rows)`` writes change rows (``INSERT_CHANGE``).
    """
    ordered = sorted(removed, key=lambda row: row[0].encode("utf-8"))
    if not ordered:
        return
    last = bump(scope, len(ordered))
    first = last - len(ordered) + 1
    insert(
        [
            (scope.workspace, scope.plugin, first + i, key, _kind(expires_at, now), version, now)
            for i, (key, version, expires_at) in enumerate(ordered)
        ]
    )


def _kind(expires_at: float | None, now: float) -> ChangeKind:
    return "expire" if expires_at is not None and expires_at <= now else "delete"
