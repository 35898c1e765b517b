"""Where one client's durable PUT through ``pluginkv serve`` spends its time.

Run with ``.venv/bin/python benchmarks/bench_put_breakdown.py`` (``--help`` for options).

One Python thread, one keep-alive connection, 100 B values, in rounds that alternate:

* ``set``: ``RemoteStorage.set`` against ``python -m pluginkv serve`` (every setting at its
  default, SQLite ``synchronous=FULL``);
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
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import shlex
import sqlite3
import statistics
import sys
import tempfile
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
    echo: float = 0.0
    raw: float = 0.0
    loop_cpu: float = 0.0  # server CPU per set, main thread
    other_cpu: float = 0.0  # server CPU per set, the other threads


@dataclass
class Rounds:
    rounds: list[Round] = field(default_factory=list)


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
    args = parser.parse_args(argv)
    calls, rounds = (100, 1) if args.quick else (args.calls, args.rounds)
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

        def echo_put(i: int) -> object:
            conn.request("PUT", kv_path(key_name("put", i)), body=VALUE, headers=headers)
            response = conn.getresponse()
            return response.read()

        pid = pk.process.pid
        for round_ in range(rounds):
            figures = Round()
            order: list[str] = ["set", "echo", "raw"]
            if round_ % 2:
                order.reverse()
            for part in order:
                if part == "set":
                    before = thread_cpu(pid)
                    figures.set = per_call(sdk_set, calls)
                    after = thread_cpu(pid)
                    spent = {tid: after[tid] - before.get(tid, 0.0) for tid in after}
                    done = calls + 20
                    figures.loop_cpu = spent.get(pid, 0.0) / done
                    figures.other_cpu = sum(v for t, v in spent.items() if t != pid) / done
                elif part == "echo":
                    figures.echo = per_call(echo_put, calls)
                else:
                    figures.raw = per_call(commit, calls)
            results.rounds.append(figures)
    report(results)
    print(f"load average at the end: {load_average()}")
    return 0


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
    ratios = [x.set / (x.echo + x.raw) for x in results.rounds]
    ratio = statistics.median(ratios)
    verdict = "PASS" if ratio <= TARGET else "MISS"
    print(
        f"target: set / (echo PUT + raw commit) = {ratio:.2f}x "
        f"({min(ratios):.2f}-{max(ratios):.2f}) <= {TARGET}  {verdict}"
    )


if __name__ == "__main__":
    sys.exit(main())
