"""A store from before metadata and the change log gains both, its data intact."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import pluginkv
from pluginkv import Store
from pluginkv.backends.migrations import MIGRATIONS

from ..postgres import TestDatabase

OLD_ROW = (
    "INSERT INTO pluginkv_entries (workspace, plugin, key, size, version, created_at, "
    "updated_at, expires_at, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


@pytest.fixture(
    name="old_url", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def _old_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database as the version before metadata and the change log left it, with two rows."""
    import pluginkv.backends.postgres as postgres_module
    import pluginkv.backends.sqlite as sqlite_module

    database = TestDatabase.create() if request.param == "postgres" else None
    url = f"sqlite:///{tmp_path / 'old.db'}" if database is None else database.url
    with pytest.MonkeyPatch.context() as patch:
        for module in (sqlite_module, postgres_module):
            patch.setattr(module, "MIGRATIONS", MIGRATIONS[:2])
        with pluginkv.open_store(url) as store:
            _insert(store, ("w", "a/b", "k", 2, 7, 1.0, 2.0, None, b"v"))
            _insert(store, ("w", "a/b", "big", 3 + 300_000, 8, 1.0, 2.0, None, b"x" * 300_000))
    yield url
    if database is not None:
        database.drop()


def _insert(store: Store, row: tuple[object, ...]) -> None:
    backend = store.backend
    if backend.name == "sqlite":
        backend._conn().execute(OLD_ROW, row)  # type: ignore[attr-defined]
    else:
        with backend._pool.connection() as conn:  # type: ignore[attr-defined]
            conn.execute(OLD_ROW.replace("?", "%s"), row)


def test_a_store_from_before_keeps_its_entries_and_starts_its_log(old_url: str) -> None:
    with pluginkv.open_store(old_url) as store:
        assert store.backend.applied_migrations() == [m.name for m in MIGRATIONS]  # type: ignore[attr-defined]
        storage = store.storage(workspace="w", plugin="a/b")
        entry = storage.get_entry("k")
        assert entry is not None
        assert (entry.value, entry.version, entry.metadata, entry.content_type) == (
            b"v",
            7,
            None,
            None,
        )
        big = storage.get_entry("big")
        assert big is not None and big.value == b"x" * 300_000
        assert storage.usage().bytes_used == 2 + 3 + 300_000
        page = storage.changes()
        assert (page.changes, page.next) == ([], 0)
        assert storage.set("k", b"w", metadata={"m": 1}) == 9
        storage.delete("big")
        assert [(c.seq, c.key, c.kind) for c in storage.changes()] == [
            (1, "k", "set"),
            (2, "big", "delete"),
        ]
        assert storage.usage().bytes_used == len("k") + len("w") + len('{"m":1}')
