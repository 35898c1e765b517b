"""The writer thread: writes that queue up together share one commit and still answer alone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import pluginkv
from pluginkv import BackendUnavailable, QuotaExceeded, Store, VersionConflict
from pluginkv.backends.memory import MemoryBackend
from pluginkv.services.write_groups import WriteQueue


class Recorder:
    """A ``WriteQueue`` whose first call holds the thread until released, to queue a group."""

    def __init__(self, max_group: int = 128) -> None:
        self.groups: list[int] = []
        self.queue = WriteQueue(max_group=max_group, on_group=self.groups.append)
        self.release = threading.Event()
        self.entered = threading.Event()

    def hold(self) -> None:
        self.entered.set()
        assert self.release.wait(10), "the test never released the writer"


def run_group(recorder: Recorder, store: Store, calls: list[Callable[[], Any]]) -> list[Any]:
    """Queue ``calls`` behind a held first call, release, and gather the outcomes."""

    async def main() -> list[Any]:
        held = asyncio.ensure_future(recorder.queue.run(store.backend, recorder.hold))
        # The writer is inside hold() (on a busy machine that can take a while).
        assert await asyncio.to_thread(recorder.entered.wait, 10)
        pending = [asyncio.ensure_future(recorder.queue.run(store.backend, c)) for c in calls]
        await asyncio.sleep(0.05)  # every call is queued
        recorder.release.set()
        await held
        return await asyncio.gather(*pending, return_exceptions=True)

    try:
        return asyncio.run(main())
    finally:
        recorder.queue.shutdown()


def test_writes_queued_while_the_writer_is_busy_share_one_commit(store: Store) -> None:
    storage = store.storage(workspace="ws", plugin="acme/app")
    recorder = Recorder()
    calls = [lambda i=i: storage.set(f"k{i}", b"v%d" % i) for i in range(20)]

    outcomes = run_group(recorder, store, calls)

    assert [type(outcome) for outcome in outcomes] == [int] * 20  # each write's version
    assert recorder.groups == [1, 20]
    assert storage.get_many(f"k{i}" for i in range(20)) == {f"k{i}": b"v%d" % i for i in range(20)}


def test_a_group_never_holds_more_than_the_setting(store: Store) -> None:
    storage = store.storage(workspace="ws", plugin="acme/app")
    recorder = Recorder(max_group=8)

    run_group(recorder, store, [lambda i=i: storage.set(f"k{i}", b"v") for i in range(20)])

    assert recorder.groups == [1, 8, 8, 4]
    assert storage.usage().keys == 20


def test_a_failing_write_in_a_group_fails_alone(store: Store) -> None:
    store.set_quota(workspace="ws", plugin="acme/app", quota_bytes=100)
    storage = store.storage(workspace="ws", plugin="acme/app")
    storage.set("cas", b"one")
    version = storage.get_entry("cas").version  # type: ignore[union-attr]
    calls: list[Callable[[], Any]] = [
        lambda: storage.set("a", b"x" * 10),
        lambda: storage.set("huge", b"x" * 200),  # over the quota
        lambda: storage.set("cas", b"two", if_version=version + 5),  # wrong version
        lambda: storage.set_many({"m1": b"x" * 40, "m2": b"x" * 40}),  # over, all or nothing
        lambda: storage.incr("n"),
        lambda: storage.set("b", b"y" * 10),
    ]

    outcomes = run_group(Recorder(), store, calls)

    assert type(outcomes[0]) is int and type(outcomes[5]) is int and outcomes[4] == 1
    assert isinstance(outcomes[1], QuotaExceeded)
    assert isinstance(outcomes[2], VersionConflict)
    assert isinstance(outcomes[3], QuotaExceeded)
    assert storage.get_many(["a", "b", "cas", "huge", "m1", "m2", "n"]) == {
        "a": b"x" * 10,
        "b": b"y" * 10,
        "cas": b"one",
        "n": b"1",
    }
    assert storage.usage().bytes_used == sum(
        len(key) + len(value)
        for key, value in [("a", b"x" * 10), ("b", b"y" * 10), ("cas", b"one"), ("n", b"1")]
    )


def test_set_if_absent_racing_in_one_group_has_one_winner(store: Store) -> None:
    storage = store.storage(workspace="ws", plugin="acme/app")
    calls = [lambda i=i: storage.set("lock", b"%d" % i, if_absent=True) for i in range(10)]

    outcomes = run_group(Recorder(), store, calls)

    winners = [i for i, outcome in enumerate(outcomes) if type(outcome) is int]
    assert len(winners) == 1
    assert all(isinstance(o, VersionConflict) for i, o in enumerate(outcomes) if i != winners[0])
    assert storage.get("lock") == b"%d" % winners[0]


def test_a_group_whose_commit_fails_runs_each_write_alone(
    open_store: Callable[..., Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store("sqlite")  # memory commits each write at once: nothing to roll back
    storage = store.storage(workspace="ws", plugin="acme/app")
    real_group = store.backend.group
    failures = []

    @contextmanager
    def failing_commit() -> Iterator[None]:
        with real_group():
            yield
            failures.append("commit")
            raise BackendUnavailable("the disk is full")  # the group rolls back

    monkeypatch.setattr(store.backend, "group", failing_commit)
    calls: list[Callable[[], Any]] = [lambda: storage.incr("n"), lambda: storage.set("k", b"v")]

    outcomes = run_group(Recorder(), store, calls)

    assert failures == ["commit"]
    assert outcomes[0] == 1  # run again alone: incr counted once, not twice
    assert outcomes[1] == storage.get_entry("k").version  # type: ignore[union-attr]
    assert storage.get("n") == b"1" and storage.get("k") == b"v"


def test_a_group_that_cannot_start_gives_every_write_its_error(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = store.storage(workspace="ws", plugin="acme/app")

    @contextmanager
    def locked() -> Iterator[None]:
        raise BackendUnavailable(
            "locked by another writer (setting PLUGINKV_SQLITE_BUSY_TIMEOUT_MS)"
        )
        yield

    monkeypatch.setattr(store.backend, "group", locked)

    outcomes = run_group(
        Recorder(), store, [lambda: storage.set("a", b"1"), lambda: storage.set("b", b"2")]
    )

    assert [type(o) for o in outcomes] == [BackendUnavailable, BackendUnavailable]
    assert storage.get_many(["a", "b"]) == {}


def test_writes_to_different_stores_never_share_a_group(tmp_path: Any) -> None:
    first = pluginkv.open_store(f"sqlite:///{tmp_path / 'one.db'}")
    second = pluginkv.open_store(f"sqlite:///{tmp_path / 'two.db'}")
    recorder = Recorder()
    one = first.storage(workspace="ws", plugin="acme/app")
    two = second.storage(workspace="ws", plugin="acme/app")

    async def main() -> None:
        held = asyncio.ensure_future(recorder.queue.run(first.backend, recorder.hold))
        assert await asyncio.to_thread(recorder.entered.wait, 10)
        pending = [
            recorder.queue.run(first.backend, lambda: one.set("a", b"1")),
            recorder.queue.run(second.backend, lambda: two.set("b", b"2")),
            recorder.queue.run(second.backend, lambda: two.set("c", b"3")),
            recorder.queue.run(first.backend, lambda: one.set("d", b"4")),
        ]
        tasks = [asyncio.ensure_future(p) for p in pending]
        await asyncio.sleep(0.05)
        recorder.release.set()
        await held
        await asyncio.gather(*tasks)

    try:
        asyncio.run(main())
    finally:
        recorder.queue.shutdown()
    assert recorder.groups == [1, 1, 2, 1]
    assert one.get_many(["a", "b", "c", "d"]) == {"a": b"1", "d": b"4"}
    assert two.get_many(["a", "b", "c", "d"]) == {"b": b"2", "c": b"3"}
    first.close()
    second.close()


def test_shutdown_finishes_queued_writes_then_refuses_more(store: Store) -> None:
    storage = store.storage(workspace="ws", plugin="acme/app")
    queue = WriteQueue(max_group=4)

    async def main() -> list[Any]:
        tasks = [
            asyncio.ensure_future(queue.run(store.backend, lambda i=i: storage.set(f"k{i}", b"v")))
            for i in range(10)
        ]
        await asyncio.sleep(0)  # every call is queued
        await asyncio.get_running_loop().run_in_executor(None, queue.shutdown)
        results = await asyncio.gather(*tasks)
        with pytest.raises(RuntimeError, match="shut down"):
            await queue.run(store.backend, lambda: storage.set("late", b"v"))
        return results

    assert [type(result) for result in asyncio.run(main())] == [int] * 10
    assert storage.usage().keys == 10


class ServerLike(MemoryBackend):
    """A memory backend that says, as a database server does, that it orders concurrent writes."""

    concurrent_writes = True

    def __init__(self, parties: int) -> None:
        super().__init__()
        self.together = threading.Barrier(parties, timeout=10)

    def put_now(self, *args: Any, **kwargs: Any) -> int | None:
        self.together.wait()  # returns only once every party is inside a write at once
        return super().put_now(*args, **kwargs)


def test_a_database_server_gets_its_writes_concurrently() -> None:
    backend = ServerLike(parties=4)
    store = Store(pluginkv.Settings(database_url="memory://"), backend=backend)
    storage = store.storage(workspace="ws", plugin="acme/app")
    sizes: list[int] = []
    queue = WriteQueue(max_group=128, threads=4, on_group=sizes.append)

    async def main() -> list[Any]:
        calls = [queue.run(backend, lambda i=i: storage.set(f"k{i}", b"v")) for i in range(4)]
        return await asyncio.gather(*calls)

    try:
        # One writer thread would break the barrier.
        assert [type(result) for result in asyncio.run(main())] == [int] * 4
    finally:
        queue.shutdown()
    assert sizes == [1, 1, 1, 1]
    assert storage.usage().keys == 4
