"""``Backend.applied_migrations``: the schema versions a database has, on every engine."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import pluginkv
import pluginkv.backends.postgres as postgres_module
import pluginkv.backends.sqlite as sqlite_module
from pluginkv import Store
from pluginkv.backends.migrations import MIGRATIONS

from ..postgres import TestDatabase

EVERY_MIGRATION = [migration.name for migration in MIGRATIONS]
ENGINES = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(name="engine", params=ENGINES)
def _engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(name="fresh_url")
def _fresh_url(engine: str, tmp_path: Path) -> Iterator[str]:
    """A database no store has opened yet."""
    if engine == "postgres":
        database = TestDatabase.create()
        yield database.url
        database.drop()
    elif engine == "sqlite":
        yield f"sqlite:///{tmp_path / 'pluginkv.db'}"
    else:
        yield "memory://"


def test_an_open_store_has_every_migration_in_order(
    open_store: Callable[..., Store], engine: str
) -> None:
    store = open_store(engine)

    assert store.backend.applied_migrations() == EVERY_MIGRATION


def test_a_read_only_store_lists_the_migrations_of_its_database(
    open_store: Callable[..., Store], engine: str
) -> None:
    open_store(engine).close()

    store = open_store(engine, read_only=True)

    assert store.backend.applied_migrations() == EVERY_MIGRATION


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_database_of_an_older_version_lists_what_it_had_until_reopened(
    fresh_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        for module in (sqlite_module, postgres_module):
            patch.setattr(module, "MIGRATIONS", MIGRATIONS[:1])
        with pluginkv.open_store(fresh_url) as store:
            assert store.backend.applied_migrations() == [MIGRATIONS[0].name]

    with pluginkv.open_store(fresh_url) as store:
        assert store.backend.applied_migrations() == EVERY_MIGRATION


def test_a_sqlite_database_whose_migration_record_is_gone_lists_none(tmp_path: Path) -> None:
    path = tmp_path / "pluginkv.db"
    with pluginkv.open_store(f"sqlite:///{path}") as store:
        with sqlite3.connect(path) as conn:
            conn.execute("DROP TABLE pluginkv_migrations")

        assert store.backend.applied_migrations() == []
