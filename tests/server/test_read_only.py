"""The service on a read-only store: writes answer 503 ``read_only``, reads and /readyz as usual."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

import pluginkv
from pluginkv import ReadOnly, Store
from pluginkv.client import AsyncRemoteStorage, RemoteStorage

from ..conftest import FakeClock, LiveService

WS, PLUGIN = "ws-1", "acme/weather"
SCOPE = {"workspace": WS, "plugin": PLUGIN}


@pytest.fixture(name="store")
def _store(open_store: Callable[..., Store], backend: str, clock: FakeClock) -> Store:
    """A read-only store holding ``a`` = ``1`` in ws-1/acme/weather."""
    writable = open_store(backend)
    writable.storage(**SCOPE).set("a", b"1")
    if backend == "memory":  # a memory store is its backend: share it
        settings = pluginkv.Settings(database_url="memory://", read_only=True)
        return Store(settings, backend=writable.backend, clock=clock)
    writable.close()
    return open_store(backend, read_only=True)


WRITES = [
    pytest.param("PUT", "/v1/kv/a", {"content": b"2"}, False, id="put"),
    pytest.param("DELETE", "/v1/kv/a", {}, False, id="delete"),
    pytest.param("POST", "/v1/incr/n", {"json": {"delta": 1}}, False, id="incr"),
    pytest.param("DELETE", "/v1/keys?prefix=&all=true", {}, False, id="delete-prefix"),
    pytest.param("POST", "/v1/batch/set", {"json": {"items": {"b": "Mg=="}}}, False, id="set-many"),
    pytest.param("POST", "/v1/batch/delete", {"json": {"keys": ["a"]}}, False, id="delete-many"),
    pytest.param("PUT", "/v1/admin/quota", {"json": {**SCOPE, "quota_bytes": 1}}, True, id="quota"),
    pytest.param("POST", "/v1/admin/purge", {"json": SCOPE}, True, id="purge"),
    pytest.param("POST", "/v1/admin/tokens/revoke", {"json": SCOPE}, True, id="revoke-tokens"),
]


@pytest.mark.parametrize(("method", "path", "body", "as_admin"), WRITES)
def test_a_write_answers_503_read_only_with_retry_after(
    client: TestClient,
    auth: Callable[..., dict[str, str]],
    admin: dict[str, str],
    method: str,
    path: str,
    body: dict[str, Any],
    as_admin: bool,
) -> None:
    response = client.request(method, path, headers=admin if as_admin else auth(), **body)
    assert response.status_code == 503
    assert response.headers["X-Error-Code"] == "read_only"
    assert response.headers["Retry-After"] == "60"
    error = response.json()["error"]
    assert error["code"] == "read_only" and "PLUGINKV_READ_ONLY" in error["message"]
    assert client.get("/v1/kv/a", headers=auth()).content == b"1"


def test_reads_and_readiness_answer_as_usual(
    client: TestClient, auth: Callable[..., dict[str, str]], admin: dict[str, str]
) -> None:
    assert client.get("/v1/kv/a", headers=auth()).content == b"1"
    assert client.head("/v1/kv/a", headers=auth()).status_code == 200
    assert [e["key"] for e in client.get("/v1/keys", headers=auth()).json()["entries"]] == ["a"]
    found = client.post("/v1/batch/get", json={"keys": ["a"]}, headers=auth())
    assert found.json() == {"values": {"a": "MQ=="}}
    assert client.get("/v1/usage", headers=auth()).json()["keys"] == 1
    assert len(client.get("/v1/admin/scopes", headers=admin).json()["scopes"]) == 1
    assert client.get("/readyz").json() == {"status": "ready"}


@pytest.fixture(name="remote")
def _remote(store: Store, live_service: LiveService) -> Iterator[tuple[str, str]]:
    """The live service on the read-only store: its URL and a token."""
    previous = live_service.app.state.store
    live_service.app.state.store = store
    yield live_service.url, live_service.tokens.issue(**SCOPE)
    live_service.app.state.store = previous


def test_the_clients_raise_read_only_and_still_read(remote: tuple[str, str]) -> None:
    url, token = remote
    with RemoteStorage(url, token, retries=3) as client:
        assert client.get("a") == b"1"
        with pytest.raises(ReadOnly, match="PLUGINKV_READ_ONLY"):
            client.set("a", b"2")
        with pytest.raises(ReadOnly):
            client.delete("a")

    async def use_async() -> None:
        async with AsyncRemoteStorage(url, token, retries=3) as client:
            assert await client.get("a") == b"1"
            with pytest.raises(ReadOnly, match="PLUGINKV_READ_ONLY"):
                await client.set("a", b"2")
            with pytest.raises(ReadOnly):
                await client.delete_prefix("", all=True)

    asyncio.run(use_async())
