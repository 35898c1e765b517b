"""pluginkv ``Storage`` over PostgreSQL against raw psycopg doing the same single-row work.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/bench_postgres.py --help``).

What is compared, in one run, on one server and in one fresh database that the
benchmark creates (``pluginkv_bench_<pid>``) and drops at the end:

* pluginkv: ``open_store("postgresql://.../pluginkv_bench_<pid>")`` and
  ``store.storage(workspace=..., plugin=...)``, every other setting at its default;
* raw: one psycopg 3 connection in autocommit on a table
  ``kv(key TEXT PRIMARY KEY, value BYTEA)``: a set is one committed
  ``INSERT ... ON CONFLICT (key) DO UPDATE``, a get one ``SELECT value``, an exist one
  ``SELECT 1``, a delete one committed ``DELETE``; statements prepared on the server and
  values transferred in binary, as pluginkv does, so the baseline is psycopg at its best.

Both get the same key names and values in the same (shuffled) order.  Method (shared
with ``bench_engine.py``, whose helpers it uses): each round runs set, get, exist and
delete over every key in blocks that alternate which engine goes first; 1 MiB values are
set and read one at a time, alternating the same way; figures are each engine's median
over the rounds, ratios the median of per-round ratios.

Concurrent sets: 8 threads each set their own keys at once.  Raw: one connection per
thread.  pluginkv: one ``Store`` (its pool) shared by the threads, in two layouts: each
thread in a scope of its own (many plugins or workspaces, the common case), and all
threads in one scope, where every write waits for the scope's lock because the quota is
checked in the write's own transaction; that row is reported but has no target.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import shlex
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import psycopg

import pluginkv
from bench_engine import (
    Engine,
    Op,
    Samples,
    check,
    fmt_rate,
    large_round,
    small_round,
)
from common import bench_database

MiB = 1024 * 1024
WORKSPACE = "bench-ws"
PLUGIN = "bench/postgres"
THREADS = 8
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

SMALL_OPS = (
    Op("set 100 B", "ops/s", 0.6),
    Op("get 100 B", "ops/s", 0.8),
    Op("exist 100 B", "ops/s", 0.8),
    Op("delete 100 B", "ops/s", 0.6),
)
LARGE_OPS = (Op("set 1 MiB", "MB/s", 0.8), Op("get 1 MiB", "MB/s", 0.8))
CONCURRENT_OPS = (
    Op(f"set x{THREADS} thr", "ops/s", 0.6),
    Op(f"set x{THREADS} 1scope", "ops/s", 0.0),  # information: one scope serialises writers
)


# -- the two engines -----------------------------------------------------------------------
def open_pluginkv(url: str, plugin: str = PLUGIN) -> tuple[pluginkv.Store, Engine]:
    store = pluginkv.open_store(url)
    storage = store.storage(workspace=WORKSPACE, plugin=plugin)
    engine = Engine(
        "pluginkv", storage.set, storage.get, storage.exist, storage.delete, store.close
    )
    return store, engine


def raw_connection(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(url, autocommit=True)


def open_raw(url: str) -> Engine:
    conn = raw_connection(url)
    conn.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BYTEA NOT NULL)")
    return raw_engine(conn)


def raw_engine(conn: psycopg.Connection[tuple[object, ...]]) -> Engine:
    execute = conn.execute

    def set_(key: str, value: bytes) -> None:
        execute(
            "INSERT INTO kv (key, value) VALUES (%s, %b) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
            prepare=True,
        )

    def get(key: str) -> bytes | None:
        row = execute(
            "SELECT value FROM kv WHERE key = %s", (key,), prepare=True, binary=True
        ).fetchone()
        return None if row is None else row[0]  # type: ignore[return-value]

    def exist(key: str) -> bool:
        cursor = execute("SELECT 1 FROM kv WHERE key = %s", (key,), prepare=True, binary=True)
        return cursor.fetchone() is not None

    def delete(key: str) -> None:
        execute("DELETE FROM kv WHERE key = %s", (key,), prepare=True)

    return Engine("raw", set_, get, exist, delete, conn.close)


# -- concurrent sets -----------------------------------------------------------------------
def time_threads(
    setters: Sequence[Callable[[str, bytes], object]], keys: Sequence[Sequence[str]], value: bytes
) -> float:
    """Wall seconds for every thread to set its keys, all starting together."""
    barrier = threading.Barrier(len(setters) + 1)
    errors: list[BaseException] = []

    def run(setter: Callable[[str, bytes], object], mine: Sequence[str]) -> None:
        try:
            barrier.wait()
            for key in mine:
                setter(key, value)
        except BaseException as exc:  # reported below, never lost in a thread
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(setter, mine))
        for setter, mine in zip(setters, keys, strict=True)
    ]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - start


@dataclass
class Concurrent:
    """The setters of the three concurrent layouts, and how to empty them between rounds."""

    raw: list[Callable[[str, bytes], object]]
    raw_delete: Callable[[], object]
    spread: list[Callable[[str, bytes], object]]
    one_scope: list[Callable[[str, bytes], object]]
    store: pluginkv.Store


def open_concurrent(url: str, store: pluginkv.Store) -> Concurrent:
    raw_conns = [raw_connection(url) for _ in range(THREADS)]
    spread = [
        store.storage(workspace=WORKSPACE, plugin=f"bench/thread-{n}").set for n in range(THREADS)
    ]
    shared = store.storage(workspace=WORKSPACE, plugin="bench/shared")
    return Concurrent(
        raw=[raw_engine(conn).set for conn in raw_conns],
        raw_delete=lambda: raw_conns[0].execute("DELETE FROM kv"),
        spread=spread,
        one_scope=[shared.set] * THREADS,
        store=store,
    )


def concurrent_round(
    setup: Concurrent,
    keys: Sequence[Sequence[str]],
    value: bytes,
    first: int,
    samples: dict[str, Samples],
) -> None:
    count = sum(len(mine) for mine in keys)
    spread_label, one_label = (op.label for op in CONCURRENT_OPS)
    for label, pk_setters in ((spread_label, setup.spread), (one_label, setup.one_scope)):
        seconds = {}
        order = ("pk", "raw") if first % 2 == 0 else ("raw", "pk")
        for which in order:
            setters = pk_setters if which == "pk" else setup.raw
            seconds[which] = time_threads(setters, keys, value)
        samples[label].add(count / seconds["pk"], count / seconds["raw"])
        setup.raw_delete()
        for scope, _ in setup.store.scopes():
            setup.store.purge(workspace=scope.workspace, plugin=scope.plugin)


# -- one run -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    keys: int
    rounds: int
    block: int
    large: int  # 1 MiB values per round
    per_thread: int  # keys each of the concurrent threads sets per round
    seed: int


def run(plan: Plan, url: str) -> dict[str, Samples]:
    rng = random.Random(plan.seed)
    keys = [f"bench/key-{i:06d}" for i in range(plan.keys)]
    rng.shuffle(keys)
    blocks = [keys[i : i + plan.block] for i in range(0, len(keys), plan.block)]
    value = rng.randbytes(100)
    big = rng.randbytes(MiB)
    big_keys = [f"bench/large-{i:03d}" for i in range(plan.large)]
    thread_keys = [[f"t{n}/key-{i:05d}" for i in range(plan.per_thread)] for n in range(THREADS)]
    samples = {op.label: Samples() for op in (*SMALL_OPS, *LARGE_OPS, *CONCURRENT_OPS)}

    store, pk = open_pluginkv(url)
    raw = open_raw(url)
    engines = (pk, raw)
    try:
        # Warm-up, not measured: connections, prepared statements, the tables' first pages.
        warm = [[f"warm/key-{i:04d}" for i in range(min(200, plan.keys))]]
        small_round(engines, warm, value, 0, {op.label: Samples() for op in SMALL_OPS})
        for round_ in range(plan.rounds):
            small_round(engines, blocks, value, round_, samples)
        for round_ in range(plan.rounds):
            large_round(engines, big_keys, big, round_, LARGE_OPS, samples)
        setup = open_concurrent(url, store)
        concurrent_round(
            setup,
            [mine[:20] for mine in thread_keys],
            value,
            0,
            {op.label: Samples() for op in CONCURRENT_OPS},
        )
        for round_ in range(plan.rounds):
            concurrent_round(setup, thread_keys, value, round_, samples)
        check(not pk.exist(keys[0]) and not raw.exist(keys[0]), "delete left the key in place")
    finally:
        for engine in engines:
            engine.close()
    return samples


def report(plan: Plan, samples: dict[str, Samples], verbose: bool) -> int:
    """Print the table; returns how many targets were missed."""
    print(
        f"\n{plan.keys} keys x 100 B; {plan.large} x 1 MiB; {THREADS} threads x "
        f"{plan.per_thread} sets; {plan.rounds} round(s); figures: median per engine; "
        "ratio: median of per-round ratios"
    )
    header = (
        f"{'operation':<17}{'pluginkv':>16}{'raw psycopg':>16}{'ratio':>8}"
        f"{'(rounds)':>14}{'target':>9}  result"
    )
    print(header)
    print("-" * len(header))
    missed = 0
    for op in (*SMALL_OPS, *LARGE_OPS, *CONCURRENT_OPS):
        got = samples[op.label]
        per_round = [a / b for a, b in zip(got.pluginkv, got.raw, strict=True)]
        ratio = statistics.median(per_round)
        spread = f"{min(per_round):.2f}-{max(per_round):.2f}"
        if op.target:
            verdict = "PASS" if ratio >= op.target else "MISS"
            target = ">=" + format(op.target, ".1f")
        else:
            verdict, target = "info", "-"
        missed += verdict == "MISS"
        print(
            f"{op.label:<17}{fmt_rate(statistics.median(got.pluginkv), op.unit):>16}"
            f"{fmt_rate(statistics.median(got.raw), op.unit):>16}"
            f"{ratio:>7.2f}x{spread:>14}{target:>9}  {verdict}"
        )
        if verbose:
            for round_, (a, b) in enumerate(zip(got.pluginkv, got.raw, strict=True), 1):
                print(
                    f"  round {round_:<9}{fmt_rate(a, op.unit):>16}{fmt_rate(b, op.unit):>16}"
                    f"{a / b:>7.2f}x"
                )
    return missed


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="pluginkv Storage over PostgreSQL vs raw psycopg, on one server."
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("PLUGINKV_BENCH_POSTGRES_URL", DEFAULT_URL),
        help="a database on the server to create the benchmark's database from "
        f"(default $PLUGINKV_BENCH_POSTGRES_URL or {DEFAULT_URL})",
    )
    parser.add_argument("--keys", type=int, default=5_000, help="keys of 100 B (default 5000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per operation (default 5)")
    parser.add_argument("--block", type=int, default=100, help="keys per block (default 100)")
    parser.add_argument("--seed", type=int, default=20240601, help="seed of keys and values")
    parser.add_argument("--verbose", action="store_true", help="also print every round's figures")
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: 200 keys, 1 round, 2 x 1 MiB"
    )
    args = parser.parse_args(argv)
    if args.keys < 1 or args.rounds < 1 or args.block < 1:
        parser.error("--keys, --rounds and --block must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.quick:
        plan = Plan(
            keys=min(args.keys, 200), rounds=1, block=50, large=2, per_thread=20, seed=args.seed
        )
    else:
        plan = Plan(
            keys=args.keys,
            rounds=args.rounds,
            block=args.block,
            large=32,
            per_thread=250,
            seed=args.seed,
        )
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print("pluginkv PostgreSQL benchmark: pluginkv Storage (PostgreSQL) vs raw psycopg")
    print(f"command : {shlex.join([os.path.relpath(sys.executable), *sys.argv])}")
    print(f"date    : {dt.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"machine : {platform.machine()}, {cpus} CPU(s), {platform.platform()}")
    with bench_database(args.url) as url:
        with psycopg.connect(url) as conn:
            server = conn.info.parameter_status("server_version")
            commit = conn.execute("SHOW synchronous_commit").fetchone()
        print(
            f"software: python {platform.python_version()}; PostgreSQL {server} "
            f"(synchronous_commit={commit and commit[0]}); psycopg {psycopg.__version__}; "
            f"pluginkv {pluginkv.__version__}"
        )
        print(
            f"database: {urlsplit(url).hostname}:{urlsplit(url).port or 5432}{urlsplit(url).path}"
            " (created for this run, dropped after)"
        )
        samples = run(plan, url)
    missed = report(plan, samples, args.verbose)
    print(f"\n{missed} target(s) missed" if missed else "\nall targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
