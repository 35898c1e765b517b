"""Cost as data grows: the engine's operations on stores of 10^4 to 10^7 keys.

Run with ``.venv/bin/python benchmarks/bench_scale.py`` (``--help`` for options). SQLite
stores are made in a temporary directory (``--dir``); PostgreSQL ones in a database of the
benchmark's own on ``--url`` (default ``$PLUGINKV_BENCH_POSTGRES_URL`` or the local server
on 127.0.0.1:5432 as ``postgres``), created at the start and dropped at the end.

One store per backend grows through the sizes (``--sizes``, default 10^4, 10^5, 10^6 and
10^7 keys), every setting at its default (SQLite ``synchronous=FULL``) but the quota (a
scope of 10^6 keys needs more than the default 100 MiB). At ``N`` keys the store holds,
with 100 B values:

* one scope (``bench/big``) of ``N / 2`` keys, at most 10^6 (``k00000000``, ...);
* the rest spread evenly over 1,000 other scopes (``bench/p000`` ... ``bench/p999``).

The fill goes through the engine's own path, ``Storage.set_many`` of up to 1,000 keys (the
default batch limit) per transaction (one commit, so one fsync, per batch); its time is printed.
On PostgreSQL the fill runs ``ANALYZE`` every 100 batches, as autovacuum does as a table grows
(a server may run with autovacuum off; the benchmark prints the setting): without it the
planner's row counts are those of an empty table, and a batch's lookup scans its whole scope.

At each size, each a median of ``--repeats`` runs of ``--seconds`` each:

* ``get``: a random stored key of the whole store (``Storage.get``);
* ``set``: overwrite a random stored key with 100 B (one durable commit each);
* ``page``: ``keys(prefix, limit=100)`` in the big scope, a prefix holding 100 keys at a
  random place: a full page whatever the scope's size;
* ``usage``: ``usage()`` of the big scope (and, for information, of a small one);
* ``delete_prefix``: 10,000 keys under one prefix of a scope of their own, removed in one
  call while another thread reads random keys of other scopes; shown: the delete's time,
  and the p99 and maximum of the concurrent reads' latency while it ran;
* space: bytes on disk per byte stored (keys + values, as ``usage()`` counts them):
  SQLite's database and WAL files (after a WAL checkpoint), PostgreSQL's
  ``pg_total_relation_size`` of the entries and scopes tables.

After the largest size, half of the keys are deleted (every other key, ``delete_many``, no
VACUUM) and as many new ones stored: the space before and after says whether the freed
space is reused (``--no-reuse`` skips this step, minutes long at 10^7 keys).

On SQLite, get and set are also measured on raw ``sqlite3``, on the same file, table and
keys, as ``bench_engine.py``'s raw baseline does them: a connection in autocommit with the
same ``synchronous``; a get is ``SELECT value FROM pluginkv_entries WHERE workspace = ? AND
plugin = ? AND key = ?`` (the unique index pluginkv's get uses), a set one committed
``UPDATE`` of the value (the counters' trigger fires, as it does for pluginkv's set). The raw
get runs twice: with ``mmap_size`` as pluginkv's (``PLUGINKV_SQLITE_MMAP_BYTES``) and with
SQLite's maximum (the whole file, up to the build's ``SQLITE_MAX_MMAP_SIZE``). Each run of
pluginkv's figure alternates with the raw ones, the order rotating from run to run. The raw
figures say how much of a ratio the medium (SQLite, the page cache, the memory) sets.

Targets, at the largest size against the smallest (same run, same store): get and set
>= 0.7x; a page and usage() >= 0.7x (the big scope grows with the store, up to 10^6 keys); the reads
beside a delete_prefix of 10,000 keys: p99 <= 50 ms at every size.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import re
import shlex
import signal
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pluginkv
from common import bench_database, load_average, on_sigterm, version
from pluginkv import Storage, Store
from pluginkv.config import Settings

SCOPES = 1000
BIG_MAX = 1_000_000
VALUE = bytes(range(100))
WORKSPACE = "bench-ws"
BIG = "bench/big"
DELETED = "bench/delete"
FILL_BATCH = 1000  # the default of max_batch_items
STATS_EVERY = 100  # batches of the fill between two ANALYZEs
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TARGET_FLAT = 0.7
TARGET_READ_P99 = 0.050  # seconds
MMAP_MAX = 1 << 62  # SQLite lowers mmap_size to its build's SQLITE_MAX_MMAP_SIZE
RAW_GET = "SELECT value FROM pluginkv_entries WHERE workspace = ? AND plugin = ? AND key = ?"
RAW_SET = (
    "UPDATE pluginkv_entries SET value = ?, updated_at = ? "
    "WHERE workspace = ? AND plugin = ? AND key = ?"
)


def small_plugin(index: int) -> str:
    return f"bench/p{index:03d}"


def key(index: int) -> str:
    return f"k{index:08d}"


@dataclass(frozen=True)
class Layout:
    """How ``size`` keys are laid out: the big scope's share, the rest per small scope."""

    size: int

    @property
    def big(self) -> int:
        return min(self.size // 2, BIG_MAX)

    @property
    def per_scope(self) -> int:
        return (self.size - self.big) // SCOPES

    @property
    def stored(self) -> int:
        return self.big + self.per_scope * SCOPES

    def pick(self, rng: random.Random) -> tuple[str, str]:
        """A random stored key of the store, every key alike: (plugin, key)."""
        index = rng.randrange(self.stored)
        if index < self.big:
            return BIG, key(index)
        index -= self.big
        return small_plugin(index % SCOPES), key(index // SCOPES)


# -- the stores ------------------------------------------------------------------------------
class Backend:
    name: str
    store: Store

    def space(self) -> int:
        raise NotImplementedError

    def refresh_stats(self) -> None:
        """What the database's own maintenance would do for the planner as tables grow."""

    def close(self) -> None:
        self.store.close()


class SQLite(Backend):
    name = "SQLite"

    def __init__(self, directory: Path) -> None:
        self.path = directory / "scale.db"
        self.store = open_bench_store(f"sqlite:///{self.path}")
        settings = Settings()  # what the store was opened with: defaults and the environment
        self.mmap_bytes = settings.sqlite_mmap_bytes
        self.synchronous = settings.sqlite_synchronous

    def raw(self, mmap_bytes: int) -> sqlite3.Connection:
        """A plain ``sqlite3`` connection to the store's own file."""
        conn = sqlite3.connect(self.path, isolation_level=None)  # autocommit, as bench_engine's
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        conn.execute(f"PRAGMA mmap_size = {int(mmap_bytes)}")
        return conn

    def space(self) -> int:
        with sqlite3.connect(self.path) as conn:  # a checkpoint, no VACUUM
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        files = [self.path, Path(f"{self.path}-wal")]
        return sum(f.stat().st_size for f in files if f.exists())


class PostgreSQL(Backend):
    name = "PostgreSQL"

    def __init__(self, url: str) -> None:
        self.url = url
        self.store = open_bench_store(url)

    def space(self) -> int:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT pg_total_relation_size('pluginkv_entries') "
                "+ pg_total_relation_size('pluginkv_scopes')"
            ).fetchone()
        assert row is not None
        return int(row[0])

    def refresh_stats(self) -> None:
        # ANALYZE, no VACUUM: the planner's row counts, which autovacuum keeps when it is on.
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("ANALYZE pluginkv_entries")
            conn.execute("ANALYZE pluginkv_scopes")

    def autovacuum(self) -> str:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            row = conn.execute("SHOW autovacuum").fetchone()
        return "?" if row is None else str(row[0])


def open_bench_store(url: str) -> Store:
    return pluginkv.open_store(url, default_quota_bytes=1 << 40)


def storage(backend: Backend, plugin: str) -> Storage:
    return backend.store.storage(workspace=WORKSPACE, plugin=plugin)


def fill_range(target: Storage, start: int, stop: int, prefix: str = "") -> int:
    """Store keys ``start`` to ``stop`` (not included); how many batches it took."""
    batches = 0
    for first in range(start, stop, FILL_BATCH):
        last = min(first + FILL_BATCH, stop)
        target.set_many({prefix + key(i): VALUE for i in range(first, last)})
        batches += 1
    return batches


def grow(backend: Backend, old: Layout, new: Layout) -> float:
    """Store the keys ``new`` has and ``old`` had not; seconds taken.

    The planner's statistics are refreshed every ``STATS_EVERY`` batches and at the end.
    """
    started = time.perf_counter()
    pending = 0
    for first in range(old.big, new.big, FILL_BATCH * STATS_EVERY):
        last = min(first + FILL_BATCH * STATS_EVERY, new.big)
        fill_range(storage(backend, BIG), first, last)
        backend.refresh_stats()
    for index in range(SCOPES):
        pending += fill_range(storage(backend, small_plugin(index)), old.per_scope, new.per_scope)
        if pending >= STATS_EVERY:
            backend.refresh_stats()
            pending = 0
    backend.refresh_stats()
    return time.perf_counter() - started


# -- measurements ----------------------------------------------------------------------------
def timed(op: Callable[[int], object], seconds: float, least: int = 5) -> float:
    """Seconds per call of ``op(i)``, over at least ``seconds`` and ``least`` calls."""
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while count < least or time.perf_counter() < deadline:
        op(count)
        count += 1
    return (time.perf_counter() - start) / count


@dataclass
class Figures:
    size: int
    fill: float  # seconds to grow to this size
    get: float = 0.0  # seconds per call, median of repeats
    set: float = 0.0
    page: float = 0.0
    usage_big: float = 0.0
    usage_small: float = 0.0
    delete: float = 0.0  # seconds for delete_prefix of the delete count
    read_p99: float = 0.0  # of reads beside it
    read_max: float = 0.0
    reads: int = 0
    space: float = 0.0  # disk bytes per stored byte
    # Raw sqlite3 on the same file (SQLite only): get with mmap_size as pluginkv's and at
    # SQLite's maximum (the effective sizes as SQLite reports them), and set.
    raw_get: float = 0.0
    raw_get_max: float = 0.0
    raw_set: float = 0.0
    mmap: int = 0
    mmap_max: int = 0
    file_bytes: int = 0


def stored_bytes(backend: Backend) -> int:
    return sum(usage.bytes_used for _, usage in backend.store.scopes())


def measure(
    backend: Backend, layout: Layout, fill: float, plan: Plan, rng: random.Random
) -> Figures:
    figures = Figures(layout.size, fill)
    picks = [layout.pick(rng) for _ in range(4096)]
    handles = {plugin: storage(backend, plugin) for plugin, _ in picks}
    big = storage(backend, BIG)
    small = storage(backend, small_plugin(0))
    prefixes = [f"k{rng.randrange(layout.big // 100):06d}" for _ in range(256)]

    def get(i: int) -> None:
        plugin, name = picks[i % len(picks)]
        if handles[plugin].get(name) != VALUE:
            raise SystemExit(f"benchmark sanity check failed: {plugin} {name} reads back")

    def set_(i: int) -> None:
        plugin, name = picks[(i * 7919) % len(picks)]
        handles[plugin].set(name, VALUE)

    def page(i: int) -> None:
        listed = big.keys(prefixes[i % len(prefixes)], limit=100)
        if len(listed) != 100:
            raise SystemExit("benchmark sanity check failed: a page of 100 keys")

    ops: dict[str, Callable[[int], object]] = {
        "page": page,
        "usage_big": lambda i: big.usage(),
        "usage_small": lambda i: small.usage(),
    }
    with ExitStack() as stack:
        gets: dict[str, Callable[[int], None]] = {"get": get}
        sets: dict[str, Callable[[int], None]] = {"set": set_}
        if isinstance(backend, SQLite):
            same = stack.enter_context(closing(backend.raw(backend.mmap_bytes)))
            widest = stack.enter_context(closing(backend.raw(MMAP_MAX)))
            figures.mmap = int(same.execute("PRAGMA mmap_size").fetchone()[0])
            figures.mmap_max = int(widest.execute("PRAGMA mmap_size").fetchone()[0])
            figures.file_bytes = backend.path.stat().st_size
            gets["raw_get"] = raw_get(same, picks)
            gets["raw_get_max"] = raw_get(widest, picks)
            sets["raw_set"] = raw_set(same, picks)
        # Every key a get reads, once, untimed: the caches alike for each; sets need no warming.
        for group, warm in ((gets, len(picks)), (sets, 1)):
            for name, median in alternating(group, plan, warm).items():
                setattr(figures, name, median)
    for name, op in ops.items():
        op(0)  # warm
        samples = [timed(op, plan.seconds) for _ in range(plan.repeats)]
        setattr(figures, name, statistics.median(samples))
    delete_beside_reads(backend, layout, plan, rng, figures)
    figures.space = backend.space() / stored_bytes(backend)
    return figures


def alternating(ops: dict[str, Callable[[int], None]], plan: Plan, warm: int) -> dict[str, float]:
    """Median seconds per call of each op after ``warm`` untimed calls; a run of each in
    turn, the order rotating from run to run."""
    for op in ops.values():
        for i in range(warm):
            op(i)
    names = list(ops)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for run in range(plan.repeats):
        shift = run % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(timed(ops[name], plan.seconds))
    return {name: statistics.median(values) for name, values in samples.items()}


def raw_get(conn: sqlite3.Connection, picks: list[tuple[str, str]]) -> Callable[[int], None]:
    execute = conn.execute

    def get(i: int) -> None:
        plugin, name = picks[i % len(picks)]
        row = execute(RAW_GET, (WORKSPACE, plugin, name)).fetchone()
        if row is None or row[0] != VALUE:
            raise SystemExit(f"benchmark sanity check failed: raw {plugin} {name} reads back")

    return get


def raw_set(conn: sqlite3.Connection, picks: list[tuple[str, str]]) -> Callable[[int], None]:
    execute = conn.execute

    def set_(i: int) -> None:
        plugin, name = picks[(i * 7919) % len(picks)]
        execute(RAW_SET, (VALUE, time.time(), WORKSPACE, plugin, name))

    return set_


def delete_beside_reads(
    backend: Backend, layout: Layout, plan: Plan, rng: random.Random, figures: Figures
) -> None:
    """delete_prefix of ``plan.delete`` keys while a thread reads other scopes' keys."""
    target = storage(backend, DELETED)
    fill_range(target, 0, plan.delete, prefix="gone/")
    picks = [p for p in (layout.pick(rng) for _ in range(4096)) if p[0] != BIG] or [
        (small_plugin(0), key(0))
    ]
    handles = {plugin: storage(backend, plugin) for plugin, _ in picks}
    latencies: list[tuple[float, float]] = []  # (start, seconds)
    stop = threading.Event()

    def reader() -> None:
        i = 0
        while not stop.is_set():
            plugin, name = picks[i % len(picks)]
            began = time.perf_counter()
            handles[plugin].get(name)
            latencies.append((began, time.perf_counter() - began))
            i += 1

    thread = threading.Thread(target=reader, name="reader")
    thread.start()
    try:
        time.sleep(0.2)
        began = time.perf_counter()
        removed = target.delete_prefix("gone/")
        ended = time.perf_counter()
        time.sleep(0.05)
    finally:
        stop.set()
        thread.join()
    if removed != plan.delete:
        raise SystemExit(f"benchmark sanity check failed: delete_prefix removed {removed}")
    # Reads that overlapped the delete: started before it ended and ended after it began.
    during = sorted(s for start, s in latencies if start < ended and start + s > began)
    figures.delete = ended - began
    figures.reads = len(during)
    if during:
        figures.read_p99 = during[min(len(during) - 1, int(len(during) * 0.99))]
        figures.read_max = during[-1]


def half_deleted(backend: Backend, layout: Layout) -> tuple[float, float, float]:
    """Space per stored byte: as it was; with every other key deleted; with as many new keys."""
    before = backend.space() / stored_bytes(backend)
    plugins = [(BIG, layout.big)] + [(small_plugin(i), layout.per_scope) for i in range(SCOPES)]
    total = stored_bytes(backend)
    for plugin, count in plugins:
        target = storage(backend, plugin)
        doomed = [key(i) for i in range(0, count, 2)]
        for first in range(0, len(doomed), FILL_BATCH):
            target.delete_many(doomed[first : first + FILL_BATCH])
    after_delete = backend.space() / total  # against what was stored before
    for plugin, count in plugins:
        fill_range(storage(backend, plugin), 0, (count + 1) // 2, prefix="new/")
    refilled = backend.space() / total
    return before, after_delete, refilled


# -- the run ---------------------------------------------------------------------------------
@dataclass
class Plan:
    sizes: list[int]
    seconds: float
    repeats: int
    delete: int  # keys removed by the delete_prefix measurement
    half: bool = True


@dataclass
class Results:
    figures: list[Figures] = field(default_factory=list)
    space_reuse: tuple[float, float, float] | None = None


def run_backend(backend: Backend, plan: Plan, verbose: bool) -> Results:
    results = Results()
    rng = random.Random(20240601)
    layout = Layout(0)
    for size in plan.sizes:
        new = Layout(size)
        fill = grow(backend, layout, new)
        layout = new
        figures = measure(backend, layout, fill, plan, rng)
        results.figures.append(figures)
        if verbose:  # the figures too, so a run stopped later keeps them
            print(
                f"  {backend.name} {size:,} keys: filled in {fill:.1f} s; load {load_average()}; "
                f"get {us(figures.get)}, set {us(figures.set)}, page {us(figures.page)}, "
                f"usage {us(figures.usage_big)} us; delete_prefix {figures.delete * 1e3:.1f} ms, "
                f"reads p99 {figures.read_p99 * 1e3:.2f} ms, max {figures.read_max * 1e3:.1f} ms",
                flush=True,
            )
    if plan.half:
        results.space_reuse = half_deleted(backend, layout)
    return results


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f}"


def report(name: str, results: Results, plan: Plan, verdicts: list[bool]) -> None:
    print(f"\n{name}: microseconds per call (median of {plan.repeats} runs)")
    head = (
        f"{'keys':>11}{'fill s':>9}{'get':>8}{'set':>8}{'page':>8}{'usage':>8}{'usage-s':>9}"
        f"{'del ms':>9}{'reads':>7}{'p99 ms':>8}{'max ms':>8}{'disk/B':>8}"
    )
    print(head)
    print("-" * len(head))
    for f in results.figures:
        print(
            f"{f.size:>11,}{f.fill:>9.1f}{us(f.get):>8}{us(f.set):>8}{us(f.page):>8}"
            f"{us(f.usage_big):>8}{us(f.usage_small):>9}{f.delete * 1e3:>9.1f}{f.reads:>7}"
            f"{f.read_p99 * 1e3:>8.2f}{f.read_max * 1e3:>8.1f}{f.space:>8.2f}"
        )
    print(
        "(usage: the big scope's; usage-s: a small scope's; del: delete_prefix of "
        f"{plan.delete:,} keys; reads: other scopes' gets beside it)"
    )
    first, last = results.figures[0], results.figures[-1]
    raw = first.raw_get > 0
    if raw:
        report_raw(results)
    print(f"targets ({last.size:,} keys against {first.size:,}: speed ratio, per call time):")
    for label, attribute in (
        ("get", "get"),
        ("set", "set"),
        ("page of 100", "page"),
        ("usage()", "usage_big"),
    ):
        ratio = getattr(first, attribute) / getattr(last, attribute)
        ok = ratio >= TARGET_FLAT
        verdicts.append(ok)
        print(f"  {label}: {ratio:.2f}x >= {TARGET_FLAT}  {'PASS' if ok else 'MISS'}")
    if raw:
        print(
            "  raw sqlite3, same run and file: get "
            f"{first.raw_get / last.raw_get:.2f}x (mmap {mib(last.mmap)}), "
            f"{first.raw_get_max / last.raw_get_max:.2f}x (mmap {mib(last.mmap_max)}); "
            f"set {first.raw_set / last.raw_set:.2f}x"
        )
    worst = max(f.read_p99 for f in results.figures)
    ok = worst <= TARGET_READ_P99
    verdicts.append(ok)
    print(
        f"  reads beside delete_prefix, worst p99 over the sizes: {worst * 1e3:.1f} ms "
        f"<= {TARGET_READ_P99 * 1e3:.0f} ms  {'PASS' if ok else 'MISS'}"
    )
    if results.space_reuse is not None:
        before, deleted, refilled = results.space_reuse
        print(
            f"space per stored byte at {last.size:,} keys: {before:.2f}; every other key "
            f"deleted: {deleted:.2f}; as many new keys stored: {refilled:.2f} "
            f"(grew {refilled / deleted - 1:+.1%} over the deleted state)"
        )


def mib(size: int) -> str:
    return f"{size / (1 << 20):,.0f} MiB"


def report_raw(results: Results) -> None:
    """pluginkv's get and set beside raw sqlite3's on the same file, same run."""
    last = results.figures[-1]
    print(
        f"\nraw sqlite3 on the same file, alternating with pluginkv (microseconds per call; "
        f"mmap: pluginkv's setting {mib(last.mmap)}, SQLite's maximum {mib(last.mmap_max)}; "
        f"pk/raw: pluginkv's speed over raw's)"
    )
    head = (
        f"{'keys':>11}{'file MiB':>10}{'get':>8}{'raw get':>9}{'pk/raw':>8}{'raw max':>9}"
        f"{'set':>8}{'raw set':>9}{'pk/raw':>8}"
    )
    print(head)
    print("-" * len(head))
    for f in results.figures:
        print(
            f"{f.size:>11,}{f.file_bytes / (1 << 20):>10,.0f}{f.get * 1e6:>8.1f}"
            f"{f.raw_get * 1e6:>9.1f}{f.raw_get / f.get:>8.2f}{f.raw_get_max * 1e6:>9.1f}"
            f"{us(f.set):>8}{us(f.raw_set):>9}"
            f"{f.raw_set / f.set:>8.2f}"
        )
    print("(raw get: mmap as pluginkv's; raw max: mmap at SQLite's maximum)")


def parse_size(text: str) -> int:
    match = re.fullmatch(r"(\d+)(?:(?:e|\^)(\d+))?", text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (10000, 1e4 or 10^4)")
    base, exponent = int(match.group(1)), match.group(2)
    if exponent is None:
        return base
    return base * 10 ** int(exponent) if "e" in text else base ** int(exponent)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="pluginkv's engine as a store grows: get, set, a page, usage(), "
        "delete_prefix, disk space"
    )
    parser.add_argument(
        "--sizes",
        default="1e4,1e5,1e6,1e7",
        help="store sizes in keys, ascending, comma-separated (default 1e4,1e5,1e6,1e7)",
    )
    parser.add_argument(
        "--backends", default="sqlite,postgres", help="sqlite, postgres or both (default)"
    )
    parser.add_argument("--dir", type=Path, help="directory for the SQLite store (default: temp)")
    parser.add_argument(
        "--url",
        default=os.environ.get("PLUGINKV_BENCH_POSTGRES_URL", DEFAULT_URL),
        help="a database on the PostgreSQL server to create the benchmark's database from "
        f"(default $PLUGINKV_BENCH_POSTGRES_URL or {DEFAULT_URL})",
    )
    parser.add_argument("--seconds", type=float, default=1.0, help="per run (default 1.0)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (default 3)")
    parser.add_argument("--verbose", action="store_true", help="print progress")
    parser.add_argument(
        "--no-reuse",
        action="store_true",
        help="skip the space-reuse step after the largest size (half the keys deleted and "
        "as many stored: minutes at 10^7 keys)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: sizes 2000 and 4000, 500 keys deleted, short runs",
    )
    args = parser.parse_args(argv)
    try:
        args.sizes = [parse_size(part) for part in args.sizes.split(",")]
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    if args.sizes != sorted(set(args.sizes)) or args.sizes[0] < SCOPES:
        parser.error(f"--sizes must ascend, each at least {SCOPES} (one key per scope)")
    args.backends = [b.strip() for b in args.backends.split(",")]
    if not set(args.backends) <= {"sqlite", "postgres"} or not args.backends:
        parser.error("--backends takes sqlite, postgres or both")
    if args.seconds <= 0 or args.repeats < 1:
        parser.error("--seconds must be above 0, --repeats at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.quick:
        plan = Plan([2000, 4000], 0.02, 1, 500)
    else:
        plan = Plan(args.sizes, args.seconds, args.repeats, 10_000)
    plan.half = not args.no_reuse
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print("pluginkv at scale: the engine's operations as a store grows")
    print(f"command : {shlex.join([os.path.relpath(sys.executable), *sys.argv])}")
    print(f"date    : {dt.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"machine : {platform.machine()}, {cpus} CPU(s), {platform.platform()}")
    print(
        f"python  : {platform.python_version()}; SQLite {sqlite3.sqlite_version}; "
        f"pluginkv {version('pluginkv')}, psycopg {version('psycopg')}"
    )
    print(
        f"plan    : sizes {', '.join(f'{s:,}' for s in plan.sizes)} keys of 100 B; "
        f"{SCOPES:,} scopes + one of up to {BIG_MAX:,}; {plan.repeats} x {plan.seconds:g} s "
        "per figure"
    )
    print(f"load    : {load_average()} (1, 5, 15 min) at the start; the machine may be shared")
    signal.signal(signal.SIGTERM, on_sigterm)
    started = time.perf_counter()
    verdicts: list[bool] = []
    for name in args.backends:
        with ExitStack() as stack:
            if name == "sqlite":
                if args.dir is None:
                    directory = Path(
                        stack.enter_context(tempfile.TemporaryDirectory(prefix="pluginkv-scale-"))
                    )
                else:
                    directory = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=args.dir)))
                backend: Backend = SQLite(directory)
            else:
                url = stack.enter_context(bench_database(args.url, "pluginkv_bench_scale"))
                print(f"database: {urlsplit(url).path.lstrip('/')} on {urlsplit(url).netloc}")
                backend = PostgreSQL(url)
                print(
                    f"          autovacuum {backend.autovacuum()} on this server; the fill runs "
                    f"ANALYZE every {STATS_EVERY} batches (never VACUUM)"
                )
            stack.callback(backend.close)
            results = run_backend(backend, plan, args.verbose)
        report(backend.name, results, plan, verdicts)
    missed = verdicts.count(False)
    print(
        f"\n{missed} of {len(verdicts)} target(s) missed"
        if missed
        else f"\nall {len(verdicts)} targets met"
    )
    print(f"load average at the end: {load_average()}")
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
