"""What only the PostgreSQL backend has: migrations shared by processes, real
concurrency from several processes and replicas, sweepers racing, and faults.

Every test runs in the test run's own database (``postgres_url``), emptied first.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict

import pluginkv
from pluginkv import BackendUnavailable, Store
from pluginkv.backends.migrations import MIGRATIONS
from pluginkv.backends.postgres import PostgresBackend, describe_url
from pluginkv.client import RemoteStorage
from pluginkv.keys import Scope
from pluginkv.services.tokens import Tokens

from ..postgres import (
    LOCAL_CLUSTER,
    LOCAL_URL,
    TestDatabase,
    connect,
    reset_tables,
    server_url,
    terminate_sessions,
    with_database,
)
from ..test_concurrency import (
    PLUGIN,
    QUOTA,
    WORKSPACE,
    cas_worker,
    check_cas,
    check_if_absent,
    check_increments,
    check_quota_outcome,
    if_absent_worker,
    incr_worker,
    quota_worker,
    run_processes,
    run_threads,
    scoped,
)

pytestmark = pytest.mark.postgres

SECRET = "test-secret-" + "p" * 40


@pytest.fixture(name="url")
def _url(postgres_url: str) -> Iterator[str]:
    """The test run's database, empty."""
    with pluginkv.open_store(postgres_url) as store:
        reset_tables(store)
    yield postgres_url


@pytest.fixture(name="open_pg")
def _open_pg(url: str) -> Iterator[Callable[..., Store]]:
    """Open stores on the database (closed afterwards); keywords are settings."""
    opened: list[Store] = []

    def open_(database_url: str = url, **settings: Any) -> Store:
        store = pluginkv.open_store(database_url, **settings)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


def counters_match_rows(url: str) -> list[tuple[Any, ...]]:
    """Scopes whose recorded counters differ from the rows they hold (none, if all is well)."""
    with connect(url) as conn:
        return conn.execute(
            "SELECT s.workspace, s.plugin, s.bytes_used, s.key_count, e.bytes, e.keys "
            "FROM pluginkv_scopes AS s LEFT JOIN (SELECT workspace, plugin, sum(size) AS bytes, "
            "count(*) AS keys FROM pluginkv_entries GROUP BY workspace, plugin) AS e "
            "USING (workspace, plugin) "
            "WHERE s.bytes_used <> coalesce(e.bytes, 0) OR s.key_count <> coalesce(e.keys, 0)"
        ).fetchall()


# -- opening -------------------------------------------------------------------------------


def test_opening_records_every_migration_once(url: str, open_pg: Callable[..., Store]) -> None:
    store = open_pg()
    assert store.backend.name == "postgres"
    assert store.backend.applied_migrations() == [m.name for m in MIGRATIONS]  # type: ignore[attr-defined]


def test_processes_opening_a_fresh_database_at_once_apply_each_migration_once(
    postgres_url: str,
) -> None:
    schema = f"fresh_{secrets.token_hex(4)}"
    with connect(postgres_url) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    fresh = with_database(
        postgres_url, postgres_url.rsplit("/", 1)[1], options=f"-csearch_path%3D{schema}"
    )
    try:
        barrier = threading.Barrier(6)

        def open_at_once(_: int) -> list[str]:
            barrier.wait(timeout=30)
            with pluginkv.open_store(fresh) as store:
                store.storage(workspace="w", plugin="a/b").set("k", b"v")
                return store.backend.applied_migrations()  # type: ignore[attr-defined,no-any-return]

        with ThreadPoolExecutor(6) as pool:
            applied = list(pool.map(open_at_once, range(6)))
        assert applied == [[m.name for m in MIGRATIONS]] * 6
        with connect(postgres_url) as conn:
            tables = conn.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = %s", (schema,)
            ).fetchone()
        assert tables == (6,)  # entries, scopes, revocations, changes, listeners, the record
    finally:
        with connect(postgres_url) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_a_database_from_before_token_revocations_gains_them_once(
    url: str, open_pg: Callable[..., Store]
) -> None:
    open_pg().storage(workspace="w", plugin="a/b").set("k", b"v")
    with connect(url) as conn:  # as a database migrated before 0002 left it
        conn.execute("DROP TABLE pluginkv_token_revocations")
        conn.execute("DELETE FROM pluginkv_migrations WHERE name = %s", (MIGRATIONS[1].name,))
    for _ in range(2):
        store = open_pg()
        assert store.backend.applied_migrations() == [m.name for m in MIGRATIONS]  # type: ignore[attr-defined]
        assert store.storage(workspace="w", plugin="a/b").get("k") == b"v"
        revoked_at = store.revoke_tokens(workspace="w", plugin="a/b")
        assert store.token_revocations() == {Scope("w", "a/b"): revoked_at}


def test_a_database_whose_trigger_counted_deletes_counts_each_delete_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database = TestDatabase.create()
    try:
        with monkeypatch.context() as patch:  # as the version before 0004 left it
            patch.setattr("pluginkv.backends.postgres.MIGRATIONS", MIGRATIONS[:3])
            with pluginkv.open_store(database.url) as store:
                old = store.storage(workspace="w", plugin="a/b")
                old.set_many({f"p/{i}": b"x" * 10 for i in range(20)})
                old.set("q", b"y")
        with connect(database.url) as conn:  # its trigger counts a delete by hand
            conn.execute("DELETE FROM pluginkv_entries WHERE key LIKE 'p/1%'")
        assert counters_match_rows(database.url) == []

        with pluginkv.open_store(database.url) as store:
            storage = store.storage(workspace="w", plugin="a/b")
            assert storage.delete_prefix("p/") == 9

            usage = storage.usage()
            assert (usage.bytes_used, usage.keys) == (2, 1)
        assert counters_match_rows(database.url) == []
    finally:
        database.drop()


def test_every_kind_of_delete_leaves_the_counters_equal_to_the_rows(
    url: str, open_pg: Callable[..., Store]
) -> None:
    now = [1_800_000_000.0]
    store = open_pg(clock=lambda: now[0])
    storage = store.storage(workspace="w", plugin="a/b")
    storage.set_many({f"k/{i}": b"x" * (i + 1) for i in range(30)})
    storage.set_many({f"t/{i}": b"t" for i in range(5)}, ttl=1)
    storage.set_many({f"s/{i}": b"s" for i in range(5)}, ttl=1)
    deletes: list[Callable[[], object]] = [
        lambda: storage.delete("k/0"),
        lambda: storage.delete("missing"),
        lambda: storage.delete_many(["k/1", "k/2", "missing"]),
        lambda: storage.delete_prefix("k/2"),
        lambda: storage.delete_prefix("nothing/"),
        lambda: now.__setitem__(0, now[0] + 2),
        lambda: store.sweep_expired(),
        lambda: storage.delete_prefix("", all=True),
    ]
    for delete in deletes:
        delete()
        assert counters_match_rows(url) == []
    assert storage.usage().keys == 0
    storage.set_many({"a": b"1", "b": b"2"})
    store.purge(workspace="w", plugin="a/b")
    assert counters_match_rows(url) == []


@pytest.mark.parametrize("removed", [5, 500])
def test_a_delete_updates_its_scopes_row_as_often_whatever_it_removes(
    open_pg: Callable[..., Store], removed: int
) -> None:
    """A row trigger updated the scope's row once per deleted row, and each update in a
    transaction steps over the row versions the earlier ones left: n^2 for n rows."""
    store = open_pg()
    scope = Scope("w", "a/b")
    store.storage(workspace="w", plugin="a/b").set_many({f"p/{i}": b"v" for i in range(removed)})
    updates = "SELECT pg_stat_get_xact_tuples_updated('pluginkv_scopes'::regclass)"

    with store.backend.write() as tx:
        tx.lookup(scope, [])  # lock the scope's row, as every write does first
        before = tx._execute(updates, ()).fetchone()[0]  # type: ignore[attr-defined]
        assert tx.remove_prefix(scope, "p/", 0.0) == removed
        after = tx._execute(updates, ()).fetchone()[0]  # type: ignore[attr-defined]

    assert after - before == 1  # the counters and the change log's sequence, at once


def test_the_workspace_leads_every_primary_key_and_index(
    url: str, open_pg: Callable[..., Store]
) -> None:
    """What distributing the tables by workspace (Citus) needs."""
    open_pg()
    with connect(url) as conn:
        indexes = conn.execute(
            "SELECT i.indexrelid::regclass::text, a.attname FROM pg_index AS i "
            "JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
            "WHERE i.indrelid IN ('pluginkv_entries'::regclass, 'pluginkv_scopes'::regclass, "
            "'pluginkv_token_revocations'::regclass)"
        ).fetchall()
    assert len(indexes) == 4
    assert {column for _, column in indexes} == {"workspace"}, indexes


def test_every_data_statement_names_the_workspace(
    open_pg: Callable[..., Store], clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each statement of the data path filters by workspace, so on Citus it routes to one
    shard; only listing every scope, the sweeper's search for expired rows and its trimming
    of the change log span them."""
    import psycopg

    store = open_pg(clock=clock, default_quota_bytes=10_000)
    seen: list[str] = []
    execute = psycopg.Cursor.execute

    def recording(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(str(query))
        return execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", recording)
    storage = store.storage(workspace="w", plugin="a/b")
    storage.set("k", b"v")
    storage.set("t", b"v", ttl=1)
    storage.get("k"), storage.exist("k"), storage.get_entry("k")
    storage.set("k", b"w", if_version=storage.get_entry("k").version)  # type: ignore[union-attr]
    storage.set("n", b"1", if_absent=True)
    storage.incr("n")
    storage.set_many({"a": b"1", "b": b"2"})
    storage.get_many(["a", "b"])
    storage.keys("a")
    storage.delete_many(["a"])
    storage.delete("b", if_version=storage.get_entry("b").version)  # type: ignore[union-attr]
    storage.delete_prefix("k")
    storage.delete("missing")
    storage.usage()
    clock.advance(2)
    with pytest.raises(pluginkv.QuotaExceeded):  # reclaims the expired row, then refuses
        storage.set("huge", b"x" * 20_000)
    store.set_quota(workspace="w", plugin="a/b", quota_bytes=20_000)
    storage.set("t", b"v", ttl=1)
    clock.advance(2)
    store.sweep_expired()
    store.scopes()
    store.purge(workspace="w", plugin="a/b")

    spanning = (
        "FROM pluginkv_scopes ORDER BY",
        "FROM (SELECT workspace, plugin FROM",
        "FROM pluginkv_changes WHERE changed_at <",
        "FROM pluginkv_scopes AS s CROSS JOIN pluginkv_changes",
    )
    control = ("BEGIN", "COMMIT", "ROLLBACK")
    data = [sql for sql in seen if not sql.startswith(control)]
    assert len(set(data)) >= 15
    for sql in data:
        if not any(part in sql for part in spanning):
            # An INSERT routes by the workspace it inserts (the first value).
            inserts = sql.startswith("INSERT INTO pluginkv_") and "VALUES (%s" in sql
            assert "workspace = %s" in sql or "workspace = %(ws)s" in sql or inserts, sql


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_both_url_schemes_open_postgres(url: str, scheme: str) -> None:
    with pluginkv.open_store(scheme + url[url.index("://") :]) as store:
        assert store.backend.name == "postgres"


def test_unreachable_server_is_backend_unavailable_without_the_password() -> None:
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match="PLUGINKV_POSTGRES_POOL_TIMEOUT_SECONDS") as info:
        pluginkv.open_store(
            "postgresql://someone:hunter2@127.0.0.1:1/db", postgres_pool_timeout_seconds=0.5
        )
    assert "hunter2" not in str(info.value)
    assert time.monotonic() - started < 10


def test_pool_max_below_min_is_a_clear_error(url: str) -> None:
    with pytest.raises(pluginkv.InvalidArgument, match="PLUGINKV_POSTGRES_POOL_MAX_SIZE"):
        pluginkv.open_store(url, postgres_pool_min_size=5, postgres_pool_max_size=2)


def test_a_scope_that_stored_nothing_leaves_no_state_row(open_pg: Callable[..., Store]) -> None:
    store = open_pg()
    storage = store.storage(workspace="w", plugin="a/b")
    storage.delete_many(["x", "y"])
    storage.delete("x", if_version=None)
    with pytest.raises(pluginkv.VersionConflict):
        storage.delete("x", if_version=3)
    assert store.scopes() == []


def test_keys_sort_in_utf8_byte_order(open_pg: Callable[..., Store]) -> None:
    storage = open_pg().storage(workspace="w", plugin="a/b")
    keys = ["b", "B", "a", "é", "z", "\u00ff", "\uffff", "\U0001f600", "a/b", "a b"]
    for key in keys:
        storage.set(key, b"")
    assert [meta.key for meta in storage.keys()] == sorted(keys, key=str.encode)


def test_a_full_pool_is_backend_unavailable_after_the_timeout(
    open_pg: Callable[..., Store],
) -> None:
    store = open_pg(postgres_pool_max_size=1, postgres_pool_timeout_seconds=0.3)
    storage = store.storage(workspace="w", plugin="a/b")
    storage.set("k", b"v")
    with store.backend.write() as tx:  # holds the only connection
        tx.lookup(Scope("w", "a/b"), ["k"])
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(storage.get, "k")
            with pytest.raises(BackendUnavailable, match="every connection is busy"):
                waiting.result(timeout=10)
    assert storage.get("k") == b"v"


def test_a_write_stuck_on_a_lock_held_elsewhere_gives_up_naming_the_setting(
    url: str, open_pg: Callable[..., Store]
) -> None:
    store = open_pg(postgres_statement_timeout_seconds=0.3)
    storage = store.storage(workspace="w", plugin="a/b")
    storage.set("k", b"before")
    with connect(url) as other, other.transaction():
        # An administrator's open transaction holding the scope's row: every write
        # of the scope waits for it.
        other.execute(
            "SELECT 1 FROM pluginkv_scopes WHERE workspace = 'w' AND plugin = 'a/b' FOR UPDATE"
        )
        with pytest.raises(BackendUnavailable, match="PLUGINKV_POSTGRES_STATEMENT_TIMEOUT_SECONDS"):
            storage.set("k", b"after")
        assert storage.get("k") == b"before"  # reads do not wait for row locks
    storage.set("k", b"after")  # the connection went back to the pool in working order
    assert storage.get("k") == b"after"


def test_a_plain_delete_waits_for_the_scopes_writer_then_counts_what_it_left(
    url: str, open_pg: Callable[..., Store], app_name: str
) -> None:
    store = open_pg(with_database(url, url.rsplit("/", 1)[1], application_name=app_name))
    storage = store.storage(workspace="w", plugin="a/b")
    storage.set("k", b"small")
    with ThreadPoolExecutor(1) as pool:
        with connect(url) as other, other.transaction():
            other.execute(
                "SELECT 1 FROM pluginkv_scopes WHERE workspace = 'w' AND plugin = 'a/b' FOR UPDATE"
            )
            deleting = pool.submit(storage.delete, "k")
            wait_for_lock_wait(app_name)
            # The holder rewrites the entry while the delete waits, as a writer would.
            other.execute(
                "UPDATE pluginkv_entries SET value = %s, size = %s, version = version + 1 "
                "WHERE workspace = 'w' AND plugin = 'a/b' AND key = 'k'",
                (b"x" * 100, 101),
            )
        deleting.result(timeout=30)

    assert storage.get("k") is None
    usage = storage.usage()
    assert (usage.bytes_used, usage.keys) == (0, 0)
    assert counters_match_rows(url) == []
    assert [(c.key, c.kind) for c in storage.changes().changes][-1] == ("k", "delete")


def test_the_statement_timeout_joins_options_the_url_gives(url: str) -> None:
    with pluginkv.open_store(
        url + ("&" if "?" in url else "?") + "options=-c%20work_mem%3D8MB",
        postgres_statement_timeout_seconds=2.5,
    ) as store:
        backend = store.backend
        assert isinstance(backend, PostgresBackend)
        conn = backend._getconn()
        try:
            shown = [
                conn.execute(f"SHOW {name}").fetchone()
                for name in ("work_mem", "statement_timeout")
            ]
        finally:
            backend._putconn(conn)
    assert shown == [("8MB",), ("2500ms",)]


def test_connections_probe_a_silent_server(open_pg: Callable[..., Store]) -> None:
    backend = open_pg(postgres_tcp_timeout_seconds=12).backend
    assert isinstance(backend, PostgresBackend)
    conn = backend._getconn()
    try:
        given = conn.info.get_parameters()
    finally:
        backend._putconn(conn)
    assert {
        name: given.get(name) for name in ("keepalives", "keepalives_idle", "tcp_user_timeout")
    } == {
        "keepalives": "1",
        "keepalives_idle": "6",
        "tcp_user_timeout": "12000",
    }


def test_a_closed_store_is_backend_unavailable(open_pg: Callable[..., Store]) -> None:
    store = open_pg()
    storage = store.storage(workspace="w", plugin="a/b")
    store.close()
    with pytest.raises(BackendUnavailable, match="closed"):
        storage.get("k")
    store.close()  # idempotent


def test_a_forked_child_opens_connections_of_its_own(open_pg: Callable[..., Store]) -> None:
    store = open_pg(postgres_pool_min_size=2)
    storage = store.storage(workspace="w", plugin="a/b")
    storage.set("parent", b"1")
    pid = os.fork()
    if pid == 0:  # the child: use the inherited store, close it, leave without cleanup
        code = 1
        try:
            if storage.get("parent") == b"1":
                storage.set("child", b"2")
                store.close()
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's connections were neither used nor closed by the child.
    assert [storage.get("child") for _ in range(5)] == [b"2"] * 5
    storage.set("parent", b"3")
    assert storage.get("parent") == b"3"


# -- concurrency: processes and replicas ------------------------------------------------------


@pytest.mark.parametrize(
    ("processes", "ops"),
    [pytest.param(8, 80, id="8x80"), pytest.param(8, 500, id="8x500", marks=pytest.mark.slow)],
)
def test_processes_never_push_usage_past_a_tight_quota(
    url: str, open_pg: Callable[..., Store], processes: int, ops: int
) -> None:
    store = open_pg(default_quota_bytes=QUOTA)
    reports = run_processes(processes, quota_worker, url, ops, 96 // processes)
    check_quota_outcome(store, reports)
    assert counters_match_rows(url) == []


def test_incr_from_8_processes_x_500_ends_at_exactly_4000(
    url: str, open_pg: Callable[..., Store]
) -> None:
    results = run_processes(8, incr_worker, url, 500)
    check_increments(scoped(open_pg()), results, 4000)


def test_compare_and_set_from_processes_loses_no_update(
    url: str, open_pg: Callable[..., Store]
) -> None:
    storage = scoped(open_pg())
    storage.set_json("counter", {"count": 0})
    reports = run_processes(4, cas_worker, url, 30)
    check_cas(storage, reports, 120)


def test_set_if_absent_race_from_processes_has_exactly_one_winner(
    url: str, open_pg: Callable[..., Store]
) -> None:
    outcomes = run_processes(4, if_absent_worker, url, 20)
    check_if_absent(scoped(open_pg()), outcomes, 20)


class Replica:
    """``python -m pluginkv serve --db <url>`` as a process of its own."""

    def __init__(self, url: str, data_dir: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "pluginkv", "serve", "--db", url]
        command += ["--port", str(self.port), "--data-dir", str(data_dir), "--debug-port", "0"]
        self.process = subprocess.Popen(
            command,
            env={**os.environ, "PLUGINKV_TOKEN_SECRET": SECRET, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._output: str | None = None

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(self.output())
            if readyz(self.url) == 200:
                return
            time.sleep(0.05)
        raise AssertionError("the replica did not come up")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.output()

    def output(self) -> str:
        """What the process printed; read once, so stop() works after a failed start."""
        if self._output is None:
            assert self.process.stdout is not None
            self._output = self.process.stdout.read().decode(errors="replace")
            self.process.stdout.close()
        return self._output


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def readyz(base: str) -> int:
    try:
        with urllib.request.urlopen(base + "/readyz", timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


@pytest.fixture(name="replicas")
def _replicas(url: str, tmp_path: Path) -> Iterator[list[Replica]]:
    """Two ``pluginkv serve`` processes on the one database, with one token secret."""
    started = [
        Replica(url, tmp_path / f"replica-{n}", PLUGINKV_DEFAULT_QUOTA_BYTES=str(QUOTA))
        for n in range(2)
    ]
    try:
        for replica in started:
            replica.wait_ready()
        yield started
    finally:
        for replica in started:
            replica.stop()


def test_two_replicas_over_http_never_push_usage_past_a_tight_quota(
    url: str, open_pg: Callable[..., Store], replicas: list[Replica]
) -> None:
    token = Tokens(SECRET, default_ttl=3600).issue(workspace=WORKSPACE, plugin=PLUGIN)

    def work(index: int, barrier: threading.Barrier) -> Any:
        # Half the workers on each replica, as a load balancer would spread them.
        with RemoteStorage(replicas[index % 2].url, token) as storage:
            return quota_worker(storage, index, barrier, 60, 12)  # type: ignore[arg-type]

    reports = run_threads(8, work)
    check_quota_outcome(open_pg(default_quota_bytes=QUOTA), reports)
    assert counters_match_rows(url) == []


# -- the sweeper, on several replicas at once ---------------------------------------------------


def test_sweepers_racing_on_replicas_count_every_freed_row_once(
    url: str, open_pg: Callable[..., Store]
) -> None:
    start = 1_800_000_000.0
    writer = open_pg(clock=lambda: start)
    scopes = [Scope("w", f"a/p{n}") for n in range(12)]
    for scope in scopes:
        storage = writer.storage(workspace=scope.workspace, plugin=scope.plugin)
        storage.set_many({f"old/{i}": b"x" * 10 for i in range(60)}, ttl=5)
        storage.set_many({f"keep/{i}": b"y" * 10 for i in range(5)})
    expired = 60 * len(scopes)
    later = start + 10

    # Each replica is a store of its own (its own pool), all sweeping at once while
    # a writer keeps writing into the same scopes.
    sweepers = [open_pg(clock=lambda: later, sweep_batch_size=50) for _ in range(4)]
    busy = open_pg(clock=lambda: later)
    done = threading.Event()

    def write_meanwhile() -> int:
        writes = 0
        while not done.is_set():
            scope = scopes[writes % len(scopes)]
            storage = busy.storage(workspace=scope.workspace, plugin=scope.plugin)
            storage.set(f"new/{writes % 7}", b"z" * 10)
            storage.delete(f"new/{(writes + 3) % 7}")
            writes += 1
        return writes

    def sweep(store: Store) -> int:
        swept = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            swept += store.sweep_expired()
            with store.backend.read() as tx:
                if not any(tx.expired_totals(scope, later)[0] for scope in scopes):
                    return swept
        raise AssertionError("expired rows are left after a minute of sweeping")

    with ThreadPoolExecutor(len(sweepers) + 1) as pool:
        writing = pool.submit(write_meanwhile)
        counts = list(pool.map(sweep, sweepers))
        done.set()
        assert writing.result() > 0
    assert sum(counts) == expired
    assert counters_match_rows(url) == []
    for scope in scopes:
        storage = busy.storage(workspace=scope.workspace, plugin=scope.plugin)
        assert [m.key for m in storage.keys("keep/")] == [f"keep/{i}" for i in range(5)]


# -- faults -------------------------------------------------------------------------------------


@pytest.fixture(name="app_name")
def _app_name() -> str:
    """An application_name of this test's own, to find (and kill) its sessions."""
    return f"pluginkv_fault_{secrets.token_hex(4)}"


def terminate(application_name: str) -> int:
    return terminate_sessions(server_url(), application_name)


def wait_for_lock_wait(application_name: str) -> None:
    deadline = time.monotonic() + 10
    with connect(server_url()) as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                "SELECT 1 FROM pg_stat_activity WHERE application_name = %s "
                "AND wait_event_type = 'Lock'",
                (application_name,),
            ).fetchone()
            if waiting:
                return
            time.sleep(0.01)
    raise AssertionError("the call never waited for the lock")


def test_a_killed_connection_fails_the_call_in_flight_then_the_pool_recovers(
    url: str, open_pg: Callable[..., Store], app_name: str
) -> None:
    store = open_pg(with_database(url, url.rsplit("/", 1)[1], application_name=app_name))
    storage = store.storage(workspace="w", plugin="a/b")
    acknowledged = {f"k{i}": f"v{i}".encode() for i in range(50)}
    for key, value in acknowledged.items():
        storage.set(key, value)

    # Hold the scope's lock from outside so that a set is in flight, waiting for it.
    with connect(url) as blocker:
        blocker.execute("BEGIN")
        blocker.execute(
            "SELECT 1 FROM pluginkv_scopes WHERE workspace = 'w' AND plugin = 'a/b' FOR UPDATE"
        )
        with ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(storage.set, "blocked", b"never acknowledged")
            wait_for_lock_wait(app_name)
            assert terminate(app_name) >= 1
            with pytest.raises(BackendUnavailable, match="terminat"):
                in_flight.result(timeout=30)
        blocker.execute("ROLLBACK")

    # Later calls succeed on fresh connections, and every acknowledged write is there.
    assert storage.get_many(list(acknowledged)) == acknowledged
    storage.set("after", b"ok")
    assert storage.get("after") == b"ok"
    assert storage.get("blocked") is None
    assert counters_match_rows(url) == []


def test_killed_idle_connections_never_make_a_key_look_absent(
    url: str, open_pg: Callable[..., Store], app_name: str
) -> None:
    store = open_pg(
        with_database(url, url.rsplit("/", 1)[1], application_name=app_name),
        postgres_pool_min_size=3,
    )
    storage = store.storage(workspace="w", plugin="a/b")
    storage.set("k", b"v")
    with ThreadPoolExecutor(3) as pool:  # several connections in the pool
        assert list(pool.map(lambda _: storage.get("k"), range(30))) == [b"v"] * 30
    assert terminate(app_name) >= 1
    outcomes = []
    for _ in range(3):
        try:
            outcomes.append(storage.get("k"))
        except BackendUnavailable:
            outcomes.append("unavailable")
    assert None not in outcomes
    assert outcomes[-1] == b"v", outcomes  # the pool has replaced its dead connections
    assert [storage.get("k") for _ in range(20)] == [b"v"] * 20


def several_hosts(url: str, *first: str) -> str:
    """``url`` as a URL of several hosts: ``first``, then its own, the writable one wanted."""
    params = conninfo_to_dict(url)
    user = params.get("user", "")
    if params.get("password"):
        user += f":{params['password']}"
    hosts = ",".join([*first, f"{params.get('host', 'localhost')}:{params.get('port', 5432)}"])
    return (
        f"postgresql://{user}{'@' if user else ''}{hosts}/{params['dbname']}"
        "?target_session_attrs=read-write"
    )


def test_a_url_of_several_hosts_reaches_the_one_that_takes_writes(
    url: str, open_pg: Callable[..., Store]
) -> None:
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there, as on a dead node
    several = several_hosts(url, dead)
    storage = open_pg(several).storage(workspace="w", plugin="a/b")
    storage.set("k", b"v")
    assert storage.get("k") == b"v"
    assert describe_url(several).startswith(f"{dead},")


def test_the_cli_takes_a_url_of_several_hosts(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from pluginkv.cli import main

    for name in list(os.environ):
        if name.startswith("PLUGINKV_"):
            monkeypatch.delenv(name)
    several = several_hosts(url, f"127.0.0.1:{free_port()}")
    dump = tmp_path / "dump.jsonl"
    with pluginkv.open_store(f"sqlite:///{tmp_path / 'source.db'}") as source:
        source.storage(workspace="ws-1", plugin="acme/weather").set("city", b"Berlin")
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(main, list(args), prog_name="pluginkv")

    assert (
        run("export", "--db", f"sqlite:///{tmp_path / 'source.db'}", "-o", str(dump)).exit_code == 0
    )
    imported = run("import", str(dump), "--db", several)
    assert (imported.exit_code, imported.stdout) == (0, "imported 1 scopes, 1 keys, 10 bytes\n")
    scope = ("--workspace", "ws-1", "--plugin", "acme/weather")
    assert run("kv", "get", "--db", several, *scope, "city").stdout_bytes == b"Berlin"
    exported = run("export", "--db", several)
    assert (exported.exit_code, exported.stderr) == (0, "exported 1 scopes, 1 keys, 10 bytes\n")
    records = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [record.get("key") for record in records if record["type"] == "entry"] == ["city"]


def test_connections_to_a_server_that_stopped_taking_writes_are_replaced(
    open_pg: Callable[..., Store],
) -> None:
    store = open_pg(postgres_pool_min_size=2, postgres_pool_max_size=2)
    backend = store.backend
    assert isinstance(backend, PostgresBackend)
    storage = store.storage(workspace="w", plugin="a/b")
    storage.set("k", b"v1")
    # What a demoted primary's sessions do: refuse every write.
    held = [backend._getconn() for _ in range(2)]
    for conn in held:
        conn.execute("SET default_transaction_read_only = on")
    for conn in held:
        backend._putconn(conn)
    with pytest.raises(BackendUnavailable, match="no longer takes writes"):
        storage.set("k", b"v2")
    # Fresh connections only: the pool dropped every read-only one, idle or not.
    storage.set("k", b"v3")
    storage.set_many({"a": b"1", "b": b"2"})
    assert storage.get_many(["k", "a", "b"]) == {"k": b"v3", "a": b"1", "b": b"2"}


def test_an_unreachable_standby_leaves_every_read_to_the_primary(
    url: str, open_pg: Callable[..., Store]
) -> None:
    dead = several_hosts(url).replace(url_host_port(url), f"127.0.0.1:{free_port()}")
    store = open_pg(postgres_read_url=dead, postgres_read_wait_seconds=0.2)
    storage = store.storage(workspace="w", plugin="a/b")
    storage.set("k", b"v")
    assert storage.get("k") == b"v"
    assert storage.exist("k")
    assert [meta.key for meta in storage.keys()] == ["k"]
    assert storage.get_many(["k", "x"]) == {"k": b"v"}
    assert store.backend.reads.served == 0  # type: ignore[union-attr]


def test_a_read_url_that_leads_to_a_primary_leaves_reads_to_the_primary_pool(
    url: str, open_pg: Callable[..., Store]
) -> None:
    store = open_pg(postgres_read_url=url)  # a standby promoted since, say
    storage = store.storage(workspace="w", plugin="a/b")
    for n in range(20):
        storage.set("k", str(n).encode())
        assert storage.get("k") == str(n).encode()
        assert [meta.key for meta in storage.keys()] == ["k"]
    assert store.backend.reads.served == 0  # type: ignore[union-attr]


def url_host_port(url: str) -> str:
    params = conninfo_to_dict(url)
    return f"{params.get('host', 'localhost')}:{params.get('port', 5432)}"


@pytest.fixture(name="refusing")
def _refusing(url: str) -> Iterator[Callable[[bool], None]]:
    """Make the test database refuse (True) or accept (False) new connections."""
    name = url.rsplit("/", 1)[1]

    def refuse(flag: bool) -> None:
        with connect(server_url()) as conn:
            conn.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS {str(not flag).lower()}")

    yield refuse
    refuse(False)


def test_an_outage_is_503_with_retry_after_and_readyz_sees_the_recovery(
    url: str,
    open_pg: Callable[..., Store],
    app_name: str,
    refusing: Callable[[bool], None],
) -> None:
    from starlette.testclient import TestClient

    from pluginkv.server.app import create_app

    store = open_pg(
        with_database(url, url.rsplit("/", 1)[1], application_name=app_name),
        postgres_pool_timeout_seconds=0.5,
    )
    store.storage(workspace="w", plugin="a/b").set("k", b"v")
    tokens = Tokens(SECRET, default_ttl=60)
    auth = {"Authorization": f"Bearer {tokens.issue(workspace='w', plugin='a/b')}"}
    with TestClient(create_app(store=store, tokens=tokens)) as client:
        assert client.get("/readyz").status_code == 200
        refusing(True)
        terminate(app_name)
        down = client.get("/readyz")
        assert down.status_code == 503
        assert down.json()["error"]["code"] == "backend_unavailable"
        read = client.get("/v1/kv/k", headers=auth)  # never a 404: the key exists
        assert (read.status_code, read.headers["Retry-After"]) == (503, "1")
        assert read.json()["error"]["code"] == "backend_unavailable"
        with pytest.raises(BackendUnavailable):
            store.storage(workspace="w", plugin="a/b").get("k")
        refusing(False)
        deadline = time.monotonic() + 30
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "readyz never recovered"
            time.sleep(0.1)
    assert store.storage(workspace="w", plugin="a/b").get("k") == b"v"


@pytest.mark.slow
@pytest.mark.skipif(
    server_url() != LOCAL_URL or shutil.which(LOCAL_CLUSTER[0]) is None,
    reason="restarts the local cluster only",
)
def test_a_server_restart_fails_calls_during_it_and_loses_no_acknowledged_write(
    open_pg: Callable[..., Store],
) -> None:
    store = open_pg(postgres_pool_timeout_seconds=1)
    storage = store.storage(workspace="w", plugin="a/b")
    acknowledged: dict[str, bytes] = {}
    stop = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        n = 0
        while not stop.is_set():
            key, value = f"k{n}", f"v{n}".encode()
            try:
                storage.set(key, value)
            except BackendUnavailable:
                pass
            except BaseException as exc:  # anything else is a bug
                errors.append(exc)
                return
            else:
                acknowledged[key] = value
            try:
                got = storage.get(key)
            except BackendUnavailable:
                continue
            if key in acknowledged and got != value:
                errors.append(AssertionError(f"{key}: {got!r}"))
            n += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        time.sleep(0.5)
        subprocess.run([*LOCAL_CLUSTER, "restart"], check=True, timeout=120)
        time.sleep(1)
        deadline = time.monotonic() + 30
        while True:
            try:
                storage.get("probe")
                break
            except BackendUnavailable:
                assert time.monotonic() < deadline, "the pool never recovered"
                time.sleep(0.2)
        time.sleep(0.5)
    finally:
        stop.set()
        writer.join(timeout=60)
    assert errors == []
    assert len(acknowledged) > 0
    keys = list(acknowledged)
    for start in range(0, len(keys), 1000):
        chunk = keys[start : start + 1000]
        assert storage.get_many(chunk) == {key: acknowledged[key] for key in chunk}


# -- notices --------------------------------------------------------------------------------
def _notices(conn: Any) -> list[str]:
    return [notice.payload for notice in conn.notifies(timeout=0.5)]


def test_writes_send_notices_only_while_a_store_listens(url: str, open_pg: Any) -> None:
    with connect(url) as conn:
        conn.autocommit = True
        conn.execute("DELETE FROM pluginkv_listeners")  # no store listens
        conn.execute("LISTEN pluginkv_changes")
        store = open_pg()
        storage = store.storage(workspace="w", plugin="a/b")
        storage.set("k", b"v")
        storage.delete("k")
        assert _notices(conn) == []  # nobody to wake: no commit paid for a notice

        with storage.change_waiter():  # the store starts listening, and says so
            storage.set("k", b"v")
            storage.delete("k")
            assert _notices(conn) == ['["w", "a/b"]', '["w", "a/b"]']
        assert conn.execute("SELECT count(*) FROM pluginkv_listeners").fetchone() == (1,)

        store.close()
        assert conn.execute("SELECT count(*) FROM pluginkv_listeners").fetchone() == (0,)
