"""Fixtures: every test that takes ``store`` or ``storage`` runs once per backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import pluginkv
from pluginkv import Storage, Store

BACKENDS = ["memory", "sqlite"]


class FakeClock:
    """A clock the test moves by hand, for TTL."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(name="clock")
def _clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(name="open_store")
def _open_store(tmp_path: Path, clock: FakeClock) -> Iterator[Callable[..., Store]]:
    """Open stores on a backend by name (``"memory"`` or ``"sqlite"``); all closed afterwards."""
    opened: list[Store] = []

    def open_(backend: str, **settings: Any) -> Store:
        url = "memory://" if backend == "memory" else f"sqlite:///{tmp_path / 'pluginkv.db'}"
        settings.setdefault("clock", clock)
        store = pluginkv.open_store(url, **settings)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


@pytest.fixture(name="backend", params=BACKENDS)
def _backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(name="store")
def _store(open_store: Callable[..., Store], backend: str) -> Store:
    return open_store(backend)


@pytest.fixture(name="storage")
def _storage(store: Store) -> Storage:
    return store.storage(workspace="ws-1", plugin="acme/weather")
