"""Named, recorded schema migrations, shared by every SQL backend.

Each migration has a name and one statement list per SQL dialect.  A backend
applies the ones not yet recorded in ``pluginkv_migrations``, in order, each in
its own transaction together with its record, so a crash never leaves a
half-applied step and two processes opening one database never both apply one.

The workspace comes first in every primary key and index, so the tables can be
distributed by workspace on a distributed PostgreSQL.  ``value`` is the last
column: SQLite then finds every other column without walking a large value's
overflow pages.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MIGRATIONS", "MIGRATIONS_TABLE", "Migration"]

MIGRATIONS_TABLE = "pluginkv_migrations"


@dataclass(frozen=True)
class Migration:
    name: str
    sqlite: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        name="0001_entries_and_scopes",
        sqlite=(
            """
            CREATE TABLE pluginkv_entries (
                workspace  TEXT    NOT NULL,
                plugin     TEXT    NOT NULL,
                key        TEXT    NOT NULL,
                size       INTEGER NOT NULL,
                version    INTEGER NOT NULL,
                created_at REAL    NOT NULL,
                updated_at REAL    NOT NULL,
                expires_at REAL,
                value      BLOB    NOT NULL
            )
            """,
            """
            CREATE UNIQUE INDEX pluginkv_entries_key
                ON pluginkv_entries (workspace, plugin, key)
            """,
            """
            CREATE INDEX pluginkv_entries_expiry
                ON pluginkv_entries (workspace, plugin, expires_at)
                WHERE expires_at IS NOT NULL
            """,
            """
            CREATE TABLE pluginkv_scopes (
                workspace      TEXT    NOT NULL,
                plugin         TEXT    NOT NULL,
                bytes_used     INTEGER NOT NULL DEFAULT 0,
                key_count      INTEGER NOT NULL DEFAULT 0,
                last_version   INTEGER NOT NULL DEFAULT 0,
                quota_override INTEGER,
                PRIMARY KEY (workspace, plugin)
            ) WITHOUT ROWID
            """,
            # The counters follow every row change, whoever makes it: usage can
            # never drift from what is stored.
            """
            CREATE TRIGGER pluginkv_entries_inserted AFTER INSERT ON pluginkv_entries
            BEGIN
                INSERT INTO pluginkv_scopes (workspace, plugin, bytes_used, key_count, last_version)
                VALUES (NEW.workspace, NEW.plugin, NEW.size, 1, NEW.version)
                ON CONFLICT (workspace, plugin) DO UPDATE SET
                    bytes_used = bytes_used + NEW.size,
                    key_count = key_count + 1,
                    last_version = max(last_version, NEW.version);
            END
            """,
            """
            CREATE TRIGGER pluginkv_entries_updated AFTER UPDATE ON pluginkv_entries
            BEGIN
                UPDATE pluginkv_scopes SET
                    bytes_used = bytes_used + NEW.size - OLD.size,
                    last_version = max(last_version, NEW.version)
                WHERE workspace = NEW.workspace AND plugin = NEW.plugin;
            END
            """,
            """
            CREATE TRIGGER pluginkv_entries_deleted AFTER DELETE ON pluginkv_entries
            BEGIN
                UPDATE pluginkv_scopes SET
                    bytes_used = bytes_used - OLD.size,
                    key_count = key_count - 1
                WHERE workspace = OLD.workspace AND plugin = OLD.plugin;
            END
            """,
        ),
    ),
)
