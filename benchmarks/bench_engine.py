"""pluginkv ``Storage`` over SQLite against raw ``sqlite3`` doing the same single-row work.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/bench_engine.py --help``).

What is compared, per ``synchronous`` setting (``FULL``, pluginkv's default, and ``NORMAL``):

* pluginkv: ``open_store("sqlite:////tmp/.../pluginkv.db", sqlite_synchronous=...)`` and
  ``store.storage(workspace=..., plugin=...)``, every other setting at its default;
* raw: ``sqlite3`` on a table ``kv(key TEXT PRIMARY KEY, value BLOB)`` in WAL mode with the
  same ``synchronous`` pragma, in autocommit: a set is one committed ``INSERT OR REPLACE``,
  a get one ``SELECT value``, an exist one ``SELECT 1``, a delete one committed ``DELETE``.

Both databases are fresh files in one temporary directory (same disk), get the same key
names and the same values in the same (shuffled) order, and are pre-populated the same way.

Method, to keep the noise of a small shared machine out of the ratios:

* a round runs set (insert of every key), get, exist and delete (of every key, all present);
  the keys are cut into blocks and each block runs on both engines back to back, the
  engine that goes first alternating from block to block and from round to round;
* large values (32 of 1 MiB, 6 of 10 MiB per round) are set and read one at a time,
  alternating the same way, then deleted (not timed) so every round starts from the same
  state; before the timed reads each engine reads one value untimed, because the first
  large allocation after the writes costs the process several milliseconds;
* each throughput figure is the **median over the rounds** of that engine's throughput;
  the ratio is the **median of the per-round ratios** (pluginkv / raw of the same round,
  measured side by side), so a round where the shared disk was slow for both engines does
  not skew it; the range next to it is the lowest and highest per-round ratio.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import shlex
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pluginkv

KiB = 1024
MiB = 1024 * KiB
SYNC_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
WORKSPACE = "bench-ws"
PLUGIN = "bench/engine"

KeyOp = Callable[[str], object]
SetOp = Callable[[str, bytes], object]


@dataclass(frozen=True)
class Op:
    """One row of the table: what is measured, its unit and the target ratio."""

    label: str
    unit: str  # "ops/s" or "MB/s"
    target: float


SMALL_OPS = (
    Op("set 100 B", "ops/s", 0.6),
    Op("get 100 B", "ops/s", 0.5),
    Op("exist 100 B", "ops/s", 0.5),
    Op("delete 100 B", "ops/s", 0.6),
)


def large_ops(size: int) -> tuple[Op, Op]:
    name = f"{size // MiB} MiB" if size % MiB == 0 else f"{size // KiB} KiB"
    return Op(f"set {name}", "MB/s", 0.8), Op(f"get {name}", "MB/s", 0.8)


@dataclass
class Engine:
    """The four operations of one engine, each a plain callable."""

    name: str
    set: SetOp
    get: KeyOp
    exist: KeyOp
    delete: KeyOp
    close: Callable[[], None]


def open_pluginkv(path: Path, synchronous: str) -> Engine:
    store = pluginkv.open_store(f"sqlite:///{path}", sqlite_synchronous=synchronous)
    storage = store.storage(workspace=WORKSPACE, plugin=PLUGIN)
    return Engine("pluginkv", storage.set, storage.get, storage.exist, storage.delete, store.close)


def open_raw(path: Path, synchronous: str) -> Engine:
    conn = sqlite3.connect(path, isolation_level=None)  # autocommit: one statement, one commit
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode.lower() != "wal":
        raise SystemExit(f"raw sqlite3: {path} refuses WAL mode ({mode})")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB)")
    execute = conn.execute

    def set_(key: str, value: bytes) -> None:
        execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, value))

    def get(key: str) -> bytes | None:
        row = execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def exist(key: str) -> bool:
        return execute("SELECT 1 FROM kv WHERE key = ?", (key,)).fetchone() is not None

    def delete(key: str) -> None:
        execute("DELETE FROM kv WHERE key = ?", (key,))

    return Engine("raw", set_, get, exist, delete, conn.close)


# -- timing ---------------------------------------------------------------------------------
def time_sets(op: SetOp, keys: Sequence[str], value: bytes) -> float:
    start = time.perf_counter()
    for key in keys:
        op(key, value)
    return time.perf_counter() - start


def time_keys(op: KeyOp, keys: Sequence[str]) -> float:
    start = time.perf_counter()
    for key in keys:
        op(key)
    return time.perf_counter() - start


@dataclass
class Samples:
    """Per-round throughput of both engines for one operation."""

    pluginkv: list[float] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)

    def add(self, pluginkv_rate: float, raw_rate: float) -> None:
        self.pluginkv.append(pluginkv_rate)
        self.raw.append(raw_rate)


def interleaved(
    pk: Callable[[Sequence[str]], float],
    raw: Callable[[Sequence[str]], float],
    blocks: Sequence[Sequence[str]],
    first: int,
) -> tuple[float, float]:
    """Total seconds of ``pk`` and ``raw`` over every block, alternating which runs first."""
    totals = [0.0, 0.0]
    runners = (pk, raw)
    for index, block in enumerate(blocks):
        order = (0, 1) if (index + first) % 2 == 0 else (1, 0)
        for which in order:
            totals[which] += runners[which](block)
    return totals[0], totals[1]


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"benchmark sanity check failed: {what}")


def small_round(
    engines: tuple[Engine, Engine],
    blocks: Sequence[Sequence[str]],
    value: bytes,
    first: int,
    samples: dict[str, Samples],
) -> None:
    """One round of set/get/exist/delete over every key; both engines end the round empty."""
    pk, raw = engines
    count = sum(len(block) for block in blocks)
    probe = blocks[0][0]

    seconds = interleaved(
        partial(time_sets, pk.set, value=value),
        partial(time_sets, raw.set, value=value),
        blocks,
        first,
    )
    samples["set 100 B"].add(count / seconds[0], count / seconds[1])
    check(pk.get(probe) == value and raw.get(probe) == value, "set did not store the value")

    for label, pk_op, raw_op in (
        ("get 100 B", pk.get, raw.get),
        ("exist 100 B", pk.exist, raw.exist),
        ("delete 100 B", pk.delete, raw.delete),
    ):
        seconds = interleaved(partial(time_keys, pk_op), partial(time_keys, raw_op), blocks, first)
        samples[label].add(count / seconds[0], count / seconds[1])
    check(not pk.exist(probe) and not raw.exist(probe), "delete left the key in place")


def large_round(
    engines: tuple[Engine, Engine],
    keys: Sequence[str],
    value: bytes,
    first: int,
    ops: tuple[Op, Op],
    samples: dict[str, Samples],
) -> None:
    """Set then get ``len(keys)`` values of one large size, one at a time; then delete them."""
    pk, raw = engines
    blocks = [[key] for key in keys]
    megabytes = len(keys) * len(value) / 1e6
    set_op, get_op = ops

    seconds = interleaved(
        partial(time_sets, pk.set, value=value),
        partial(time_sets, raw.set, value=value),
        blocks,
        first,
    )
    samples[set_op.label].add(megabytes / seconds[0], megabytes / seconds[1])
    # One untimed read each first: the process's first large allocation after the writes
    # costs several ms (heap growth), and would otherwise be charged to whichever goes first.
    for engine in engines:
        engine.get(keys[-1])
    seconds = interleaved(partial(time_keys, pk.get), partial(time_keys, raw.get), blocks, first)
    samples[get_op.label].add(megabytes / seconds[0], megabytes / seconds[1])
    check(pk.get(keys[0]) == value and raw.get(keys[0]) == value, "large value read back wrong")
    for engine in engines:
        for key in keys:
            engine.delete(key)


# -- one synchronous mode -------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    keys: int
    rounds: int
    block: int
    large: tuple[tuple[int, int], ...]  # (value size, values per round)
    seed: int


def run_mode(plan: Plan, synchronous: str, parent: str | None) -> dict[str, Samples]:
    rng = random.Random(plan.seed)
    keys = [f"bench/key-{i:06d}" for i in range(plan.keys)]
    rng.shuffle(keys)
    blocks = [keys[i : i + plan.block] for i in range(0, len(keys), plan.block)]
    value = rng.randbytes(100)
    all_ops = list(SMALL_OPS) + [op for size, _ in plan.large for op in large_ops(size)]
    samples = {op.label: Samples() for op in all_ops}

    with tempfile.TemporaryDirectory(prefix="pluginkv-bench-", dir=parent) as tmp:
        engines = (
            open_pluginkv(Path(tmp) / "pluginkv.db", synchronous),
            open_raw(Path(tmp) / "raw.db", synchronous),
        )
        try:
            # Warm-up, not measured: connections, statement caches, first pages of the files.
            warm = [[f"warm/key-{i:04d}" for i in range(min(200, plan.keys))]]
            small_round(engines, warm, value, 0, {op.label: Samples() for op in SMALL_OPS})
            for round_ in range(plan.rounds):
                small_round(engines, blocks, value, round_, samples)
            for size, count in plan.large:
                big = rng.randbytes(size)
                big_keys = [f"bench/large-{size}-{i:03d}" for i in range(count)]
                for round_ in range(plan.rounds):
                    large_round(engines, big_keys, big, round_, large_ops(size), samples)
        finally:
            for engine in engines:
                engine.close()
    return samples


# -- report ---------------------------------------------------------------------------------
def fmt_rate(rate: float, unit: str) -> str:
    return f"{rate:,.0f} {unit}" if unit == "ops/s" else f"{rate:,.1f} {unit}"


def report(
    synchronous: str, plan: Plan, samples: dict[str, Samples], ops: list[Op], verbose: bool
) -> int:
    """Print the table of one mode; returns how many targets were missed."""
    large = ", ".join(f"{count} x {large_ops(size)[0].label[4:]}" for size, count in plan.large)
    print(
        f"\nsynchronous={synchronous}: {plan.keys} keys x 100 B; large: {large}; "
        f"{plan.rounds} round(s); figures: median per engine; ratio: median of per-round ratios"
    )
    header = (
        f"{'operation':<14}{'pluginkv':>16}{'raw sqlite3':>16}{'ratio':>8}"
        f"{'(rounds)':>14}{'target':>9}  result"
    )
    print(header)
    print("-" * len(header))
    missed = 0
    for op in ops:
        got = samples[op.label]
        pk = statistics.median(got.pluginkv)
        raw = statistics.median(got.raw)
        per_round = [a / b for a, b in zip(got.pluginkv, got.raw, strict=True)]
        ratio = statistics.median(per_round)
        spread = f"{min(per_round):.2f}-{max(per_round):.2f}"
        verdict = "PASS" if ratio >= op.target else "MISS"
        missed += verdict == "MISS"
        print(
            f"{op.label:<14}{fmt_rate(pk, op.unit):>16}{fmt_rate(raw, op.unit):>16}"
            f"{ratio:>7.2f}x{spread:>14}{'>=' + format(op.target, '.1f'):>9}  {verdict}"
        )
        if verbose:
            for round_, (a, b) in enumerate(zip(got.pluginkv, got.raw, strict=True), 1):
                print(
                    f"  round {round_:<6}{fmt_rate(a, op.unit):>16}{fmt_rate(b, op.unit):>16}"
                    f"{a / b:>7.2f}x"
                )
    return missed


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="pluginkv Storage over SQLite vs raw sqlite3, same durability settings."
    )
    parser.add_argument("--keys", type=int, default=10_000, help="keys of 100 B (default 10000)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per operation (default 7)")
    parser.add_argument(
        "--synchronous",
        default="FULL,NORMAL",
        help="comma-separated SQLite synchronous modes (default FULL,NORMAL)",
    )
    parser.add_argument(
        "--block", type=int, default=100, help="keys per interleaving block (default 100)"
    )
    parser.add_argument(
        "--dir", default=None, help="parent of the temporary directory (default: system temp)"
    )
    parser.add_argument("--seed", type=int, default=20240601, help="seed of keys and values")
    parser.add_argument("--verbose", action="store_true", help="also print every round's figures")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 200 keys, 1 round, one value of each large size",
    )
    args = parser.parse_args(argv)
    modes = [mode.strip().upper() for mode in args.synchronous.split(",") if mode.strip()]
    bad = [mode for mode in modes if mode not in SYNC_MODES]
    if not modes or bad:
        parser.error(f"--synchronous takes modes from {', '.join(SYNC_MODES)}, got {bad or '[]'}")
    args.modes = modes
    if args.keys < 1 or args.rounds < 1 or args.block < 1:
        parser.error("--keys, --rounds and --block must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.quick:
        plan = Plan(
            keys=min(args.keys, 200),
            rounds=1,
            block=50,
            large=((MiB, 1), (10 * MiB, 1)),
            seed=args.seed,
        )
    else:
        plan = Plan(
            keys=args.keys,
            rounds=args.rounds,
            block=args.block,
            large=((MiB, 32), (10 * MiB, 6)),
            seed=args.seed,
        )
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print("pluginkv engine benchmark: pluginkv Storage (SQLite) vs raw sqlite3")
    print(f"command : {shlex.join([os.path.relpath(sys.executable), *sys.argv])}")
    print(f"date    : {dt.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"machine : {platform.machine()}, {cpus} CPU(s), {platform.platform()}")
    print(
        f"python  : {platform.python_version()}; SQLite {sqlite3.sqlite_version}; "
        f"pluginkv {pluginkv.__version__}"
    )
    print(f"temp dir: under {args.dir or tempfile.gettempdir()} (fresh files per mode)")
    missed = 0
    for mode in args.modes:
        samples = run_mode(plan, mode, args.dir)
        ops = list(SMALL_OPS) + [op for size, _ in plan.large for op in large_ops(size)]
        missed += report(mode, plan, samples, ops, args.verbose)
    print(f"\n{missed} target(s) missed" if missed else "\nall targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
