"""``WriteTx.raise_last_version``: the version counter an import carries over, on every engine."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pluginkv import Store
from pluginkv.keys import Scope

SCOPE = Scope("ws-1", "acme/weather")


@pytest.fixture(
    name="store", params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def _store(open_store: Callable[..., Store], request: pytest.FixtureRequest) -> Store:
    return open_store(request.param)


def test_raising_the_counter_of_a_new_scope_numbers_the_next_write_after_it(store: Store) -> None:
    with store.backend.write() as tx:
        tx.raise_last_version(SCOPE, 41)
    storage = store.storage(workspace=SCOPE.workspace, plugin=SCOPE.plugin)

    storage.set("k", b"v")

    assert storage.get_entry("k").version == 42  # type: ignore[union-attr]
    assert storage.usage().keys == 1


def test_the_counter_is_never_lowered(store: Store) -> None:
    storage = store.storage(workspace=SCOPE.workspace, plugin=SCOPE.plugin)
    for _ in range(5):
        storage.set("k", b"v")

    with store.backend.write() as tx:
        tx.raise_last_version(SCOPE, 2)
    storage.set("k", b"v")

    assert storage.get_entry("k").version == 6  # type: ignore[union-attr]


def test_dropping_a_scope_keeps_its_counter(store: Store) -> None:
    storage = store.storage(workspace=SCOPE.workspace, plugin=SCOPE.plugin)
    for _ in range(3):
        storage.set("k", b"v")
    with store.backend.write() as tx:
        assert tx.drop_scope(SCOPE, 0.0) == 1
        assert tx.scope_state(SCOPE).last_version == 3

    storage.set("k", b"v")

    assert storage.get_entry("k").version == 4  # type: ignore[union-attr]
    assert storage.usage().keys == 1


def test_a_rolled_back_raise_leaves_the_counter(store: Store) -> None:
    with pytest.raises(RuntimeError), store.backend.write() as tx:
        tx.raise_last_version(SCOPE, 100)
        raise RuntimeError("abandon")
    storage = store.storage(workspace=SCOPE.workspace, plugin=SCOPE.plugin)

    storage.set("k", b"v")

    assert storage.get_entry("k").version == 1  # type: ignore[union-attr]
