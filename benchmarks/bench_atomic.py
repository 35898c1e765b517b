"""Commits and the change feed: a commit of 10 writes against 10 single writes, and how
long a change takes to reach 100 watchers over HTTP.

Run with ``.venv/bin/python benchmarks/bench_atomic.py`` (``--help`` for options).

Commits (the engine, in this process): ``storage.atomic()`` with 10 ``set`` of 100 B
committed at once, against the same 10 keys written by 10 ``storage.set`` calls (the
baseline), on SQLite at ``synchronous=FULL`` (pluginkv's default) and ``NORMAL``, and on
PostgreSQL (a throwaway database on ``--postgres``, dropped at the end).  Each round
times a block of each, alternating which goes first; the figures are the median over
the rounds, the ratio the median of per-round ratios (single writes' time over the
commits').  A commit is one transaction, so one fsync (SQLite FULL) or one WAL flush
(PostgreSQL) where the single writes pay ten.

Latency (the service, in a subprocess): ``pluginkv serve`` on a SQLite file in a
temporary directory, ``--watchers`` watchers of one kind at a time on raw sockets of
this process's event loop, long polls (``GET /v1/changes?since=N&wait=60``, asked again
after each answer, on the same connection) then event streams (``Accept:
text/event-stream``).  A writer on its own connection PUTs one key at a time and waits
until every watcher has it, then 50 ms, before the next.  For each write and watcher: the time from
the PUT's send, and from its acknowledgement (the answer's last byte; negative when a
watcher had the change first), to that watcher's receipt of the change; p50 and p99 over
every pair.  The baseline is the PUT's own round trip, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pluginkv
from common import (
    HOST,
    PLUGINKV,
    bench_database,
    free_port,
    load_average,
    on_sigterm,
    serve_pluginkv,
    stop_process,
    version,
)

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
WORKSPACE = "bench-ws"
PLUGIN = "bench/atomic"
KEYS = [f"bench/key-{i}" for i in range(10)]
VALUE = b"v" * 100
# A commit of 10 against 10 single sets: at least this much faster where the single
# sets pay a durable flush each (SQLite FULL, PostgreSQL); NORMAL is information.
PAUSE = 0.05  # seconds between one write seen by every watcher and the next write
TARGETS = {"SQLite FULL": 3.0, "SQLite NORMAL": 0.0, "PostgreSQL": 2.0}


# -- commits against single writes ----------------------------------------------------------
@dataclass(frozen=True)
class CommitRow:
    label: str
    singles: float  # seconds for 10 single sets, median
    commit: float  # seconds for one commit of 10 sets, median
    ratio: float  # median of per-round ratios


def _time_block(write: Callable[[], None], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        write()
    return (time.perf_counter() - start) / count


def _compare(label: str, store: pluginkv.Store, rounds: int, block: int) -> CommitRow:
    storage = store.storage(workspace=WORKSPACE, plugin=PLUGIN)

    def singles() -> None:
        for key in KEYS:
            storage.set(key, VALUE)

    def commit() -> None:
        builder = storage.atomic()
        for key in KEYS:
            builder.set(key, VALUE)
        result = builder.commit()
        if not result.ok:
            raise SystemExit(
                f"benchmark sanity check failed: a commit without checks failed: {result}"
            )

    singles()  # warm-up, not measured: the connection, statement caches, the rows
    commit()
    single_times, commit_times, ratios = [], [], []
    for n in range(rounds):
        if n % 2 == 0:
            one, many = _time_block(singles, block), _time_block(commit, block)
        else:
            many, one = _time_block(commit, block), _time_block(singles, block)
        single_times.append(one)
        commit_times.append(many)
        ratios.append(one / many)
    if storage.get_many(KEYS) != dict.fromkeys(KEYS, VALUE):
        raise SystemExit("benchmark sanity check failed: the keys do not hold the value written")
    return CommitRow(
        label,
        statistics.median(single_times),
        statistics.median(commit_times),
        statistics.median(ratios),
    )


def run_commits(args: argparse.Namespace) -> int:
    rows: list[CommitRow] = []
    with tempfile.TemporaryDirectory(prefix="bench-atomic-") as tmp:
        for mode in ("FULL", "NORMAL"):
            path = Path(tmp) / f"{mode}.db"
            with pluginkv.open_store(f"sqlite:///{path}", sqlite_synchronous=mode) as store:
                rows.append(_compare(f"SQLite {mode}", store, args.rounds, args.block))
    if args.postgres != "off":
        with bench_database(args.postgres, "pluginkv_bench_atomic") as url:
            with pluginkv.open_store(url) as store:
                rows.append(_compare("PostgreSQL", store, args.rounds, args.block))
    print(
        f"\ncommit of 10 sets of 100 B vs 10 single sets (same keys); {args.rounds} rounds of "
        f"{args.block}; figures: medians; ratio: median of per-round ratios"
    )
    print(f"{'backend':<16}{'10 sets ms':>12}{'commit ms':>12}{'ratio':>9}  target")
    missed = 0
    for row in rows:
        target = TARGETS[row.label]
        if target:
            met = row.ratio >= target
            missed += not met
            verdict = f">={target:.1f}  {'PASS' if met else 'MISS'}"
        else:
            verdict = "(info)"
        print(
            f"{row.label:<16}{row.singles * 1000:>12.3f}{row.commit * 1000:>12.3f}"
            f"{row.ratio:>8.2f}x  {verdict}"
        )
    return missed


# -- change-to-watcher latency over HTTP ----------------------------------------------------
def _serve(data_dir: Path, port: int, watchers: int) -> subprocess.Popen[bytes]:
    return serve_pluginkv(
        data_dir,
        port,
        {"PLUGINKV_MAX_CONNECTIONS": str(watchers + 64)},
    )


def _token(data_dir: Path) -> str:
    out = subprocess.run(
        [
            PLUGINKV,
            "token",
            "create",
            "--data-dir",
            str(data_dir),
            "--workspace",
            WORKSPACE,
            "--plugin",
            PLUGIN,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


class _Connection:
    """One HTTP/1.1 connection on raw streams: a request, then its answer's body."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> _Connection:
        return cls(*await asyncio.open_connection(HOST, port))

    def send(self, head: str, body: bytes = b"") -> None:
        self.writer.write(head.encode() + b"\r\n\r\n" + body)

    async def answer(self) -> bytes:
        """The body of a ``Content-Length`` answer."""
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = head.split(b" ", 2)[1]
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length)
        if not status.startswith(b"2"):
            raise RuntimeError(f"HTTP {status.decode()}: {body[:200]!r}")
        return body

    def close(self) -> None:
        self.writer.close()


def _request(method: str, path: str, token: str, *extra: str) -> str:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", f"Authorization: Bearer {token}"]
    return "\r\n".join([*lines, *extra])


@dataclass
class _Latencies:
    round_trips: list[float]
    from_send: list[float]
    from_ack: list[float]


async def _long_poll(
    port: int, token: str, since: int, got: dict[int, float], arrived: Callable[[], None]
) -> None:
    connection = await _Connection.open(port)
    try:
        while True:
            connection.send(_request("GET", f"/v1/changes?since={since}&wait=60", token))
            page = json.loads(await connection.answer())
            now = time.perf_counter()
            for change in page["changes"]:
                got[change["seq"]] = now
            if page["changes"]:
                arrived()
            since = page["next"]
    finally:
        connection.close()


async def _stream(
    port: int,
    token: str,
    since: int,
    got: dict[int, float],
    arrived: Callable[[], None],
    opened: asyncio.Event,
) -> None:
    connection = await _Connection.open(port)
    try:
        connection.send(
            _request("GET", f"/v1/changes?since={since}", token, "Accept: text/event-stream")
        )
        await connection.reader.readuntil(b"\r\n\r\n")
        opened.set()
        buffer = b""
        while True:
            chunk = await connection.reader.read(65536)
            if not chunk:
                raise RuntimeError("an event stream closed")
            now = time.perf_counter()
            buffer += chunk
            # Chunked framing lines between events are skipped: only "id: N" lines count.
            fresh = False
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                for line in event.split(b"\n"):
                    if line.startswith(b"id: "):
                        got[int(line[4:])] = now
                        fresh = True
            if fresh:
                arrived()
    finally:
        connection.close()


async def _latency(port: int, token: str, kind: str, watchers: int, writes: int) -> _Latencies:
    writer = await _Connection.open(port)
    writer.send(_request("GET", "/v1/changes", token))
    since = int(json.loads(await writer.answer())["next"])
    received: list[dict[int, float]] = [{} for _ in range(watchers)]
    progress = asyncio.Event()
    tasks = []
    for n in range(watchers):
        if kind == "long poll":
            task = _long_poll(port, token, since, received[n], progress.set)
        else:
            opened = asyncio.Event()
            task = _stream(port, token, since, received[n], progress.set, opened)
        tasks.append(asyncio.create_task(task))
        if kind != "long poll":
            await opened.wait()
    await asyncio.sleep(0.5)  # every long poll has reached the service and waits
    latencies = _Latencies([], [], [])
    try:
        for i in range(writes):
            seq = since + i + 1
            body = b"x" * 100
            head = _request(
                "PUT", f"/v1/kv/latency/{i % 10}", token, f"Content-Length: {len(body)}"
            )
            sent = time.perf_counter()
            writer.send(head, body)
            await writer.answer()
            acked = time.perf_counter()
            latencies.round_trips.append(acked - sent)
            while not all(seq in got for got in received):
                progress.clear()
                failed = [task for task in tasks if task.done()]
                if failed:
                    failed[0].result()  # raises the watcher's error
                await asyncio.wait_for(progress.wait(), timeout=30)
            for got in received:
                latencies.from_send.append(got[seq] - sent)
                latencies.from_ack.append(got[seq] - acked)
            await asyncio.sleep(PAUSE)  # the long polls are asked again before the next write
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer.close()
    return latencies


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run_latency(args: argparse.Namespace) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * args.watchers + 256
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))
    with tempfile.TemporaryDirectory(prefix="bench-atomic-") as tmp:
        data_dir = Path(tmp) / "data"
        port = free_port()
        process = _serve(data_dir, port, args.watchers)
        print(f"started : pluginkv serve (pid {process.pid}, port {port})")
        try:
            token = _token(data_dir)
            print(
                f"\nchange to watcher over HTTP: pluginkv serve on SQLite, "
                f"{args.watchers} watchers of each kind in turn, {args.writes} PUTs of 100 B, "
                "one at a time; percentiles over every (write, watcher)"
            )
            print(
                f"{'watchers':<22}{'PUT p50':>9}{'send p50':>10}{'send p99':>10}"
                f"{'ack p50':>9}{'ack p99':>9}{'p50/PUT':>9}  (ms)"
            )
            for kind in ("long poll", "event stream"):
                got = asyncio.run(_latency(port, token, kind, args.watchers, args.writes))
                put = statistics.median(got.round_trips)
                send50 = _percentile(got.from_send, 0.5)
                print(
                    f"{f'{args.watchers} x {kind}':<22}{put * 1000:>9.2f}{send50 * 1000:>10.2f}"
                    f"{_percentile(got.from_send, 0.99) * 1000:>10.2f}"
                    f"{_percentile(got.from_ack, 0.5) * 1000:>9.2f}"
                    f"{_percentile(got.from_ack, 0.99) * 1000:>9.2f}{send50 / put:>8.2f}x"
                )
        finally:
            stop_process(process)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=9, help="commit rounds (9)")
    parser.add_argument("--block", type=int, default=50, help="commits per round (50)")
    parser.add_argument("--watchers", type=int, default=100, help="of each kind (100)")
    parser.add_argument("--writes", type=int, default=100, help="PUTs watched (100)")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("PLUGINKV_BENCH_POSTGRES_URL", DEFAULT_POSTGRES),
        help="PostgreSQL server to make a throwaway database on, or 'off' "
        "(PLUGINKV_BENCH_POSTGRES_URL; default %(default)s)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="3 rounds of 5, 20 watchers, 5 writes: a smoke test"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.block, args.watchers, args.writes = 3, 5, 20, 5
    if min(args.rounds, args.block, args.watchers, args.writes) < 1:
        parser.error("--rounds, --block, --watchers and --writes must be positive")
    signal.signal(signal.SIGTERM, on_sigterm)
    print(
        f"bench_atomic: pluginkv {version('pluginkv')}, uvicorn {version('uvicorn')}, Python "
        f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load_average()}"
    )
    missed = run_commits(args)
    run_latency(args)
    print(f"load average at the end {load_average()}")
    print("all targets met" if not missed else f"{missed} target(s) missed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
