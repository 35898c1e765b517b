"""``pluginkv serve --workers N`` against one worker: what more processes give on this machine.

Run with ``.venv/bin/python benchmarks/bench_processes.py`` (``--help`` for options). Needs wrk.

One service per worker count (``--workers 1``, ``2``, ``3`` by default), each on a data
directory of its own, every other setting at its default (SQLite ``synchronous=FULL``;
every worker writes the file itself, the writers of all workers taking turns through an
``flock``). Each round, for GET and then PUT of 100 B over 1,000 keys (``bench_server.py``'s
workload), ``wrk -t2 -c16`` against each service in turn, the order rotating per round.

Figures: requests per second, the median of rounds; the service's CPU time per request
(the supervisor and every worker, all their threads, from /proc); wrk's p99; ratio N ÷ 1
worker, the median of per-round ratios. The load generator shares the machine's cores with
the services.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from bench_server import (
    HOST,
    INSTALL_HINT,
    Server,
    ServerSpec,
    lua_script,
    populate,
    process_cpu,
    rotated,
    run_wrk,
    start_server,
)
from common import load_average


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5, help="rounds (5)")
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run (3)")
    parser.add_argument(
        "--workers", default="1,2,3", help="worker counts to compare, the first the base (1,2,3)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 round of 1 s, 1 and 2")
    args = parser.parse_args(argv)
    rounds, duration = (1, 1) if args.quick else (args.rounds, args.duration)
    counts = ["1", "2"] if args.quick else [c.strip() for c in args.workers.split(",")]
    if shutil.which("wrk") is None:
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    print("pluginkv serve --workers N against one worker (SQLite, synchronous=FULL)")
    print(f"plan    : workers {', '.join(counts)}; {rounds} round(s), wrk -t2 -c16 of {duration} s")
    print(f"load    : {load_average()} (1, 5, 15 min) at the start; the machine may be shared")
    rates: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    p99: dict[tuple[str, str], list[float]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="pluginkv-bench-processes-") as tmp_name,
        ExitStack() as stack,
    ):
        tmp = Path(tmp_name)
        servers: dict[str, Server] = {}
        for count in counts:
            data_dir = tmp / f"data-{count}"
            argv_ = (
                *(sys.executable, "-m", "pluginkv", "serve", "--data-dir", str(data_dir)),
                *("--host", HOST, "--port", "{port}", "--debug-port", "off"),
                *("--workers", count),
            )
            servers[count] = server = start_server(
                ServerSpec(f"workers-{count}", argv_, (), data_dir), tmp, stack
            )
            populate(server)
        for round_ in range(rounds):
            for method in ("GET", "PUT"):
                for count in rotated(counts, round_):
                    server = servers[count]
                    script = lua_script(tmp, method, server.token)
                    before = process_cpu(server.process.pid) or 0.0
                    run = run_wrk(server.url, script, duration, 16, 2)
                    spent = (process_cpu(server.process.pid) or 0.0) - before
                    rates.setdefault((count, method), []).append(run.rate)
                    p99.setdefault((count, method), []).append(run.p99)
                    cpu.setdefault((count, method), []).append(spent / max(run.requests, 1))
    print("\nrequests/s, the service's CPU per request, wrk's p99 (medians of rounds):")
    base = counts[0]
    for method in ("GET", "PUT"):
        for count in counts:
            rate = statistics.median(rates[count, method])
            per = statistics.median(cpu[count, method]) * 1e6
            late = statistics.median(p99[count, method]) * 1e3
            line = f"  {method} 100 B  {count} worker(s)  {rate:9,.0f}/s  {per:5.0f} us"
            line += f"  p99 {late:8.2f} ms"
            if count != base:
                ratios = [
                    n / b for n, b in zip(rates[count, method], rates[base, method], strict=True)
                ]
                line += (
                    f"  {statistics.median(ratios):.2f}x of {base}"
                    f" ({min(ratios):.2f}-{max(ratios):.2f})"
                )
            print(line)
    print(f"load average at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
