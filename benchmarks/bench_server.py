"""The pluginkv service (HTTP) against a plain Starlette echo app under the same uvicorn.

Run with ``.venv/bin/python benchmarks/bench_server.py`` (``--help`` for options). It needs
``wrk`` on the PATH (Debian/Ubuntu: ``apt-get install wrk``; macOS: ``brew install wrk``)
and ``httpx`` in the virtualenv (a reference client; it comes with ``.[dev]``).

Servers, each a subprocess of this script on 127.0.0.1 and a free port, all started once
and stopped in ``finally`` (also on Ctrl-C and SIGTERM):

* ``echo``: the ceiling. A plain Starlette app with no middleware, run by ``uvicorn.run``
  with the arguments of ``pluginkv serve`` (``loop="uvloop"``, httptools, one worker,
  ``access_log=False``, keep-alive 30 s) but uvicorn's own httptools protocol, without the
  service's listener limits (``bench_listener_cost.py`` measures what those cost). Its
  routes have pluginkv's shapes: ``GET /v1/kv/{key}`` answers 100 bytes (10 MiB for keys
  under ``large/``), ``PUT /v1/kv/{key}`` reads the whole body and answers ``204`` with no
  body, as pluginkv does;
* ``pluginkv FULL``: the real ``python -m pluginkv serve --data-dir <fresh dir>``, every
  setting at its default (SQLite ``synchronous=FULL``);
* ``pluginkv NORMAL``: the same with ``PLUGINKV_SQLITE_SYNCHRONOUS=NORMAL``, for information.

``PLUGINKV_*`` variables of the calling environment are removed for the servers. The token
comes from ``pluginkv token create``; every request (to echo too) carries it in
``Authorization: Bearer``. Before the runs 1,000 keys of 100 B are stored in each pluginkv
(one batch); GETs cycle over them, PUTs overwrite their own 1,000 keys.

Parts, all in one run, in rounds (the order of the servers or clients rotates and reverses
from round to round; figures are **medians over the rounds**, ratios the **median of
per-round ratios** measured side by side, with the lowest and highest in brackets):

1. Load: ``wrk -t2 -c16 -d<duration>s --latency`` with a Lua script (headers, a key per
   request, a 100-byte body for PUT), once per server and workload per round. A run with a
   non-2xx answer or a socket error aborts the benchmark. Targets: pluginkv FULL GET >= 0.6x
   echo, PUT >= 0.4x. Also shown: the server process's CPU time per request (user + system,
   from /proc, all its threads), which other load on a shared machine moves less than req/s.
2. One Python thread, one keep-alive connection, 100 B values: ``RemoteStorage`` get/set
   against pluginkv FULL; bare ``http.client`` and ``httpx.Client`` with the same request
   shapes against echo; ``http.client`` against pluginkv FULL as a reference (the service
   without the SDK); ``RemoteStorage`` against pluginkv NORMAL for information (a set
   without an fsync per commit: at FULL one thread's set waits for the disk). Targets:
   RemoteStorage >= 0.8x http.client against echo; http.client >= 2x httpx.Client against
   echo.
3. 10 MiB values, one thread: ``RemoteStorage.set``/``get`` against pluginkv FULL vs
   ``http.client`` upload/download against echo (MB/s = 10^6 bytes of value per second);
   ``http.client`` against pluginkv as a reference. Target >= 0.7x echo.

The load generator and the servers share the machine's cores, as do the client thread and
the server in parts 2 and 3: that is the same for echo and pluginkv.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import gc
import http.client
import os
import platform
import re
import shlex
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from common import free_port, load_average, on_sigterm, stop_process, version

KiB = 1024
MiB = 1024 * KiB
HOST = "127.0.0.1"
WORKSPACE = "bench-ws"
PLUGIN = "bench/server"
KEYS = 1000  # 100 B keys stored for GET; PUTs cycle over as many of their own
SMALL = 100
LARGE = 10 * MiB
LARGE_KEY = "large/blob"
IDLE_TIMEOUT = 30  # pluginkv serve's default keep-alive (Settings.idle_timeout_seconds)
START_TIMEOUT = 30.0
WRK_TIMEOUT = "10s"  # per request; a FULL fsync queue must not count as a socket error
INSTALL_HINT = (
    "wrk is not installed (or not on the PATH); it is the load generator of this benchmark.\n"
    "Install it: apt-get install wrk (Debian/Ubuntu), brew install wrk (macOS)."
)
MODULE = Path(__file__).resolve()
ECHO = "echo"
FULL = "pluginkv FULL"
NORMAL = "pluginkv NORMAL"

# Targets: (what, minimum ratio)
TARGET_GET = 0.6
TARGET_PUT = 0.4
TARGET_SDK = 0.8
TARGET_LIB = 2.0
TARGET_LARGE = 0.7


def pattern(size: int) -> bytes:
    """``size`` bytes of a fixed, non-constant pattern."""
    block = bytes(range(256))
    return (block * (size // len(block) + 1))[:size]


def key_name(prefix: str, index: int) -> str:
    return f"{prefix}/k{index % KEYS:04d}"


def kv_path(key: str) -> str:
    return "/v1/kv/" + quote(key, safe="")


# -- the echo app (runs in a subprocess) -----------------------------------------------------
def make_echo_app() -> object:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    small = pattern(SMALL)
    large = pattern(LARGE)

    async def get(request: Request) -> Response:
        key: str = request.path_params["key"]
        body = large if key.startswith("large") else small
        return Response(body, media_type="application/octet-stream")

    async def put(request: Request) -> Response:
        await request.body()
        return Response(status_code=204)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/v1/kv/{key:path}", put, methods=["PUT"]),
            Route("/v1/kv/{key:path}", get, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def serve_echo(port: int) -> None:
    """The echo app under ``uvicorn.run`` with the arguments of ``pluginkv serve``, but
    uvicorn's own httptools protocol."""
    import uvicorn

    uvicorn.run(
        make_echo_app(),  # type: ignore[arg-type]
        host=HOST,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        timeout_keep_alive=IDLE_TIMEOUT,
        timeout_graceful_shutdown=30,
        log_level="info",
    )


# -- servers ---------------------------------------------------------------------------------
@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    token: str = ""

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


@dataclass(frozen=True)
class ServerSpec:
    """How to start one server: ``argv`` with ``{port}`` filled in, extra environment."""

    name: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    data_dir: Path | None = None  # a pluginkv data directory: a token is created for it


def clean_env(extra: Sequence[tuple[str, str]] = ()) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGINKV_")}
    env.update(extra)
    return env


def healthy(port: int) -> bool:
    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        response.read()
        return response.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def create_token(data_dir: Path) -> str:
    # The store and its token secret first: token create never makes a secret.
    subprocess.run(
        [sys.executable, "-m", "pluginkv", "init", "--data-dir", str(data_dir)],
        capture_output=True,
        check=True,
        env=clean_env(),
        timeout=60,
    )
    out = subprocess.run(
        [
            *(sys.executable, "-m", "pluginkv", "token", "create", "--data-dir", str(data_dir)),
            *("--workspace", WORKSPACE, "--plugin", PLUGIN),
        ],
        capture_output=True,
        text=True,
        check=True,
        env=clean_env(),
        timeout=60,
    )
    return out.stdout.strip().splitlines()[-1]


def start_server(spec: ServerSpec, log_dir: Path, stack: ExitStack) -> Server:
    """Start ``spec``; its stop is on ``stack`` before anything can fail."""
    token = create_token(spec.data_dir) if spec.data_dir is not None else ""
    log_path = log_dir / (re.sub(r"[^\w.]+", "-", spec.name) + ".log")
    for attempt in range(3):  # a probed free port can be taken before the server binds it
        port = free_port()
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [arg.format(port=port) for arg in spec.argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=clean_env(spec.env),
                cwd=log_dir,
            )
        stack.callback(stop_process, process)
        deadline = time.monotonic() + START_TIMEOUT
        while process.poll() is None and time.monotonic() < deadline:
            if healthy(port):
                return Server(spec.name, port, process, log_path, token)
            time.sleep(0.05)
        stop_process(process)
        text = log_path.read_text(errors="replace")
        if attempt == 2 or "address already in use" not in text.lower():
            raise SystemExit(f"{spec.name} did not start; its log:\n{text}")
    raise AssertionError("unreachable")


def default_specs(tmp: Path, settings: Sequence[str] = ()) -> list[ServerSpec]:
    """echo, and pluginkv at FULL and NORMAL, each with ``settings`` (``NAME=VALUE``) too."""
    extra = tuple(tuple(setting.split("=", 1)) for setting in settings)
    echo = ServerSpec(ECHO, (sys.executable, str(MODULE), "--serve-echo", "{port}"))
    specs = [echo]
    for name, mode in ((FULL, "FULL"), (NORMAL, "NORMAL")):
        data_dir = tmp / f"data-{mode.lower()}"
        argv = (
            *(sys.executable, "-m", "pluginkv", "serve", "--data-dir", str(data_dir)),
            *("--host", HOST, "--port", "{port}"),
            # Two services run at once: each takes any free port for Dify plugins.
            *("--debug-port", "0"),
        )
        env = (("PLUGINKV_SQLITE_SYNCHRONOUS", mode), *extra)
        specs.append(ServerSpec(name, argv, env, data_dir))  # type: ignore[arg-type]
    return specs


def describe(spec: ServerSpec) -> str:
    """The command line of a server as a shell would show it, with its extra environment."""
    argv = [os.path.relpath(arg) if arg == sys.executable else arg for arg in spec.argv]
    command = shlex.join(argv).replace("{port}", "PORT")
    return " ".join([*(f"{name}={value}" for name, value in spec.env), command])


@contextmanager
def running(specs: Sequence[ServerSpec], log_dir: Path) -> Iterator[dict[str, Server]]:
    with ExitStack() as stack:
        yield {spec.name: start_server(spec, log_dir, stack) for spec in specs}


def populate(server: Server) -> None:
    """Store the GET keys (one batch) and check one reads back."""
    from pluginkv.client import RemoteStorage

    value = pattern(SMALL)
    with RemoteStorage(server.url, server.token) as storage:
        storage.set_many({key_name("get", i): value for i in range(KEYS)})
        check(storage.get(key_name("get", 7)) == value, f"{server.name}: populate")


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"benchmark sanity check failed: {what}")


# -- part 1: wrk -----------------------------------------------------------------------------
LUA = """\
wrk.method = "{method}"
wrk.headers["Authorization"] = "Bearer {token}"
wrk.headers["User-Agent"] = "pluginkv-bench-wrk"
{body}
local threads = 0
function setup(thread)
  thread:set("offset", threads * {spread})
  threads = threads + 1
end
function init(args)
  n = offset or 0
end
function request()
  n = n + 1
  return wrk.format(nil, string.format("/v1/kv/{prefix}%%2Fk%04d", n % {keys}))
end
"""


def lua_script(directory: Path, method: str, token: str) -> Path:
    body = ""
    if method == "PUT":
        body = (
            'wrk.headers["Content-Type"] = "application/octet-stream"\n'
            f'wrk.body = string.rep("x", {SMALL})'
        )
    prefix = "get" if method == "GET" else "put"
    text = LUA.format(
        method=method, token=token, body=body, prefix=prefix, keys=KEYS, spread=KEYS // 2
    )
    path = directory / f"{method.lower()}-{abs(hash(token)) % 10**8}.lua"
    path.write_text(text)
    return path


@dataclass
class WrkRun:
    rate: float  # requests per second
    p50: float  # seconds
    p99: float
    requests: int
    server_cpu: float | None = None  # the server process's CPU seconds per request


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) a process and its live children (the workers of
    ``serve --workers N``) have used so far; None off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the command name: state is field 3, utime and stime are fields 14 and 15.
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            total += sum(process_cpu(int(child)) or 0.0 for child in children.read_text().split())
        except OSError:
            continue
    return total


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def parse_wrk(out: str) -> WrkRun:
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.MULTILINE)
    total = re.search(r"^\s+(\d+) requests in", out, re.MULTILINE)
    latency = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+(?:us|ms|s|m))\s*$", out, re.MULTILINE))
    if rate is None or total is None or set(latency) != {"50", "99"}:
        raise SystemExit(f"cannot read wrk's output:\n{out}")

    def seconds(text: str) -> float:
        number = re.match(r"[\d.]+", text)
        assert number is not None
        return float(number.group()) * _UNITS[text[number.end() :]]

    return WrkRun(
        float(rate.group(1)), seconds(latency["50"]), seconds(latency["99"]), int(total.group(1))
    )


def run_wrk(url: str, script: Path, duration: int, connections: int, threads: int) -> WrkRun:
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency"]
    argv += ["--timeout", WRK_TIMEOUT, "-s", str(script), url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=False)
    text = out.stdout + out.stderr
    if out.returncode != 0 or "Non-2xx" in text or "Socket errors" in text:
        raise SystemExit(f"wrk against {url} failed or saw errors:\n$ {shlex.join(argv)}\n{text}")
    return parse_wrk(out.stdout)


LoadResults = dict[tuple[str, str], list[WrkRun]]  # (server, "GET"/"PUT") -> one per round


def rotated(items: Sequence[str], round_: int) -> list[str]:
    shift = round_ % len(items)
    order = list(items[shift:]) + list(items[:shift])
    return order[::-1] if round_ % 2 else order


def load_round(
    servers: dict[str, Server],
    scripts: dict[tuple[str, str], Path],
    plan: Plan,
    round_: int,
    results: LoadResults,
) -> None:
    for method in ("GET", "PUT"):
        for name in rotated(list(servers), round_):
            pid = servers[name].process.pid
            before = process_cpu(pid)
            run = run_wrk(
                servers[name].url, scripts[name, method], plan.duration, plan.connections, 2
            )
            after = process_cpu(pid)
            if before is not None and after is not None and run.requests:
                run.server_cpu = (after - before) / run.requests
            results[name, method].append(run)


# -- parts 2 and 3: one Python thread --------------------------------------------------------
@dataclass
class Sample:
    count: int
    wall: float
    cpu: float

    @property
    def rate(self) -> float:
        return self.count / self.wall

    @property
    def cpu_per_op(self) -> float:
        return self.cpu / self.count


def measure(op: Callable[[int], int], expect: int, seconds: float, least: int) -> Sample:
    """Call ``op(i)`` for ``seconds`` (at least ``least`` times); each returns a body length."""
    gc.collect()
    count = 0
    cpu0 = time.process_time()
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        if op(count) != expect:
            raise SystemExit(f"benchmark sanity check failed: {op} returned a wrong length")
        count += 1
        if count >= least and time.perf_counter() >= deadline:
            break
    return Sample(count, time.perf_counter() - start, time.process_time() - cpu0)


class Client:
    """One client on one server: small and large get/put, each returning a body length."""

    name: str

    def get(self, i: int) -> int:
        raise NotImplementedError

    def put(self, i: int) -> int:
        raise NotImplementedError

    def get_large(self, i: int) -> int:
        raise NotImplementedError

    def put_large(self, i: int) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class SDKClient(Client):
    def __init__(self, server: Server) -> None:
        from pluginkv.client import RemoteStorage

        self.name = f"RemoteStorage -> {server.name}"
        self.storage = RemoteStorage(server.url, server.token)
        self.small = pattern(SMALL)
        self.large = pattern(LARGE)

    def get(self, i: int) -> int:
        value = self.storage.get(key_name("get", i))
        return -1 if value is None else len(value)

    def put(self, i: int) -> int:
        self.storage.set(key_name("put", i), self.small)
        return SMALL

    def get_large(self, i: int) -> int:
        value = self.storage.get(LARGE_KEY)
        return -1 if value is None else len(value)

    def put_large(self, i: int) -> int:
        self.storage.set(LARGE_KEY, self.large)
        return LARGE

    def close(self) -> None:
        self.storage.close()


class HTTPClient(Client):
    """``http.client``: one ``HTTPConnection``, the SDK's headers."""

    def __init__(self, server: Server) -> None:
        self.name = f"http.client -> {server.name}"
        self.conn = http.client.HTTPConnection(HOST, server.port, timeout=30)
        self.headers = {"Authorization": f"Bearer {server.token or 'x'}", "User-Agent": "bench"}
        self.put_headers = {**self.headers, "Content-Type": "application/octet-stream"}
        self.small = pattern(SMALL)
        self.large = pattern(LARGE)
        self.large_path = kv_path(LARGE_KEY)

    def _call(self, method: str, path: str, body: bytes | None = None) -> int:
        headers = self.headers if body is None else self.put_headers
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        if response.status not in (200, 204):
            raise SystemExit(f"{self.name}: {method} {path}: HTTP {response.status} {data[:200]!r}")
        return len(data) if body is None else len(body)

    def get(self, i: int) -> int:
        return self._call("GET", kv_path(key_name("get", i)))

    def put(self, i: int) -> int:
        return self._call("PUT", kv_path(key_name("put", i)), self.small)

    def get_large(self, i: int) -> int:
        return self._call("GET", self.large_path)

    def put_large(self, i: int) -> int:
        return self._call("PUT", self.large_path, self.large)

    def close(self) -> None:
        self.conn.close()


class HttpxClient(Client):
    def __init__(self, server: Server) -> None:
        import httpx

        self.name = f"httpx.Client -> {server.name}"
        headers = {"Authorization": f"Bearer {server.token or 'x'}", "User-Agent": "bench"}
        self.client = httpx.Client(
            base_url=server.url, headers=headers, timeout=30.0, trust_env=False
        )
        self.put_headers = {"Content-Type": "application/octet-stream"}
        self.small = pattern(SMALL)

    def get(self, i: int) -> int:
        response = self.client.get(kv_path(key_name("get", i)))
        return len(response.content) if response.status_code == 200 else -1

    def put(self, i: int) -> int:
        path = kv_path(key_name("put", i))
        response = self.client.put(path, content=self.small, headers=self.put_headers)
        return SMALL if response.status_code == 204 else -1

    def close(self) -> None:
        self.client.close()


ClientResults = dict[tuple[str, str], list[Sample]]  # (client, workload) -> one per round
SDK = f"RemoteStorage -> {FULL}"
BARE = f"http.client -> {ECHO}"
HTTPX = f"httpx.Client -> {ECHO}"
BARE_PK = f"http.client -> {FULL}"
SDK_NORMAL = f"RemoteStorage -> {NORMAL}"


def client_makers(servers: dict[str, Server]) -> dict[str, Callable[[], Client]]:
    return {
        SDK: functools.partial(SDKClient, servers[FULL]),
        SDK_NORMAL: functools.partial(SDKClient, servers[NORMAL]),
        BARE_PK: functools.partial(HTTPClient, servers[FULL]),
        BARE: functools.partial(HTTPClient, servers[ECHO]),
        HTTPX: functools.partial(HttpxClient, servers[ECHO]),
    }


def client_round(
    makers: dict[str, Callable[[], Client]],
    workloads: Sequence[tuple[str, str, int]],  # (label, Client method, bytes per op)
    names: Sequence[str],
    plan: Plan,
    round_: int,
    results: ClientResults,
) -> None:
    """Each workload on each client (fresh client, a few warm-up ops, then timed)."""
    for label, method, size in workloads:
        large = size == LARGE
        for name in rotated(list(names), round_):
            client = makers[name]()
            try:
                op: Callable[[int], int] = getattr(client, method)
                for i in range(2 if large else 20):
                    if op(i) != size:
                        raise SystemExit(f"{name} {label}: wrong body length in the warm-up")
                seconds = plan.large_seconds if large else plan.client_seconds
                sample = measure(op, size, seconds, plan.least_large if large else 20)
            finally:
                client.close()
            results[name, label].append(sample)


SMALL_WORKLOADS = (("get 100 B", "get", SMALL), ("set 100 B", "put", SMALL))
LARGE_WORKLOADS = (("set 10 MiB", "put_large", LARGE), ("get 10 MiB", "get_large", LARGE))


# -- the run ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    rounds: int
    duration: int  # seconds per wrk run
    connections: int
    client_seconds: float  # per client and 100 B workload
    large_seconds: float  # per client and 10 MiB workload
    least_large: int
    warm: bool = True  # a 1 s wrk run per server and workload before the rounds


@dataclass
class Results:
    load: LoadResults = field(default_factory=lambda: defaultdict(list))
    clients: ClientResults = field(default_factory=lambda: defaultdict(list))
    large: ClientResults = field(default_factory=lambda: defaultdict(list))


def run(servers: dict[str, Server], scripts_dir: Path, plan: Plan, verbose: bool) -> Results:
    scripts = {
        (name, method): lua_script(scripts_dir, method, server.token or "echo-needs-none")
        for name, server in servers.items()
        for method in ("GET", "PUT")
    }
    makers = client_makers(servers)
    results = Results()
    # Warm-up, not measured: one short wrk run per server and workload.
    if plan.warm:
        for (name, _), script in scripts.items():
            run_wrk(servers[name].url, script, 1, plan.connections, 2)
    for round_ in range(plan.rounds):
        load_round(servers, scripts, plan, round_, results.load)
        client_round(makers, SMALL_WORKLOADS, list(makers), plan, round_, results.clients)
        large_names = [SDK, BARE_PK, BARE]
        client_round(makers, LARGE_WORKLOADS, large_names, plan, round_, results.large)
        if verbose:
            print(f"  round {round_ + 1}/{plan.rounds} done", flush=True)
    return results


# -- report ----------------------------------------------------------------------------------
class Verdicts:
    def __init__(self) -> None:
        self.missed = 0
        self.met = 0

    def judge(self, ratio: float, target: float) -> str:
        ok = ratio >= target
        self.met += ok
        self.missed += not ok
        return "PASS" if ok else "MISS"

    def summary(self) -> str:
        """The closing line of a benchmark's report."""
        if self.missed:
            return f"\n{self.missed} of {self.met + self.missed} target(s) missed"
        return f"\nall {self.met} targets met"


def per_round(mine: Sequence[float], base: Sequence[float]) -> tuple[float, str]:
    ratios = [a / b for a, b in zip(mine, base, strict=True)]
    return statistics.median(ratios), f"{min(ratios):.2f}-{max(ratios):.2f}"


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def fmt_us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} us"


def report_load(results: LoadResults, servers: Sequence[str], plan: Plan, v: Verdicts) -> None:
    print(
        f"\n1. Under load: wrk -t2 -c{plan.connections} -d{plan.duration}s, {plan.rounds} "
        "round(s); req/s and latency: median of rounds; ratio: / echo, median per round"
    )
    head = (
        f"{'workload':<11}{'server':<17}{'req/s':>10}{'p50':>11}{'p99':>11}{'CPU/req':>9}"
        f"{'ratio':>8}{'(rounds)':>12}{'target':>9}  result"
    )
    print(head)
    print("-" * len(head))
    targets = {"GET": TARGET_GET, "PUT": TARGET_PUT}
    for method in ("GET", "PUT"):
        base = [r.rate for r in results[ECHO, method]]
        for name in servers:
            runs = results[name, method]
            rate = statistics.median(r.rate for r in runs)
            p50 = statistics.median(r.p50 for r in runs)
            p99 = statistics.median(r.p99 for r in runs)
            cpu = [r.server_cpu for r in runs if r.server_cpu is not None]
            cpu_cell = f"{statistics.median(cpu) * 1e6:,.0f} us" if cpu else "-"
            cells = (
                f"{method + ' 100 B':<11}{name:<17}{rate:>10,.0f}{fmt_ms(p50):>11}{fmt_ms(p99):>11}"
                f"{cpu_cell:>9}"
            )
            if name == ECHO:
                print(cells + f"{'1.00x':>8}{'':>12}{'ceiling':>9}")
                continue
            ratio, spread = per_round([r.rate for r in runs], base)
            if name == FULL:
                target = targets[method]
                verdict = v.judge(ratio, target)
                print(
                    cells
                    + f"{ratio:>7.2f}x{spread:>12}{'>=' + format(target, '.1f'):>9}  {verdict}"
                )
            else:
                print(cells + f"{ratio:>7.2f}x{spread:>12}{'(info)':>9}")


def report_clients(results: ClientResults, names: Sequence[str], v: Verdicts) -> None:
    print(
        "\n2. One Python thread, one keep-alive connection, 100 B values; ops/s: median of "
        "rounds; client CPU per op: the benchmark process's process_time"
    )
    width = max(len(n) for n in names) + 2
    head = f"{'client':<{width}}" + "".join(
        f"{label + ' ops/s':>18}{'CPU/op':>10}" for label, _, _ in SMALL_WORKLOADS
    )
    print(head)
    print("-" * len(head))
    for name in names:
        cells = ""
        for label, _, _ in SMALL_WORKLOADS:
            samples = results[name, label]
            rate = statistics.median(s.rate for s in samples)
            cpu = statistics.median(s.cpu_per_op for s in samples)
            cells += f"{rate:>18,.0f}{fmt_us(cpu):>10}"
        print(f"{name:<{width}}{cells}")
    print("targets (ratio of ops/s, median per round; range in brackets):")
    for mine, base, target in ((SDK, BARE, TARGET_SDK), (BARE, HTTPX, TARGET_LIB)):
        for label, _, _ in SMALL_WORKLOADS:
            ratio, spread = per_round(
                [s.rate for s in results[mine, label]], [s.rate for s in results[base, label]]
            )
            verdict = v.judge(ratio, target)
            print(f"  {mine} / {base}, {label}: {ratio:.2f}x ({spread}) >= {target:.1f}  {verdict}")
    for label, _, _ in SMALL_WORKLOADS:
        ratio, spread = per_round(
            [s.rate for s in results[SDK, label]], [s.rate for s in results[BARE_PK, label]]
        )
        print(f"  (info) {SDK} / {BARE_PK}, {label}: {ratio:.2f}x ({spread}): the SDK's own cost")
    for label, _, _ in SMALL_WORKLOADS:
        ratio, spread = per_round(
            [s.rate for s in results[SDK_NORMAL, label]], [s.rate for s in results[BARE, label]]
        )
        print(
            f"  (info) {SDK_NORMAL} / {BARE}, {label}: {ratio:.2f}x ({spread}): "
            "without an fsync per commit"
        )


def report_large(results: ClientResults, v: Verdicts) -> None:
    print("\n3. 10 MiB values, one thread; MB/s (10^6 bytes of value per second), median of rounds")
    names = (SDK, BARE_PK, BARE)
    width = max(len(n) for n in names) + 2
    head = f"{'client':<{width}}" + "".join(
        f"{label + ' MB/s':>18}" for label, _, _ in LARGE_WORKLOADS
    )
    print(head)
    print("-" * len(head))

    def mbps(name: str, label: str) -> list[float]:
        return [s.rate * LARGE / 1e6 for s in results[name, label]]

    for name in names:
        cells = "".join(
            f"{statistics.median(mbps(name, label)):>18,.1f}" for label, _, _ in LARGE_WORKLOADS
        )
        print(f"{name:<{width}}{cells}")
    print("targets (ratio of MB/s, median per round):")
    for label, _, _ in LARGE_WORKLOADS:
        ratio, spread = per_round(mbps(SDK, label), mbps(BARE, label))
        verdict = v.judge(ratio, TARGET_LARGE)
        print(
            f"  {SDK} / {BARE}, {label}: {ratio:.2f}x ({spread}) >= {TARGET_LARGE:.1f}  {verdict}"
        )


def wrk_version(wrk: str) -> str:
    out = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    first = (out.stdout + out.stderr).strip().splitlines()
    return first[0] if first else "?"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="pluginkv serve (HTTP) vs a plain Starlette echo app under the same uvicorn."
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    parser.add_argument(
        "--duration", type=int, default=3, help="seconds per wrk run (whole, default 3)"
    )
    parser.add_argument(
        "--connections", type=int, default=16, help="wrk connections (default 16, 2 threads)"
    )
    parser.add_argument(
        "--client-duration",
        type=float,
        default=1.0,
        help="seconds per Python client and workload in parts 2 and 3 (default 1.0)",
    )
    parser.add_argument("--verbose", action="store_true", help="also print every round's figures")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 1 round, 1 s wrk runs, a few client requests",
    )
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="PLUGINKV_NAME=VALUE",
        help="a setting for both pluginkv services (repeatable), to compare a setting's values",
    )
    parser.add_argument("--serve-echo", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for setting in args.setting:
        if not setting.startswith("PLUGINKV_") or "=" not in setting:
            parser.error(f"--setting {setting!r}: give PLUGINKV_NAME=VALUE")
    if args.rounds < 1 or args.duration < 1 or args.connections < 2 or args.client_duration <= 0:
        parser.error(
            "--rounds and --duration must be positive, --connections at least 2 "
            "(wrk runs 2 threads), --client-duration above 0"
        )
    return args


def print_rounds(results: Results, servers: Sequence[str]) -> None:
    print("\nEvery round:")
    for method in ("GET", "PUT"):
        for name in servers:
            runs = ", ".join(f"{r.rate:,.0f}" for r in results.load[name, method])
            print(f"  wrk {method} {name}: {runs} req/s")
    for (name, label), samples in {**results.clients, **results.large}.items():
        unit = LARGE / 1e6 if "MiB" in label else 1.0
        rates = ", ".join(f"{s.rate * unit:,.1f}" for s in samples)
        print(f"  {name}, {label}: {rates}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_echo is not None:
        serve_echo(args.serve_echo)
        return 0
    wrk = shutil.which("wrk")
    if wrk is None:
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    if args.quick:
        plan = Plan(1, 1, args.connections, 0.05, 0.05, 1, warm=False)
    else:
        plan = Plan(
            args.rounds,
            args.duration,
            args.connections,
            args.client_duration,
            args.client_duration,
            3,
        )
    signal.signal(signal.SIGTERM, on_sigterm)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print("pluginkv service benchmark: pluginkv serve vs a plain Starlette echo app")
    print(f"command : {shlex.join([os.path.relpath(sys.executable), *sys.argv])}")
    print(f"date    : {dt.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"machine : {platform.machine()}, {cpus} CPU(s), {platform.platform()}")
    libs = ("pluginkv", "starlette", "uvicorn", "uvloop", "httptools", "PyJWT", "httpx")
    print(
        f"python  : {platform.python_version()}; SQLite {sqlite3.sqlite_version}; "
        + ", ".join(f"{n} {version(n)}" for n in libs)
    )
    print(f"wrk     : {wrk_version(wrk)}")
    print(
        f"plan    : {plan.rounds} round(s); wrk -t2 -c{plan.connections} -d{plan.duration}s per "
        f"server and workload; {plan.client_seconds:g} s per Python client and workload"
    )
    print(f"load    : {load_average()} (1, 5, 15 min) at the start; the machine may be shared")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pluginkv-bench-server-") as tmp_name:
        tmp = Path(tmp_name)
        specs = default_specs(tmp, args.setting)
        for spec in specs:
            print(f"server  : {spec.name}: {describe(spec)}")
        with running(specs, tmp) as servers:
            started_line = ", ".join(
                f"{name} (pid {server.process.pid}, port {server.port})"
                for name, server in servers.items()
            )
            print(f"started : {started_line}", flush=True)
            for name in (FULL, NORMAL):
                populate(servers[name])
            results = run(servers, tmp, plan, args.verbose)
        order = [spec.name for spec in specs]
        verdicts = Verdicts()
        report_load(results.load, order, plan, verdicts)
        report_clients(results.clients, [SDK, SDK_NORMAL, BARE_PK, BARE, HTTPX], verdicts)
        report_large(results.large, verdicts)
        if args.verbose:
            print_rounds(results, order)
    print(verdicts.summary())
    print(f"load average at the end: {load_average()}")
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; the servers were stopped", file=sys.stderr)
        sys.exit(130)
