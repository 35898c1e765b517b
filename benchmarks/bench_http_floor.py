"""The floor under ``pluginkv serve``: what its HTTP stack answers when the app does nothing.

Run with ``.venv/bin/python benchmarks/bench_http_floor.py`` (``--help`` for options);
``make bench`` runs it. It needs ``wrk``, ``redis-server`` and ``redis-benchmark`` (``make
peers`` installs them) on the PATH.

Servers, each a subprocess of this script on 127.0.0.1 and a free port, all running at
once and stopped in ``finally`` (also on Ctrl-C and SIGTERM):

* ``raw app Nw``: ``raw_asgi_app.py`` (answers a GET with 100 bytes, reads a PUT's body and
  answers 204; nothing else) under ``python -m uvicorn`` with ``pluginkv serve``'s options:
  ``--loop uvloop --http httptools``, no access log, the same keep-alive; ``--workers N``
  is uvicorn's own (N = 1: one process; N = 2: a parent that binds the port and two
  worker processes accepting on it, as ``pluginkv serve --workers 2`` does);
* ``pluginkv Nw``: ``pluginkv serve --workers N``, every other setting at its default, on
  a fresh store each (as ``bench_peers.py`` starts it);
* ``Redis always``: ``redis-server`` with ``appendfsync always``, as ``bench_peers.py``
  starts it.

Workload: ``bench_peers.py``'s: 100-byte values over 10,000 keys, all stored first (in
the pluginkv stores and Redis), 16 connections; ``wrk -t2`` with bench_peers' Lua script
(a random key of the 10,000 per request; the raw apps get the very same requests) and
``redis-benchmark -t set|get``. Each round measures PUT, then GET, on every server, in an
order that rotates and reverses from round to round. Figures are medians over the rounds;
ratios the median of per-round ratios (lowest and highest in brackets); CPU per request is
each server's process tree (user + system, from /proc).

What it answers: raw app / Redis is the most any app on this stack reaches here, to hold
against the issue's targets (GET >= 0.35x Redis, PUT >= 0.5x); pluginkv's CPU per request
less the raw app's is the share of its cost that is pluginkv's own work.
"""

from __future__ import annotations

import argparse
import platform
import signal
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path

from bench_peers import (
    KEYS,
    REDIS,
    VALUE,
    Plan,
    Running,
    describe,
    plan_of,
    pluginkv_argv,
    pluginkv_script,
    populate_pluginkv,
    populate_redis,
    print_machine,
    redis_argv,
    redis_ready,
    run_args,
    run_redis_benchmark,
    start,
    tool_version,
    tools_missing,
)
from bench_server import (
    IDLE_TIMEOUT,
    Verdicts,
    WrkRun,
    create_token,
    healthy,
    per_round,
    process_cpu,
    rotated,
    run_wrk,
)
from common import HOST, load_average, on_sigterm, version

HERE = Path(__file__).resolve().parent
WORKERS = (1, 2)
METHODS = ("PUT", "GET")
TARGETS = {"PUT": 0.5, "GET": 0.35}  # pluginkv / Redis always, issue 16
TOOLS = {
    "wrk": "apt-get install wrk (make peers)",
    "redis-server": "apt-get install redis-server (make peers)",
    "redis-benchmark": "apt-get install redis-tools (make peers)",
}


def raw(workers: int) -> str:
    return f"raw app {workers}w"


def pkv(workers: int) -> str:
    return f"pluginkv {workers}w"


SERVERS = (*(raw(n) for n in WORKERS), *(pkv(n) for n in WORKERS), REDIS)


def raw_argv(workers: int) -> Callable[[int, int], list[str]]:
    def argv(port: int, _: int) -> list[str]:
        return [
            *(sys.executable, "-m", "uvicorn", "raw_asgi_app:app", "--app-dir", str(HERE)),
            *("--host", HOST, "--port", str(port), "--workers", str(workers)),
            *("--loop", "uvloop", "--http", "httptools", "--lifespan", "off"),
            *("--no-access-log", "--timeout-keep-alive", str(IDLE_TIMEOUT)),
            *("--log-level", "warning"),
        ]

    return argv


Results = dict[tuple[str, str], list[WrkRun]]  # (server, method) -> one per round


class Load:
    """One measured run per server and method; Redis's request count follows its last rate."""

    def __init__(
        self, servers: dict[str, Running], scripts: dict[tuple[str, str], Path], plan: Plan
    ) -> None:
        self.servers = servers
        self.scripts = scripts
        self.plan = plan
        self.redis_rate = {method: 20_000.0 for method in METHODS}

    def once(self, name: str, method: str, duration: int) -> WrkRun:
        server = self.servers[name]
        before = process_cpu(server.process.pid)
        if name == REDIS:
            requests = max(1000, int(self.redis_rate[method] * duration))
            run = run_redis_benchmark(server.port, method, requests, self.plan.connections)
            self.redis_rate[method] = run.rate
        else:
            run = run_wrk(
                server.url, self.scripts[name, method], duration, self.plan.connections, 2
            )
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
def median_cpu(runs: Sequence[WrkRun]) -> float | None:
    cpu = [r.server_cpu for r in runs if r.server_cpu is not None]
    return statistics.median(cpu) if cpu else None


def ratio_line(results: Results, method: str, mine: str, base: str) -> tuple[float, str]:
    ratio, spread = per_round(
        [r.rate for r in results[mine, method]], [r.rate for r in results[base, method]]
    )
    return ratio, f"  {method} {mine} / {base}: {ratio:.2f}x ({spread})"


def report(results: Results, plan: Plan, verdicts: Verdicts) -> None:
    print(
        f"\n{plan.rounds} round(s), {plan.connections} connections, {plan.duration} s per run; "
        "req/s and latency: median of rounds; CPU/req: the server's process tree"
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
            cpu = median_cpu(runs)
            cpu_cell = f"{cpu * 1e6:,.0f} us" if cpu is not None else "-"
            print(
                f"{method + ' 100 B':<11}{name:<15}{rate:>10,.0f}{p50 * 1e3:>8.2f} ms"
                f"{p99 * 1e3:>8.2f} ms{cpu_cell:>10}"
            )
    print("ratios (median of per-round ratios; range in brackets):")
    for method in METHODS:
        target = TARGETS[method]
        for n in WORKERS:
            print(ratio_line(results, method, pkv(n), raw(n))[1])
        for n in WORKERS:
            ratio, line = ratio_line(results, method, raw(n), REDIS)
            verdict = "above" if ratio >= target else "BELOW"
            print(f"{line}  the floor: {verdict} the target {target:.2f}")
        for n in WORKERS:
            ratio, line = ratio_line(results, method, pkv(n), REDIS)
            print(f"{line} >= {target:.2f}  {verdicts.judge(ratio, target)}")
    print("pluginkv's own work (its CPU/req less the raw app's, same workers):")
    for method in METHODS:
        for n in WORKERS:
            mine, base = median_cpu(results[pkv(n), method]), median_cpu(results[raw(n), method])
            if mine is None or base is None or mine <= 0:
                print(f"  {method} {n}w: - (no CPU figures off Linux)")
                continue
            own = mine - base
            print(
                f"  {method} {n}w: {own * 1e6:,.0f} us of {mine * 1e6:,.0f} us "
                f"({own / mine:.0%}); the stack: {base * 1e6:,.0f} us"
            )


def print_rounds(results: Results) -> None:
    print("\nEvery round (req/s):")
    for method in METHODS:
        for name in SERVERS:
            runs = ", ".join(f"{r.rate:,.0f}" for r in results[name, method])
            print(f"  {method} {name}: {runs}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="A do-nothing ASGI app under uvicorn, pluginkv serve and Redis "
        "(appendfsync always): the HTTP stack's floor, 1 and 2 workers."
    )
    return run_args(parser, argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if tools_missing(TOOLS):
        return 2
    plan = plan_of(args)
    signal.signal(signal.SIGTERM, on_sigterm)
    print_machine(
        "the HTTP stack's floor: a raw ASGI app, pluginkv serve and Redis (appendfsync always)"
    )
    libs = ("pluginkv", "starlette", "uvicorn", "uvloop", "httptools")
    print(f"python  : {platform.python_version()}; " + ", ".join(f"{n} {version(n)}" for n in libs))
    tools = (["redis-server", "--version"], ["wrk", "--version"], ["redis-benchmark", "--version"])
    print(f"tools   : {'; '.join(tool_version(argv) for argv in tools)}")
    print(
        f"plan    : {plan.rounds} round(s) of {plan.duration} s runs; {plan.connections} "
        f"connections; {VALUE} B values over {KEYS:,} keys, all stored first"
    )
    print(f"load    : {load_average()} (1, 5, 15 min) at the start; the machine may be shared")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pluginkv-bench-floor-") as tmp_name:
        tmp = Path(tmp_name)
        dirs = {name: tmp / name.replace(" ", "-").lower() for name in SERVERS}
        argvs = {raw(n): raw_argv(n) for n in WORKERS}
        argvs |= {pkv(n): pluginkv_argv(dirs[pkv(n)], n) for n in WORKERS}
        argvs[REDIS] = redis_argv(dirs[REDIS])
        readies = {name: healthy for name in SERVERS} | {REDIS: redis_ready}
        for name in SERVERS:
            print(f"server  : {name}: {describe(argvs[name])}")
        with ExitStack() as stack:
            dirs[REDIS].mkdir()
            tokens = {pkv(n): create_token(dirs[pkv(n)]) for n in WORKERS}
            servers = {
                name: start(name, argvs[name], readies[name], tmp, stack) for name in SERVERS
            }
            print(
                "started : "
                + ", ".join(
                    f"{name} (pid {s.process.pid}, port {s.port})" for name, s in servers.items()
                ),
                flush=True,
            )
            scripts: dict[tuple[str, str], Path] = {}
            for n in WORKERS:
                servers[pkv(n)].token = tokens[pkv(n)]
                populate_pluginkv(servers[pkv(n)])
                for name in (pkv(n), raw(n)):  # the raw app gets the same requests
                    directory = tmp / f"lua-{name.replace(' ', '-')}"
                    directory.mkdir()
                    for method in METHODS:
                        scripts[name, method] = pluginkv_script(directory, method, tokens[pkv(n)])
            populate_redis(servers[REDIS])
            results = Load(servers, scripts, plan).rounds(args.verbose)
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
