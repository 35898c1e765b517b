"""Named, recorded schema migrations, shared by every SQL backend.

Each migration has a name and one statement list per SQL dialect (``sqlite``,
``postgres``).  A backend applies the ones not yet recorded in
``pluginkv_migrations``, in order, each in its own transaction together with
its record, so a crash never leaves a half-applied step and two processes
opening one database never both apply one (SQLite: ``BEGIN IMMEDIATE``;
PostgreSQL: a transaction-scoped advisory lock).

The workspace comes first in every primary key and index, so the tables can be
distributed by workspace on a distributed PostgreSQL.  ``value`` is the last
column: SQLite then finds every other column without walking a large value's
overflow pages, and PostgreSQL reads the fixed-size columns without
detoasting it.

PostgreSQL specifics: text columns use the ``"C"`` collation, so keys compare
and sort in UTF-8 byte order as in SQLite (the database must be UTF8); sizes
and versions are ``BIGINT``, times ``DOUBLE PRECISION`` (a Python float, exactly).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LISTENED", "MIGRATIONS", "MIGRATIONS_TABLE", "Migration"]

MIGRATIONS_TABLE = "pluginkv_migrations"


@dataclass(frozen=True)
class Migration:
    name: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]


# The row trigger of inserts and updates as 0004 leaves it (0006 adds a condition to
# its notice).
_COUNT_ROW_WRITES = """
            CREATE OR REPLACE FUNCTION pluginkv_entries_count() RETURNS trigger
            LANGUAGE plpgsql AS $$
            DECLARE
                seq BIGINT;
                expired BOOLEAN;
            BEGIN
                IF TG_OP = 'INSERT' THEN
                    INSERT INTO pluginkv_scopes AS s
                        (workspace, plugin, bytes_used, key_count, last_version, last_seq)
                    VALUES (NEW.workspace, NEW.plugin, NEW.size, 1, NEW.version, 1)
                    ON CONFLICT (workspace, plugin) DO UPDATE SET
                        bytes_used = s.bytes_used + NEW.size,
                        key_count = s.key_count + 1,
                        last_version = greatest(s.last_version, NEW.version),
                        last_seq = s.last_seq + 1
                    RETURNING s.last_seq INTO seq;
                ELSE
                    expired := OLD.expires_at IS NOT NULL AND OLD.expires_at <= NEW.updated_at;
                    UPDATE pluginkv_scopes SET
                        bytes_used = bytes_used + NEW.size - OLD.size,
                        last_version = greatest(last_version, NEW.version),
                        last_seq = last_seq + 1 + expired::int
                    WHERE workspace = NEW.workspace AND plugin = NEW.plugin
                    RETURNING last_seq INTO seq;
                    IF expired THEN  -- a row that had expired before this write: its expiry first
                        INSERT INTO pluginkv_changes
                            (workspace, plugin, seq, key, kind, version, changed_at)
                        VALUES (NEW.workspace, NEW.plugin, seq - 1, OLD.key, 'expire',
                            OLD.version, NEW.updated_at);
                    END IF;
                END IF;
                INSERT INTO pluginkv_changes
                    (workspace, plugin, seq, key, kind, version, changed_at)
                VALUES (NEW.workspace, NEW.plugin, seq, NEW.key, 'set', NEW.version,
                    NEW.updated_at);
                PERFORM pg_notify('pluginkv_changes', json_build_array(NEW.workspace,
                    NEW.plugin)::text);
                RETURN NULL;
            END
            $$
            """
# Whether a store listens for notices (migration 0006, postgres_listen.py): a listener's
# row is fresh for 90 s after its last refresh.
LISTENED = (
    "EXISTS (SELECT 1 FROM pluginkv_listeners WHERE seen_at > extract(epoch FROM now()) - 90)"
)
_NOTIFY = """                PERFORM pg_notify('pluginkv_changes', json_build_array(NEW.workspace,
                    NEW.plugin)::text);
"""

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
        postgres=(
            """
            CREATE TABLE pluginkv_entries (
                workspace  TEXT COLLATE "C" NOT NULL,
                plugin     TEXT COLLATE "C" NOT NULL,
                key        TEXT COLLATE "C" NOT NULL,
                size       BIGINT           NOT NULL,
                version    BIGINT           NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION,
                value      BYTEA            NOT NULL,
                PRIMARY KEY (workspace, plugin, key)
            )
            """,
            """
            CREATE INDEX pluginkv_entries_expiry
                ON pluginkv_entries (workspace, plugin, expires_at)
                WHERE expires_at IS NOT NULL
            """,
            """
            CREATE TABLE pluginkv_scopes (
                workspace      TEXT COLLATE "C" NOT NULL,
                plugin         TEXT COLLATE "C" NOT NULL,
                bytes_used     BIGINT NOT NULL DEFAULT 0,
                key_count      BIGINT NOT NULL DEFAULT 0,
                last_version   BIGINT NOT NULL DEFAULT 0,
                quota_override BIGINT,
                PRIMARY KEY (workspace, plugin)
            )
            """,
            # As SQLite's triggers: the counters follow every row change.  The
            # insert of a scope's first row races with other first inserts, so
            # it is an upsert; writers lock the scope row before touching its
            # entries (see backends/postgres.py), so the updates never deadlock.
            """
            CREATE FUNCTION pluginkv_entries_count() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'INSERT' THEN
                    INSERT INTO pluginkv_scopes AS s
                        (workspace, plugin, bytes_used, key_count, last_version)
                    VALUES (NEW.workspace, NEW.plugin, NEW.size, 1, NEW.version)
                    ON CONFLICT (workspace, plugin) DO UPDATE SET
                        bytes_used = s.bytes_used + NEW.size,
                        key_count = s.key_count + 1,
                        last_version = greatest(s.last_version, NEW.version);
                ELSIF TG_OP = 'UPDATE' THEN
                    UPDATE pluginkv_scopes SET
                        bytes_used = bytes_used + NEW.size - OLD.size,
                        last_version = greatest(last_version, NEW.version)
                    WHERE workspace = NEW.workspace AND plugin = NEW.plugin;
                ELSE
                    UPDATE pluginkv_scopes SET
                        bytes_used = bytes_used - OLD.size,
                        key_count = key_count - 1
                    WHERE workspace = OLD.workspace AND plugin = OLD.plugin;
                END IF;
                RETURN NULL;
            END
            $$
            """,
            """
            CREATE TRIGGER pluginkv_entries_counted
                AFTER INSERT OR UPDATE OR DELETE ON pluginkv_entries
                FOR EACH ROW EXECUTE FUNCTION pluginkv_entries_count()
            """,
        ),
    ),
    Migration(
        name="0002_token_revocations",
        # One row per scope whose tokens were revoked: a token of the scope
        # issued at or before ``revoked_at`` no longer verifies.  Few rows, read
        # whole by every service process (see services/tokens.py), so no index
        # beyond the key.
        sqlite=(
            """
            CREATE TABLE pluginkv_token_revocations (
                workspace  TEXT NOT NULL,
                plugin     TEXT NOT NULL,
                revoked_at REAL NOT NULL,
                PRIMARY KEY (workspace, plugin)
            ) WITHOUT ROWID
            """,
        ),
        postgres=(
            """
            CREATE TABLE pluginkv_token_revocations (
                workspace  TEXT COLLATE "C" NOT NULL,
                plugin     TEXT COLLATE "C" NOT NULL,
                revoked_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (workspace, plugin)
            )
            """,
        ),
    ),
    Migration(
        name="0003_metadata_and_change_log",
        # Metadata and content type beside each value, and a change log per scope:
        # every row inserted or replaced is a "set" change, written by the same
        # trigger that keeps the counters, so even the one-statement write logs
        # itself; deletes are logged by the statements that make them, which know
        # whether the row had expired (backends/base.py).  ``last_seq`` numbers the
        # scope's changes: a transaction takes the next numbers under the scope
        # row's lock, so they follow commit order without gaps.
        sqlite=(
            # The entries table is rebuilt rather than altered: ALTER TABLE would
            # put the new columns after the value, and reading them would then
            # walk a large value's overflow pages.
            """
            CREATE TABLE pluginkv_entries_0003 (
                workspace    TEXT    NOT NULL,
                plugin       TEXT    NOT NULL,
                key          TEXT    NOT NULL,
                size         INTEGER NOT NULL,
                version      INTEGER NOT NULL,
                created_at   REAL    NOT NULL,
                updated_at   REAL    NOT NULL,
                expires_at   REAL,
                metadata     TEXT,
                content_type TEXT,
                value        BLOB    NOT NULL
            )
            """,
            """
            INSERT INTO pluginkv_entries_0003
                (workspace, plugin, key, size, version, created_at, updated_at, expires_at, value)
            SELECT workspace, plugin, key, size, version, created_at, updated_at, expires_at, value
            FROM pluginkv_entries
            """,
            "DROP TABLE pluginkv_entries",  # its indexes and triggers with it
            "ALTER TABLE pluginkv_entries_0003 RENAME TO pluginkv_entries",
            """
            CREATE UNIQUE INDEX pluginkv_entries_key
                ON pluginkv_entries (workspace, plugin, key)
            """,
            """
            CREATE INDEX pluginkv_entries_expiry
                ON pluginkv_entries (workspace, plugin, expires_at)
                WHERE expires_at IS NOT NULL
            """,
            "ALTER TABLE pluginkv_scopes ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0",
            """
            CREATE TABLE pluginkv_changes (
                workspace  TEXT    NOT NULL,
                plugin     TEXT    NOT NULL,
                seq        INTEGER NOT NULL,
                key        TEXT    NOT NULL,
                kind       TEXT    NOT NULL,
                version    INTEGER NOT NULL,
                changed_at REAL    NOT NULL,
                PRIMARY KEY (workspace, plugin, seq)
            ) WITHOUT ROWID
            """,
            # The retention window trims by time across scopes.
            "CREATE INDEX pluginkv_changes_time ON pluginkv_changes (changed_at)",
            """
            CREATE TRIGGER pluginkv_entries_inserted AFTER INSERT ON pluginkv_entries
            BEGIN
                INSERT INTO pluginkv_scopes
                    (workspace, plugin, bytes_used, key_count, last_version, last_seq)
                VALUES (NEW.workspace, NEW.plugin, NEW.size, 1, NEW.version, 1)
                ON CONFLICT (workspace, plugin) DO UPDATE SET
                    bytes_used = bytes_used + NEW.size,
                    key_count = key_count + 1,
                    last_version = max(last_version, NEW.version),
                    last_seq = last_seq + 1;
                INSERT INTO pluginkv_changes
                    (workspace, plugin, seq, key, kind, version, changed_at)
                SELECT NEW.workspace, NEW.plugin, last_seq, NEW.key, 'set', NEW.version,
                    NEW.updated_at
                FROM pluginkv_scopes WHERE workspace = NEW.workspace AND plugin = NEW.plugin;
            END
            """,
            """
            CREATE TRIGGER pluginkv_entries_updated AFTER UPDATE ON pluginkv_entries
            BEGIN
                UPDATE pluginkv_scopes SET
                    bytes_used = bytes_used + NEW.size - OLD.size,
                    last_version = max(last_version, NEW.version),
                    last_seq = last_seq + 1
                        + (OLD.expires_at IS NOT NULL AND OLD.expires_at <= NEW.updated_at)
                WHERE workspace = NEW.workspace AND plugin = NEW.plugin;
                -- A row that had expired before this write: its expiry first.
                INSERT INTO pluginkv_changes
                    (workspace, plugin, seq, key, kind, version, changed_at)
                SELECT NEW.workspace, NEW.plugin, last_seq - 1, OLD.key, 'expire', OLD.version,
                    NEW.updated_at
                FROM pluginkv_scopes WHERE workspace = NEW.workspace AND plugin = NEW.plugin
                    AND OLD.expires_at IS NOT NULL AND OLD.expires_at <= NEW.updated_at;
                INSERT INTO pluginkv_changes
                    (workspace, plugin, seq, key, kind, version, changed_at)
                SELECT NEW.workspace, NEW.plugin, last_seq, NEW.key, 'set', NEW.version,
                    NEW.updated_at
                FROM pluginkv_scopes WHERE workspace = NEW.workspace AND plugin = NEW.plugin;
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
        postgres=(
            # PostgreSQL adds columns without rewriting the table, and a large
            # value lives out of line (TOAST) whatever the column order.
            """
            ALTER TABLE pluginkv_entries
                ADD COLUMN metadata TEXT,
                ADD COLUMN content_type TEXT
            """,
            "ALTER TABLE pluginkv_scopes ADD COLUMN last_seq BIGINT NOT NULL DEFAULT 0",
            """
            CREATE TABLE pluginkv_changes (
                workspace  TEXT COLLATE "C" NOT NULL,
                plugin     TEXT COLLATE "C" NOT NULL,
                seq        BIGINT           NOT NULL,
                key        TEXT COLLATE "C" NOT NULL,
                kind       TEXT             NOT NULL,
                version    BIGINT           NOT NULL,
                changed_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (workspace, plugin, seq)
            )
            """,
            "CREATE INDEX pluginkv_changes_time ON pluginkv_changes (changed_at)",
            # As before, plus the change and a notice to the processes that LISTEN
            # (delivered at commit; one per scope and transaction, as PostgreSQL
            # folds identical notices of a transaction into one).
            """
            CREATE OR REPLACE FUNCTION pluginkv_entries_count() RETURNS trigger
            LANGUAGE plpgsql AS $$
            DECLARE
                seq BIGINT;
                expired BOOLEAN;
            BEGIN
                IF TG_OP = 'INSERT' THEN
                    INSERT INTO pluginkv_scopes AS s
                        (workspace, plugin, bytes_used, key_count, last_version, last_seq)
                    VALUES (NEW.workspace, NEW.plugin, NEW.size, 1, NEW.version, 1)
                    ON CONFLICT (workspace, plugin) DO UPDATE SET
                        bytes_used = s.bytes_used + NEW.size,
                        key_count = s.key_count + 1,
                        last_version = greatest(s.last_version, NEW.version),
                        last_seq = s.last_seq + 1
                    RETURNING s.last_seq INTO seq;
                ELSIF TG_OP = 'UPDATE' THEN
                    expired := OLD.expires_at IS NOT NULL AND OLD.expires_at <= NEW.updated_at;
                    UPDATE pluginkv_scopes SET
                        bytes_used = bytes_used + NEW.size - OLD.size,
                        last_version = greatest(last_version, NEW.version),
                        last_seq = last_seq + 1 + expired::int
                    WHERE workspace = NEW.workspace AND plugin = NEW.plugin
                    RETURNING last_seq INTO seq;
                    IF expired THEN  -- a row that had expired before this write: its expiry first
                        INSERT INTO pluginkv_changes
                            (workspace, plugin, seq, key, kind, version, changed_at)
                        VALUES (NEW.workspace, NEW.plugin, seq - 1, OLD.key, 'expire',
                            OLD.version, NEW.updated_at);
                    END IF;
                ELSE
                    UPDATE pluginkv_scopes SET
                        bytes_used = bytes_used - OLD.size,
                        key_count = key_count - 1
                    WHERE workspace = OLD.workspace AND plugin = OLD.plugin;
                    RETURN NULL;
                END IF;
                INSERT INTO pluginkv_changes
                    (workspace, plugin, seq, key, kind, version, changed_at)
                VALUES (NEW.workspace, NEW.plugin, seq, NEW.key, 'set', NEW.version,
                    NEW.updated_at);
                PERFORM pg_notify('pluginkv_changes', json_build_array(NEW.workspace,
                    NEW.plugin)::text);
                RETURN NULL;
            END
            $$
            """,
        ),
    ),
    Migration(
        name="0004_deletes_count_per_statement",
        # PostgreSQL: the counters of deletes move once per statement, in the
        # statement that deletes (postgres_statements.py, _counted), no longer in
        # the row trigger.  Within one transaction each update of a row adds a
        # version the next update must step over, so a trigger updating the
        # scope's row per deleted row made a delete of n rows cost n^2 (1-3.6 s
        # for 10,000).  A statement-level trigger with a transition table would
        # keep the counting in the database, but Citus takes only row-level
        # triggers on a distributed table.  Inserts and updates keep the row
        # trigger: a plain set is one row, and it logs the change too.
        # SQLite changes nothing: it updates the scope's row in place, at the
        # same cost for every row.
        sqlite=(),
        postgres=(
            "DROP TRIGGER pluginkv_entries_counted ON pluginkv_entries",
            _COUNT_ROW_WRITES,
            """
            CREATE TRIGGER pluginkv_entries_counted
                AFTER INSERT OR UPDATE ON pluginkv_entries
                FOR EACH ROW EXECUTE FUNCTION pluginkv_entries_count()
            """,
        ),
    ),
    Migration(
        name="0005_change_log_without_time_index",
        # SQLite's change log loses its time index: it cost every write a second
        # b-tree insert and one more page in the WAL per commit (5.9 pages
        # against 4.7 without it), about a fifth of a set's time at
        # synchronous=NORMAL.  Its retention window trims each scope's log from
        # the oldest end through the primary key instead (sqlite.py,
        # _PRUNE_BY_TIME).  PostgreSQL keeps the index, which its prune by time
        # reads (its planner runs SQLite's statement as a hash join over the
        # whole log): its part of this migration is empty.
        #
        # SQLite also gets the one statement of a plain delete: an insert into
        # the view ``pluginkv_deletes`` deletes the row and logs its change, as
        # one autocommit statement, where a transaction of five statements did
        # (sqlite.py, ``delete_now``).  The view holds no rows; PostgreSQL's
        # plain delete is its own (postgres.py) and needs no view.
        sqlite=(
            "DROP INDEX IF EXISTS pluginkv_changes_time",
            """
            CREATE VIEW pluginkv_deletes (workspace, plugin, key, deleted_at) AS
                SELECT NULL, NULL, NULL, NULL WHERE 0
            """,
            # The numbers are taken under the write lock the statement holds, so
            # they follow commit order without gaps, as a transaction's would.
            """
            CREATE TRIGGER pluginkv_delete_one INSTEAD OF INSERT ON pluginkv_deletes
            BEGIN
                UPDATE pluginkv_scopes SET last_seq = last_seq + 1
                WHERE workspace = NEW.workspace AND plugin = NEW.plugin AND EXISTS (
                    SELECT 1 FROM pluginkv_entries WHERE workspace = NEW.workspace
                        AND plugin = NEW.plugin AND key = NEW.key);
                INSERT INTO pluginkv_changes
                    (workspace, plugin, seq, key, kind, version, changed_at)
                SELECT e.workspace, e.plugin, s.last_seq, e.key,
                    CASE WHEN e.expires_at IS NOT NULL AND e.expires_at <= NEW.deleted_at
                        THEN 'expire' ELSE 'delete' END,
                    e.version, NEW.deleted_at
                FROM pluginkv_entries AS e JOIN pluginkv_scopes AS s
                    ON s.workspace = e.workspace AND s.plugin = e.plugin
                WHERE e.workspace = NEW.workspace AND e.plugin = NEW.plugin
                    AND e.key = NEW.key;
                DELETE FROM pluginkv_entries
                WHERE workspace = NEW.workspace AND plugin = NEW.plugin AND key = NEW.key;
            END
            """,
        ),
        postgres=(),
    ),
    Migration(
        name="0006_notify_only_when_listened",
        # PostgreSQL takes a lock for the whole database from before each commit
        # that sent a NOTIFY until after its WAL flush, so writers of different
        # scopes committed one at a time: 8 threads setting keys went from 0.65x
        # of raw psycopg to 0.26-0.39x with the change log's notices.  A store
        # that watches registers in pluginkv_listeners (postgres_listen.py) and
        # refreshes its row while it listens; writes send their notice only while
        # a row is fresh (90 s).  Without a watcher on another replica no commit
        # pays for notices; with one, they are the price of its wake-ups.
        sqlite=(),
        postgres=(
            """
            CREATE TABLE pluginkv_listeners (
                id TEXT COLLATE "C" PRIMARY KEY,
                seen_at DOUBLE PRECISION NOT NULL
            )
            """,
            _COUNT_ROW_WRITES.replace(
                _NOTIFY,
                f"                IF {LISTENED} THEN\n" + _NOTIFY + "                END IF;\n",
            ),
        ),
    ),
)
