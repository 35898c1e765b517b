"""Fixtures: every test that takes ``store`` or ``storage`` runs once per backend."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import pluginkv
from pluginkv import Storage, Store
from pluginkv.client import RemoteStorage

from .postgres import TestDatabase, reset_tables

POSTGRES_BACKENDS = ("postgres", "remote-postgres")
BACKENDS = [
    "memory",
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    "remote",
    "remote-async",
    pytest.param("remote-postgres", marks=pytest.mark.postgres),
]
# The engine's own backends: the parts of the suites only the engine has
# (change_waiter, the store's own calls in between).
ENGINE_BACKENDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
# The HTTP clients' backends, which those suites run on as well.
CLIENT_BACKENDS = [
    "remote",
    "remote-async",
    pytest.param("remote-postgres", marks=pytest.mark.postgres),
]
SECRET = "test-secret-" + "x" * 40

# Every SQLite store allocates its disk reserve (64 MiB by default), and a run
# keeps every test's directory: a small one here, for this process and the
# services it starts.  tests/security/test_full_disk.py sets its own.
os.environ.setdefault("PLUGINKV_SQLITE_DISK_RESERVE_BYTES", str(64 * 1024))


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


class LiveService:
    """``pluginkv serve``'s app under uvicorn in a thread, for the whole test session.

    Each test points it at its own store, so one server serves every test.
    """

    def __init__(self) -> None:
        import uvicorn

        from pluginkv.server.app import create_app
        from pluginkv.services.tokens import Tokens

        self.tokens = Tokens(SECRET, default_ttl=3600)
        self.app = create_app(store=pluginkv.open_store("memory://"), tokens=self.tokens)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the test service did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class RemoteStore:
    """A ``Store`` whose ``storage()`` goes over HTTP to the live service; the rest is local.

    With ``use_async``, ``storage()`` is an ``AsyncRemoteStorage`` driven from a
    background event loop (``tests/client/sync_over_async.py``).
    """

    def __init__(self, store: Store, service: LiveService, *, use_async: bool = False) -> None:
        self._store = store
        self._service = service
        self._clients: list[Any] = []
        self._use_async = use_async
        self._loop: Any = None
        service.app.state.store = store

    def storage(self, *, workspace: str, plugin: str) -> Any:
        token = self._service.tokens.issue(workspace=workspace, plugin=plugin)
        if self._use_async:
            from pluginkv.client import AsyncRemoteStorage

            from .client.sync_over_async import LoopThread, SyncAsyncStorage

            self._loop = self._loop or LoopThread()
            client: Any = SyncAsyncStorage(AsyncRemoteStorage(self._service.url, token), self._loop)
        else:
            client = RemoteStorage(self._service.url, token)
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()
        if self._loop is not None:
            self._loop.stop()
        self._store.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class ChannelStore:
    """A ``Store`` whose ``storage()`` is a ``ChannelStorage``, as plugin code gets it.

    Each call goes over ``pluginkv.testing.FakeSession``'s storage channel, which
    answers it in process as pluginkv's host does (keys cleaned as Dify's
    daemon cleans them); the rest is the local store.
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    def storage(self, *, workspace: str, plugin: str) -> Any:
        from pluginkv.dify.plugin_storage import ChannelStorage
        from pluginkv.testing import FakeSession

        session = FakeSession(workspace=workspace, plugin=plugin, store=self._store)
        return ChannelStorage(session.storage)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@pytest.fixture(name="live_service", scope="session")
def _live_service() -> Iterator[LiveService]:
    service = LiveService()
    yield service
    service.stop()


@pytest.fixture(name="postgres_url", scope="session")
def _postgres_url() -> Iterator[str]:
    """A database of this test run's own on the test PostgreSQL server, dropped at the end.

    Skips when no server can be reached, except under ``CI=true``, where it fails.
    """
    database = TestDatabase.create()
    yield database.url
    database.drop()


@pytest.fixture(name="open_store")
def _open_store(
    tmp_path: Path, clock: FakeClock, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Store]]:
    """Open stores on a backend by name: ``"memory"``, ``"sqlite"``, ``"postgres"`` (the
    test run's database, emptied for each test), or ``"remote"`` (a memory store behind
    the live HTTP service, reached with ``RemoteStorage``), ``"remote-async"`` (the same,
    reached with ``AsyncRemoteStorage``), ``"remote-postgres"`` (a PostgreSQL store
    behind the live service) and ``"channel"`` (a memory store reached with
    ``ChannelStorage``, as plugin code reaches it).  All are closed afterwards."""
    opened: list[Any] = []
    emptied = False

    def open_(backend: str, **settings: Any) -> Store:
        nonlocal emptied
        if backend == "sqlite":
            url = "sqlite:///" + str(tmp_path / "pluginkv.db")
        elif backend in POSTGRES_BACKENDS:
            url = request.getfixturevalue("postgres_url")
        else:
            url = "memory://"
        settings.setdefault("clock", clock)
        store: Any = pluginkv.open_store(url, **settings)
        if backend in POSTGRES_BACKENDS and not emptied:
            reset_tables(store)  # once per test: a second store of the test sees the first's data
            emptied = True
        if backend in ("remote", "remote-async", "remote-postgres"):
            service = request.getfixturevalue("live_service")
            store = RemoteStore(store, service, use_async=backend == "remote-async")
        elif backend == "channel":
            store = ChannelStore(store)
        opened.append(store)
        return store  # type: ignore[no-any-return]

    yield open_
    for store in opened:
        store.close()


@pytest.fixture(name="backend", params=BACKENDS)
def _backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(name="store")
def _store(open_store: Callable[..., Store], backend: str, request: pytest.FixtureRequest) -> Store:
    refused = request.node.get_closest_marker("not_on_channel")
    if backend == "channel" and refused is not None:
        pytest.skip(f"the plugin's storage channel: {refused.kwargs['reason']}")
    return open_store(backend)


@pytest.fixture(name="storage")
def _storage(store: Store) -> Storage:
    return store.storage(workspace="ws-1", plugin="acme/weather")
