"""What only the SQLite backend has: a file, migrations, locks, pragmas, forks."""

from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import pytest

import pluginkv
from pluginkv import BackendUnavailable
from pluginkv.backends.migrations import MIGRATIONS
from pluginkv.backends.sqlite import SQLiteBackend


@pytest.fixture(name="db")
def _db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "pluginkv.db"


def test_opening_creates_the_directory_and_records_migrations(db: Path) -> None:
    with pluginkv.open_store(f"sqlite:///{db}") as store:
        assert isinstance(store.backend, SQLiteBackend)
        assert store.backend.applied_migrations() == [m.name for m in MIGRATIONS]
    assert db.exists()


def test_reopening_applies_no_migration_twice(db: Path) -> None:
    pluginkv.open_store(f"sqlite:///{db}").close()
    with pluginkv.open_store(f"sqlite:///{db}") as store:
        assert store.backend.applied_migrations() == [m.name for m in MIGRATIONS]  # type: ignore[attr-defined]


def test_a_database_from_before_token_revocations_gains_them_once(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pluginkv.backends.sqlite as sqlite_module

    with monkeypatch.context() as patch:
        patch.setattr(sqlite_module, "MIGRATIONS", MIGRATIONS[:1])
        with pluginkv.open_store(f"sqlite:///{db}") as store:
            # A row as that version wrote it: today's code writes today's columns.
            store.backend._conn().execute(  # type: ignore[attr-defined]
                "INSERT INTO pluginkv_entries (workspace, plugin, key, size, version, "
                "created_at, updated_at, expires_at, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                ("w", "a/b", "k", 2, 1, 1.0, 1.0, None, b"v"),
            )
            assert store.backend.applied_migrations() == [MIGRATIONS[0].name]  # type: ignore[attr-defined]
    for _ in range(2):
        with pluginkv.open_store(f"sqlite:///{db}") as store:
            assert store.backend.applied_migrations() == [m.name for m in MIGRATIONS]  # type: ignore[attr-defined]
            assert store.storage(workspace="w", plugin="a/b").get("k") == b"v"
            store.revoke_tokens(workspace="w", plugin="a/b")
            assert set(store.token_revocations()) == {pluginkv.keys.Scope("w", "a/b")}


def test_plain_path_opens_sqlite(db: Path) -> None:
    with pluginkv.open_store(str(db)) as store:
        assert store.backend.name == "sqlite"


@pytest.mark.parametrize("url", ["mysql://x/y", "redis://localhost", "sqlite:///"])
def test_unsupported_url_is_a_clear_error(url: str) -> None:
    with pytest.raises(pluginkv.InvalidArgument, match="PLUGINKV_DATABASE_URL"):
        pluginkv.open_store(url)


@pytest.mark.parametrize("mode", ["FULL", "NORMAL"])
def test_synchronous_setting_reaches_every_connection(db: Path, mode: str) -> None:
    with pluginkv.open_store(f"sqlite:///{db}", sqlite_synchronous=mode) as store:
        backend = store.backend
        assert isinstance(backend, SQLiteBackend)
        levels = {"OFF": 0, "NORMAL": 1, "FULL": 2, "EXTRA": 3}
        seen: list[int] = []

        def probe() -> None:
            seen.append(backend._conn().execute("PRAGMA synchronous").fetchone()[0])

        thread = threading.Thread(target=probe)
        thread.start()
        thread.join()
        probe()
        assert seen == [levels[mode], levels[mode]]
        assert backend._conn().execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize("size", [0, 64 * 1024 * 1024])
def test_mmap_setting_reaches_every_connection_and_values_read_back(db: Path, size: int) -> None:
    with pluginkv.open_store(f"sqlite:///{db}", sqlite_mmap_bytes=size) as store:
        backend = store.backend
        assert isinstance(backend, SQLiteBackend)
        storage = store.storage(workspace="ws", plugin="acme/app")
        value = os.urandom(3 * 1024 * 1024)
        storage.set("big", value)
        seen: list[int] = []

        def probe() -> None:
            seen.append(backend._conn().execute("PRAGMA mmap_size").fetchone()[0])
            assert storage.get("big") == value

        thread = threading.Thread(target=probe)
        thread.start()
        thread.join()
        probe()
        assert seen == [size, size]


def test_by_default_a_connection_maps_two_gib_or_as_much_as_sqlite_allows(db: Path) -> None:
    with pluginkv.open_store(f"sqlite:///{db}") as store:
        backend = store.backend
        assert isinstance(backend, SQLiteBackend)
        mapped = backend._conn().execute("PRAGMA mmap_size").fetchone()[0]
    # SQLite lowers mmap_size to its build's SQLITE_MAX_MMAP_SIZE: ask for more to learn it.
    with closing(sqlite3.connect(db.parent / "probe.db")) as probe:
        ceiling = probe.execute(f"PRAGMA mmap_size = {1 << 62}").fetchone()[0]
    assert mapped == min(2 << 30, ceiling)


def test_default_synchronous_is_full() -> None:
    assert pluginkv.Settings().sqlite_synchronous == "FULL"


def test_a_held_write_lock_becomes_backend_unavailable_naming_the_setting(db: Path) -> None:
    with pluginkv.open_store(f"sqlite:///{db}", sqlite_busy_timeout_ms=50) as store:
        storage = store.storage(workspace="w", plugin="a/b")
        storage.set("k", b"v")
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(BackendUnavailable, match="PLUGINKV_SQLITE_BUSY_TIMEOUT_MS"):
                storage.set("k", b"w")
            assert storage.get("k") == b"v"  # readers are not blocked in WAL mode
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        storage.set("k", b"w")
        assert storage.get("k") == b"w"


def test_a_broken_database_is_unavailable_never_absent(db: Path) -> None:
    with pluginkv.open_store(f"sqlite:///{db}") as store:
        storage = store.storage(workspace="w", plugin="a/b")
        storage.set("k", b"v")
        conn = store.backend._conn()  # type: ignore[attr-defined]
        conn.execute("DROP TABLE pluginkv_entries")
        with pytest.raises(BackendUnavailable, match="no such table"):
            storage.get("k")
        with pytest.raises(BackendUnavailable):
            storage.exist("k")
        with pytest.raises(BackendUnavailable):
            storage.set("k", b"v")


def test_a_file_that_is_not_a_database_is_unavailable(db: Path) -> None:
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not a database file at all" * 100)
    with pytest.raises(BackendUnavailable, match="not a database"):
        pluginkv.open_store(f"sqlite:///{db}")


def test_a_closed_store_refuses_calls(db: Path) -> None:
    store = pluginkv.open_store(f"sqlite:///{db}")
    storage = store.storage(workspace="w", plugin="a/b")
    storage.set("k", b"v")
    store.close()
    with pytest.raises(BackendUnavailable, match="closed"):
        storage.get("k")


def test_each_thread_gets_its_own_connection_and_dead_ones_are_closed(db: Path) -> None:
    with pluginkv.open_store(f"sqlite:///{db}") as store:
        storage = store.storage(workspace="w", plugin="a/b")
        for i in range(5):
            thread = threading.Thread(target=storage.set, args=(f"k{i}", b"v"))
            thread.start()
            thread.join()
        storage.get("k0")
        backend = store.backend
        assert isinstance(backend, SQLiteBackend)
        thread = threading.Thread(target=storage.get, args=("k1",))
        thread.start()
        thread.join()
        assert len(backend._connections) <= 3
        assert storage.usage().keys == 5


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_opens_its_own_connection(db: Path) -> None:
    with pluginkv.open_store(f"sqlite:///{db}") as store:
        storage = store.storage(workspace="w", plugin="a/b")
        storage.set("parent", b"1")
        parent_conn = store.backend._conn()  # type: ignore[attr-defined]
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                same = store.backend._conn() is parent_conn  # type: ignore[attr-defined]
                storage.set("child", b"2")
                code = 0 if not same and storage.get("parent") == b"1" else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert storage.get("child") == b"2"
        assert storage.usage().keys == 2


def test_values_of_many_mebibytes_round_trip(db: Path) -> None:
    with pluginkv.open_store(f"sqlite:///{db}") as store:
        storage = store.storage(workspace="w", plugin="a/b")
        value = os.urandom(1024) * 10 * 1024
        storage.set("big", value)
        assert storage.get("big") == value
        entry = storage.keys().entries[0]
        assert entry.size == len(value) + 3


def test_a_group_commits_its_writes_together_and_each_write_fails_alone(db: Path) -> None:
    with pluginkv.open_store(f"sqlite:///{db}") as store:
        store.set_quota(workspace="ws", plugin="acme/app", quota_bytes=100)
        storage = store.storage(workspace="ws", plugin="acme/app")
        other = SQLiteBackend(db)  # another connection sees only what is committed
        scope = storage._scope
        with store.backend.group():
            storage.set("a", b"1")
            with pytest.raises(pluginkv.VersionConflict):
                storage.set("a", b"2", if_version=99)
            with pytest.raises(pluginkv.QuotaExceeded):
                storage.set_many({"b": b"2", "big": b"x" * 100})
            storage.incr("n")
            assert other.get_value(scope, "a", 0) is None  # not committed yet
        assert other.get_value(scope, "a", 0) == b"1"
        assert storage.get_many(["a", "b", "big", "n"]) == {"a": b"1", "n": b"1"}
        assert storage.usage().bytes_used == len("a1") + len("n1")
        other.close()


def test_a_group_the_database_rolled_back_refuses_further_writes(db: Path) -> None:
    with pluginkv.open_store(f"sqlite:///{db}") as store:
        storage = store.storage(workspace="ws", plugin="acme/app")
        backend = store.backend
        assert isinstance(backend, SQLiteBackend)
        with pytest.raises(BackendUnavailable, match="rolled back"):
            with backend.group():
                storage.set("a", b"1")
                backend._conn().execute("ROLLBACK")  # as SQLite does on an I/O error
                with pytest.raises(BackendUnavailable, match="rolled back"):
                    storage.set("b", b"2")  # would otherwise commit alone, outside the group
        assert storage.get_many(["a", "b"]) == {}
        storage.set("c", b"3")  # the next write works as usual
        assert storage.get("c") == b"3"


def test_a_plain_delete_whose_change_cannot_be_logged_deletes_nothing(db: Path) -> None:
    # The delete and its change are one statement: a failure of either undoes both.
    with pluginkv.open_store(f"sqlite:///{db}") as store:
        storage = store.storage(workspace="w", plugin="a/b")
        storage.set("k", b"v")
        conn: sqlite3.Connection = store.backend._conn()  # type: ignore[attr-defined]
        conn.execute(
            "CREATE TEMP TRIGGER refuse_deletes BEFORE INSERT ON main.pluginkv_changes "
            "WHEN NEW.kind = 'delete' BEGIN SELECT RAISE(ABORT, 'no room for the change'); END"
        )
        with pytest.raises(BackendUnavailable, match="no room for the change"):
            storage.delete("k")
        conn.execute("DROP TRIGGER refuse_deletes")
        assert storage.get("k") == b"v"
        assert [(c.seq, c.kind) for c in storage.changes()] == [(1, "set")]
        storage.delete("k")
        assert storage.get("k") is None
        assert [(c.seq, c.kind) for c in storage.changes()] == [(1, "set"), (2, "delete")]
