"""Where one client's durable PUT through ``pluginkv serve`` spends its time.

Run with ``.venv/bin/python benchmarks/bench_put_breakdown.py`` (``--help`` for options).

One Python thread, one keep-alive connection, 100 B values, in rounds that alternate:

* ``set``: ``RemoteStorage.set`` against ``python -m pluginkv serve`` (every setting at its
  default, SQLite ``synchronous=FULL``): a lone write commits on the event loop;
* ``set, writer thread``: the same against a second service with
  ``PLUGINKV_WRITE_ON_LOOP_MAX_SECONDS=0``: every write hops to the writer thread and back;
* ``echo PUT``: ``http.client`` PUTs of the same shape against the echo app of
  ``bench_server.py`` (the same uvicorn, no storage): the HTTP round trip;
* ``raw commit``: one ``INSERT OR REPLACE`` committed by plain ``sqlite3`` (WAL,
  ``synchronous=FULL``) in a file beside the service's: the disk's durable commit.

Target (the issue's single-client restatement): ``set`` <= 1.4 x (echo PUT + raw commit),
medians of per-round figures.

During the ``set`` runs the service's CPU time is read from /proc per thread: its main
thread (the event loop: HTTP, auth, the app) and the others (the writer thread, which runs
and commits each write, and any other). What is left of a ``set``'s time once both are
taken away is waiting: for the disk's flush, for the hop between the event loop and the
writer thread (each a thread wake-up), and for the client and the loopback.

Then what a write on the event loop costs others: a second client in its own process
sends a GET of 100 B every millisecond for ``--probe-seconds`` and records each one's
latency, once with no writer, once beside a client that sets in a loop; for each service.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shlex
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bench_server import (
    FULL,
    HOST,
    MODULE,
    ServerSpec,
    key_name,
    kv_path,
    start_server,
)
from common import load_average, version

VALUE = b"x" * 100
THREAD = "pluginkv FULL, WRITE_ON_LOOP_MAX_SECONDS=0"
TARGET = 1.4


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) per thread of ``pid``."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[int(task.name)] = (int(fields[11]) + int(fields[12])) / ticks
    return found


@dataclass
class Round:
    set: float = 0.0  # seconds per call
    set_thread: float = 0.0  # the same, every write through the writer thread
    thread_loop_cpu: float = 0.0
    thread_other_cpu: float = 0.0
    echo: float = 0.0
    raw: float = 0.0
    loop_cpu: float = 0.0  # server CPU per set, main thread
    other_cpu: float = 0.0  # server CPU per set, the other threads


@dataclass
class Rounds:
    rounds: list[Round] = field(default_factory=list)
    # (service, beside a writer?) -> GET latency percentiles in seconds
    probes: dict[tuple[str, bool], dict[str, float]] = field(default_factory=dict)


def probe_gets(port: int, token: str, key: str, seconds: float) -> dict[str, float]:
    """GETs of ``key``, one every millisecond, from another process: latency percentiles."""
    out = subprocess.run(
        [sys.executable, __file__, "--probe", str(port), token, key, str(seconds)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(json.loads(out))


def run_probe(port: int, token: str, key: str, seconds: float) -> None:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    headers = {"Authorization": f"Bearer {token}"}
    latencies = []
    deadline = time.perf_counter() + seconds
    next_at = time.perf_counter()
    while next_at < deadline:
        next_at += 0.001
        started = time.perf_counter()
        conn.request("GET", kv_path(key), headers=headers)
        response = conn.getresponse()
        response.read()
        latencies.append(time.perf_counter() - started)
        pause = next_at - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    latencies.sort()

    def at(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    figures = {"n": float(len(latencies)), "p50": at(0.5), "p99": at(0.99), "p999": at(0.999)}
    print(json.dumps(figures))


def per_call(call: Callable[[int], object], n: int) -> float:
    for i in range(20):  # warm
        call(i)
    started = time.perf_counter()
    for i in range(n):
        call(i)
    return (time.perf_counter() - started) / n


def raw_committer(path: Path) -> tuple[sqlite3.Connection, Callable[[int], object]]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB)")

    def commit(i: int) -> object:
        return conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key_name("put", i), VALUE))

    return conn, commit


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=2000, help="calls per figure (2000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (5)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 round of 100 calls")
    parser.add_argument(
        "--probe-seconds", type=float, default=10.0, help="seconds of each GET probe (10)"
    )
    parser.add_argument("--probe", nargs=4, help=argparse.SUPPRESS)  # the probe's own process
    args = parser.parse_args(argv)
    if args.probe:
        port, token, key, seconds = args.probe
        run_probe(int(port), token, key, float(seconds))
        return 0
    calls, rounds = (100, 1) if args.quick else (args.calls, args.rounds)
    probe_seconds = 1.0 if args.quick else args.probe_seconds
    print("One client's durable PUT through pluginkv serve, and where its time goes")
    print(f"command : {shlex.join([os.path.relpath(sys.executable), *sys.argv])}")
    print(f"machine : {platform.machine()}, {os.cpu_count()} CPU(s), {platform.platform()}")
    print(
        f"python  : {platform.python_version()}; SQLite {sqlite3.sqlite_version}; "
        f"pluginkv {version('pluginkv')}, uvicorn {version('uvicorn')}"
    )
    print(f"plan    : {rounds} round(s) of {calls} calls per figure")
    print(f"load    : {load_average()} (1, 5, 15 min) at the start; the machine may be shared")
    from pluginkv.client import RemoteStorage

    results = Rounds()
    with (
        tempfile.TemporaryDirectory(prefix="pluginkv-put-breakdown-") as tmp_name,
        ExitStack() as stack,
    ):
        tmp = Path(tmp_name)
        data_dir = tmp / "data"
        pk_argv = (
            *(sys.executable, "-m", "pluginkv", "serve", "--data-dir", str(data_dir)),
            *("--host", HOST, "--port", "{port}", "--debug-port", "0"),
        )
        pk = start_server(ServerSpec(FULL, pk_argv, (), data_dir), tmp, stack)
        thread_dir = tmp / "data-thread"
        thread_argv = tuple(str(thread_dir) if a == str(data_dir) else a for a in pk_argv)
        off = (("PLUGINKV_WRITE_ON_LOOP_MAX_SECONDS", "0"),)
        pk_thread = start_server(ServerSpec(THREAD, thread_argv, off, thread_dir), tmp, stack)
        storage_thread = stack.enter_context(RemoteStorage(pk_thread.url, pk_thread.token))
        echo = start_server(
            ServerSpec("echo", (sys.executable, str(MODULE), "--serve-echo", "{port}")), tmp, stack
        )
        storage = stack.enter_context(RemoteStorage(pk.url, pk.token))
        conn = http.client.HTTPConnection(HOST, echo.port, timeout=30)
        stack.callback(conn.close)
        headers = {
            "Authorization": "Bearer x",
            "User-Agent": "bench",
            "Content-Type": "application/octet-stream",
        }
        raw, commit = raw_committer(tmp / "raw.db")
        stack.callback(raw.close)

        def sdk_set(i: int) -> object:
            return storage.set(key_name("put", i), VALUE)

        def sdk_set_thread(i: int) -> object:
            return storage_thread.set(key_name("put", i), VALUE)

        def echo_put(i: int) -> object:
            conn.request("PUT", kv_path(key_name("put", i)), body=VALUE, headers=headers)
            response = conn.getresponse()
            return response.read()

        def measured(pid: int, call: Callable[[int], object]) -> tuple[float, float, float]:
            """Seconds per call, and the service's CPU per call: event loop, other threads."""
            before = thread_cpu(pid)
            took = per_call(call, calls)
            after = thread_cpu(pid)
            spent = {tid: after[tid] - before.get(tid, 0.0) for tid in after}
            done = calls + 20
            other = sum(v for t, v in spent.items() if t != pid) / done
            return took, spent.get(pid, 0.0) / done, other

        for round_ in range(rounds):
            figures = Round()
            order: list[str] = ["set", "set_thread", "echo", "raw"]
            if round_ % 2:
                order.reverse()
            for part in order:
                if part == "set":
                    figures.set, figures.loop_cpu, figures.other_cpu = measured(
                        pk.process.pid, sdk_set
                    )
                elif part == "set_thread":
                    figures.set_thread, figures.thread_loop_cpu, figures.thread_other_cpu = (
                        measured(pk_thread.process.pid, sdk_set_thread)
                    )
                elif part == "echo":
                    figures.echo = per_call(echo_put, calls)
                else:
                    figures.raw = per_call(commit, calls)
            results.rounds.append(figures)
        for name, server, client in ((FULL, pk, storage), (THREAD, pk_thread, storage_thread)):
            client.set("probe", VALUE)
            results.probes[name, False] = probe_gets(
                server.port, server.token, "probe", probe_seconds
            )
            results.probes[name, True] = probe_beside_writes(
                server.port, server.token, client, probe_seconds
            )
    report(results)
    print(f"load average at the end: {load_average()}")
    return 0


def probe_beside_writes(port: int, token: str, client: object, seconds: float) -> dict[str, float]:
    """The GET probe while this process's thread sets in a loop."""
    stop = threading.Event()

    def write() -> None:
        i = 0
        while not stop.is_set():
            client.set(key_name("put", i), VALUE)  # type: ignore[attr-defined]
            i += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        return probe_gets(port, token, "probe", seconds)
    finally:
        stop.set()
        writer.join()


def report(results: Rounds) -> None:
    def median(attribute: str) -> float:
        return statistics.median(getattr(r, attribute) for r in results.rounds)

    s, e, r = median("set"), median("echo"), median("raw")
    loop, other = median("loop_cpu"), median("other_cpu")
    print("\nmicroseconds per call, median of rounds:")
    print(f"  RemoteStorage.set 100 B -> pluginkv FULL   {s * 1e6:8.0f}")
    print(f"  http.client PUT 100 B -> echo              {e * 1e6:8.0f}")
    print(f"  raw sqlite3 durable commit (FULL)          {r * 1e6:8.0f}")
    print(f"  server CPU per set, event-loop thread      {loop * 1e6:8.0f}")
    print(f"  server CPU per set, other threads (writer) {other * 1e6:8.0f}")
    waiting = s - loop - other
    print(f"  the rest: waiting (flush, hops, client)    {waiting * 1e6:8.0f}")
    st = median("set_thread")
    print(f"  RemoteStorage.set, writer thread (ON_LOOP_MAX=0)   {st * 1e6:8.0f}")
    print(
        f"  server CPU per set, writer thread: event loop    {median('thread_loop_cpu') * 1e6:8.0f}"
    )
    other_thread = median("thread_other_cpu")
    print(f"  server CPU per set, writer thread: other threads {other_thread * 1e6:8.0f}")
    thread_ratios = [x.set_thread / (x.echo + x.raw) for x in results.rounds]
    thread_ratio = statistics.median(thread_ratios)
    print(f"  set / (echo PUT + raw commit), writer thread     {thread_ratio:8.2f}x")
    if results.probes:
        print("\nanother client's GET of 100 B, one every ms (microseconds):")
        print(
            f"  {'service':<44} {'writer beside':<14} {'n':>6} {'p50':>6} {'p99':>6} {'p99.9':>6}"
        )
        for (name, beside), f in results.probes.items():
            print(
                f"  {name:<44} {'yes' if beside else 'no':<14} {f['n']:6.0f} "
                f"{f['p50'] * 1e6:6.0f} {f['p99'] * 1e6:6.0f} {f['p999'] * 1e6:6.0f}"
            )
    ratios = [x.set / (x.echo + x.raw) for x in results.rounds]
    ratio = statistics.median(ratios)
    verdict = "PASS" if ratio <= TARGET else "MISS"
    print(
        f"target: set / (echo PUT + raw commit) = {ratio:.2f}x "
        f"({min(ratios):.2f}-{max(ratios):.2f}) <= {TARGET}  {verdict}"
    )


if __name__ == "__main__":
    sys.exit(main())
