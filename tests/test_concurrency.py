"""Concurrency on one SQLite file: threads sharing a store, and separate processes.

Threads share one ``Store`` (``Storage`` is documented as thread-safe); every
process opens its own store on the same file (stores never cross a process
boundary).  Processes are started with the ``spawn`` method, so they share
nothing but the file.  Every worker owns its keys unless a test races on
purpose, so the final state of the file is known exactly: the last accepted
write of each key decides it, and a refused write must have left no trace.
"""

from __future__ import annotations

import json
import multiprocessing
import queue
import random
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import pluginkv
from pluginkv import QuotaExceeded, Storage, Store, VersionConflict

WORKSPACE = "ws-concurrency"
PLUGIN = "acme/concurrency"
QUOTA = 50_000
BARRIER_TIMEOUT = 60.0
RESULT_TIMEOUT = 120.0


def open_db(db: Path | str, **settings: Any) -> Store:
    """A store on the SQLite file ``db``, or on the database URL ``db`` (PostgreSQL)."""
    url = str(db) if "://" in str(db) else f"sqlite:///{db}"
    return pluginkv.open_store(url, **settings)


def scoped(store: Store) -> Storage:
    return store.storage(workspace=WORKSPACE, plugin=PLUGIN)


def size_of(key: str, value: bytes) -> int:
    return len(key.encode("utf-8")) + len(value)


def read_all(storage: Storage) -> dict[str, bytes]:
    """Every key and value of the scope, through ``keys()`` pagination and ``get_many``."""
    names: list[str] = []
    cursor: str | None = None
    while True:
        page = storage.keys(limit=13, cursor=cursor)
        names.extend(meta.key for meta in page)
        cursor = page.next_cursor
        if cursor is None:
            break
    values = storage.get_many(names)
    assert sorted(values) == sorted(names)
    return values


# -- running workers in threads or processes -----------------------------------------------


def run_threads(count: int, work: Callable[[int, threading.Barrier], Any]) -> list[Any]:
    """Run ``work(index, barrier)`` in ``count`` threads; their results, in index order."""
    barrier = threading.Barrier(count)
    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(work, index, barrier) for index in range(count)]
        done, _ = wait(futures, timeout=RESULT_TIMEOUT, return_when=FIRST_EXCEPTION)
        errors = [error for error in (future.exception() for future in done) if error is not None]
        if errors:
            barrier.abort()  # free the others from the barrier instead of waiting for its timeout
            raise errors[0]
        return [future.result(timeout=RESULT_TIMEOUT) for future in futures]


def _process_main(
    work: Callable[..., Any], db: str, index: int, barrier: Any, results: Any, args: tuple[Any, ...]
) -> None:
    try:
        with open_db(db, default_quota_bytes=QUOTA) as store:
            outcome = ("ok", work(scoped(store), index, barrier, *args))
    except BaseException:
        barrier.abort()
        outcome = ("error", traceback.format_exc())
    results.put((index, *outcome))


def run_processes(count: int, work: Callable[..., Any], db: Path | str, *args: Any) -> list[Any]:
    """Run ``work(storage, index, barrier, *args)`` in ``count`` spawned processes.

    Each process opens its own store on ``db``; the results come back in index order.
    """
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(count)
    results = context.Queue()
    processes = [
        context.Process(
            target=_process_main, args=(work, str(db), index, barrier, results, args), daemon=True
        )
        for index in range(count)
    ]
    for process in processes:
        process.start()
    collected: dict[int, tuple[str, Any]] = {}
    try:
        for _ in processes:
            try:
                index, status, value = results.get(timeout=RESULT_TIMEOUT)
            except queue.Empty:
                exits = [process.exitcode for process in processes]
                pytest.fail(f"a worker process gave no result; exit codes: {exits}")
            collected[index] = (status, value)
        for process in processes:
            process.join(timeout=RESULT_TIMEOUT)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
    failed = {index: value for index, (status, value) in collected.items() if status != "ok"}
    assert not failed, "\n".join(f"process {i} failed:\n{tb}" for i, tb in failed.items())
    assert [process.exitcode for process in processes] == [0] * count
    return [collected[index][1] for index in range(count)]


# -- quota under contention --------------------------------------------------------------


@dataclass
class QuotaReport:
    """One worker's writes: the state of its own keys and what it saw along the way."""

    owned: dict[str, bytes] = field(default_factory=dict)
    accepted: int = 0
    refused: int = 0
    violations: list[str] = field(default_factory=list)


def quota_worker(
    storage: Storage, index: int, barrier: Any, ops: int, key_count: int
) -> QuotaReport:
    """Random writes into the shared scope, each worker on its own keys, near the quota.

    All workers' keys together, at the average value size, would hold about
    three times the quota, so writes are refused all along while the accepted
    ones keep the scope close to full.
    """
    rng = random.Random(index)
    keys = [f"w{index}/k{n}" for n in range(key_count)]
    report = QuotaReport()
    owned = report.owned
    barrier.wait(timeout=BARRIER_TIMEOUT)
    for _ in range(ops):
        roll = rng.random()
        changes: dict[str, bytes | None]
        try:
            if roll < 0.55:
                key, value = rng.choice(keys), rng.randbytes(rng.randint(100, 3000))
                changes = {key: value}
                storage.set(key, value)
            elif roll < 0.70:
                batch = {k: rng.randbytes(rng.randint(100, 3000)) for k in rng.sample(keys, 3)}
                changes = dict(batch)
                storage.set_many(batch)
            elif roll < 0.90:
                key = rng.choice(keys)
                changes = {key: None}
                storage.delete(key)
            else:
                doomed = rng.sample(keys, 2)
                changes = dict.fromkeys(doomed)
                storage.delete_many(doomed)
        except QuotaExceeded as exc:
            report.refused += 1
            if not (exc.limit == QUOTA and exc.used <= QUOTA < exc.used + exc.needed):
                report.violations.append(
                    f"QuotaExceeded(used={exc.used}, needed={exc.needed}, limit={exc.limit})"
                )
            # Nothing of a refused write was stored.
            for key in changes:
                if storage.get(key) != owned.get(key):
                    report.violations.append(f"refused write changed {key}")
            continue
        report.accepted += 1
        for key, value in changes.items():
            if value is None:
                owned.pop(key, None)
            else:
                owned[key] = value
            if storage.get(key) != value:
                report.violations.append(f"accepted write of {key} not read back")
        usage = storage.usage()
        mine = sum(size_of(key, value) for key, value in owned.items())
        if usage.bytes_used > QUOTA:
            report.violations.append(f"usage {usage.bytes_used} is past the quota {QUOTA}")
        if usage.bytes_used < mine:
            report.violations.append(f"usage {usage.bytes_used} < {mine}, this worker's own keys")
    return report


def check_quota_outcome(store: Store, reports: list[QuotaReport]) -> None:
    violations = [f"worker {i}: {v}" for i, report in enumerate(reports) for v in report.violations]
    assert not violations, violations[:20]
    # The scope was really pushed against its quota, and writes still went through.
    assert sum(report.refused for report in reports) > 0
    assert sum(report.accepted for report in reports) > 0

    expected = {key: value for report in reports for key, value in report.owned.items()}
    storage = scoped(store)
    stored = read_all(storage)
    assert sorted(stored) == sorted(expected)
    assert [key for key in stored if stored[key] != expected[key]] == []
    usage = storage.usage()
    assert usage.bytes_used == sum(size_of(key, value) for key, value in stored.items())
    assert usage.keys == len(stored)
    assert usage.bytes_used <= usage.quota_bytes == QUOTA


def test_concurrent_threads_never_push_usage_past_quota(tmp_path: Path) -> None:
    with open_db(tmp_path / "x.db", default_quota_bytes=QUOTA) as store:
        storage = scoped(store)
        reports = run_threads(
            8, lambda index, barrier: quota_worker(storage, index, barrier, 150, 12)
        )
        check_quota_outcome(store, reports)


@pytest.mark.parametrize(
    ("processes", "ops"),
    [pytest.param(4, 120, id="4x120"), pytest.param(8, 500, id="8x500", marks=pytest.mark.slow)],
)
def test_concurrent_processes_never_push_usage_past_quota(
    tmp_path: Path, processes: int, ops: int
) -> None:
    db = tmp_path / "x.db"
    with open_db(db, default_quota_bytes=QUOTA) as store:
        # A third party watches too: no snapshot it reads may be past the quota either.
        seen: list[int] = []
        done = threading.Event()

        def observe() -> None:
            storage = scoped(store)
            while not done.is_set():
                seen.append(storage.usage().bytes_used)

        observer = threading.Thread(target=observe)
        observer.start()
        try:
            reports = run_processes(processes, quota_worker, db, ops, 96 // processes)
        finally:
            done.set()
            observer.join()
        assert seen and max(seen) <= QUOTA
        check_quota_outcome(store, reports)


# -- incr ------------------------------------------------------------------------------


def incr_worker(storage: Storage, index: int, barrier: Any, times: int) -> list[int]:
    barrier.wait(timeout=BARRIER_TIMEOUT)
    return [storage.incr("hits") for _ in range(times)]


def check_increments(storage: Storage, results: list[list[int]], total: int) -> None:
    assert storage.get("hits") == str(total).encode("ascii")
    # Every increment saw its own distinct predecessor: no two returned the same sum.
    assert sorted(value for returned in results for value in returned) == list(range(1, total + 1))
    assert storage.usage().bytes_used == size_of("hits", str(total).encode("ascii"))


def test_incr_from_threads_loses_no_increment(tmp_path: Path) -> None:
    with open_db(tmp_path / "x.db") as store:
        storage = scoped(store)
        results = run_threads(8, lambda index, barrier: incr_worker(storage, index, barrier, 200))
        check_increments(storage, results, 1600)


def test_incr_from_processes_loses_no_increment(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    with open_db(db) as store:
        results = run_processes(4, incr_worker, db, 250)
        check_increments(scoped(store), results, 1000)


# -- compare-and-set -----------------------------------------------------------------------


@dataclass
class CasReport:
    written: list[int] = field(default_factory=list)  # the counts this worker's CAS stored
    conflicts: int = 0


def cas_worker(storage: Storage, index: int, barrier: Any, successes: int) -> CasReport:
    """Increment a JSON counter by read-version-then-set(if_version=...), retrying on conflict."""
    report = CasReport()
    barrier.wait(timeout=BARRIER_TIMEOUT)
    while len(report.written) < successes:
        entry = storage.get_entry("counter")
        assert entry is not None
        document = json.loads(entry.value)
        document["count"] += 1
        document["by"] = index
        time.sleep(0)  # let the others run between the read and the write
        try:
            storage.set("counter", json.dumps(document).encode(), if_version=entry.version)
        except VersionConflict as exc:
            assert exc.expected == entry.version and exc.actual not in (None, entry.version)
            report.conflicts += 1
        else:
            report.written.append(document["count"])
            # Think time, different per worker, so that the workers interleave rather
            # than one of them taking the lock again and again while the others sleep.
            time.sleep(0.0005 * (index % 3))
    return report


def check_cas(storage: Storage, reports: list[CasReport], total: int) -> None:
    assert storage.get_json("counter")["count"] == total
    # Each count was stored by exactly one successful CAS: no update was lost or doubled.
    written = sorted(count for report in reports for count in report.written)
    assert written == list(range(1, total + 1))


def test_compare_and_set_from_threads_loses_no_update(tmp_path: Path) -> None:
    with open_db(tmp_path / "x.db") as store:
        storage = scoped(store)
        storage.set_json("counter", {"count": 0})
        reports = run_threads(6, lambda index, barrier: cas_worker(storage, index, barrier, 40))
        check_cas(storage, reports, 240)


def test_compare_and_set_from_processes_loses_no_update(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    with open_db(db) as store:
        storage = scoped(store)
        storage.set_json("counter", {"count": 0})
        reports = run_processes(4, cas_worker, db, 40)
        check_cas(storage, reports, 160)


# -- set if absent -------------------------------------------------------------------------


def if_absent_worker(storage: Storage, index: int, barrier: Any, rounds: int) -> list[Any]:
    """Race for ``race/<n>`` in every round; per round: True (won) or the conflict's version."""
    outcomes: list[Any] = []
    for round_ in range(rounds):
        barrier.wait(timeout=BARRIER_TIMEOUT)
        try:
            storage.set(f"race/{round_}", f"worker-{index}".encode(), if_absent=True)
        except VersionConflict as exc:
            assert exc.key == f"race/{round_}" and exc.expected is None
            outcomes.append(exc.actual)
        else:
            outcomes.append(True)
    return outcomes


def check_if_absent(storage: Storage, outcomes: list[list[Any]], rounds: int) -> None:
    for round_ in range(rounds):
        key = f"race/{round_}"
        per_worker = [worker[round_] for worker in outcomes]
        winners = [index for index, outcome in enumerate(per_worker) if outcome is True]
        assert len(winners) == 1, f"{key}: winners {winners}"
        entry = storage.get_entry(key)
        assert entry is not None and entry.value == f"worker-{winners[0]}".encode()
        # Every loser was told the version the winner stored.
        assert [o for o in per_worker if o is not True] == [entry.version] * (len(per_worker) - 1)
    assert storage.usage().keys == rounds


def test_set_if_absent_race_from_threads_has_exactly_one_winner(tmp_path: Path) -> None:
    with open_db(tmp_path / "x.db") as store:
        storage = scoped(store)
        outcomes = run_threads(
            8, lambda index, barrier: if_absent_worker(storage, index, barrier, 25)
        )
        check_if_absent(storage, outcomes, 25)


def test_set_if_absent_race_from_processes_has_exactly_one_winner(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    with open_db(db) as store:
        outcomes = run_processes(4, if_absent_worker, db, 25)
        check_if_absent(scoped(store), outcomes, 25)
