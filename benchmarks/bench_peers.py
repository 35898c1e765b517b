"""pluginkv serve against the durable servers people would pick instead: Redis, etcd.

Run with ``.venv/bin/python benchmarks/bench_peers.py`` (``--help`` for options); ``make
bench`` runs it. It needs ``wrk`` (``make wrk``), ``redis-server`` and ``redis-benchmark``
(Debian: ``redis-server``, ``redis-tools``) and ``etcd`` (Debian: ``etcd-server``; ``make
peers`` installs all of them) on the PATH.

Every server acknowledges a write only once it is on disk, and each is a subprocess of this
script on 127.0.0.1 and free ports, with its data in a temporary directory, all stopped in
``finally`` (also on Ctrl-C and SIGTERM); a Redis already running elsewhere is not touched:

* ``pluginkv``: ``python -m pluginkv serve --data-dir <fresh dir>``, every setting at its
  default (SQLite ``synchronous=FULL``; write groups: one fsync per group of writes);
  the store made by ``pluginkv init``, a token from ``pluginkv token create``;
* ``Redis always``: ``redis-server`` with ``appendonly yes``, ``appendfsync always`` (the
  append-only file is fsynced before a write is answered) and no RDB snapshots;
* ``etcd``: a single-member ``etcd`` (its WAL is fsynced before a write is answered), reached
  through its JSON gateway: ``POST /v3/kv/put`` and ``POST /v3/kv/range`` (a linearizable
  read, etcd's default).

Workload (as the issue states it): 100-byte values over 10,000 keys, all stored before the
runs; 16 connections. ``wrk -t2 -c16 --latency`` with a Lua script for the HTTP servers
(a random key of the 10,000 per request), ``redis-benchmark -c16 -d100 -r10000`` for Redis
(its ``SET``/``GET`` tests on random keys of the same count). A run with an error aborts.

Rounds: each round measures PUT, then GET, on every server, in an order that rotates and
reverses from round to round. Figures are **medians over the rounds**, ratios the **median
of per-round ratios** (lowest and highest in brackets). Targets: pluginkv PUT >= 0.5x Redis
and >= 1.5x etcd; GET >= 0.35x Redis and >= 2x etcd. Also shown: each server's CPU time per
request (user + system of all its threads and worker processes, from /proc), which other
load on a shared machine moves less than requests per second.

The load generators and the servers share the machine's cores; that is the same for all three.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bench_server import (
    Verdicts,
    WrkRun,
    clean_env,
    create_token,
    healthy,
    per_round,
    process_cpu,
    rotated,
    run_wrk,
)
from common import HOST, free_port, load_average, on_sigterm, stop_process, version

KEYS = 10_000
VALUE = 100
START_TIMEOUT = 30.0
PLUGINKV = "pluginkv"
REDIS = "Redis always"
ETCD = "etcd"
SERVERS = (PLUGINKV, REDIS, ETCD)
METHODS = ("PUT", "GET")
# (workload, peer) -> the least pluginkv / peer ratio
TARGETS = {
    ("PUT", REDIS): 0.5,
    ("PUT", ETCD): 1.5,
    ("GET", REDIS): 0.35,
    ("GET", ETCD): 2.0,
}
REDIS_TESTS = {"PUT": "set", "GET": "get"}  # redis-benchmark's test names
TOOLS = {
    "wrk": "apt-get install wrk (make peers)",
    "redis-server": "apt-get install redis-server (make peers)",
    "redis-benchmark": "apt-get install redis-tools (make peers)",
    "etcd": "apt-get install etcd-server (make peers)",
}


def pkv_key(index: int) -> str:
    return f"k{index:05d}"


def redis_key(index: int) -> str:
    return f"key:{index:012d}"  # redis-benchmark's __rand_int__ with -r: 12 digits


# -- servers ---------------------------------------------------------------------------------
@dataclass
class Running:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    token: str = ""

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


def redis_ready(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def etcd_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=2) as response:
            return bool(json.loads(response.read()).get("health") == "true")
    except (OSError, ValueError):
        return False


def pluginkv_argv(data_dir: Path, workers: int | None) -> Callable[[int, int], list[str]]:
    def argv(port: int, _: int) -> list[str]:
        return [
            *(sys.executable, "-m", "pluginkv", "serve", "--data-dir", str(data_dir)),
            *("--host", HOST, "--port", str(port), "--debug-port", "0"),
            *(("--workers", str(workers)) if workers is not None else ()),
        ]

    return argv


def redis_argv(data_dir: Path) -> Callable[[int, int], list[str]]:
    def argv(port: int, _: int) -> list[str]:
        return [
            *("redis-server", "--port", str(port), "--bind", HOST, "--dir", str(data_dir)),
            *("--appendonly", "yes", "--appendfsync", "always", "--save", ""),
            *("--daemonize", "no", "--logfile", ""),
        ]

    return argv


def etcd_argv(data_dir: Path) -> Callable[[int, int], list[str]]:
    def argv(port: int, peer: int) -> list[str]:
        client, peers = f"http://{HOST}:{port}", f"http://{HOST}:{peer}"
        return [
            *("etcd", "--name", "bench", "--data-dir", str(data_dir)),
            *("--listen-client-urls", client, "--advertise-client-urls", client),
            *("--listen-peer-urls", peers, "--initial-advertise-peer-urls", peers),
            *("--initial-cluster", f"bench={peers}"),
        ]

    return argv


def describe(argv: Callable[[int, int], list[str]]) -> str:
    """The command line as a shell would show it, with PORT and PEER_PORT for the ports."""
    words = argv(65001, 65002)
    shown = [os.path.relpath(w) if w == sys.executable else w for w in words]
    return shlex.join(shown).replace("65001", "PORT").replace("65002", "PEER_PORT")


def start(
    name: str,
    argv: Callable[[int, int], list[str]],
    ready: Callable[[int], bool],
    tmp: Path,
    stack: ExitStack,
) -> Running:
    """Start a server; its stop is on ``stack`` before anything can fail."""
    log_path = tmp / f"{name.replace(' ', '-')}.log"
    for attempt in range(3):  # a probed free port can be taken before the server binds it
        port, peer = free_port(), free_port()
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                argv(port, peer),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=clean_env(),
                cwd=tmp,
            )
        stack.callback(stop_process, process)
        deadline = time.monotonic() + START_TIMEOUT
        while process.poll() is None and time.monotonic() < deadline:
            if ready(port):
                return Running(name, port, process)
            time.sleep(0.05)
        stop_process(process)
        text = log_path.read_text(errors="replace")
        if attempt == 2 or "address already in use" not in text.lower():
            raise SystemExit(f"{name} did not start; its log:\n{text}")
    raise AssertionError("unreachable")


# -- the stored keys -------------------------------------------------------------------------
def value_bytes() -> bytes:
    return bytes(range(VALUE))


def populate_pluginkv(server: Running) -> None:
    from pluginkv.client import RemoteStorage

    value = value_bytes()
    with RemoteStorage(server.url, server.token) as storage:
        for start_ in range(0, KEYS, 1000):
            storage.set_many({pkv_key(i): value for i in range(start_, start_ + 1000)})
        check(storage.get(pkv_key(KEYS - 1)) == value, "pluginkv: a stored key reads back")


def redis_command(*words: bytes) -> bytes:
    return b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)


def populate_redis(server: Running) -> None:
    value = value_bytes()
    commands = b"".join(redis_command(b"SET", redis_key(i).encode(), value) for i in range(KEYS))
    with socket.create_connection((HOST, server.port), timeout=60) as sock:
        sock.sendall(commands + redis_command(b"GET", redis_key(KEYS - 1).encode()))
        expected = b"+OK\r\n" * KEYS + b"$%d\r\n%s\r\n" % (VALUE, value)
        received = b""
        while len(received) < len(expected):
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            received += chunk
    check(received == expected, "Redis: 10,000 SETs acknowledged and one reads back")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def etcd_call(server: Running, path: str, body: object) -> dict[str, object]:
    request = urllib.request.Request(
        server.url + path, data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        answer: dict[str, object] = json.loads(response.read())
        return answer


def populate_etcd(server: Running) -> None:
    value = b64(value_bytes())
    for start_ in range(0, KEYS, 100):  # etcd allows 128 operations per transaction
        puts = [
            {"requestPut": {"key": b64(pkv_key(i).encode()), "value": value}}
            for i in range(start_, start_ + 100)
        ]
        etcd_call(server, "/v3/kv/txn", {"success": puts})
    answer = etcd_call(server, "/v3/kv/range", {"key": b64(pkv_key(KEYS - 1).encode())})
    kvs = answer.get("kvs")
    check(
        isinstance(kvs, list) and kvs[0].get("value") == value,
        "etcd: a stored key reads back",
    )


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"benchmark sanity check failed: {what}")


# -- load ------------------------------------------------------------------------------------
PKV_LUA = """\
wrk.method = "{method}"
wrk.headers["Authorization"] = "Bearer {token}"
wrk.headers["Content-Type"] = "application/octet-stream"
{body}
local threads = 0
function setup(thread)
  thread:set("seed", threads)
  threads = threads + 1
end
function init(args)
  math.randomseed(7919 * (seed or 0) + 1)
end
function request()
  return wrk.format(nil, string.format("/v1/kv/k%05d", math.random(0, {last})))
end
"""

ETCD_LUA = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
keys = {{{keys}}}
local threads = 0
function setup(thread)
  thread:set("seed", threads)
  threads = threads + 1
end
function init(args)
  math.randomseed(7919 * (seed or 0) + 1)
end
function request()
  local key = keys[math.random(1, #keys)]
  return wrk.format(nil, "{path}", nil, {body})
end
"""


def pluginkv_script(directory: Path, method: str, token: str) -> Path:
    body = f'wrk.body = string.rep("x", {VALUE})' if method == "PUT" else ""
    path = directory / f"pluginkv-{method.lower()}.lua"
    path.write_text(PKV_LUA.format(method=method, token=token, body=body, last=KEYS - 1))
    return path


def etcd_script(directory: Path, method: str) -> Path:
    keys = ",".join(f'"{b64(pkv_key(i).encode())}"' for i in range(KEYS))
    if method == "PUT":
        route, body = "/v3/kv/put", f'\'{{"key":"\' .. key .. \'","value":"{b64(b"x" * VALUE)}"}}\''
    else:
        route, body = "/v3/kv/range", "'{\"key\":\"' .. key .. '\"}'"
    path = directory / f"etcd-{method.lower()}.lua"
    path.write_text(ETCD_LUA.format(keys=keys, path=route, body=body))
    return path


@dataclass
class Plan:
    rounds: int
    duration: int  # seconds per run
    connections: int
    warm: bool = True


def run_redis_benchmark(port: int, method: str, requests: int, connections: int) -> WrkRun:
    argv = [
        *("redis-benchmark", "-h", HOST, "-p", str(port), "-c", str(connections)),
        *(
            "-n",
            str(requests),
            "-d",
            str(VALUE),
            "-r",
            str(KEYS),
            "-t",
            REDIS_TESTS[method],
            "--csv",
        ),
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith('"')]
    if out.returncode != 0 or len(lines) != 2:
        raise SystemExit(f"redis-benchmark failed:\n$ {shlex.join(argv)}\n{out.stdout}{out.stderr}")
    head = [cell.strip('"') for cell in lines[0].split(",")]
    row = dict(zip(head, (cell.strip('"') for cell in lines[1].split(",")), strict=True))
    return WrkRun(
        float(row["rps"]),
        float(row["p50_latency_ms"]) / 1e3,
        float(row["p99_latency_ms"]) / 1e3,
        requests,
    )


Results = dict[tuple[str, str], list[WrkRun]]  # (server, method) -> one per round


class Load:
    """One measured run per server and method; Redis's request count follows its last rate."""

    def __init__(self, servers: dict[str, Running], tmp: Path, plan: Plan) -> None:
        self.servers = servers
        self.plan = plan
        token = servers[PLUGINKV].token
        self.scripts = {
            (PLUGINKV, method): pluginkv_script(tmp, method, token) for method in METHODS
        } | {(ETCD, method): etcd_script(tmp, method) for method in METHODS}
        self.redis_rate = {method: 20_000.0 for method in METHODS}

    def once(self, name: str, method: str, duration: int) -> WrkRun:
        server = self.servers[name]
        before = process_cpu(server.process.pid)
        if name == REDIS:
            requests = max(1000, int(self.redis_rate[method] * duration))
            run = run_redis_benchmark(server.port, method, requests, self.plan.connections)
            self.redis_rate[method] = run.rate
        else:
            script = self.scripts[name, method]
            run = run_wrk(server.url, script, duration, self.plan.connections, 2)
        after = process_cpu(server.process.pid)
        if before is not None and after is not None and run.requests:
            run.server_cpu = (after - before) / run.requests
        return run

    def rounds(self, verbose: bool) -> Results:
        results: Results = defaultdict(list)
        if self.plan.warm:  # not measured; also sets Redis's request counts
            for method in METHODS:
                for name in SERVERS:
                    self.once(name, method, 1)
        for round_ in range(self.plan.rounds):
            for method in METHODS:
                for name in rotated(list(SERVERS), round_):
                    results[name, method].append(self.once(name, method, self.plan.duration))
            if verbose:
                line = "; ".join(
                    f"{method} "
                    + ", ".join(f"{n} {results[n, method][-1].rate:,.0f}" for n in SERVERS)
                    for method in METHODS
                )
                print(
                    f"  round {round_ + 1}/{self.plan.rounds}: {line} (load {load_average()})",
                    flush=True,
                )
        return results


# -- report ----------------------------------------------------------------------------------
def report(results: Results, plan: Plan, verdicts: Verdicts) -> None:
    print(
        f"\n{plan.rounds} round(s), {plan.connections} connections, {plan.duration} s per run; "
        "req/s and latency: median of rounds; CPU/req: the server's, all threads"
    )
    head = f"{'workload':<11}{'server':<15}{'req/s':>10}{'p50':>11}{'p99':>11}{'CPU/req':>10}"
    print(head)
    print("-" * len(head))
    for method in METHODS:
        for name in SERVERS:
            runs = results[name, method]
            rate = statistics.median(r.rate for r in runs)
            p50 = statistics.median(r.p50 for r in runs)
            p99 = statistics.median(r.p99 for r in runs)
            cpu = [r.server_cpu for r in runs if r.server_cpu is not None]
            cpu_cell = f"{statistics.median(cpu) * 1e6:,.0f} us" if cpu else "-"
            print(
                f"{method + ' 100 B':<11}{name:<15}{rate:>10,.0f}{p50 * 1e3:>8.2f} ms"
                f"{p99 * 1e3:>8.2f} ms{cpu_cell:>10}"
            )
    print("targets (pluginkv / peer, median of per-round ratios; range in brackets):")
    for (method, peer), target in TARGETS.items():
        ratio, spread = per_round(
            [r.rate for r in results[PLUGINKV, method]], [r.rate for r in results[peer, method]]
        )
        verdict = verdicts.judge(ratio, target)
        print(f"  {method} {PLUGINKV} / {peer}: {ratio:.2f}x ({spread}) >= {target:.2f}  {verdict}")


def print_rounds(results: Results) -> None:
    print("\nEvery round (req/s):")
    for method in METHODS:
        for name in SERVERS:
            runs = ", ".join(f"{r.rate:,.0f}" for r in results[name, method])
            print(f"  {method} {name}: {runs}")


def tool_version(argv: Sequence[str]) -> str:
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    lines = (out.stdout + out.stderr).strip().splitlines()
    return lines[0] if lines else "?"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="pluginkv serve vs Redis (appendfsync always) and etcd: durable PUT and GET."
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="pluginkv serve --workers N (default: serve's own default)",
    )
    return run_args(parser, argv)


def run_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``parser``'s arguments with the options of a run of rounds (bench_http_floor.py's too)."""
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    parser.add_argument(
        "--duration", type=int, default=3, help="seconds per run (whole, default 3)"
    )
    parser.add_argument(
        "--connections", type=int, default=16, help="connections (default 16; wrk: 2 threads)"
    )
    parser.add_argument("--verbose", action="store_true", help="also print every round's figures")
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: 1 round of 1 s runs, no warm-up"
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.duration < 1 or args.connections < 2:
        parser.error("--rounds and --duration must be positive, --connections at least 2")
    return args


def plan_of(args: argparse.Namespace) -> Plan:
    if args.quick:
        return Plan(1, 1, args.connections, warm=False)
    return Plan(args.rounds, args.duration, args.connections)


def tools_missing(tools: dict[str, str]) -> bool:
    """Whether a tool of ``tools`` is missing (then said on stderr, with how to install it)."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        hints = "; ".join(f"{tool}: {tools[tool]}" for tool in missing)
        print(f"not installed (or not on the PATH): {', '.join(missing)}. {hints}", file=sys.stderr)
    return bool(missing)


def print_machine(title: str) -> None:
    """The first lines of a report: what ran, when, on what."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(title)
    print(f"command : {shlex.join([os.path.relpath(sys.executable), *sys.argv])}")
    print(f"date    : {dt.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"machine : {platform.machine()}, {cpus} CPU(s), {platform.platform()}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if tools_missing(TOOLS):
        return 2
    plan = plan_of(args)
    signal.signal(signal.SIGTERM, on_sigterm)
    print_machine("pluginkv against durable peers: Redis (appendfsync always) and etcd")
    libs = ("pluginkv", "starlette", "uvicorn", "uvloop", "httptools")
    print(
        f"python  : {platform.python_version()}; SQLite {sqlite3.sqlite_version}; "
        + ", ".join(f"{n} {version(n)}" for n in libs)
    )
    print(
        f"peers   : {tool_version(['redis-server', '--version'])}; "
        f"{tool_version(['etcd', '--version'])}"
    )
    tools = (["wrk", "--version"], ["redis-benchmark", "--version"])
    print(f"tools   : {'; '.join(tool_version(argv) for argv in tools)}")
    print(
        f"plan    : {plan.rounds} round(s) of {plan.duration} s runs; {plan.connections} "
        f"connections; {VALUE} B values over {KEYS:,} keys, all stored first"
    )
    print(f"load    : {load_average()} (1, 5, 15 min) at the start; the machine may be shared")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pluginkv-bench-peers-") as tmp_name:
        tmp = Path(tmp_name)
        dirs = {name: tmp / name.split()[0].lower() for name in SERVERS}
        argvs = {
            PLUGINKV: pluginkv_argv(dirs[PLUGINKV], args.workers),
            REDIS: redis_argv(dirs[REDIS]),
            ETCD: etcd_argv(dirs[ETCD]),
        }
        readies = {PLUGINKV: healthy, REDIS: redis_ready, ETCD: etcd_ready}
        for name in SERVERS:
            print(f"server  : {name}: {describe(argvs[name])}")
        with ExitStack() as stack:
            dirs[REDIS].mkdir()
            token = create_token(dirs[PLUGINKV])
            servers = {
                name: start(name, argvs[name], readies[name], tmp, stack) for name in SERVERS
            }
            servers[PLUGINKV].token = token
            print(
                "started : "
                + ", ".join(
                    f"{name} (pid {s.process.pid}, port {s.port})" for name, s in servers.items()
                ),
                flush=True,
            )
            populate_pluginkv(servers[PLUGINKV])
            populate_redis(servers[REDIS])
            populate_etcd(servers[ETCD])
            results = Load(servers, tmp, plan).rounds(args.verbose)
        verdicts = Verdicts()
        report(results, plan, verdicts)
        if args.verbose:
            print_rounds(results)
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
