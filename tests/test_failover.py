"""Losing the database server loses nothing: failover under load, through two replicas.

A pg_auto_failover cluster (``tests/ha.py``: a monitor, a primary and its
synchronous standby) serves two ``pluginkv serve`` replicas, both given the
URL of both nodes (``target_session_attrs=read-write``).  Writers and readers
load the replicas through the client SDK while the primary's server is
killed (its keeper and postmaster, SIGKILL); the monitor promotes the
standby, and the replicas follow it without a restart.  Then:

* every acknowledged write is there with its value; a write that got no
  answer may have happened or not (each writer owns its keys, so a key's
  possible states are known exactly: the last acknowledged one, plus those of
  the calls after it that got no answer);
* no read of a key that exists said "absent", no listing came out short, and
  the SDK's retries rode the outage out for the readers and for half the
  writers (the other half never retry, so some of their writes get no answer);
* the quota was never overshot, and the usage equals the stored sizes;
* a revoked token stays refused, also by a replica started after the switch;
* the time from the kill to the first acknowledged write (the unavailability
  window) is printed, not asserted.

The short test (one failover) runs in ``make test``; the slow one also lets the
old primary rejoin as the standby and fails over back (``make stress``).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

import pluginkv
from pluginkv import BackendUnavailable, QuotaExceeded, Store, Unauthorized
from pluginkv.client import RemoteStorage
from pluginkv.services.tokens import Tokens

from .ha import PRIMARY_STATES, HACluster, free_port, missing
from .postgres import reset_tables, unavailable

PLUGINKV = str(Path(sys.executable).parent / "pluginkv")
SECRET = "failover-secret-" + "f" * 40
WORKSPACE, PLUGIN = "ws-failover", "acme/failover"
REVOKED = ("ws-revoked", "acme/revoked")
QUOTA = 300_000
STABLE = {f"stable/{n:03d}": f"stable value {n}".encode() * 20 for n in range(60)}
ABSENT = None
WRITERS, READERS = 8, 4
# Enough SDK retries (random exponential waits of up to 2 s each) to cover a
# failover of tens of seconds; readers must never see the outage.
READER_RETRIES = 60


@pytest.fixture(name="cluster", scope="module")
def _cluster() -> Iterator[HACluster]:
    reason = missing()
    if reason is not None:
        unavailable(reason)
    cluster = HACluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(name="healthy")
def _healthy(cluster: HACluster) -> HACluster:
    """The cluster with both nodes back and in sync, whatever an earlier test left."""
    for node in cluster.nodes:
        if node.process is None:
            cluster.rejoin(node)
    cluster.wait_healthy()
    assert cluster.synchronous_standby_names().startswith("ANY 1 ("), "the standby is not sync"
    return cluster


class Replica:
    """One ``pluginkv serve`` process on the cluster's multi-host URL."""

    def __init__(self, database_url: str, data_dir: Path, read_url: str = "") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "PLUGINKV_TOKEN_SECRET": SECRET,
            "PLUGINKV_PLUGIN_QUOTAS": f'{{"{PLUGIN}": {QUOTA}}}',
            "PLUGINKV_TOKEN_REVOCATION_REFRESH_SECONDS": "0.2",
            "PLUGINKV_POSTGRES_POOL_TIMEOUT_SECONDS": "2",
            "PLUGINKV_POSTGRES_READ_URL": read_url,
        }
        self.log = data_dir / "serve.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    PLUGINKV,
                    "serve",
                    "--data-dir",
                    str(data_dir),
                    "--db",
                    database_url,
                    "--port",
                    str(self.port),
                    "--debug-port",
                    str(free_port()),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=1).read()
                return
            except OSError:
                assert self.process.poll() is None, self.log.read_text()
                assert time.monotonic() < deadline, "the replica did not come up"
                time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def token(workspace: str = WORKSPACE, plugin: str = PLUGIN) -> str:
    return Tokens(SECRET, default_ttl=3600).issue(workspace=workspace, plugin=plugin)


@dataclass
class Load:
    """What the writers, readers and the probe saw; shared by their threads."""

    stop: threading.Event = field(default_factory=threading.Event)
    # key -> the states it may be in: the last acknowledged, then any unanswered after it
    possible: dict[str, list[bytes | None]] = field(default_factory=dict)
    acknowledged: int = 0
    unanswered: int = 0
    over_quota: int = 0
    reads: int = 0
    standby_reads: int = 0  # about: from the standby's statistics, before each kill
    listings: int = 0
    wrong: list[str] = field(default_factory=list)  # a read that lied, or an unexpected error
    # (sent, acknowledged), monotonic, of every acknowledged probe write
    probe_acks: list[tuple[float, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def writer(load: Load, url: str, index: int, seed: int) -> None:
    rng = random.Random(seed)
    keys = [f"w{index}/{n:02d}" for n in range(40)]
    # Half the writers ride the outage out on the SDK's retries; the others
    # never retry, so their calls during it get no answer, and count as such.
    retries = READER_RETRIES if index % 2 == 0 else 0
    with RemoteStorage(url, token(), timeout=60, retries=retries) as storage:
        while not load.stop.is_set():
            key = rng.choice(keys)
            new = None if rng.random() < 0.2 else rng.randbytes(rng.randint(100, 3000))
            try:
                if new is None:
                    storage.delete(key)
                else:
                    storage.set(key, new)
            except QuotaExceeded:  # refused, nothing changed; deletes make room again
                with load.lock:
                    load.over_quota += 1
                continue
            except BackendUnavailable:
                with load.lock:
                    load.unanswered += 1
                    load.possible.setdefault(key, [ABSENT]).append(new)
                time.sleep(0.05)
                continue
            except Exception as exc:  # anything else is a bug
                with load.lock:
                    load.wrong.append(f"writer {index}: {exc!r}")
                return
            with load.lock:
                load.acknowledged += 1
                load.possible[key] = [new]


def reader(load: Load, url: str, seed: int) -> None:
    rng = random.Random(seed)
    names = sorted(STABLE)
    with RemoteStorage(url, token(), timeout=60, retries=READER_RETRIES) as storage:
        while not load.stop.is_set():
            try:
                if rng.random() < 0.1:
                    listed = [meta.key for meta in storage.keys("stable/", limit=1000).entries]
                    if listed != names:
                        raise AssertionError(f"a listing of {len(listed)} of {len(names)} keys")
                    with load.lock:
                        load.listings += 1
                else:
                    key = rng.choice(names)
                    got = storage.get(key)
                    if got != STABLE[key]:
                        raise AssertionError(f"{key}: {got!r:.40}")
                    with load.lock:
                        load.reads += 1
            except Exception as exc:  # an outage past the retries, or a wrong answer
                with load.lock:
                    load.wrong.append(f"reader: {exc!r}")
                return


def probe(load: Load, url: str) -> None:
    """One write every few milliseconds, never retried: when writes work again."""
    with RemoteStorage(url, token(), timeout=5, retries=0) as storage:
        n = 0
        while not load.stop.is_set():
            n += 1
            sent = time.monotonic()
            try:
                storage.set("probe", str(n).encode())
            except BackendUnavailable:
                time.sleep(0.02)
                continue
            except Exception as exc:  # anything else is a bug
                with load.lock:
                    load.wrong.append(f"probe: {exc!r}")
                return
            with load.lock:
                load.probe_acks.append((sent, time.monotonic()))
            time.sleep(0.01)


def check_store(store: Store, load: Load) -> None:
    """Every key in one of its possible states; usage equal to what is stored, within quota."""
    storage = store.storage(workspace=WORKSPACE, plugin=PLUGIN)
    # This store was idle through the failover: its first call finds the
    # connections to the old primary dead (and has the pool replace them).
    deadline = time.monotonic() + 30
    while True:
        try:
            storage.usage()
            break
        except BackendUnavailable:
            assert time.monotonic() < deadline, "the store never reached the new primary"
            time.sleep(0.1)
    listed = []
    cursor: str | None = None
    while True:
        page = storage.keys(limit=500, cursor=cursor)
        listed.extend(page.entries)
        cursor = page.next_cursor
        if cursor is None:
            break
    values = storage.get_many([meta.key for meta in listed])
    lost = []
    for key, states in load.possible.items():
        if values.get(key) not in states:
            lost.append(key)
    assert lost == [], f"keys not in an acknowledged (or unanswered) state: {lost}"
    written = {key for key in values if key.startswith("w")}
    assert written <= set(load.possible), "a key no writer wrote"
    assert {key: values[key] for key in STABLE} == STABLE
    usage = storage.usage()
    stored = sum(meta.size for meta in listed)
    assert (usage.bytes_used, usage.keys) == (stored, len(listed))
    assert usage.bytes_used <= QUOTA


@pytest.fixture(name="store")
def _store(healthy: HACluster) -> Iterator[Store]:
    store = pluginkv.open_store(healthy.url, plugin_quotas={PLUGIN: QUOTA})
    reset_tables(store)
    store.storage(workspace=WORKSPACE, plugin=PLUGIN).set_many(STABLE)
    yield store
    store.close()


@pytest.fixture(name="replicas")
def _replicas(healthy: HACluster, store: Store, tmp_path: Path) -> Iterator[list[Replica]]:
    # The second replica reads from the standby, whichever node that is.
    read_url = healthy.url.replace("read-write", "prefer-standby")
    replicas = [
        Replica(healthy.url, tmp_path / "replica0"),
        Replica(healthy.url, tmp_path / "replica1", read_url=read_url),
    ]
    yield replicas
    for replica in replicas:
        replica.stop()


def standby_transactions(cluster: HACluster) -> int:
    with psycopg.connect(cluster.standby().url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


def fail_over(cluster: HACluster, replicas: list[Replica], load: Load, warmup: float) -> float:
    """Kill the primary under load; seconds from the kill to the first acknowledged write."""
    before = standby_transactions(cluster)
    time.sleep(warmup)
    # Each read the standby serves is two transactions (the catch-up check, the read).
    load.standby_reads += (standby_transactions(cluster) - before) // 2
    old = cluster.primary()
    assert load.acknowledged > 0 and load.wrong == [], load.wrong
    killed_at = time.monotonic()
    cluster.kill(old)
    deadline = killed_at + 120
    # A write sent before the kill may be acknowledged after it: it does not count.
    while not any(sent > killed_at for sent, _ in load.probe_acks):
        assert time.monotonic() < deadline, f"no write for 120 s: {cluster.show_state()}"
        assert load.wrong == [], load.wrong
        time.sleep(0.05)
    window = min(acked for sent, acked in load.probe_acks if sent > killed_at) - killed_at
    while cluster.states()[old.name][1] in PRIMARY_STATES:
        assert time.monotonic() < deadline, f"the old primary stays: {cluster.show_state()}"
        time.sleep(0.05)
    time.sleep(warmup)  # load on the new primary too
    return window


def run_load(replicas: list[Replica]) -> tuple[Load, list[threading.Thread]]:
    load = Load()
    threads = [
        threading.Thread(target=writer, args=(load, replicas[n % 2].url, n, n))
        for n in range(WRITERS)
    ]
    threads += [
        threading.Thread(target=reader, args=(load, replicas[n % 2].url, 100 + n))
        for n in range(READERS)
    ]
    threads.append(threading.Thread(target=probe, args=(load, replicas[0].url)))
    for thread in threads:
        thread.start()
    return load, threads


def finish(load: Load, threads: list[threading.Thread]) -> None:
    load.stop.set()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive(), "a load thread hangs"


def report(label: str, load: Load, window: float) -> None:
    print(
        f"\n{label}: unavailable for {window:.2f} s (kill to first acknowledged write); "
        f"{load.acknowledged} writes acknowledged, {load.unanswered} unanswered, "
        f"{load.over_quota} refused over quota, "
        f"{load.reads} reads and {load.listings} listings, all correct; "
        f"the standby served about {load.standby_reads} reads before the kill"
    )


def check_revocation(replicas: list[Replica], revoked: str) -> None:
    for replica in replicas:
        with RemoteStorage(replica.url, revoked, retries=READER_RETRIES) as storage:
            with pytest.raises(Unauthorized, match="revoked"):
                storage.get("k")


def revoke(store: Store, replicas: list[Replica]) -> str:
    """A token of REVOKED, revoked and refused by every replica."""
    revoked = token(*REVOKED)
    time.sleep(1.1)  # a revocation covers the tokens issued up to its second
    store.revoke_tokens(workspace=REVOKED[0], plugin=REVOKED[1])
    deadline = time.monotonic() + 10
    while True:
        try:
            check_revocation(replicas, revoked)
            return revoked
        except pytest.fail.Exception:
            assert time.monotonic() < deadline, "the replicas never refused the revoked token"
            time.sleep(0.1)


def test_a_failover_under_load_loses_no_acknowledged_write(
    healthy: HACluster, store: Store, replicas: list[Replica], tmp_path: Path
) -> None:
    revoked = revoke(store, replicas)
    load, threads = run_load(replicas)
    try:
        window = fail_over(healthy, replicas, load, warmup=2.0)
    finally:
        finish(load, threads)
    assert load.wrong == []
    report("failover", load, window)
    check_store(store, load)
    check_revocation(replicas, revoked)
    fresh = Replica(healthy.url, tmp_path / "fresh")  # reads the revocations anew
    try:
        check_revocation([fresh], revoked)
    finally:
        fresh.stop()


@pytest.mark.slow
def test_failing_over_and_back_under_load_loses_no_acknowledged_write(
    healthy: HACluster, store: Store, replicas: list[Replica]
) -> None:
    revoked = revoke(store, replicas)
    load, threads = run_load(replicas)
    try:
        first = healthy.primary()
        window = fail_over(healthy, replicas, load, warmup=10.0)
        report("failover", load, window)
        healthy.rejoin(first)  # the old primary comes back as the standby
        healthy.wait_healthy()
        assert healthy.standby() is first
        time.sleep(5)
        window = fail_over(healthy, replicas, load, warmup=10.0)
        assert healthy.primary() is first
        report("failover back", load, window)
    finally:
        finish(load, threads)
    assert load.wrong == []
    check_store(store, load)
    check_revocation(replicas, revoked)


def test_reads_from_the_standby_see_every_write_acknowledged_before_them(
    healthy: HACluster, store: Store
) -> None:
    reading = pluginkv.open_store(healthy.url, postgres_read_url=healthy.standby().url)
    try:
        reads = reading.storage(workspace=WORKSPACE, plugin=PLUGIN)
        writes = store.storage(workspace=WORKSPACE, plugin=PLUGIN)  # another client
        rounds = 200
        for n in range(rounds):
            key, value = f"raw/{n % 7}", str(n).encode()
            writes.set(key, value)
            assert reads.get(key) == value
            assert reads.exist(key)
            writes.delete(key)
            assert reads.get_entry(key) is None
            writes.set(key, value)
            assert key in {meta.key for meta in reads.keys("raw/").entries}
        served = reading.backend.reads.served  # type: ignore[attr-defined]
        assert served > 0, "the standby served no read"
        # A plain read of the standby (no catch-up check) costs what reads outside a
        # "primary for a while after a write" window would.
        with pluginkv.open_store(healthy.standby().url, read_only=True) as plain:
            costs = cost_of_reads(primary=store, checked=reading, plain=plain)
        print(f"\nstandby served {served} of {rounds * 4} reads; {costs}")
    finally:
        reading.close()


def cost_of_reads(count: int = 300, **stores: Store) -> str:
    """The median get on each store."""
    figures = []
    for label, one in stores.items():
        storage = one.storage(workspace=WORKSPACE, plugin=PLUGIN)
        times = []
        for n in range(count):
            started = time.perf_counter()
            storage.get(f"stable/{n % 60:03d}")
            times.append(time.perf_counter() - started)
        figures.append(f"{label} {sorted(times)[count // 2] * 1e6:.0f} µs")
    return "median get: " + ", ".join(figures)
