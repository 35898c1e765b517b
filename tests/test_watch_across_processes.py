"""Watchers see commits made elsewhere: another process on one SQLite file, another store
on one PostgreSQL database (a replica), with one listener per store, never one per waiter."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import pluginkv
from pluginkv import Change, Store

# A bound for a wake-up that is due within PLUGINKV_WATCH_POLL_SECONDS (0.2 s) on
# SQLite and at once on PostgreSQL: generous, so a loaded machine does not fail it.
WAKE_BOUND = 10.0

WRITER = """
import sys, pluginkv
with pluginkv.open_store(sys.argv[1]) as store:
    storage = store.storage(workspace="w", plugin="a/b")
    for key in sys.argv[2:]:
        storage.set(key, b"from another process")
"""


def _write_elsewhere(url: str, *keys: str) -> None:
    subprocess.run([sys.executable, "-c", WRITER, url, *keys], check=True, timeout=60)


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'shared.db'}"


def test_a_waiter_wakes_for_a_commit_of_another_process(tmp_path: Path) -> None:
    url = _url(tmp_path)
    with pluginkv.open_store(url) as store:
        storage = store.storage(workspace="w", plugin="a/b")
        with storage.change_waiter() as waiter:
            page = storage.changes()
            assert page.changes == []
            _write_elsewhere(url, "cfg/x")
            assert waiter.wait(timeout=WAKE_BOUND) is True
        assert [(c.key, c.kind) for c in storage.changes(since=page.next)] == [("cfg/x", "set")]


def test_a_watch_follows_another_processs_commits_in_order(tmp_path: Path) -> None:
    url = _url(tmp_path)
    with pluginkv.open_store(url) as store:
        storage = store.storage(workspace="w", plugin="a/b")
        watching = storage.watch("cfg/")
        got: list[Change] = []

        def follow() -> None:
            for change in watching:
                got.append(change)
                if len(got) == 3:
                    return

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        _write_elsewhere(url, "cfg/a", "other", "cfg/b")
        _write_elsewhere(url, "cfg/c")
        follower.join(timeout=60)
        assert [(c.seq, c.key) for c in got] == [(1, "cfg/a"), (3, "cfg/b"), (4, "cfg/c")]


def test_a_thousand_async_waiters_share_one_listener_and_all_wake(tmp_path: Path) -> None:
    url = _url(tmp_path)
    with pluginkv.open_store(url) as store:
        storage = store.storage(workspace="w", plugin="a/b")
        threads_before = threading.active_count()

        async def wait_all() -> list[bool]:
            waiters = [storage.change_waiter() for _ in range(1000)]
            waits = [asyncio.ensure_future(w.wait_async(WAKE_BOUND)) for w in waiters]
            await asyncio.sleep(0)  # every waiter is waiting now
            listening = threading.active_count() - threads_before
            writer = asyncio.get_running_loop().run_in_executor(None, _write_elsewhere, url, "k")
            woken = await asyncio.gather(*waits)
            await writer
            for waiter in waiters:
                waiter.close()
            assert listening == 1  # the poller: one thread for every waiter
            return woken

        assert all(asyncio.run(wait_all()))


@pytest.mark.postgres
def test_a_replica_wakes_for_a_commit_of_another(open_store: Callable[..., Store]) -> None:
    one = open_store("postgres").storage(workspace="w", plugin="a/b")
    other = open_store("postgres").storage(workspace="w", plugin="a/b")
    with one.change_waiter() as waiter:
        page = one.changes()
        other.set("cfg/x", b"from the other replica")
        assert waiter.wait(timeout=WAKE_BOUND) is True
    assert [(c.key, c.kind) for c in one.changes(since=page.next)] == [("cfg/x", "set")]


@pytest.mark.postgres
def test_a_replica_watch_sees_deletes_of_another(open_store: Callable[..., Store]) -> None:
    one = open_store("postgres").storage(workspace="w", plugin="a/b")
    other = open_store("postgres").storage(workspace="w", plugin="a/b")
    other.set_many({"cfg/a": b"1", "cfg/b": b"2"})
    watching = one.watch("cfg/")
    got: list[Change] = []

    def follow() -> None:
        for change in watching:
            got.append(change)
            if len(got) == 2:
                return

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    other.delete_prefix("cfg/")
    follower.join(timeout=60)
    assert [(c.key, c.kind) for c in got] == [("cfg/a", "delete"), ("cfg/b", "delete")]
