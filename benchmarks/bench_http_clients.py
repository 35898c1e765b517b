"""Python HTTP client libraries, one thread, one keep-alive connection, against a local server.

Run with ``.venv/bin/python benchmarks/bench_http_clients.py`` (``--help`` for options). It
needs ``starlette``, ``uvicorn[standard]``, ``httpx``, ``urllib3`` and ``aiohttp`` in the
virtualenv (``httpcore`` comes with ``httpx``); they are not project dependencies.

The server is a plain Starlette app under uvicorn in a subprocess of this script
(``--loop uvloop --http httptools --workers 1 --no-access-log``, on 127.0.0.1 and a free
port, keep-alive timeout raised so that no idle connection is dropped between rounds):

* ``GET /echo/{n}``: ``n`` bytes of a fixed pattern, ``application/octet-stream``;
* ``PUT /echo``: the request body;
* ``PUT /headers``: the request's headers as JSON (used once per client, untimed);
* ``GET /info`` and ``GET /stats``: the server's event loop and HTTP protocol class, and the
  requests it counted on each client connection (untimed, on a separate connection).

Clients, each made once and kept for the whole run (so each uses one keep-alive connection):

* ``raw socket``: hand-written HTTP/1.1 on a blocking socket, a reference, not a candidate:
  on 100 B requests it is the floor (the cost of the server and the kernel alone); on
  10 MiB it is merely a simple reader (it zero-fills its buffer, ``http.client`` does not);
* ``http.client``: one ``HTTPConnection`` reused;
* ``urllib3 pool``: ``HTTPConnectionPool`` with ``Retry(total=3)``;
* ``urllib3 PoolManager``: ``PoolManager`` with ``Retry(total=3)``, full URLs;
* ``httpcore``: sync ``ConnectionPool``;
* ``httpx.Client``: the baseline of every ratio;
* ``aiohttp``: ``ClientSession`` driven by sequential awaits in one asyncio loop;
* ``httpx.AsyncClient``: sequential awaits in the same loop.

Every client has a connect timeout of 5 s and a read timeout of 30 s; ``trust_env`` is off
for httpx (aiohttp's default) so that no proxy setting of the environment takes part.

Workloads: ``GET 100 B``, ``PUT 100 B`` (requests/s) and ``GET 10 MiB``, ``PUT 10 MiB``
(MB/s, 10^6 bytes of payload per second: a PUT's body also comes back, so it moves twice
that). Every response's status and body length is checked; in the warm-up the bodies are
compared byte for byte.

Method: each client is warmed up on each workload, then the run goes in rounds; in a round
every workload is measured on every client for ``--duration`` seconds (at least a minimum
count), the order of the clients rotating and reversing from round to round. Each figure is
the **median over the rounds**; each ratio is the **median of the per-round ratios** to
``httpx.Client`` measured in the same round. Two tables: wall-clock throughput (which
includes the server's time, the same for every client), and the client process's own CPU
time per request (``time.process_time``), which is the per-request cost of the library.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import gc
import http.client
import json
import logging
import os
import platform
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpcore
import httpx
import urllib3
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from common import free_port, load_average, on_sigterm, stop_process, version

KiB = 1024
MiB = 1024 * KiB
HOST = "127.0.0.1"
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
OCTET = "application/octet-stream"
PUT_HEADERS = {"Content-Type": OCTET}
BASELINE = "httpx.Client"
TARGET = 2.0  # wanted: at least this many times httpx.Client per request
SERVER_START_TIMEOUT = 20.0
MODULE = Path(__file__).resolve()


# -- the server (runs in the uvicorn subprocess) ---------------------------------------------
@functools.lru_cache(maxsize=8)
def pattern(size: int) -> bytes:
    """``size`` bytes of a fixed, non-constant pattern (what ``GET /echo/{size}`` returns)."""
    block = bytes(range(256)) * 4096  # 1 MiB
    return (block * (size // len(block) + 1))[:size]


def make_app() -> Starlette:
    """The echo app, built by ``uvicorn --factory``."""
    counts: defaultdict[str, int] = defaultdict(int)  # "host:port" of a client -> requests
    log = logging.getLogger("uvicorn.error")

    def count(request: Request) -> None:
        client = request.scope.get("client")
        if client:
            counts[f"{client[0]}:{client[1]}"] += 1

    async def echo_get(request: Request) -> Response:
        count(request)
        size: int = request.path_params["n"]
        if size > 64 * MiB:
            return Response(b"too large", status_code=413)
        return Response(pattern(size), media_type=OCTET)

    async def echo_put(request: Request) -> Response:
        count(request)
        return Response(await request.body(), media_type=OCTET)

    async def headers(request: Request) -> Response:
        count(request)
        body = await request.body()
        return JSONResponse({"headers": list(request.headers.items()), "body_len": len(body)})

    async def info(request: Request) -> Response:
        loop = type(asyncio.get_running_loop())
        owner = type(getattr(request.receive, "__self__", None))
        found = {
            "loop": f"{loop.__module__}.{loop.__qualname__}",
            "http": f"{owner.__module__}.{owner.__qualname__}",
            "pid": os.getpid(),
        }
        log.info("echo app: event loop %(loop)s, HTTP protocol %(http)s", found)
        return JSONResponse(found)

    async def stats(request: Request) -> Response:
        return JSONResponse(dict(counts))

    return Starlette(
        routes=[
            Route("/echo/{n:int}", echo_get, methods=["GET"]),
            Route("/echo", echo_put, methods=["PUT"]),
            Route("/headers", headers, methods=["PUT"]),
            Route("/info", info, methods=["GET"]),
            Route("/stats", stats, methods=["GET"]),
        ]
    )


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def control(self, path: str) -> Any:
        """GET ``path`` on a fresh connection (never a measured one) and decode the JSON."""
        conn = http.client.HTTPConnection(HOST, self.port, timeout=CONNECT_TIMEOUT)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"GET {path}: HTTP {resp.status}")
            return json.loads(data)
        finally:
            conn.close()


def server_command(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        f"{MODULE.stem}:make_app",
        "--app-dir",
        str(MODULE.parent),
        "--host",
        HOST,
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--workers",
        "1",
        "--no-access-log",
        "--log-level",
        "info",
        "--timeout-keep-alive",
        "600",
    ]


@contextmanager
def echo_server(log_dir: Path) -> Iterator[Server]:
    """Start the echo app under uvicorn, wait until it answers, always stop it afterwards."""
    log_path = log_dir / "uvicorn.log"
    for attempt in range(3):  # a free port can be taken between the probe and uvicorn's bind
        port = free_port()
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                server_command(port),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=MODULE.parent,
            )
        server = Server(port, process, log_path)
        try:
            deadline = time.monotonic() + SERVER_START_TIMEOUT
            while process.poll() is None and time.monotonic() < deadline:
                try:
                    server.info = server.control("/info")
                    break
                except (OSError, http.client.HTTPException):
                    time.sleep(0.05)
            if server.info:
                yield server
                return
        finally:
            stop_process(process)
        if attempt == 2 or "address already in use" not in log_path.read_text().lower():
            raise SystemExit(f"uvicorn did not start; its log:\n{log_path.read_text()}")


# -- the clients -----------------------------------------------------------------------------
def dig(obj: Any, *names: str) -> Any:
    for name in names:
        obj = getattr(obj, name)
    return obj


def describe_socket(sock: Any) -> tuple[int, int] | None:
    """(local port, TCP_NODELAY) of a socket, or None when it cannot be found."""
    try:
        port = int(sock.getsockname()[1])
        nodelay = int(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
    except (AttributeError, OSError, TypeError, IndexError):
        return None
    return port, nodelay


def urllib3_pool_socket(pool: urllib3.HTTPConnectionPool) -> Any:
    for conn in list(dig(pool, "pool", "queue")):
        if conn is not None and conn.sock is not None:
            return conn.sock
    return None


def httpcore_pool_socket(pool: Any) -> Any:
    for conn in pool.connections:
        return dig(conn, "_connection", "_network_stream").get_extra_info("socket")
    return None


def aiohttp_socket(session: aiohttp.ClientSession) -> Any:
    for idle in dig(session, "connector", "_conns").values():
        for proto, _ in idle:
            return proto.transport.get_extra_info("socket")
    return None


def check_status(status: int, what: str) -> None:
    if status != 200:
        raise RuntimeError(f"{what}: HTTP {status}")


@dataclass
class Workload:
    label: str
    unit: str  # "req/s" or "MB/s"
    method: str  # "GET" or "PUT"
    size: int


WORKLOADS = (
    Workload("GET 100 B", "req/s", "GET", 100),
    Workload("PUT 100 B", "req/s", "PUT", 100),
    Workload("GET 10 MiB", "MB/s", "GET", 10 * MiB),
    Workload("PUT 10 MiB", "MB/s", "PUT", 10 * MiB),
)


@dataclass
class Sample:
    count: int
    wall: float
    cpu: float

    def rate(self, workload: Workload) -> float:
        per_second = self.count / self.wall
        return per_second if workload.unit == "req/s" else per_second * workload.size / 1e6

    @property
    def cpu_per_request(self) -> float:
        return self.cpu / self.count


class Contender:
    """One client library; ``measure`` runs one workload for a duration on its connection."""

    name: str
    requests: int = 0

    def measure(self, body: bytes | None, workload: Workload, seconds: float, least: int) -> Sample:
        raise NotImplementedError

    def warm(self, body: bytes | None, workload: Workload, count: int) -> None:
        raise NotImplementedError

    def headers_sent(self, body: bytes) -> dict[str, Any]:
        raise NotImplementedError

    def socket(self) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


Payload = bytes | bytearray  # what a client hands back: the response body


def expected(body: bytes | None, workload: Workload) -> bytes:
    return body if body is not None else pattern(workload.size)


class SyncContender(Contender):
    def __init__(
        self,
        name: str,
        get: Callable[[str], Payload],
        put: Callable[[str, bytes], Payload],
        close: Callable[[], None],
        sock: Callable[[], Any],
    ) -> None:
        self.name = name
        self.get, self.put, self._close, self._sock = get, put, close, sock

    def op(self, body: bytes | None, workload: Workload) -> Callable[[], Payload]:
        if body is None:
            return functools.partial(self.get, f"/echo/{workload.size}")
        return functools.partial(self.put, "/echo", body)

    def measure(self, body: bytes | None, workload: Workload, seconds: float, least: int) -> Sample:
        op = self.op(body, workload)
        size = workload.size
        count = 0
        gc.collect()
        cpu0 = time.process_time()
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            if len(op()) != size:
                raise RuntimeError(f"{self.name} {workload.label}: wrong body length")
            count += 1
            if count >= least and time.perf_counter() >= deadline:
                break
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu0
        self.requests += count
        return Sample(count, wall, cpu)

    def warm(self, body: bytes | None, workload: Workload, count: int) -> None:
        op = self.op(body, workload)
        want = expected(body, workload)
        for _ in range(count):
            if op() != want:
                raise RuntimeError(f"{self.name} {workload.label}: wrong body")
            self.requests += 1

    def headers_sent(self, body: bytes) -> dict[str, Any]:
        self.requests += 1
        result: dict[str, Any] = json.loads(self.put("/headers", body))
        return result

    def socket(self) -> Any:
        return self._sock()

    def close(self) -> None:
        self._close()


class AsyncContender(Contender):
    def __init__(
        self,
        name: str,
        runner: asyncio.Runner,
        get: Callable[[str], Coroutine[Any, Any, bytes]],
        put: Callable[[str, bytes], Coroutine[Any, Any, bytes]],
        close: Callable[[], Coroutine[Any, Any, None]],
        sock: Callable[[], Any],
    ) -> None:
        self.name, self.runner = name, runner
        self.get, self.put, self._close, self._sock = get, put, close, sock

    def op(
        self, body: bytes | None, workload: Workload
    ) -> Callable[[], Coroutine[Any, Any, bytes]]:
        if body is None:
            return functools.partial(self.get, f"/echo/{workload.size}")
        return functools.partial(self.put, "/echo", body)

    async def _measure(
        self, body: bytes | None, workload: Workload, seconds: float, least: int
    ) -> Sample:
        op = self.op(body, workload)
        size = workload.size
        count = 0
        gc.collect()
        cpu0 = time.process_time()
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            if len(await op()) != size:
                raise RuntimeError(f"{self.name} {workload.label}: wrong body length")
            count += 1
            if count >= least and time.perf_counter() >= deadline:
                break
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu0
        self.requests += count
        return Sample(count, wall, cpu)

    async def _warm(self, body: bytes | None, workload: Workload, count: int) -> None:
        op = self.op(body, workload)
        want = expected(body, workload)
        for _ in range(count):
            if await op() != want:
                raise RuntimeError(f"{self.name} {workload.label}: wrong body")
            self.requests += 1

    def measure(self, body: bytes | None, workload: Workload, seconds: float, least: int) -> Sample:
        return self.runner.run(self._measure(body, workload, seconds, least))

    def warm(self, body: bytes | None, workload: Workload, count: int) -> None:
        self.runner.run(self._warm(body, workload, count))

    def headers_sent(self, body: bytes) -> dict[str, Any]:
        self.requests += 1
        result: dict[str, Any] = json.loads(self.runner.run(self.put("/headers", body)))
        return result

    def socket(self) -> Any:
        return self._sock()

    def close(self) -> None:
        self.runner.run(self._close())


class RawSocket:
    """Hand-written HTTP/1.1 over one blocking socket: the floor that no library can beat."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=CONNECT_TIMEOUT)
        self.sock.settimeout(READ_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.host = f"{HOST}:{port}".encode()
        self.buffer = bytearray(64 * KiB)
        self.view = memoryview(self.buffer)

    def request(self, head: bytes, body: bytes = b"") -> bytearray:
        if len(body) < 16 * KiB:
            self.sock.sendall(head + body)
        else:
            self.sock.sendall(head)
            self.sock.sendall(body)
        view, got = self.view, 0
        while (end := self.buffer.find(b"\r\n\r\n", 0, got)) < 0:
            read = self.sock.recv_into(view[got:])
            if not read:
                raise ConnectionError("server closed the connection")
            got += read
        head = bytes(view[:end]).lower()
        if not head.startswith(b"http/1.1 200 "):
            raise RuntimeError(head.decode(errors="replace"))
        mark = head.find(b"\r\ncontent-length:") + 17
        length = int(head[mark : (head + b"\r\n").find(b"\r\n", mark)])
        early = got - end - 4  # body bytes that came with the head
        data = bytearray(length)
        data[:early] = view[end + 4 : got]
        into = memoryview(data)
        while early < length:
            read = self.sock.recv_into(into[early:])
            if not read:
                raise ConnectionError("server closed the connection")
            early += read
        return data

    def get(self, path: str) -> bytearray:
        return self.request(b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path.encode(), self.host))

    def put(self, path: str, body: bytes) -> bytearray:
        head = b"PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
        return self.request(head % (path.encode(), self.host, OCTET.encode(), len(body)), body)


def make_raw(server: Server) -> Contender:
    raw = RawSocket(server.port)
    return SyncContender("raw socket (floor)", raw.get, raw.put, raw.sock.close, lambda: raw.sock)


def make_http_client(server: Server) -> Contender:
    conn = http.client.HTTPConnection(HOST, server.port, timeout=READ_TIMEOUT)

    def get(path: str) -> bytes:
        conn.request("GET", path)
        resp = conn.getresponse()
        data = resp.read()
        check_status(resp.status, "http.client")
        return data

    def put(path: str, body: bytes) -> bytes:
        conn.request("PUT", path, body=body, headers=PUT_HEADERS)
        resp = conn.getresponse()
        data = resp.read()
        check_status(resp.status, "http.client")
        return data

    return SyncContender("http.client", get, put, conn.close, lambda: conn.sock)


def urllib3_options() -> dict[str, Any]:
    return {
        "timeout": urllib3.Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT),
        "retries": urllib3.Retry(total=3, backoff_factor=0.2),
        "maxsize": 1,
    }


def make_urllib3_pool(server: Server) -> Contender:
    pool = urllib3.HTTPConnectionPool(HOST, server.port, **urllib3_options())

    def get(path: str) -> bytes:
        resp = pool.request("GET", path)
        check_status(resp.status, "urllib3")
        return resp.data

    def put(path: str, body: bytes) -> bytes:
        resp = pool.request("PUT", path, body=body, headers=PUT_HEADERS)
        check_status(resp.status, "urllib3")
        return resp.data

    return SyncContender("urllib3 pool", get, put, pool.close, lambda: urllib3_pool_socket(pool))


def make_urllib3_manager(server: Server) -> Contender:
    manager = urllib3.PoolManager(**urllib3_options())
    base = server.base_url

    def get(path: str) -> bytes:
        resp = manager.request("GET", base + path)
        check_status(resp.status, "urllib3")
        return resp.data

    def put(path: str, body: bytes) -> bytes:
        resp = manager.request("PUT", base + path, body=body, headers=PUT_HEADERS)
        check_status(resp.status, "urllib3")
        return resp.data

    def sock() -> Any:
        return urllib3_pool_socket(manager.connection_from_host(HOST, server.port, "http"))

    return SyncContender("urllib3 PoolManager", get, put, manager.clear, sock)


HTTPCORE_PUT_HEADERS = [(b"Content-Type", OCTET.encode())]
HTTPCORE_TIMEOUTS = {
    "timeout": {
        "connect": CONNECT_TIMEOUT,
        "read": READ_TIMEOUT,
        "write": READ_TIMEOUT,
        "pool": CONNECT_TIMEOUT,
    }
}


def make_httpcore(server: Server) -> Contender:
    pool = httpcore.ConnectionPool(max_connections=1)
    base = server.base_url

    def get(path: str) -> bytes:
        resp = pool.request("GET", base + path, extensions=HTTPCORE_TIMEOUTS)
        check_status(resp.status, "httpcore")
        return resp.content

    def put(path: str, body: bytes) -> bytes:
        resp = pool.request(
            "PUT",
            base + path,
            headers=HTTPCORE_PUT_HEADERS,
            content=body,
            extensions=HTTPCORE_TIMEOUTS,
        )
        check_status(resp.status, "httpcore")
        return resp.content

    return SyncContender("httpcore", get, put, pool.close, lambda: httpcore_pool_socket(pool))


HTTPX_TIMEOUT = httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)


def make_httpx(server: Server) -> Contender:
    client = httpx.Client(base_url=server.base_url, timeout=HTTPX_TIMEOUT, trust_env=False)

    def get(path: str) -> bytes:
        resp = client.get(path)
        check_status(resp.status_code, "httpx")
        return resp.content

    def put(path: str, body: bytes) -> bytes:
        resp = client.put(path, content=body, headers=PUT_HEADERS)
        check_status(resp.status_code, "httpx")
        return resp.content

    def sock() -> Any:
        return httpcore_pool_socket(dig(client, "_transport", "_pool"))

    return SyncContender(BASELINE, get, put, client.close, sock)


def make_aiohttp(server: Server, runner: asyncio.Runner) -> Contender:
    async def create() -> aiohttp.ClientSession:
        timeout = aiohttp.ClientTimeout(total=READ_TIMEOUT, connect=CONNECT_TIMEOUT)
        return aiohttp.ClientSession(base_url=server.base_url, timeout=timeout)

    session = runner.run(create())

    async def get(path: str) -> bytes:
        async with session.get(path) as resp:
            data = await resp.read()
            check_status(resp.status, "aiohttp")
            return data

    async def put(path: str, body: bytes) -> bytes:
        async with session.put(path, data=body, headers=PUT_HEADERS) as resp:
            data = await resp.read()
            check_status(resp.status, "aiohttp")
            return data

    return AsyncContender(
        "aiohttp", runner, get, put, session.close, lambda: aiohttp_socket(session)
    )


def make_httpx_async(server: Server, runner: asyncio.Runner) -> Contender:
    client = httpx.AsyncClient(base_url=server.base_url, timeout=HTTPX_TIMEOUT, trust_env=False)

    async def get(path: str) -> bytes:
        resp = await client.get(path)
        check_status(resp.status_code, "httpx")
        return resp.content

    async def put(path: str, body: bytes) -> bytes:
        resp = await client.put(path, content=body, headers=PUT_HEADERS)
        check_status(resp.status_code, "httpx")
        return resp.content

    def sock() -> Any:
        return httpcore_pool_socket(dig(client, "_transport", "_pool"))

    return AsyncContender("httpx.AsyncClient", runner, get, put, client.aclose, sock)


# -- the run ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    rounds: int
    duration: float  # seconds per measurement
    least_small: int  # requests per measurement at least
    least_large: int
    warm_small: int  # warm-up requests per client and workload
    warm_large: int


Results = dict[tuple[str, str], list[Sample]]  # (client, workload) -> one sample per round


def body_for(workload: Workload, bodies: dict[int, bytes]) -> bytes | None:
    return bodies[workload.size] if workload.method == "PUT" else None


def run(contenders: Sequence[Contender], plan: Plan, verbose: bool) -> Results:
    bodies = {size: os.urandom(size) for size in {w.size for w in WORKLOADS}}
    for contender in contenders:
        for workload in WORKLOADS:
            count = plan.warm_small if workload.unit == "req/s" else plan.warm_large
            contender.warm(body_for(workload, bodies), workload, count)
    results: Results = defaultdict(list)
    for round_ in range(plan.rounds):
        shift = round_ % len(contenders)
        order = list(contenders[shift:]) + list(contenders[:shift])
        if round_ % 2:
            order.reverse()
        for workload in WORKLOADS:
            least = plan.least_small if workload.unit == "req/s" else plan.least_large
            body = body_for(workload, bodies)
            for contender in order:
                sample = contender.measure(body, workload, plan.duration, least)
                results[contender.name, workload.label].append(sample)
        if verbose:
            print(f"  round {round_ + 1}/{plan.rounds} done", flush=True)
    return results


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def fmt_cpu(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} us" if seconds < 0.01 else f"{seconds * 1e3:,.1f} ms"


def report(contenders: Sequence[Contender], results: Results, verbose: bool) -> None:
    names = [c.name for c in contenders]
    width = max(len(name) for name in names) + 2
    head = "".join(f"{w.label + ' ' + w.unit:>22}" for w in WORKLOADS)

    def ratio(name: str, workload: Workload, cpu: bool) -> float:
        mine = results[name, workload.label]
        base = results[BASELINE, workload.label]
        per_round = [
            (b.cpu_per_request / a.cpu_per_request)
            if cpu
            else (a.rate(workload) / b.rate(workload))
            for a, b in zip(mine, base, strict=True)
        ]
        return statistics.median(per_round)

    print(f"\nThroughput, wall clock (median of rounds; ratio = x {BASELINE}, median per round)")
    print(f"{'client':<{width}}{head}")
    for name in names:
        cells = []
        for w in WORKLOADS:
            rate = statistics.median(s.rate(w) for s in results[name, w.label])
            cells.append(f"{fmt_rate(rate)} ({ratio(name, w, cpu=False):.2f}x)")
        print(f"{name:<{width}}" + "".join(f"{cell:>22}" for cell in cells))

    print(f"\nClient CPU per request (process_time; ratio = {BASELINE}'s CPU / this one's)")
    print(f"{'client':<{width}}" + "".join(f"{w.label:>22}" for w in WORKLOADS))
    for name in names:
        cells = []
        for w in WORKLOADS:
            cpu = statistics.median(s.cpu_per_request for s in results[name, w.label])
            cells.append(f"{fmt_cpu(cpu)} ({ratio(name, w, cpu=True):.2f}x)")
        print(f"{name:<{width}}" + "".join(f"{cell:>22}" for cell in cells))

    print(f"\nTarget >= {TARGET:.1f}x {BASELINE} on the 100 B requests (wall req/s | client CPU):")
    for name in names:
        if name == BASELINE:
            continue
        parts = []
        for w in WORKLOADS[:2]:
            wall, cpu = ratio(name, w, cpu=False), ratio(name, w, cpu=True)
            verdict = "PASS" if min(wall, cpu) >= TARGET else "MISS"
            parts.append(f"{w.label} {wall:.2f}x | {cpu:.2f}x {verdict}")
        print(f"  {name:<{width}}" + ";  ".join(parts))

    if verbose:
        print("\nEvery round (rate / client CPU per request):")
        for w in WORKLOADS:
            print(f"  {w.label}")
            for name in names:
                cells = [
                    f"{fmt_rate(s.rate(w))}/{fmt_cpu(s.cpu_per_request)}"
                    for s in results[name, w.label]
                ]
                print(f"    {name:<{width}}" + "  ".join(cells))


def report_connections(contenders: Sequence[Contender], server: Server, probe: bytes) -> None:
    """Headers each client sends with a 10 MiB PUT, its socket, and keep-alive reuse."""
    print("\nRequest headers sent with a 10 MiB PUT (as the server saw them):")
    for contender in contenders:
        seen = contender.headers_sent(probe)
        if seen["body_len"] != len(probe):
            raise RuntimeError(f"{contender.name}: the server got {seen['body_len']} bytes")
        names = ", ".join(f"{k}: {v}" if k != "host" else k for k, v in seen["headers"])
        print(f"  {contender.name}: {names}")
    counts: dict[str, int] = server.control("/stats")
    print("\nConnections (local port, TCP_NODELAY, requests the server counted on it / made):")
    ports_used = set()
    for contender in contenders:
        found = describe_socket(contender.socket())
        if found is None:
            print(f"  {contender.name}: socket not found (the library keeps it private)")
            continue
        port, nodelay = found
        ports_used.add(f"{HOST}:{port}")
        served = counts.get(f"{HOST}:{port}", 0)
        reused = "one connection throughout" if served == contender.requests else "RECONNECTED"
        print(
            f"  {contender.name}: port {port}, TCP_NODELAY={nodelay}, "
            f"{served:,}/{contender.requests:,} requests, {reused}"
        )
    others = {k: v for k, v in counts.items() if k not in ports_used}
    print(
        f"  the server counted {len(counts)} client connection(s) in all"
        + (f"; not matched to a client: {others}" if others else "")
    )


def build(server: Server, runner: asyncio.Runner) -> list[Contender]:
    contenders: list[Contender] = []
    for make in (
        make_raw,
        make_http_client,
        make_urllib3_pool,
        make_urllib3_manager,
        make_httpcore,
        make_httpx,
    ):
        contenders.append(make(server))
    contenders.append(make_aiohttp(server, runner))
    contenders.append(make_httpx_async(server, runner))
    return contenders


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Python HTTP clients, one thread, one keep-alive connection, vs httpx."
    )
    parser.add_argument("--rounds", type=int, default=7, help="rounds (default 7)")
    parser.add_argument(
        "--duration",
        type=float,
        default=0.2,
        help="seconds per client, workload and round (default 0.2)",
    )
    parser.add_argument(
        "--client-uvloop",
        action="store_true",
        help="run the async clients on uvloop instead of asyncio's default loop",
    )
    parser.add_argument("--verbose", action="store_true", help="also print every round's figures")
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: 1 round, a few requests per workload"
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.duration <= 0:
        parser.error("--rounds must be positive and --duration greater than 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.quick:
        plan = Plan(1, 0.01, 2, 1, 2, 1)
    else:
        plan = Plan(args.rounds, args.duration, 20, 3, 200, 2)
    signal.signal(signal.SIGTERM, on_sigterm)
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if args.client_uvloop:
        import uvloop

        loop_factory = uvloop.new_event_loop
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print("HTTP client benchmark: one thread, one keep-alive connection per client")
    print(f"command : {shlex.join([os.path.relpath(sys.executable), *sys.argv])}")
    print(f"date    : {dt.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"machine : {platform.machine()}, {cpus} CPU(s), {platform.platform()}")
    libs = ("httpx", "httpcore", "h11", "urllib3", "aiohttp", "anyio", "starlette", "uvicorn")
    print(f"python  : {platform.python_version()}; " + ", ".join(f"{n} {version(n)}" for n in libs))
    print(
        f"plan    : {plan.rounds} round(s) x {plan.duration:g} s per client and workload "
        f"(at least {plan.least_small} small / {plan.least_large} large requests); warm-up "
        f"{plan.warm_small} small / {plan.warm_large} large requests"
    )
    print(f"load    : {load_average()} (1, 5, 15 min) at the start; the machine may be shared")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        log_path = Path(tmp) / "uvicorn.log"
        try:
            with (
                echo_server(Path(tmp)) as server,
                asyncio.Runner(loop_factory=loop_factory) as runner,
            ):
                loop_name = type(runner.get_loop())
                print(f"server  : {shlex.join(server_command(server.port)[1:])}")
                info = server.info
                print(f"          reports event loop {info['loop']}, HTTP {info['http']}")
                print(f"clients : async ones on {loop_name.__module__}.{loop_name.__qualname__}")
                contenders = build(server, runner)
                try:
                    results = run(contenders, plan, args.verbose)
                    report(contenders, results, args.verbose)
                    report_connections(contenders, server, os.urandom(10 * MiB))
                finally:
                    for contender in contenders:
                        contender.close()
        finally:
            if log_path.exists():
                print("\nuvicorn log:")
                for line in log_path.read_text().splitlines():
                    print(f"  {line}")
    print(f"\nload average at the end: {load_average()}")
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; the server was stopped", file=sys.stderr)
        sys.exit(130)
