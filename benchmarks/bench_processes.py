"""Several ``pluginkv serve`` processes on one SQLite file against one: what a ``--workers N``
would give on this machine, measured before building it.

Run with ``.venv/bin/python benchmarks/bench_processes.py`` (``--help`` for options). Needs wrk.

Two services on the same data directory (the same SQLite file, each process its own
writer thread and write groups; between them SQLite's file lock and its busy handler), on
two ports, every setting at its default (``synchronous=FULL``). Each round, for GET and then
PUT of 100 B over 1,000 keys (``bench_server.py``'s workload):

* ``one process``: ``wrk -t2 -c16`` against the first service alone;
* ``two processes``: ``wrk -t1 -c8`` against each service at the same time (16 connections
  in all, as a kernel spreading them with ``SO_REUSEPORT`` would), requests summed.

Figures: requests per second, the median of rounds; the services' CPU time per request
(all their threads, from /proc); ratio two ÷ one, median of per-round ratios. The load
generator shares the 2 cores with the services.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from bench_server import (
    HOST,
    INSTALL_HINT,
    ServerSpec,
    WrkRun,
    lua_script,
    populate,
    process_cpu,
    run_wrk,
    start_server,
)
from common import load_average


def both(runs: list[tuple[str, Path]], duration: int) -> list[WrkRun]:
    """wrk -t1 -c8 against each URL at once."""
    results: list[WrkRun | None] = [None] * len(runs)
    failures: list[str] = []

    def one(i: int, url: str, script: Path) -> None:
        try:
            results[i] = run_wrk(url, script, duration, 8, 1)
        except SystemExit as exc:
            failures.append(str(exc))

    threads = [threading.Thread(target=one, args=(i, *run)) for i, run in enumerate(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures or any(run is None for run in results):
        raise SystemExit("\n".join(failures) or "a wrk run failed")
    return [run for run in results if run is not None]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5, help="rounds (5)")
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run (3)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 round of 1 s")
    args = parser.parse_args(argv)
    rounds, duration = (1, 1) if args.quick else (args.rounds, args.duration)
    if shutil.which("wrk") is None:
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    print("pluginkv serve: two processes on one SQLite file against one process")
    print(f"plan    : {rounds} round(s), wrk runs of {duration} s")
    print(f"load    : {load_average()} (1, 5, 15 min) at the start; the machine may be shared")
    figures: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    p99: dict[tuple[str, str], list[float]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="pluginkv-bench-processes-") as tmp_name,
        ExitStack() as stack,
    ):
        tmp = Path(tmp_name)
        data_dir = tmp / "data"
        argv_ = (
            *(sys.executable, "-m", "pluginkv", "serve", "--data-dir", str(data_dir)),
            *("--host", HOST, "--port", "{port}", "--debug-port", "0"),
        )
        first = start_server(ServerSpec("first", argv_, (), data_dir), tmp, stack)
        second = start_server(ServerSpec("second", argv_, (), data_dir), tmp, stack)
        populate(first)
        for round_ in range(rounds):
            for method in ("GET", "PUT"):
                scripts = [lua_script(tmp, method, s.token) for s in (first, second)]
                order = ["one", "two"] if round_ % 2 == 0 else ["two", "one"]
                for how in order:
                    pids = [first.process.pid, second.process.pid]
                    before = [process_cpu(pid) or 0.0 for pid in pids]
                    if how == "one":
                        runs = [run_wrk(first.url, scripts[0], duration, 16, 2)]
                    else:
                        runs = both([(first.url, scripts[0]), (second.url, scripts[1])], duration)
                    after = [process_cpu(pid) or 0.0 for pid in pids]
                    requests = sum(run.requests for run in runs)
                    rate = sum(run.rate for run in runs)
                    figures.setdefault((how, method), []).append(rate)
                    p99.setdefault((how, method), []).append(max(run.p99 for run in runs))
                    spent = sum(a - b for a, b in zip(after, before, strict=True))
                    cpu.setdefault((how, method), []).append(spent / max(requests, 1))
    print("\nrequests/s, the services' CPU per request, wrk's p99 (medians of rounds):")
    for method in ("GET", "PUT"):
        for how in ("one", "two"):
            rate = statistics.median(figures[how, method])
            per = statistics.median(cpu[how, method]) * 1e6
            late = statistics.median(p99[how, method]) * 1e3
            print(
                f"  {method} 100 B  {how} process(es)  {rate:9,.0f}/s  {per:5.0f} us"
                f"  p99 {late:8.2f} ms"
            )
        ratios = [
            t / o for t, o in zip(figures["two", method], figures["one", method], strict=True)
        ]
        print(
            f"  {method} two / one: {statistics.median(ratios):.2f}x "
            f"({min(ratios):.2f}-{max(ratios):.2f})"
        )
    print(f"load average at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
