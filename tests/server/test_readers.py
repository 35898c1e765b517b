"""Reads of a database server run off the event loop: a stuck read stalls nothing else."""

from __future__ import annotations

import asyncio
import threading

import httpx

import pluginkv
from pluginkv import Store
from pluginkv.backends.memory import MemoryBackend
from pluginkv.keys import Scope
from pluginkv.models import Entry
from pluginkv.server.app import create_app
from pluginkv.server.auth import Tokens

from .conftest import SECRET


class SlowServer(MemoryBackend):
    """A memory backend whose reads wait, as a database server's do, until released."""

    reads_block = True

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.waiting = threading.Event()

    def get(self, scope: Scope, key: str, now: float) -> Entry | None:
        self.waiting.set()
        assert self.release.wait(10), "the test never released the read"
        return super().get(scope, key, now)


def test_a_read_waiting_on_the_database_does_not_stall_other_requests() -> None:
    backend = SlowServer()
    store = Store(pluginkv.Settings(database_url="memory://"), backend=backend)
    tokens = Tokens(SECRET, default_ttl=3600)
    store.storage(workspace="ws-1", plugin="acme/weather").set("k", b"v")
    auth = {"Authorization": f"Bearer {tokens.issue(workspace='ws-1', plugin='acme/weather')}"}
    app = create_app(store=store, tokens=tokens)

    async def main() -> tuple[int, bytes, int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            slow = asyncio.ensure_future(client.get("/v1/kv/k", headers=auth))
            while not backend.waiting.is_set():
                await asyncio.sleep(0.01)
            # The GET is now inside the database; the loop still serves the rest.
            health = await asyncio.wait_for(client.get("/healthz"), timeout=5)
            usage = await asyncio.wait_for(client.get("/v1/usage", headers=auth), timeout=5)
            assert usage.json()["keys"] == 1
            backend.release.set()
            answer = await slow
            return health.status_code, answer.content, answer.status_code

    try:
        assert asyncio.run(main()) == (200, b"v", 200)
    finally:
        backend.release.set()
        app.state.readers.shutdown()
        app.state.writer.shutdown()
