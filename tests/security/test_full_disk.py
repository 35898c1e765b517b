"""A full disk never locks data in: deletes run and give the space back, writes get 507.

Each test mounts a real 32 MiB tmpfs and fills it through pluginkv, through
the library and through ``pluginkv serve``.  The reserve (5 MiB) must exceed
the WAL a checkpoint may still have to copy (4 MiB), so 8 MiB would leave
little room for data.  Mounting needs root (CI runs as
root); elsewhere the tests skip, except under ``CI``, where they fail.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import pluginkv
from pluginkv import DiskFull, QuotaExceeded, Storage, Store
from pluginkv.client import RemoteStorage

from ..conftest import FakeClock
from ..server.test_serve import Service

MiB = 1024 * 1024
RESERVE = 5 * MiB  # past the WAL (4 MiB) a checkpoint may still have to copy
VALUE_BYTES = 40_000


@pytest.fixture(name="disk")
def _disk(tmp_path: Path) -> Iterator[Path]:
    """A 32 MiB tmpfs of the test's own, unmounted afterwards."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("mounting a tmpfs needs root, which CI has")
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.fixture(name="open_on")
def _open_on(clock: FakeClock) -> Iterator[Callable[[Path], Store]]:
    """Open a SQLite store on a directory with a 1 MiB reserve; all closed afterwards."""
    opened: list[Store] = []

    def open_(directory: Path) -> Store:
        store = pluginkv.open_store(
            f"sqlite:///{directory}/pluginkv.db",
            clock=clock,
            sqlite_disk_reserve_bytes=RESERVE,
            sweep_interval_seconds=0,
        )
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


def value(index: int) -> bytes:
    return os.urandom(VALUE_BYTES - 16) + index.to_bytes(16, "big")


def fill(write: Callable[[str, bytes], Any]) -> dict[str, bytes]:
    """Write keys until the disk refuses one; the acknowledged keys with their values."""
    acknowledged: dict[str, bytes] = {}
    for index in range(10_000):
        key, data = f"k{index:05d}", value(index)
        try:
            write(key, data)
        except DiskFull:
            assert len(acknowledged) > 200  # the disk filled up, not something else
            return acknowledged
        acknowledged[key] = data
    raise AssertionError("32 MiB never filled up")


def integrity(database: Path) -> str:
    with closing(sqlite3.connect(database)) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def free_bytes(directory: Path) -> int:
    info = os.statvfs(directory)
    return info.f_bavail * info.f_frsize


def fill_with_a_file(directory: Path) -> Path:
    """What another program does: a file that takes the disk's last byte."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as file:
        try:
            while True:
                file.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def delete_one(store: Store, storage: Storage, keys: list[str]) -> list[str]:
    storage.delete(keys[0])
    return keys[:1]


def delete_many(store: Store, storage: Storage, keys: list[str]) -> list[str]:
    assert storage.delete_many(keys[:50]) == 50
    return keys[:50]


def delete_prefix(store: Store, storage: Storage, keys: list[str]) -> list[str]:
    gone = [key for key in keys if key.startswith("k000")]
    assert storage.delete_prefix("k000") == len(gone) == 100
    return gone


def purge(store: Store, storage: Storage, keys: list[str]) -> list[str]:
    assert store.purge(workspace=storage.workspace, plugin=storage.plugin) == len(keys)
    return keys


def sweep(store: Store, storage: Storage, keys: list[str]) -> list[str]:
    store.clock.advance(7200)  # type: ignore[attr-defined]  # the FakeClock of open_on
    assert store.sweep_expired() == len(keys)
    return keys


@pytest.mark.parametrize(
    "free",
    [
        pytest.param(delete_one, id="delete"),
        pytest.param(delete_many, id="delete_many"),
        pytest.param(delete_prefix, id="delete_prefix"),
        pytest.param(purge, id="purge"),
        pytest.param(sweep, id="expiry-sweep"),
    ],
)
def test_every_delete_path_runs_on_a_full_disk_and_the_space_can_be_written_again(
    disk: Path,
    open_on: Callable[[Path], Store],
    free: Callable[[Store, Storage, list[str]], list[str]],
) -> None:
    store = open_on(disk)
    storage = store.storage(workspace="ws", plugin="acme/weather")
    stored = fill(lambda key, data: storage.set(key, data, ttl=3600))
    with pytest.raises(DiskFull):
        storage.set("more", value(0))

    deleted = free(store, storage, sorted(stored))

    for key in deleted:  # what was deleted fits again
        storage.set(key, stored[key], ttl=3600)
    assert storage.get_many(deleted) == {key: stored[key] for key in deleted}
    assert integrity(disk / "pluginkv.db") == "ok"


def test_a_delete_on_a_full_disk_drops_the_change_log_and_a_reader_behind_is_told(
    disk: Path, open_on: Callable[[Path], Store]
) -> None:
    """A change row may need a page the disk cannot give: the delete still runs, and the
    scope's log is dropped rather than left with a hole, so a reader re-reads."""
    store = open_on(disk)
    storage = store.storage(workspace="ws", plugin="acme/weather")
    stored = fill(storage.set)
    since = len(stored)  # one change per key stored
    with pytest.raises(DiskFull):
        storage.set("more", value(0))

    storage.delete(sorted(stored)[0])

    with pytest.raises(pluginkv.ChangesExpired) as behind:
        storage.changes(since=since)
    assert behind.value.oldest == since + 2  # the delete took since + 1, and is not kept
    assert storage.changes(since=since + 1).changes == []
    assert integrity(disk / "pluginkv.db") == "ok"


def test_a_write_on_a_full_disk_is_disk_full_not_quota_and_changes_nothing(
    disk: Path, open_on: Callable[[Path], Store]
) -> None:
    store = open_on(disk)
    storage = store.storage(workspace="ws", plugin="acme/weather")
    stored = fill(storage.set)
    before = storage.usage()

    with pytest.raises(DiskFull) as refused:
        storage.set_many({"a": value(1), "b": value(2)})

    assert not isinstance(refused.value, QuotaExceeded)
    assert "PLUGINKV_SQLITE_DISK_RESERVE_BYTES" in str(refused.value)
    assert refused.value.code == "disk_full"
    assert storage.usage() == before
    assert storage.get_many(list(stored)) == stored
    store.close()
    assert integrity(disk / "pluginkv.db") == "ok"


def test_a_full_disk_still_deletes_after_a_restart(
    disk: Path, open_on: Callable[[Path], Store]
) -> None:
    store = open_on(disk)
    stored = fill(store.storage(workspace="ws", plugin="acme/weather").set)
    store.close()

    store = open_on(disk)
    storage = store.storage(workspace="ws", plugin="acme/weather")
    assert store.backend.disk_full() is not None
    with pytest.raises(DiskFull):
        storage.set("more", value(0))
    assert storage.delete_many(sorted(stored)[:10]) == 10
    assert store.purge(workspace="ws", plugin="acme/weather") == len(stored) - 10
    for key, data in stored.items():  # the whole scope fits again
        storage.set(key, data)
    assert integrity(disk / "pluginkv.db") == "ok"


def test_a_disk_filled_by_another_program_lets_the_first_delete_through(
    disk: Path, open_on: Callable[[Path], Store]
) -> None:
    store = open_on(disk)
    storage = store.storage(workspace="ws", plugin="acme/weather")
    for index in range(20):
        storage.set(f"k{index:05d}", value(index))
    filler = fill_with_a_file(disk)

    storage.delete("k00000")
    assert storage.delete_prefix("k0001") == 10
    storage.set("k00000", value(0))  # into the room the deletes made, and no more:
    with pytest.raises(DiskFull):
        storage.set_many({f"new{index}": value(index) for index in range(20)})
    assert storage.get("k00001") is not None

    filler.unlink()  # the operator makes room elsewhere: writes resume by themselves
    storage.set_many({f"new{index}": value(index) for index in range(20)})
    assert store.backend.disk_full() is None


def test_the_reserve_is_allocated_private_released_when_full_and_taken_back_with_room(
    disk: Path, open_on: Callable[[Path], Store]
) -> None:
    reserve = disk / "pluginkv.db-reserve"
    others = disk / "other-data"  # what the operator can remove to make room
    others.write_bytes(b"\0" * (2 * RESERVE + MiB))
    store = open_on(disk)
    info = reserve.stat()
    assert info.st_size == RESERVE and info.st_blocks * 512 >= RESERVE  # not sparse
    assert info.st_mode & 0o777 == 0o600
    storage = store.storage(workspace="ws", plugin="acme/weather")
    stored = fill(storage.set)
    assert reserve.stat().st_size == 0
    storage.delete("k00000")
    storage.set("k00000", stored["k00000"])  # into the room the delete made
    assert reserve.stat().st_size == 0
    assert store.backend.disk_full() is not None

    others.unlink()

    assert store.backend.disk_full() is None
    assert reserve.stat().st_size == RESERVE
    storage.set("more", value(0))  # the database may grow again


# -- the service ---------------------------------------------------------------------------
@pytest.fixture(name="service")
def _service(disk: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Service]:
    monkeypatch.setenv("PLUGINKV_SQLITE_DISK_RESERVE_BYTES", str(RESERVE))
    service = Service(disk / "data")
    service.start()
    yield service
    if service.process is not None and service.process.poll() is None:
        service.stop()


def test_the_service_answers_507_disk_full_and_deletes_on_every_route_after_a_restart(
    service: Service,
) -> None:
    token = service.token("--workspace", "ws", "--plugin", "acme/weather")
    admin = service.token("--admin")
    with RemoteStorage(service.url, token) as client:
        stored = fill(client.set)  # the SDK raises DiskFull too
    status, body = service.call("PUT", "/v1/kv/more", token, value(0))
    assert status == 507
    error = json.loads(body)["error"]
    assert error["code"] == "disk_full" and "PLUGINKV_SQLITE_DISK_RESERVE_BYTES" in error["message"]
    status, body = service.call("GET", "/readyz", token)
    assert status == 200  # reads and deletes are served: a balancer must keep sending them
    assert json.loads(body)["status"] == "disk_full"
    service.stop()

    service.start()
    keys = sorted(stored)
    assert service.call("DELETE", f"/v1/kv/{keys[0]}", token)[0] == 204
    batch = json.dumps({"keys": keys[1:20]}).encode()
    assert service.call("POST", "/v1/batch/delete", token, batch) == (200, b'{"deleted":19}')
    status, body = service.call("DELETE", "/v1/keys?prefix=k001", token)
    assert status == 200 and json.loads(body)["deleted"] == 100
    purge = json.dumps({"workspace": "ws", "plugin": "acme/weather"}).encode()
    status, body = service.call("POST", "/v1/admin/purge", admin, purge)
    assert status == 200 and json.loads(body)["deleted"] == len(stored) - 120
    for key in keys[:100]:  # the room the deletes made takes writes again
        assert service.call("PUT", f"/v1/kv/{key}", token, stored[key])[0] == 204
    service.stop()
    assert integrity(service.data_dir / "pluginkv.db") == "ok"


@pytest.mark.postgres
def test_postgres_reports_a_full_disk_as_disk_full(postgres_url: str) -> None:
    """PostgreSQL's SQLSTATE 53100 (a table that cannot grow) is the same 507 ``DiskFull``."""
    import psycopg

    with pluginkv.open_store(postgres_url) as store:
        full = psycopg.errors.DiskFull('could not extend file "base/5/16384": No space left')
        error = store.backend._unavailable(full)  # type: ignore[attr-defined]
    assert isinstance(error, DiskFull) and "No space left" in str(error)


def test_disk_full_comes_back_as_disk_full_over_http_and_the_plugin_channel() -> None:
    from pluginkv.client.errors import error_from_response
    from pluginkv.dify.plugin_storage import _error
    from pluginkv.server.errors import error_response

    sent = error_response(DiskFull("the disk of SQLite database x is full"))
    assert sent.status_code == 507 and sent.headers["X-Error-Code"] == "disk_full"
    over_http = error_from_response(507, bytes(sent.body))
    over_channel = _error(json.loads(sent.body)["error"])
    for error in (over_http, over_channel):
        assert type(error) is DiskFull and str(error) == "the disk of SQLite database x is full"
