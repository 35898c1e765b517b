"""A store from before metadata and the change log gains both, its data intact."""

from __future__ import annotations

from pathlib import Path

import pytest

import pluginkv
from pluginkv.backends.migrations import MIGRATIONS

OLD_ROW = (
    "INSERT INTO pluginkv_entries (workspace, plugin, key, size, version, created_at, "
    "updated_at, expires_at, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def test_a_sqlite_store_from_before_keeps_its_entries_and_starts_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pluginkv.backends.sqlite as sqlite_module

    url = f"sqlite:///{tmp_path / 'old.db'}"
    with monkeypatch.context() as patch:
        patch.setattr(sqlite_module, "MIGRATIONS", MIGRATIONS[:2])
        with pluginkv.open_store(url) as store:
            conn = store.backend._conn()  # type: ignore[attr-defined]
            conn.execute(OLD_ROW, ("w", "a/b", "k", 2, 7, 1.0, 2.0, None, b"v"))
            conn.execute(
                OLD_ROW, ("w", "a/b", "big", 3 + 300_000, 8, 1.0, 2.0, None, b"x" * 300_000)
            )
    with pluginkv.open_store(url) as store:
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
