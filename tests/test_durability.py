"""Crash safety of the SQLite backend: a write that returned survives SIGKILL of its process.

The writer is a separate Python process (this file run as a script, see
``_writer``) that opens the store with ``open_store("sqlite:///<path>")`` and
writes a random stream of set / overwrite / compare-and-set / set-if-absent /
delete / incr / set_many / delete_many calls.  Around every call it prints
two flushed lines to stdout:

* ``B <seq> <op> key=state ...`` before the call: the state each key it
  touches will have once the call returns;
* ``A <seq> key=state ...`` after the call returned: the acknowledgement.

A state is ``-`` for "absent" or ``<len>:<blake2b>`` of the value.  The test
reads the acknowledgements, SIGKILLs the writer mid-stream, then opens the
file itself and checks that the file is intact, every acknowledged write is
there with exactly its value, only the keys of the one unacknowledged call
may hold either their old or their new state (all old or all new: batches
are atomic), and the quota accounting (``usage()``) matches what is stored.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import pluginkv
from pluginkv import Storage

WORKSPACE = "ws-crash"
PLUGIN = "acme/crash-test"
ABSENT = "-"
WATCHDOG_SECONDS = 60.0  # a writer that hangs is killed; the test then fails, it never hangs

# Keys of several UTF-8 widths, so that quota accounting of multi-byte keys is covered too.
PLAIN_KEYS = [
    *(f"k{n:03d}" for n in range(40)),
    *(f"dir/sub/{n}" for n in range(30)),
    *(f"ключ-{n}" for n in range(25)),
    *(f"键/{n}" for n in range(25)),
]
COUNTER_KEYS = [f"ctr/{n}" for n in range(8)]


def digest(value: bytes | None) -> str:
    """The state of a key as the protocol spells it."""
    if value is None:
        return ABSENT
    return f"{len(value)}:{hashlib.blake2b(value, digest_size=12).hexdigest()}"


def read_all(storage: Storage) -> dict[str, bytes]:
    """Every key and value of the scope, through ``keys()`` pagination and ``get_many``."""
    metas = []
    cursor: str | None = None
    while True:
        page = storage.keys(limit=37, cursor=cursor)
        metas.extend(page.entries)
        cursor = page.next_cursor
        if cursor is None:
            break
    names = [meta.key for meta in metas]
    assert len(names) == len(set(names)), "keys() listed a key twice"
    values: dict[str, bytes] = {}
    for start in range(0, len(names), 200):
        values.update(storage.get_many(names[start : start + 200]))
    assert sorted(values) == sorted(names), "get_many misses keys that keys() listed"
    for meta in metas:
        assert meta.size == len(meta.key.encode("utf-8")) + len(values[meta.key]), meta
    return values


# -- the writer (child process) ------------------------------------------------------------


def _random_value(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.03:
        size = 0
    elif roll < 0.70:
        size = rng.randint(1, 2048)
    elif roll < 0.95:
        size = rng.randint(2048, 8192)
    else:
        size = rng.randint(8192, 65536)  # spills into overflow pages
    return rng.randbytes(size)


def _counter_value(mirror: dict[str, bytes], key: str) -> int:
    value = mirror.get(key)
    return 0 if value is None else int(value)


def _next_op(
    rng: random.Random, mirror: dict[str, bytes], storage: Storage
) -> tuple[str, dict[str, bytes | None], Callable[[], object]]:
    """One random call: its name, the state it leaves each key in, and the call itself."""
    roll = rng.random()
    if roll < 0.30:
        key, value = rng.choice(PLAIN_KEYS), _random_value(rng)
        return "set", {key: value}, lambda: storage.set(key, value)
    if roll < 0.35:
        key, value = rng.choice(PLAIN_KEYS), _random_value(rng)
        return "set-ttl", {key: value}, lambda: storage.set(key, value, ttl=3600)
    if roll < 0.42:
        present = sorted(k for k in mirror if k in PLAIN_KEYS)
        if present:
            key, value = rng.choice(present), _random_value(rng)
            entry = storage.get_entry(key)
            assert entry is not None, f"{key} vanished"
            version = entry.version
            return "cas", {key: value}, lambda: storage.set(key, value, if_version=version)
    if roll < 0.47:
        absent = [k for k in PLAIN_KEYS if k not in mirror]
        if absent:
            key, value = rng.choice(absent), _random_value(rng)
            return "set-if-absent", {key: value}, lambda: storage.set(key, value, if_absent=True)
    if roll < 0.62:
        key = rng.choice(PLAIN_KEYS + COUNTER_KEYS)
        return "delete", {key: None}, lambda: storage.delete(key)
    if roll < 0.80:
        key, delta = rng.choice(COUNTER_KEYS), rng.randint(-5, 1000)
        after = _counter_value(mirror, key) + delta

        def incr() -> None:
            result = storage.incr(key, delta)
            assert result == after, f"incr({key!r}, {delta}) returned {result}, expected {after}"

        return "incr", {key: str(after).encode("ascii")}, incr
    if roll < 0.83:
        key = rng.choice(COUNTER_KEYS)
        value = str(rng.randint(-1000, 10**12)).encode("ascii")
        return "set-counter", {key: value}, lambda: storage.set(key, value)
    if roll < 0.93:
        batch = {key: _random_value(rng) for key in rng.sample(PLAIN_KEYS, rng.randint(2, 6))}
        return "set_many", dict(batch), lambda: storage.set_many(batch)
    keys = rng.sample(PLAIN_KEYS + COUNTER_KEYS, rng.randint(2, 5))
    return "delete_many", dict.fromkeys(keys), lambda: storage.delete_many(keys)


def _emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _writer(db: str, seed: int, synchronous: str) -> None:
    """Write forever (until killed), announcing and acknowledging every call on stdout."""
    store = pluginkv.open_store(f"sqlite:///{db}", sqlite_synchronous=synchronous)
    storage = store.storage(workspace=WORKSPACE, plugin=PLUGIN)
    mirror = read_all(storage)  # what an earlier, killed writer left behind
    rng = random.Random(seed)
    _emit("R")
    seq = 0
    while True:
        op, after, call = _next_op(rng, mirror, storage)
        states = " ".join(f"{key}={digest(value)}" for key, value in after.items())
        _emit(f"B {seq} {op} {states}")
        call()
        _emit(f"A {seq} {states}")
        for key, value in after.items():
            if value is None:
                mirror.pop(key, None)
            else:
                mirror[key] = value
        seq += 1


# -- the test side -------------------------------------------------------------------------


@dataclass
class CrashRun:
    """What the parent learnt from one writer before and after killing it."""

    acknowledged: int = 0
    ops: dict[str, int] = field(default_factory=dict)
    # Key -> state of the last acknowledged write; absent from the dict: never touched.
    expected: dict[str, str] = field(default_factory=dict)
    # The call that was announced but not acknowledged when the writer died, if any.
    in_flight: tuple[str, dict[str, str]] | None = None


def _parse_states(fields: list[str]) -> dict[str, str]:
    states = {}
    for item in fields:
        key, _, state = item.rpartition("=")
        states[key] = state
    return states


def run_writer_until_killed(
    db: Path, *, seed: int, kill_after: int, synchronous: str, expected: dict[str, str]
) -> CrashRun:
    """Start a writer on ``db``, SIGKILL it after ``kill_after`` acknowledgements."""
    run = CrashRun(expected=dict(expected))
    stderr_path = db.with_name(f"writer-{seed}.stderr")
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), str(db), str(seed), synchronous],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            encoding="utf-8",
        )
    watchdog = threading.Timer(WATCHDOG_SECONDS, proc.kill)
    watchdog.start()
    killed = False
    try:
        assert proc.stdout is not None
        # Keep reading after the kill: acknowledgements already in the pipe count as well.
        for line in proc.stdout:
            if not line.endswith("\n"):
                break  # a line cut short by the kill acknowledges nothing
            kind, *fields = line.rstrip("\n").split(" ")
            if kind == "R":
                continue
            seq, *rest = fields
            if kind == "B":
                assert run.in_flight is None, f"call {seq} announced before the last one ended"
                op, *states = rest
                run.in_flight = (f"{op} #{seq}", _parse_states(states))
                run.ops[op] = run.ops.get(op, 0) + 1
            elif kind == "A":
                assert run.in_flight is not None and run.in_flight[0].endswith(f"#{seq}")
                states = _parse_states(rest)
                assert states == run.in_flight[1]
                run.expected.update(states)
                run.in_flight = None
                run.acknowledged += 1
                if run.acknowledged >= kill_after and not killed:
                    proc.send_signal(signal.SIGKILL)
                    killed = True
        proc.wait(timeout=WATCHDOG_SECONDS)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert killed and proc.returncode == -signal.SIGKILL, (
        f"the writer ended on its own (exit status {proc.returncode}) after "
        f"{run.acknowledged} acknowledgements; its stderr:\n{stderr_path.read_text()}"
    )
    return run


def check_database(db: Path, run: CrashRun) -> dict[str, str]:
    """Assert the crashed file holds what was acknowledged; return its actual states."""
    # Recovery replays the WAL the killed writer left (a clean close would have removed it).
    assert Path(f"{db}-wal").exists(), "the writer left no WAL: the crash recovery was not tested"
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]

    with pluginkv.open_store(f"sqlite:///{db}") as store:
        storage = store.storage(workspace=WORKSPACE, plugin=PLUGIN)
        stored = read_all(storage)
        usage = storage.usage()
    actual = {key: digest(value) for key, value in stored.items()}

    flight_name, flight = run.in_flight if run.in_flight is not None else ("none", {})
    wrong = []
    for key in sorted(set(run.expected) | set(actual) | set(flight)):
        want, got = run.expected.get(key, ABSENT), actual.get(key, ABSENT)
        allowed = {want, flight[key]} if key in flight else {want}
        if got not in allowed:
            wrong.append(f"{key}: stored {got}, acknowledged {want}")
    assert not wrong, f"after {run.acknowledged} acknowledged calls: {wrong}"
    # The unacknowledged call took effect entirely or not at all.
    before = all(actual.get(key, ABSENT) == run.expected.get(key, ABSENT) for key in flight)
    after = all(actual.get(key, ABSENT) == state for key, state in flight.items())
    assert before or after, f"{flight_name} was half applied: {flight}"

    assert usage.keys == len(stored)
    assert usage.bytes_used == sum(len(key.encode("utf-8")) + len(v) for key, v in stored.items())
    return actual


def _check_still_writable(db: Path) -> None:
    """The recovered file takes writes and never reuses a version (compare-and-set needs that)."""
    with pluginkv.open_store(f"sqlite:///{db}") as store:
        storage = store.storage(workspace=WORKSPACE, plugin=PLUGIN)
        before = storage.usage()
        versions = [meta.version for meta in storage.keys(limit=1000)]
        storage.set("after-the-crash", b"x" * 100)
        entry = storage.get_entry("after-the-crash")
        assert entry is not None and entry.version > max(versions, default=0)
        storage.delete("after-the-crash")
        assert storage.usage() == before


@pytest.mark.parametrize("kill_after", [40, 400, 1500])
def test_acknowledged_writes_survive_sigkill(tmp_path: Path, kill_after: int) -> None:
    db = tmp_path / "crash.db"
    run = run_writer_until_killed(
        db, seed=kill_after, kill_after=kill_after, synchronous="FULL", expected={}
    )
    assert run.acknowledged >= kill_after
    assert set(run.ops) >= {"set", "cas", "delete", "incr", "set_many", "delete_many"}
    check_database(db, run)
    _check_still_writable(db)


@pytest.mark.parametrize("kill_after", [300, 1500])
def test_acknowledged_writes_survive_sigkill_with_synchronous_normal(
    tmp_path: Path, kill_after: int
) -> None:
    # NORMAL gives up durability on power loss, not on a process crash: the WAL is in the OS.
    db = tmp_path / "crash.db"
    run = run_writer_until_killed(
        db, seed=kill_after + 1, kill_after=kill_after, synchronous="NORMAL", expected={}
    )
    check_database(db, run)
    _check_still_writable(db)


def _crash_repeatedly(db: Path, kill_points: list[int], synchronous: str) -> None:
    expected: dict[str, str] = {}
    for round_, kill_after in enumerate(kill_points):
        run = run_writer_until_killed(
            db,
            seed=1000 + round_,
            kill_after=kill_after,
            synchronous=synchronous,
            expected=expected,
        )
        # The next writer starts from whatever the file holds, in-flight call included.
        expected = check_database(db, run)
    _check_still_writable(db)


def test_repeated_crashes_on_one_file_lose_no_acknowledged_write(tmp_path: Path) -> None:
    _crash_repeatedly(tmp_path / "crash.db", [200, 350, 500], "FULL")


@pytest.mark.slow
@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
def test_many_crashes_at_random_points_lose_no_acknowledged_write(
    tmp_path: Path, synchronous: str
) -> None:
    rng = random.Random(synchronous)
    _crash_repeatedly(tmp_path / "crash.db", [rng.randint(1, 3000) for _ in range(12)], synchronous)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(f"usage: {os.path.basename(sys.argv[0])} DB SEED SYNCHRONOUS")
    _writer(sys.argv[1], int(sys.argv[2]), sys.argv[3])
