"""Reads of a database server run off the event loop: a stuck read stalls nothing else."""

from __future__ import annotations

import asyncio

import httpx

import pluginkv
from pluginkv import Store
from pluginkv.server.app import create_app
from pluginkv.services.tokens import Tokens

from ..slow_server import SlowServer
from .conftest import SECRET


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
