"""A read-only store (``PLUGINKV_READ_ONLY``): writes refused before the database, reads work."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import pluginkv
from pluginkv import ReadOnly, Store
from pluginkv.backends import read_only
from pluginkv.backends.migrations import Migration
from pluginkv.cli import EXIT_ERROR, main
from pluginkv.keys import Scope
from pluginkv.transfer import export_store, import_lines

from .conftest import FakeClock

WS, PLUGIN = "ws-1", "acme/weather"

ENGINES = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]

Write = Callable[[Store], object]


def _storage(store: Store) -> pluginkv.Storage:
    return store.storage(workspace=WS, plugin=PLUGIN)


def _an_export() -> bytes:
    with pluginkv.open_store("memory://") as other:
        other.storage(workspace="ws-9", plugin="acme/other").set("k", b"v")
        out = io.BytesIO()
        export_store(other, out)
    return out.getvalue()


WRITES = [
    pytest.param(lambda s: _storage(s).set("a", b"new"), id="set"),
    pytest.param(lambda s: _storage(s).set("fresh", b"v", ttl=5), id="set-ttl"),
    pytest.param(lambda s: _storage(s).set("fresh", b"v", if_absent=True), id="set-if_absent"),
    pytest.param(lambda s: _storage(s).set("a", b"new", if_version=1), id="set-if_version"),
    pytest.param(lambda s: _storage(s).set_json("j", {"x": 1}), id="set_json"),
    pytest.param(lambda s: _storage(s).delete("a"), id="delete"),
    pytest.param(lambda s: _storage(s).delete("absent"), id="delete-absent"),
    pytest.param(lambda s: _storage(s).delete("a", if_version=1), id="delete-if_version"),
    pytest.param(lambda s: _storage(s).set_many({"a": b"x", "c": b"y"}), id="set_many"),
    pytest.param(lambda s: _storage(s).delete_many(["a", "b"]), id="delete_many"),
    pytest.param(lambda s: _storage(s).delete_prefix("", all=True), id="delete_prefix"),
    pytest.param(lambda s: _storage(s).incr("n"), id="incr"),
    pytest.param(lambda s: s.set_quota(workspace=WS, plugin=PLUGIN, quota_bytes=1), id="quota"),
    pytest.param(lambda s: s.purge(workspace=WS, plugin=PLUGIN), id="purge"),
    pytest.param(lambda s: s.sweep_expired(), id="sweep"),
    pytest.param(lambda s: import_lines(s, io.BytesIO(_an_export())), id="import"),
]


def _fill(store: Store, clock: FakeClock) -> None:
    storage = _storage(store)
    storage.set("a", b"1")
    storage.set("b", b"2", ttl=600)
    storage.set("n", b"41")
    storage.set("gone", b"expired, not yet swept", ttl=1)
    store.set_quota(workspace=WS, plugin=PLUGIN, quota_bytes=10_000)
    clock.advance(2)  # "gone" has expired: a sweep or a write would reclaim its row


def _rows(store: Store) -> object:
    """Everything the database holds, expired rows and raw counters included."""
    with store.backend.read() as tx:
        scopes = tx.scopes()
        keys = {
            scope: [row.key for row in tx.scan(scope, "", None, 100, 0.0)] for scope, _ in scopes
        }
        entries = {scope: tx.get_many(scope, keys[scope], 0.0) for scope in keys}
    return scopes, {
        scope: sorted(found, key=lambda entry: entry.key) for scope, found in entries.items()
    }


@pytest.fixture(name="engine", params=ENGINES)
def _engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(name="read_only_store")
def _read_only_store(open_store: Callable[..., Store], engine: str, clock: FakeClock) -> Store:
    """A read-only store over what a writable store on the same database stored first."""
    writable = open_store(engine)
    _fill(writable, clock)
    if engine == "memory":  # a memory store is its backend: share it
        settings = pluginkv.Settings(database_url="memory://", read_only=True)
        return Store(settings, backend=writable.backend, clock=clock)
    writable.close()
    return open_store(engine, read_only=True)


class TestOnEveryEngine:
    @pytest.mark.parametrize("write", WRITES)
    def test_a_write_is_refused_naming_the_setting_and_changes_nothing(
        self, read_only_store: Store, write: Write
    ) -> None:
        before = _rows(read_only_store)
        with pytest.raises(ReadOnly, match="setting PLUGINKV_READ_ONLY=true"):
            write(read_only_store)
        assert _rows(read_only_store) == before

    def test_reads_answer_as_usual(self, read_only_store: Store) -> None:
        storage = _storage(read_only_store)
        assert storage.get("a") == b"1" and storage.get("gone") is None
        assert storage.exist("b") and not storage.exist("gone")
        entry = storage.get_entry("b")
        assert entry is not None and entry.expires_at is not None
        meta = storage.get_meta("b")
        assert meta is not None and (meta.version, meta.size) == (entry.version, entry.size)
        assert [meta.key for meta in storage.keys()] == ["a", "b", "n"]
        assert storage.get_many(["a", "n", "gone"]) == {"a": b"1", "n": b"41"}
        assert storage.get_json("n") == 41
        assert storage.usage() == pluginkv.Usage(bytes_used=7, keys=3, quota_bytes=10_000)
        assert [scope.plugin for scope, _ in read_only_store.scopes()] == [PLUGIN]
        read_only_store.ping()
        out = io.BytesIO()
        assert export_store(read_only_store, out).entries == 3


def test_a_read_only_sqlite_store_leaves_its_file_untouched(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kv.db'}"
    with pluginkv.open_store(url) as store:
        _storage(store).set("a", b"1")
        _storage(store).set("gone", b"x", ttl=0.001)
    db = tmp_path / "kv.db"
    before = (db.read_bytes(), db.stat().st_mtime_ns)
    with pluginkv.open_store(url, read_only=True) as store:
        assert _storage(store).get("a") == b"1"
        export_store(store, io.BytesIO())
        with pytest.raises(ReadOnly):
            _storage(store).set("b", b"2")
        with pytest.raises(ReadOnly):
            store.sweep_expired()
        # A write slipping past the gate would still meet SQLite's own refusal.
        with pytest.raises(pluginkv.BackendUnavailable, match="readonly"):
            store.backend.inner.delete_now(Scope(WS, PLUGIN), "a", 0.0)  # type: ignore[attr-defined]
    assert (db.read_bytes(), db.stat().st_mtime_ns) == before
    wal = tmp_path / "kv.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0


def test_a_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    db = tmp_path / "data" / "kv.db"
    with pytest.raises(ReadOnly, match=r"does not exist.*once without PLUGINKV_READ_ONLY"):
        pluginkv.open_store(f"sqlite:///{db}", read_only=True)
    assert not db.parent.exists()


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_schema_behind_the_code_is_not_migrated_read_only(
    open_store: Callable[..., Store], engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_store(engine).close()  # the schema of this version
    future = Migration(name="9999_from_the_future", sqlite=(), postgres=())
    monkeypatch.setattr(read_only, "MIGRATIONS", (*read_only.MIGRATIONS, future))
    with pytest.raises(ReadOnly, match=r"9999_from_the_future.*once without PLUGINKV_READ_ONLY"):
        open_store(engine, read_only=True)


class TestTheCommandLine:
    @pytest.fixture(autouse=True)
    def _read_only_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in list(os.environ):
            if name.startswith("PLUGINKV_"):
                monkeypatch.delenv(name)

    def _run(self, *args: str, input: bytes | None = None, **env: str) -> Any:
        return CliRunner().invoke(main, list(args), input=input, env=env, prog_name="pluginkv")

    def test_kv_set_and_import_exit_as_for_any_engine_error(self, tmp_path: Path) -> None:
        db = f"sqlite:///{tmp_path / 'kv.db'}"
        scope = ["--db", db, "--workspace", WS, "--plugin", PLUGIN]
        assert self._run("init", "--db", db).exit_code == 0
        assert self._run("kv", "set", *scope, "k", "v").exit_code == 0
        refused = self._run("kv", "set", *scope, "k", "w", PLUGINKV_READ_ONLY="true")
        assert refused.exit_code == EXIT_ERROR
        assert "error: the store is read-only (setting PLUGINKV_READ_ONLY=true)" in refused.output
        imported = self._run("import", "-", "--db", db, input=_an_export(), PLUGINKV_READ_ONLY="1")
        assert imported.exit_code == EXIT_ERROR
        assert "PLUGINKV_READ_ONLY" in imported.output
        read = self._run("kv", "get", *scope, "k", PLUGINKV_READ_ONLY="true")
        assert (read.exit_code, read.output) == (0, "v")
