"""What only the async client has: concurrency on one session, closing, event loops,
and the HTTP client's retries, outages and error mapping, seen from asyncio.

The engine's contract suite also runs on ``AsyncRemoteStorage`` (backend
``remote-async``); these tests cover what it cannot see.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

import pluginkv
from pluginkv import (
    BackendUnavailable,
    InvalidArgument,
    InvalidKey,
    PluginKVError,
    QuotaExceeded,
    ReadOnly,
    Store,
    VersionConflict,
    WrongValueType,
)
from pluginkv.client import AsyncRemoteStorage

from ..conftest import LiveService

Connect = Callable[..., AsyncRemoteStorage]


# -- a live service ---------------------------------------------------------------------------
@pytest.fixture(name="connect")
def _connect(live_service: LiveService) -> Iterator[Connect]:
    """``connect(**settings)``: a client of a fresh memory store behind the live service."""
    stores: list[Store] = []

    def connect(**settings: Any) -> AsyncRemoteStorage:
        store = pluginkv.open_store("memory://", **settings)
        stores.append(store)
        live_service.app.state.store = store
        token = live_service.tokens.issue(workspace="w", plugin="a/b")
        return AsyncRemoteStorage(live_service.url, token)

    yield connect
    for store in stores:
        store.close()


TRICKY_KEYS = [".", "a/./b", "%41", "sp ace", "é🙂", "a//b", "/", "a/", "?x=1&y#z", "+"]


def test_tricky_keys_round_trip_exactly(connect: Connect) -> None:
    async def main() -> None:
        async with connect() as storage:
            for key in TRICKY_KEYS:
                await storage.set(key, key.encode())
            for key in TRICKY_KEYS:
                assert await storage.get(key) == key.encode(), key
                assert await storage.exist(key), key
                entry = await storage.get_entry(key)
                assert entry is not None and entry.key == key
                meta = await storage.get_meta(key)
                assert meta is not None and (meta.key, meta.size) == (key, entry.size)
            listed = [entry.key for entry in await storage.keys()]
            assert listed == sorted(TRICKY_KEYS, key=lambda k: k.encode())
            assert [e.key for e in await storage.keys("%4")] == ["%41"]
            assert await storage.get_many(["%41", "A", "."]) == {"%41": b"%41", ".": b"."}
            assert await storage.incr("a/./b/n") == 1
            assert await storage.get("a/b/n") is None  # not normalised
            assert await storage.delete_prefix("a/") == 4  # a/./b, a//b, a/ and a/./b/n

    asyncio.run(main())


def test_fifty_concurrent_sets_and_gets_on_one_client(connect: Connect) -> None:
    async def main() -> None:
        async with connect() as storage:
            keys = [f"k{i}" for i in range(50)]
            await asyncio.gather(*(storage.set(key, key.encode()) for key in keys))
            values = await asyncio.gather(*(storage.get(key) for key in keys))
            assert values == [key.encode() for key in keys]
            counts = await asyncio.gather(*(storage.incr("n") for _ in range(50)))
            assert sorted(counts) == list(range(1, 51))
            assert (await storage.usage()).keys == 51

    asyncio.run(main())


def test_errors_map_back_with_their_fields(connect: Connect) -> None:
    async def main() -> None:
        async with connect(default_quota_bytes=10) as storage:
            with pytest.raises(QuotaExceeded) as quota:
                await storage.set("k", b"x" * 20)
            assert (quota.value.used, quota.value.limit, quota.value.needed) == (0, 10, 21)
            await storage.set("k", b"1")
            with pytest.raises(VersionConflict) as stale:
                await storage.set("k", b"2", if_version=7)
            assert (stale.value.key, stale.value.expected, stale.value.actual) == ("k", 7, 1)
            with pytest.raises(VersionConflict) as present:
                await storage.set("k", b"2", if_absent=True)
            assert (present.value.expected, present.value.actual) == (None, 1)
            with pytest.raises(VersionConflict):
                await storage.delete("k", if_version=2)
            await storage.set("j", b"{")
            with pytest.raises(WrongValueType):
                await storage.incr("j")
            with pytest.raises(WrongValueType):
                await storage.get_json("j")

    asyncio.run(main())


def test_json_helpers_round_trip(connect: Connect) -> None:
    async def main() -> None:
        async with connect() as storage:
            await storage.set_json("doc", {"city": "Zürich", "n": [1, 2]})
            assert await storage.get("doc") == '{"city":"Zürich","n":[1,2]}'.encode()
            assert await storage.get_json("doc") == {"city": "Zürich", "n": [1, 2]}
            assert await storage.get_json("absent", default=[]) == []

    asyncio.run(main())


def test_closing_and_reopening(connect: Connect) -> None:
    async def main() -> None:
        storage = connect()
        await storage.aclose()  # before any call: nothing to close
        async with storage:
            await storage.set("k", b"v")
            session = storage._session
            assert session is not None and not session.closed
        assert session.closed and storage._session is None
        await storage.aclose()  # twice is fine
        assert await storage.get("k") == b"v"  # a closed client opens a new session
        await storage.aclose()

    asyncio.run(main())


def test_a_client_stays_on_the_loop_that_opened_it(connect: Connect) -> None:
    async def main() -> None:
        async with connect() as storage:
            await storage.set("k", b"v")
            with pytest.raises(RuntimeError, match="another event loop"):
                await asyncio.to_thread(asyncio.run, storage.get("k"))
        # Closed, it may move to another loop.
        assert await asyncio.to_thread(asyncio.run, _get_and_close(storage, "k")) == b"v"

    asyncio.run(main())


async def _get_and_close(storage: AsyncRemoteStorage, key: str) -> bytes | None:
    try:
        return await storage.get(key)
    finally:
        await storage.aclose()


def test_the_client_is_made_outside_any_loop(live_service: LiveService) -> None:
    storage = AsyncRemoteStorage(live_service.url, "t")  # no running loop: no session yet
    assert storage._session is None
    assert repr(storage) == f"<AsyncRemoteStorage {live_service.url}>"


# -- a stub service -------------------------------------------------------------------------------
class Stub:
    """An aiohttp server answering from a script of (status, body) replies."""

    def __init__(self) -> None:
        self.replies: list[tuple[int, bytes]] = []
        self.requests: list[tuple[str, str]] = []
        self.peers: set[tuple[str, int]] = set()
        self.delay = 0.0
        self.close_after_reply = False
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.requests.append((request.method, request.raw_path))
        assert request.transport is not None
        self.peers.add(request.transport.get_extra_info("peername")[:2])
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.close_after_reply:  # what an idle timeout does, without a Connection: close
            asyncio.get_running_loop().call_later(0.05, request.transport.close)
        status, body = self.replies.pop(0) if self.replies else (200, b"{}")
        return web.Response(status=status, body=body, content_type="application/json")


@asynccontextmanager
async def serve() -> AsyncIterator[Stub]:
    stub = Stub()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", stub.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    stub.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield stub
    finally:
        await runner.cleanup()


def unavailable() -> tuple[int, bytes]:
    body = {"error": {"code": "backend_unavailable", "message": "database is locked"}}
    return 503, json.dumps(body).encode()


def read_only() -> tuple[int, bytes]:
    message = "the store is read-only (setting PLUGINKV_READ_ONLY=true)"
    return 503, json.dumps({"error": {"code": "read_only", "message": message}}).encode()


def test_concurrent_calls_share_pooled_connections() -> None:
    async def main() -> None:
        async with serve() as stub, AsyncRemoteStorage(stub.url, "t") as storage:
            stub.delay = 0.01
            await asyncio.gather(*(storage.get("k") for _ in range(50)))
            opened = len(stub.peers)
            assert 1 <= opened <= 50
            await asyncio.gather(*(storage.get("k") for _ in range(50)))
            assert len(stub.peers) == opened  # the second wave reused the first's
            assert len(stub.requests) == 100

        async with serve() as stub, AsyncRemoteStorage(stub.url, "t") as storage:
            for _ in range(20):
                await storage.get("k")
            assert len(stub.peers) == 1  # one after another: one keep-alive connection

    asyncio.run(main())


def test_safe_reads_are_retried_after_a_503() -> None:
    async def main() -> None:
        async with serve() as stub, AsyncRemoteStorage(stub.url, "t", retries=3) as storage:
            stub.replies = [unavailable(), unavailable(), (200, b"value")]
            assert await storage.get("k") == b"value"
            assert len(stub.requests) == 3

    asyncio.run(main())


def test_retries_give_up_with_the_service_error() -> None:
    async def main() -> None:
        async with serve() as stub, AsyncRemoteStorage(stub.url, "t", retries=2) as storage:
            stub.replies = [unavailable()] * 5
            with pytest.raises(BackendUnavailable, match="locked"):
                await storage.get("k")
            assert len(stub.requests) == 3  # the first try and two retries

    asyncio.run(main())


def test_a_read_only_refusal_is_not_retried() -> None:
    """A read-only 503 lasts until the operator ends it: even a safe write is sent once."""

    async def main() -> None:
        async with serve() as stub, AsyncRemoteStorage(stub.url, "t", retries=3) as storage:
            stub.replies = [read_only(), (204, b"")]
            with pytest.raises(ReadOnly, match="PLUGINKV_READ_ONLY"):
                await storage.delete("k")
            assert len(stub.requests) == 1

    asyncio.run(main())


PAGE = b'{"entries": [], "next_cursor": null}'
USAGE = b'{"bytes_used": 0, "keys": 0, "quota_bytes": 1}'
Call = Callable[[AsyncRemoteStorage], Awaitable[object]]

REPEATED: list[Any] = [
    pytest.param(lambda s: s.get("k"), (200, b"v"), id="get"),
    pytest.param(lambda s: s.exist("k"), (200, b""), id="exist"),
    pytest.param(lambda s: s.get_entry("k"), (200, b"v"), id="get_entry"),
    pytest.param(lambda s: s.get_meta("k"), (200, b""), id="get_meta"),
    pytest.param(lambda s: s.keys(), (200, PAGE), id="keys"),
    pytest.param(lambda s: s.get_many(["k"]), (200, b'{"values": {}}'), id="get_many"),
    pytest.param(lambda s: s.usage(), (200, USAGE), id="usage"),
    pytest.param(lambda s: s.set("k", b"v"), (204, b""), id="set"),
    pytest.param(lambda s: s.set_many({"k": b"v"}), (204, b""), id="set_many"),
    pytest.param(lambda s: s.delete("k"), (204, b""), id="delete"),
]
SENT_ONCE: list[Any] = [
    pytest.param(lambda s: s.incr("n"), id="incr"),
    pytest.param(lambda s: s.set("k", b"v", if_version=1), id="set-if_version"),
    pytest.param(lambda s: s.set("k", b"v", if_absent=True), id="set-if_absent"),
    pytest.param(lambda s: s.delete("k", if_version=1), id="delete-if_version"),
    pytest.param(lambda s: s.delete_many(["k"]), id="delete_many"),
    pytest.param(lambda s: s.delete_prefix("k"), id="delete_prefix"),
]


@pytest.mark.parametrize(("call", "success"), REPEATED)
def test_calls_safe_to_repeat_are_retried(call: Call, success: tuple[int, bytes]) -> None:
    async def main() -> None:
        async with serve() as stub, AsyncRemoteStorage(stub.url, "t", retries=3) as storage:
            stub.replies = [unavailable(), success]
            await call(storage)
            assert len(stub.requests) == 2

    asyncio.run(main())


@pytest.mark.parametrize("call", SENT_ONCE)
def test_calls_unsafe_to_repeat_are_sent_once(call: Call) -> None:
    async def main() -> None:
        async with serve() as stub, AsyncRemoteStorage(stub.url, "t", retries=3) as storage:
            stub.replies = [unavailable(), (200, b'{"value": 1, "deleted": 1}')]
            with pytest.raises(BackendUnavailable):
                await call(storage)
            assert len(stub.requests) == 1

    asyncio.run(main())


def test_an_unreachable_service_is_unavailable_never_absent() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens here

    async def main() -> None:
        async with AsyncRemoteStorage(f"http://127.0.0.1:{port}", "t", retries=1) as storage:
            with pytest.raises(BackendUnavailable, match="cannot reach"):
                await storage.get("k")
            with pytest.raises(BackendUnavailable):
                await storage.exist("k")
            with pytest.raises(BackendUnavailable):
                await storage.get_json("k", default="absent")
            with pytest.raises(BackendUnavailable):
                await storage.incr("n")
            with pytest.raises(InvalidKey):  # checked locally, before any connection
                await storage.get("a\\b")

    asyncio.run(main())


def test_a_slow_service_times_out_as_unavailable() -> None:
    async def main() -> None:
        async with serve() as stub:
            stub.delay = 0.5  # the stub's shutdown waits for it
            async with AsyncRemoteStorage(stub.url, "t", timeout=0.05, retries=0) as storage:
                with pytest.raises(BackendUnavailable, match="cannot reach"):
                    await storage.get("k")

    asyncio.run(main())


def test_a_404_that_is_not_an_absent_key_is_an_error() -> None:
    body = {"error": {"code": "no_such_route", "message": "Not Found"}}

    async def main() -> None:
        async with serve() as stub, AsyncRemoteStorage(stub.url + "/wrong/prefix", "t") as storage:
            stub.replies = [(404, json.dumps(body).encode())]
            with pytest.raises(PluginKVError, match="Not Found"):
                await storage.get("k")
            assert stub.requests[0][1].startswith("/wrong/prefix/v1/kv/")

    asyncio.run(main())


def test_keys_go_on_the_wire_percent_encoded_whole_and_unnormalised() -> None:
    async def main() -> None:
        async with serve() as stub, AsyncRemoteStorage(stub.url + "/base/", "t") as storage:
            stub.replies = [(204, b""), (204, b""), (200, b'{"value": 1}')]
            await storage.set("a/./b?c#d%e f", b"v")
            await storage.set(".", b"v", ttl=1.5)
            await storage.incr("é🙂")
            assert stub.requests == [
                ("PUT", "/base/v1/kv/a%2F.%2Fb%3Fc%23d%25e%20f"),
                ("PUT", "/base/v1/kv/.?ttl=1.5"),
                ("POST", "/base/v1/incr/%C3%A9%F0%9F%99%82"),
            ]

    asyncio.run(main())


def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    async def main() -> None:
        async with serve() as stub, AsyncRemoteStorage(stub.url, "t", retries=0) as storage:
            stub.close_after_reply = True
            assert await storage.get("k") == b"{}"
            await asyncio.sleep(0.2)  # the server has closed that connection meanwhile
            stub.replies = [(200, b'{"value": 1}')]
            assert await storage.incr("n") == 1  # sent once, so it must not hit the dead one
            assert len(stub.peers) == 2

    asyncio.run(main())


@pytest.mark.parametrize("url", ["ftp://host", "localhost:8787", "http://"])
def test_a_malformed_service_url_is_refused(url: str) -> None:
    with pytest.raises(InvalidArgument):
        AsyncRemoteStorage(url, "t")


def test_importing_the_client_package_does_not_need_aiohttp() -> None:
    script = """
import sys
import pluginkv.client
assert "aiohttp" not in sys.modules, "pluginkv.client imported aiohttp"
sys.modules["aiohttp"] = None  # as if it were not installed
from pluginkv.client import RemoteStorage
try:
    from pluginkv.client import AsyncRemoteStorage
except ImportError as exc:
    assert "pluginkv[async]" in str(exc), exc
else:
    raise AssertionError("no ImportError without aiohttp")
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30)
