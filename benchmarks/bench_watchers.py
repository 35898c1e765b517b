"""What idle watchers cost the service: RSS and CPU with N open long polls or event streams.

Run with ``.venv/bin/python benchmarks/bench_watchers.py`` (``--help`` for options).
It starts ``pluginkv serve`` on a SQLite file in a temporary directory, with room for
the connections (``PLUGINKV_MAX_CONNECTIONS``), then measures the service process over
a window of ``--window`` seconds in three states, in this order:

* idle: no request open (the baseline of the same run);
* ``--watchers`` long polls open (``GET /v1/changes?wait=3600``), nothing changing;
* as many event streams (``Accept: text/event-stream``) open, nothing changing.

Shown for each: the RSS at the end, its growth per watcher over the baseline, and the
CPU time (user + system, from /proc) per second of the window, with its ratio to the
baseline.  Then one write, and how long until every stream has its event and every
long poll its answer (the fan-out).  The watchers are raw sockets of this process's
event loop, so that they cost the service what a real client's would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from common import (
    HOST,
    PLUGINKV,
    free_port,
    load_average,
    on_sigterm,
    serve_pluginkv,
    stop_process,
    version,
)

SETTLE_SECONDS = 1.0


def _proc(pid: int) -> tuple[float, float]:
    """The process's CPU seconds, summed over its threads in nanoseconds (schedstat, not
    /proc's 10 ms ticks), and its RSS in MiB."""
    cpu = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            cpu += int((task / "schedstat").read_text().split()[0]) / 1e9
        except (FileNotFoundError, ProcessLookupError):  # a thread that just ended
            pass
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return cpu, int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _serve(data_dir: Path, port: int, watchers: int) -> subprocess.Popen[bytes]:
    return serve_pluginkv(
        data_dir,
        port,
        {
            "PLUGINKV_MAX_CONNECTIONS": str(2 * watchers + 64),
            "PLUGINKV_MAX_CHANGES_WAIT_SECONDS": "3600",
        },
    )


_SCOPE = ("--workspace", "ws-1", "--plugin", "acme/bench")


def _token(data_dir: Path) -> str:
    out = subprocess.run(
        [PLUGINKV, "token", "create", "--data-dir", str(data_dir), *_SCOPE],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


async def _open(port: int, token: str, path: str, *, stream: bool) -> asyncio.StreamReader:
    reader, writer = await asyncio.open_connection(HOST, port)
    accept = "text/event-stream" if stream else "application/json"
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {token}\r\n"
        f"Accept: {accept}\r\n\r\n".encode()
    )
    await writer.drain()
    _writers.append(writer)
    return reader


_writers: list[asyncio.StreamWriter] = []


async def _until(reader: asyncio.StreamReader, marker: bytes) -> None:
    buffer = b""
    while marker not in buffer:
        chunk = await reader.read(65536)
        if not chunk:
            raise RuntimeError("a watcher's connection closed")
        buffer += chunk


async def _measure(pid: int, window: float) -> tuple[float, float]:
    """CPU seconds per second over ``window``, and the RSS at its end.

    A settling second first: the requests just sent are read, registered and waiting.
    """
    await asyncio.sleep(SETTLE_SECONDS)
    cpu0, _ = _proc(pid)
    start = time.monotonic()
    await asyncio.sleep(window)
    cpu1, rss = _proc(pid)
    return (cpu1 - cpu0) / (time.monotonic() - start), rss


def _put(port: int, token: str, key: str) -> None:
    request = urllib.request.Request(
        f"http://{HOST}:{port}/v1/kv/{key}",
        data=b"x",
        method="PUT",
        headers={"Authorization": f"Bearer {token}"},
    )
    urllib.request.urlopen(request, timeout=30).read()


def _since(port: int, token: str) -> int:
    request = urllib.request.Request(
        f"http://{HOST}:{port}/v1/changes", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return int(json.loads(answer.read())["next"])


async def _run(port: int, pid: int, token: str, watchers: int, window: float) -> None:
    loop = asyncio.get_running_loop()
    rows: list[tuple[str, int, float, float]] = []
    rows.append(("idle service", 0, *await _measure(pid, window)))
    since = await loop.run_in_executor(None, _since, port, token)
    path = f"/v1/changes?since={since}&wait=3600"
    polls = [await _open(port, token, path, stream=False)]
    # The baseline: one watcher, which starts what every watcher shares (on SQLite the
    # one thread that looks for other processes' commits).
    rows.append(("1 long poll (baseline)", 1, *await _measure(pid, window)))
    polls += [await _open(port, token, path, stream=False) for _ in range(watchers - 1)]
    rows.append((f"{watchers} long polls", watchers, *await _measure(pid, window)))
    streams = [
        await _open(port, token, f"/v1/changes?since={since}", stream=True) for _ in range(watchers)
    ]
    for reader in streams:
        await _until(reader, b"\r\n\r\n")  # the stream's headers: it is open
    rows.append((f"+ {watchers} event streams", 2 * watchers, *await _measure(pid, window)))
    _, _, base_cpu, _ = rows[1]
    _, _, _, idle_rss = rows[0]
    print(f"{'state':<28}{'CPU ms/s':>10}{'ratio':>9}{'RSS MiB':>10}{'KiB/watcher':>13}")
    for label, count, cpu, rss in rows:
        per = f"{(rss - idle_rss) * 1024 / count:.1f}" if count else "-"
        ratio = f"{cpu / base_cpu:.2f}x" if base_cpu > 0 else "-"
        print(f"{label:<28}{cpu * 1000:>10.2f}{ratio:>9}{rss:>10.1f}{per:>13}")
    start = time.monotonic()
    await loop.run_in_executor(None, _put, port, token, "fan-out")
    await asyncio.gather(*(_until(r, b'"key":"fan-out"') for r in polls + streams))
    took = time.monotonic() - start
    print(f"one write reaches all {2 * watchers} watchers in {took * 1000:.0f} ms")
    for writer in _writers:
        writer.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--watchers", type=int, default=1000, help="of each kind (1000)")
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured (10)")
    parser.add_argument("--quick", action="store_true", help="50 watchers, 1 s: a smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        args.watchers, args.window = 50, 1.0
    if args.watchers < 1 or args.window <= 0:
        parser.error("--watchers and --window must be positive")
    signal.signal(signal.SIGTERM, on_sigterm)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * args.watchers + 256
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))
    print(
        f"bench_watchers: {args.watchers} watchers of each kind, {args.window:g} s windows; "
        f"pluginkv {version('pluginkv')}, uvicorn {version('uvicorn')}, Python "
        f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load_average()}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-watchers-") as tmp:
        data_dir = Path(tmp) / "data"
        port = free_port()
        process = _serve(data_dir, port, args.watchers)
        try:
            token = _token(data_dir)
            asyncio.run(_run(port, process.pid, token, args.watchers, args.window))
        finally:
            stop_process(process)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
