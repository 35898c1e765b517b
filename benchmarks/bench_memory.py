"""The service's memory: 10,000 idle keep-alive connections, 1,000 scopes, a long mixed load.

Run with ``.venv/bin/python benchmarks/bench_memory.py`` (``--help`` for options); ``make
stress`` runs it in full (10 minutes of load). It needs ``wrk`` (``make wrk``).

One ``python -m pluginkv serve --data-dir <fresh dir>``, every setting at its default but:

* ``PLUGINKV_MAX_CONNECTIONS``: the idle connections plus the load's and some spare (the
  default of 1,000 would refuse the rest, which is what it is for);
* ``PLUGINKV_IDLE_TIMEOUT_SECONDS``: longer than the run, so that the idle connections
  stay open (by default the service closes a connection idle for 30 s).

Steps, with the service's resident memory (RSS of its process and any children, from
/proc) after each:

1. started, store made by ``pluginkv init``;
2. 1,000 scopes in use: a token per scope, 10 keys of 100 B stored in each;
3. 10,000 idle keep-alive connections opened, each having sent one authenticated GET (of a
   scope of the 1,000, in turn) and read its answer; then left idle;
4. a mixed load for ``--duration`` seconds (default 600) beside them: ``wrk -t2 -c16`` with
   a Lua script whose requests pick a scope of the 1,000 at random and are 60% GET, 25%
   PUT of 100 B, 5% DELETE, 5% a page of keys, 5% usage; RSS sampled every few seconds,
   shown at the load's start, middle and end, and the highest;
5. at the end, every idle connection sends one more GET: how many were still open.

Targets: RSS under 200 MiB at every sample; at the end no more than 5% over the middle
(memory does not grow under a steady load).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bench_server import ServerSpec, healthy, start_server
from common import HOST, load_average, on_sigterm, version

MiB = 1024 * 1024
WORKSPACE = "bench-ws"
KEYS_PER_SCOPE = 10
VALUE = bytes(range(100))
TARGET_RSS = 200 * MiB
TARGET_GROWTH = 1.05
LOAD_CONNECTIONS = 16
SPARE_CONNECTIONS = 200
OPEN_AT_ONCE = 500  # idle connections opened concurrently


def plugin(index: int) -> str:
    return f"bench/s{index:04d}"


def rss(pid: int) -> int:
    """Resident bytes of ``pid`` and its descendants."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                pending.extend(int(child) for child in children)
        except OSError:
            continue
    return total


def mint_tokens(data_dir: Path, scopes: int) -> list[str]:
    """A scope token per scope, signed with the service's secret (as ``token create`` does)."""
    from pluginkv.cli.common import signing_tokens

    tokens = signing_tokens(data_dir)
    return [tokens.issue(workspace=WORKSPACE, plugin=plugin(i)) for i in range(scopes)]


def populate(url: str, tokens: Sequence[str]) -> None:
    from pluginkv.client import RemoteStorage

    for token in tokens:
        with RemoteStorage(url, token) as storage:
            storage.set_many({f"k{i:02d}": VALUE for i in range(KEYS_PER_SCOPE)})


# -- idle connections ------------------------------------------------------------------------
def request(port: int, token: str) -> bytes:
    return (
        f"GET /v1/kv/k00 HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes
) -> int | None:
    """Send one GET and read its whole answer: its status, or None if the connection failed."""
    try:
        writer.write(payload)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await reader.readexactly(length)
        return int(head.split(b" ", 2)[1])
    except (
        OSError,
        ValueError,
        IndexError,
        asyncio.IncompleteReadError,
        asyncio.LimitOverrunError,
    ):
        return None


@dataclass
class Idle:
    port: int
    tokens: Sequence[str]
    streams: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = field(default_factory=list)

    async def open(self, count: int) -> None:
        async def one(index: int) -> None:
            reader, writer = await asyncio.open_connection(HOST, self.port, limit=1 << 16)
            token = self.tokens[index % len(self.tokens)]
            status = await exchange(reader, writer, request(self.port, token))
            if status != 200:
                raise SystemExit(f"idle connection {index}: its first GET answered {status}")
            self.streams.append((reader, writer))

        for first in range(0, count, OPEN_AT_ONCE):
            await asyncio.gather(*(one(i) for i in range(first, min(first + OPEN_AT_ONCE, count))))

    async def still_open(self) -> int:
        async def one(
            index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> bool:
            token = self.tokens[index % len(self.tokens)]
            # 404 too: the mixed load deletes keys, k00 among them
            return await exchange(reader, writer, request(self.port, token)) in (200, 404)

        alive = 0
        for first in range(0, len(self.streams), OPEN_AT_ONCE):
            batch = self.streams[first : first + OPEN_AT_ONCE]
            results = await asyncio.gather(
                *(one(first + i, r, w) for i, (r, w) in enumerate(batch))
            )
            alive += sum(results)
        return alive

    def close(self) -> None:
        for _, writer in self.streams:
            writer.close()


# -- the mixed load --------------------------------------------------------------------------
LUA = """\
tokens = {{{tokens}}}
value = string.rep("x", 100)
local threads = {{}}
function setup(thread)
  thread:set("seed", #threads)
  table.insert(threads, thread)
end
function init(args)
  math.randomseed(7919 * (seed or 0) + 1)
  unexpected = 0
end
function response(status, headers, body)
  -- a GET or DELETE of a key deleted before is a 404; anything else is a failure
  if status ~= 200 and status ~= 204 and status ~= 404 then
    unexpected = unexpected + 1
  end
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("unexpected")
  end
  io.write(string.format("unexpected statuses: %d\\n", total))
end
function request()
  local token = tokens[math.random(1, #tokens)]
  local headers = {{}}
  headers["Authorization"] = "Bearer " .. token
  local key = string.format("/v1/kv/k%02d", math.random(0, {last_key}))
  local r = math.random(1, 100)
  if r <= 60 then
    return wrk.format("GET", key, headers)
  elseif r <= 85 then
    headers["Content-Type"] = "application/octet-stream"
    return wrk.format("PUT", key, headers, value)
  elseif r <= 90 then
    return wrk.format("DELETE", key, headers)
  elseif r <= 95 then
    return wrk.format("GET", "/v1/keys?prefix=k&limit=100", headers)
  else
    return wrk.format("GET", "/v1/usage", headers)
  end
end
"""


def lua_script(directory: Path, tokens: Sequence[str]) -> Path:
    path = directory / "mixed.lua"
    quoted = ",".join(f'"{token}"' for token in tokens)
    path.write_text(LUA.format(tokens=quoted, last_key=KEYS_PER_SCOPE - 1))
    return path


@dataclass
class Plan:
    idle: int
    scopes: int
    duration: int  # seconds of mixed load
    sample_every: float


@dataclass
class Report:
    steps: list[tuple[str, int]] = field(default_factory=list)
    samples: list[tuple[float, int]] = field(default_factory=list)  # (seconds into load, RSS)
    wrk: str = ""
    alive: int = 0


def mixed_load(pid: int, url: str, script: Path, plan: Plan, report: Report) -> None:
    argv = [
        *("wrk", "-t2", f"-c{LOAD_CONNECTIONS}", f"-d{plan.duration}s", "--timeout", "10s"),
        *("-s", str(script), url),
    ]
    started = time.monotonic()
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as wrk:
        try:
            while wrk.poll() is None:
                time.sleep(min(plan.sample_every, max(0.1, plan.duration / 10)))
                if wrk.poll() is None:
                    report.samples.append((time.monotonic() - started, rss(pid)))
            out = wrk.stdout.read() if wrk.stdout is not None else ""
        finally:
            if wrk.poll() is None:
                wrk.kill()
    if wrk.returncode != 0 or "Requests/sec" not in out:
        raise SystemExit(f"wrk failed:\n$ {shlex.join(argv)}\n{out}")
    report.wrk = out


def run(plan: Plan, tmp: Path) -> tuple[Report, int]:
    report = Report()
    data_dir = tmp / "data"
    connections = plan.idle + LOAD_CONNECTIONS + SPARE_CONNECTIONS
    env = (
        ("PLUGINKV_MAX_CONNECTIONS", str(connections)),
        ("PLUGINKV_IDLE_TIMEOUT_SECONDS", str(plan.duration + 600)),
    )
    argv = (
        *(sys.executable, "-m", "pluginkv", "serve", "--data-dir", str(data_dir)),
        *("--host", HOST, "--port", "{port}", "--debug-port", "0"),
    )
    spec = ServerSpec("pluginkv", argv, env, data_dir)
    shown = shlex.join([os.path.relpath(argv[0]), *argv[1:]]).replace("'{port}'", "PORT")
    print("server  : " + " ".join(f"{k}={v}" for k, v in env) + " " + shown)
    with ExitStack() as stack:
        server = start_server(spec, tmp, stack)
        pid = server.process.pid
        print(f"started : pluginkv (pid {pid}, port {server.port})", flush=True)
        report.steps.append(("started", rss(pid)))
        tokens = mint_tokens(data_dir, plan.scopes)
        populate(server.url, tokens)
        report.steps.append((f"{plan.scopes:,} scopes in use", rss(pid)))
        idle = Idle(server.port, tokens)
        loop = asyncio.new_event_loop()
        stack.callback(loop.close)
        stack.callback(idle.close)
        loop.run_until_complete(idle.open(plan.idle))
        check_healthy(server.port)
        report.steps.append((f"+ {plan.idle:,} idle connections", rss(pid)))
        mixed_load(pid, server.url, lua_script(tmp, tokens), plan, report)
        report.alive = loop.run_until_complete(idle.still_open())
        report.steps.append(("after the load", rss(pid)))
        return report, pid


def check_healthy(port: int) -> None:
    if not healthy(port):
        raise SystemExit("the service does not answer beside the idle connections")


def mib(size: int) -> str:
    return f"{size / MiB:,.1f} MiB"


def print_report(report: Report, plan: Plan) -> int:
    print("\nRSS of the service (its process and children):")
    for label, size in report.steps:
        print(f"  {label:<32}{mib(size):>14}")
    samples = report.samples
    if not samples:
        raise SystemExit("no RSS sample was taken during the load")
    first, middle, last = samples[0], samples[len(samples) // 2], samples[-1]
    highest = max(size for _, size in samples)
    print(f"during the mixed load ({len(samples)} samples):")
    for label, (at, size) in (("start", first), ("middle", middle), ("end", last)):
        print(f"  {label:<8} at {at:>6.0f} s{mib(size):>14}")
    print(f"  highest         {mib(highest):>14}")
    rate = next(
        (line.split()[-1] for line in report.wrk.splitlines() if line.startswith("Requests/sec")),
        "?",
    )
    notes = [
        line.strip()
        for line in report.wrk.splitlines()
        if "errors" in line.lower() or line.startswith("unexpected statuses")
    ]
    print(f"mixed load: {rate} req/s; " + "; ".join(notes))
    print(f"idle connections still open at the end: {report.alive:,} of {plan.idle:,}")
    peak = max(highest, *(size for _, size in report.steps))
    missed = 0
    ok = peak < TARGET_RSS
    missed += not ok
    print(f"targets:\n  highest RSS {mib(peak)} < {mib(TARGET_RSS)}  {'PASS' if ok else 'MISS'}")
    growth = last[1] / middle[1]
    ok = growth <= TARGET_GROWTH
    missed += not ok
    print(
        f"  RSS at the end / in the middle: {growth:.3f} <= {TARGET_GROWTH}  "
        f"{'PASS' if ok else 'MISS'}"
    )
    return missed


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="pluginkv serve's memory with many idle connections and a long mixed load."
    )
    parser.add_argument("--idle", type=int, default=10_000, help="idle connections (10,000)")
    parser.add_argument("--scopes", type=int, default=1000, help="scopes in use (1,000)")
    parser.add_argument(
        "--duration", type=int, default=600, help="seconds of mixed load (whole, default 600)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: 200 idle connections, 20 scopes, 3 s"
    )
    args = parser.parse_args(argv)
    if args.idle < 1 or args.scopes < 1 or args.duration < 1:
        parser.error("--idle, --scopes and --duration must be positive")
    return args


def raise_open_files(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise SystemExit(f"{needed} open files needed; ulimit -Hn allows {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (or not on the PATH): apt-get install wrk", file=sys.stderr)
        return 2
    if args.quick:
        plan = Plan(idle=200, scopes=20, duration=3, sample_every=0.5)
    else:
        plan = Plan(idle=args.idle, scopes=args.scopes, duration=args.duration, sample_every=5)
    raise_open_files(plan.idle + 1024)
    signal.signal(signal.SIGTERM, on_sigterm)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print("pluginkv serve's memory: idle connections, scopes in use, a long mixed load")
    print(f"command : {shlex.join([os.path.relpath(sys.executable), *sys.argv])}")
    print(f"date    : {dt.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"machine : {platform.machine()}, {cpus} CPU(s), {platform.platform()}")
    libs = ("pluginkv", "starlette", "uvicorn", "uvloop", "httptools")
    print(f"python  : {platform.python_version()}; " + ", ".join(f"{n} {version(n)}" for n in libs))
    print(
        f"plan    : {plan.idle:,} idle connections, {plan.scopes:,} scopes, "
        f"{plan.duration} s of mixed load (wrk -t2 -c{LOAD_CONNECTIONS})"
    )
    print(f"load    : {load_average()} (1, 5, 15 min) at the start; the machine may be shared")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pluginkv-bench-memory-") as tmp:
        report, _ = run(plan, Path(tmp))
    missed = print_report(report, plan)
    print(f"\n{missed} of 2 target(s) missed" if missed else "\nall 2 targets met")
    print(f"load average at the end: {load_average()}")
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; the service was stopped", file=sys.stderr)
        sys.exit(130)
