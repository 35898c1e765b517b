"""The change log and ``watch()``, on every backend of the engine and through both HTTP
clients.

The clients follow it on long polls of ``GET /v1/changes``, the plugin channel
(``ChannelStorage``) on long polls of its ``changes`` call.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Callable, Iterator

import pytest

from pluginkv import (
    Change,
    ChangesExpired,
    InvalidArgument,
    QuotaExceeded,
    Storage,
    Store,
    VersionConflict,
)
from pluginkv.transfer import export_store, import_lines

from .conftest import CLIENT_BACKENDS, ENGINE_BACKENDS, FakeClock

# What only the engine has: change_waiter(), a change's time (``at``; the service sends
# none), and the store's own calls (sweep, import) in between.
on_the_engine = pytest.mark.parametrize("backend", ENGINE_BACKENDS, indirect=True)
# The async client's watch() reads its start when the iteration begins, not when called
# (tests/client/test_changes_end_to_end.py).
starts_when_called = pytest.mark.parametrize(
    "backend",
    [*ENGINE_BACKENDS, *(b for b in CLIENT_BACKENDS if b != "remote-async"), "channel"],
    indirect=True,
)


@pytest.fixture(name="backend", params=[*ENGINE_BACKENDS, *CLIENT_BACKENDS, "channel"])
def _backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _pages(storage: Storage) -> Iterator[list[Change]]:
    since = None
    while page := storage.changes(since=since).changes:
        yield page
        since = page[-1].seq


def _seen(changes: list[Change]) -> list[tuple[str, str]]:
    return [(change.key, change.kind) for change in changes]


class TestTheLog:
    def test_every_write_is_one_change_per_key_in_commit_order(self, storage: Storage) -> None:
        storage.set("a", b"1")
        storage.set_many({"b": b"2", "c": b"3"})
        storage.incr("n")
        storage.delete("a")
        storage.delete("never-set")  # deletes nothing: no change
        storage.delete_many(["b", "absent"])
        storage.set("p/1", b"x")
        storage.set("p/2", b"y", if_absent=True)
        storage.delete_prefix("p/")
        page = storage.changes()
        assert _seen(page.changes) == [
            ("a", "set"),
            ("b", "set"),
            ("c", "set"),
            ("n", "set"),
            ("a", "delete"),
            ("b", "delete"),
            ("p/1", "set"),
            ("p/2", "set"),
            ("p/1", "delete"),
            ("p/2", "delete"),
        ]
        assert [change.seq for change in page.changes] == list(range(1, 11))
        assert page.next == 10

    @on_the_engine
    def test_a_change_carries_the_version(self, storage: Storage, clock: FakeClock) -> None:
        version = storage.set("k", b"v")
        clock.advance(3)
        storage.delete("k")
        first, second = storage.changes().changes
        assert (first.kind, first.version, first.at) == ("set", version, clock.now - 3)
        assert (second.kind, second.version, second.at) == ("delete", version, clock.now)

    def test_writes_that_fail_log_nothing(
        self, open_store: Callable[..., Store], backend: str
    ) -> None:
        storage = open_store(backend, default_quota_bytes=10).storage(workspace="w", plugin="a/b")
        storage.set("k", b"v")
        with pytest.raises(VersionConflict):
            storage.set("k", b"w", if_absent=True)
        with pytest.raises(QuotaExceeded):
            storage.set("big", b"x" * 20)
        with pytest.raises(QuotaExceeded):
            storage.set_many({"x": b"1", "y": b"x" * 20})
        assert _seen(storage.changes().changes) == [("k", "set")]

    @on_the_engine
    def test_expired_entries_reclaimed_are_expire_changes(
        self, store: Store, storage: Storage, clock: FakeClock
    ) -> None:
        storage.set("short", b"v", ttl=5)
        storage.set("long", b"v", ttl=500)
        clock.advance(10)
        assert store.sweep_expired() == 1
        change = storage.changes().changes[-1]
        assert (change.key, change.kind, change.at) == ("short", "expire", clock.now)

    def test_a_key_written_again_after_it_expired_is_an_expire_then_a_set(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        storage.set("k", b"old", ttl=5)
        clock.advance(10)
        since = storage.changes().next
        version = storage.set("k", b"new")
        changes = storage.changes(since=since).changes
        assert [(c.key, c.kind) for c in changes] == [("k", "expire"), ("k", "set")]
        assert [c.seq for c in changes] == [since + 1, since + 2]
        assert changes[0].version < changes[1].version == version
        assert storage.usage().keys == 1

    def test_an_increment_of_an_expired_counter_is_an_expire_then_a_set(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        storage.incr("n", 5)
        storage.set("n", b"5", ttl=5)
        clock.advance(10)
        since = storage.changes().next
        assert storage.incr("n", 2) == 2
        assert _seen(storage.changes(since=since).changes) == [("n", "expire"), ("n", "set")]

    def test_a_live_key_written_again_is_one_set(self, storage: Storage, clock: FakeClock) -> None:
        storage.set("k", b"old", ttl=50)
        clock.advance(10)
        since = storage.changes().next
        storage.set("k", b"new")
        assert _seen(storage.changes(since=since).changes) == [("k", "set")]

    def test_a_prefix_delete_reports_expired_keys_as_expired(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        storage.set("p/old", b"v", ttl=5)
        storage.set("p/new", b"v")
        clock.advance(10)
        since = storage.changes().next
        storage.delete_prefix("p/")
        assert _seen(storage.changes(since=since).changes) == [
            ("p/new", "delete"),
            ("p/old", "expire"),
        ]

    def test_a_delete_that_reaches_an_expired_key_is_an_expire(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        storage.set_many({"one": b"v", "many": b"v", "commit": b"v"}, ttl=5)
        clock.advance(10)
        since = storage.changes().next
        storage.delete("one")
        storage.delete_many(["many"])
        storage.atomic().delete("commit").commit()
        assert _seen(storage.changes(since=since).changes) == [
            ("one", "expire"),
            ("many", "expire"),
            ("commit", "expire"),
        ]

    def test_a_batch_delete_logs_its_keys_in_key_order(self, storage: Storage) -> None:
        storage.set_many({"b": b"1", "é": b"2", "a": b"3"})
        since = storage.changes().next
        assert storage.delete_many(["é", "b", "a", "b"]) == 3
        assert _seen(storage.changes(since=since).changes) == [
            ("a", "delete"),
            ("b", "delete"),
            ("é", "delete"),
        ]

    def test_a_purge_is_a_delete_per_key_and_the_sequence_goes_on(self, store: Store) -> None:
        storage = store.storage(workspace="w", plugin="a/b")
        storage.set_many({"a": b"1", "b": b"2"})
        store.purge(workspace="w", plugin="a/b")
        storage.set("c", b"3")
        page = storage.changes()
        assert _seen(page.changes) == [
            ("a", "set"),
            ("b", "set"),
            ("a", "delete"),
            ("b", "delete"),
            ("c", "set"),
        ]
        assert page.next == 5

    def test_scopes_never_see_each_others_changes(self, store: Store) -> None:
        one = store.storage(workspace="w1", plugin="a/b")
        other = store.storage(workspace="w2", plugin="a/b")
        sibling = store.storage(workspace="w1", plugin="a/c")
        one.set("k", b"1")
        other.set("k", b"2")
        other.set("j", b"2")
        assert _seen(one.changes().changes) == [("k", "set")]
        assert [c.seq for c in other.changes().changes] == [1, 2]
        assert sibling.changes().changes == [] and sibling.changes().next == 0

    @on_the_engine
    def test_an_import_is_a_set_per_entry_and_wakes_watchers(
        self, open_store: Callable[..., Store], store: Store
    ) -> None:
        source = open_store("memory")
        source.storage(workspace="ws-1", plugin="acme/weather").set_many({"a": b"1", "b": b"2"})
        exported = io.BytesIO()
        export_store(source, exported)
        storage = store.storage(workspace="ws-1", plugin="acme/weather")
        with storage.change_waiter() as waiter:
            import_lines(store, io.BytesIO(exported.getvalue()))
            assert waiter.wait(timeout=0) is True
        assert _seen(storage.changes().changes) == [("a", "set"), ("b", "set")]

    def test_concurrent_writers_leave_a_gap_free_log_a_watcher_sees_once(
        self, store: Store
    ) -> None:
        storage = store.storage(workspace="ws-1", plugin="acme/busy")
        writers, writes = 4, 15
        got: list[Change] = []
        watching = storage.watch(since=0)

        def follow() -> None:
            for change in watching:
                got.append(change)
                if len(got) == writers * writes:
                    return

        def write(n: int) -> None:
            handle = store.storage(workspace="ws-1", plugin="acme/busy")
            for i in range(writes):
                if i % 3 == 0:
                    handle.atomic().set(f"w{n}/{i}", b"v").commit()
                elif i % 3 == 1:
                    handle.incr(f"w{n}/count")
                else:
                    handle.delete(f"w{n}/{i - 2}")

        follower = threading.Thread(target=follow)
        follower.start()
        threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        follower.join(timeout=60)
        assert [change.seq for change in got] == list(range(1, writers * writes + 1))
        logged = [change.seq for page in _pages(storage) for change in page]
        assert logged == list(range(1, writers * writes + 1))


class TestPaging:
    def test_pages_follow_next_to_every_change_once(self, storage: Storage) -> None:
        for i in range(7):
            storage.set(f"k{i}", b"v")
        seen: list[int] = []
        since = None
        while True:
            page = storage.changes(since=since, limit=3)
            seen += [change.seq for change in page.changes]
            if not page.changes:
                break
            since = page.next
        assert seen == list(range(1, 8))

    def test_a_prefix_selects_changes_and_next_skips_the_rest(self, storage: Storage) -> None:
        storage.set("cfg/a", b"1")
        storage.set("other", b"2")
        storage.set("cfg/b", b"3")
        storage.set("other", b"4")
        page = storage.changes("cfg/")
        assert _seen(page.changes) == [("cfg/a", "set"), ("cfg/b", "set")]
        assert page.next == 4
        assert storage.changes("cfg/", since=page.next).changes == []

    def test_a_full_page_continues_after_its_last_change(self, storage: Storage) -> None:
        for key in ["a", "b", "c"]:
            storage.set(key, b"v")
        page = storage.changes(limit=2)
        assert page.next == 2
        assert _seen(storage.changes(since=page.next).changes) == [("c", "set")]

    @pytest.mark.parametrize("since", [-1, "1", 1.0, True])
    def test_a_bad_since_is_refused(self, storage: Storage, since: object) -> None:
        with pytest.raises(InvalidArgument, match="since"):
            storage.changes(since=since)  # type: ignore[arg-type]

    @pytest.mark.parametrize("limit", [0, 1001, "5"])
    def test_a_bad_limit_is_refused(self, storage: Storage, limit: object) -> None:
        with pytest.raises(InvalidArgument, match="PLUGINKV_MAX_PAGE_SIZE"):
            storage.changes(limit=limit)  # type: ignore[arg-type]

    def test_since_past_the_last_change_is_refused(self, storage: Storage) -> None:
        storage.set("k", b"v")
        assert storage.changes(since=1).changes == []
        with pytest.raises(InvalidArgument, match="past the last change"):
            storage.changes(since=2)


class TestRetention:
    def test_the_log_keeps_the_latest_changes_by_count(
        self, open_store: Callable[..., Store], backend: str
    ) -> None:
        store = open_store(backend, changes_retention_count=3)
        storage = store.storage(workspace="w", plugin="a/b")
        for i in range(5):
            storage.set(f"k{i}", b"v")
        store.sweep_expired()
        assert [c.seq for c in storage.changes().changes] == [3, 4, 5]
        assert [c.seq for c in storage.changes(since=2).changes] == [3, 4, 5]
        with pytest.raises(ChangesExpired) as info:
            storage.changes(since=1)
        assert info.value.oldest == 3
        assert "PLUGINKV_CHANGES_RETENTION_COUNT" in str(info.value)

    def test_the_log_keeps_changes_for_a_time(
        self, open_store: Callable[..., Store], backend: str, clock: FakeClock
    ) -> None:
        store = open_store(backend, changes_retention_seconds=60)
        storage = store.storage(workspace="w", plugin="a/b")
        storage.set("old", b"v")
        clock.advance(61)
        storage.set("new", b"v")
        store.sweep_expired()
        assert _seen(storage.changes().changes) == [("new", "set")]
        with pytest.raises(ChangesExpired) as info:
            storage.changes(since=0)
        assert info.value.oldest == 2

    def test_the_window_drops_only_the_oldest_changes_when_the_clock_stepped_back(
        self,
        open_store: Callable[..., Store],
        backend: str,
        clock: FakeClock,
    ) -> None:
        # A change stamped earlier than the one before it (the clock stepped
        # back) goes with the changes after it: a hole would skip it unseen.
        store = open_store(backend, changes_retention_seconds=60)
        storage = store.storage(workspace="w", plugin="a/b")
        storage.set("a", b"v")
        clock.advance(100)
        storage.set("b", b"v")
        clock.advance(-90)
        storage.set("c", b"v")
        clock.advance(65)
        store.sweep_expired()
        assert _seen(storage.changes(since=1).changes) == [("b", "set"), ("c", "set")]
        with pytest.raises(ChangesExpired) as info:
            storage.changes(since=0)
        assert info.value.oldest == 2

    def test_with_every_change_dropped_the_next_one_is_the_oldest(
        self, open_store: Callable[..., Store], backend: str, clock: FakeClock
    ) -> None:
        store = open_store(backend, changes_retention_seconds=60)
        storage = store.storage(workspace="w", plugin="a/b")
        storage.set("k", b"v")
        storage.set("k", b"w")
        clock.advance(61)
        store.sweep_expired()
        page = storage.changes()
        assert (page.changes, page.next) == ([], 2)
        with pytest.raises(ChangesExpired) as info:
            storage.changes(since=1)
        assert info.value.oldest == 3


class TestWatch:
    def test_a_watch_sees_each_change_once_in_order(self, storage: Storage) -> None:
        storage.set("cfg/before", b"0")
        since = storage.changes().next
        got: list[Change] = []
        watching = storage.watch("cfg/", since=since)

        def follow() -> None:
            for change in watching:
                got.append(change)
                if change.key == "cfg/last":
                    return

        follower = threading.Thread(target=follow)
        follower.start()
        storage.set("cfg/a", b"1")
        storage.set("elsewhere", b"2")
        storage.set_many({"cfg/b": b"3", "cfg/c": b"4"})
        storage.delete("cfg/a")
        storage.set("cfg/last", b"5")
        follower.join(timeout=30)
        assert _seen(got) == [
            ("cfg/a", "set"),
            ("cfg/b", "set"),
            ("cfg/c", "set"),
            ("cfg/a", "delete"),
            ("cfg/last", "set"),
        ]

    @starts_when_called
    def test_a_watch_refuses_a_bad_start_at_once(
        self, open_store: Callable[..., Store], backend: str
    ) -> None:
        store = open_store(backend, changes_retention_count=1)
        storage = store.storage(workspace="w", plugin="a/b")
        storage.set_many({"a": b"1", "b": b"2"})
        store.sweep_expired()
        with pytest.raises(ChangesExpired):
            storage.watch(since=0)
        with pytest.raises(InvalidArgument, match="PLUGINKV_MAX_PAGE_SIZE"):
            storage.watch(page_size=0)
        with pytest.raises(InvalidArgument, match="past the last change"):
            storage.watch(since=3)

    @starts_when_called
    def test_a_watch_from_now_skips_what_came_before(self, storage: Storage) -> None:
        storage.set("k", b"old")
        watching = storage.watch()
        storage.set("k", b"new")
        change = next(watching)
        assert (change.seq, change.key) == (2, "k")

    @on_the_engine
    def test_a_waiter_wakes_for_a_commit_after_it_registered(self, store: Store) -> None:
        storage = store.storage(workspace="w", plugin="a/b")
        other = store.storage(workspace="w", plugin="a/other")
        with storage.change_waiter() as waiter:
            assert waiter.wait(timeout=0) is False
            other.set("k", b"v")  # another scope: no wake
            assert waiter.wait(timeout=0) is False
            storage.set("k", b"v")
            assert waiter.wait(timeout=0) is True
            assert waiter.wait(timeout=0) is False

    @on_the_engine
    def test_an_async_waiter_wakes_without_a_thread(self, storage: Storage) -> None:
        async def wait_for_a_write() -> bool:
            with storage.change_waiter() as waiter:
                writer = asyncio.get_running_loop().run_in_executor(None, storage.set, "k", b"v")
                woken = await waiter.wait_async(timeout=30)
                await writer
                return woken

        assert asyncio.run(wait_for_a_write()) is True
        assert storage.get("k") == b"v"

    @on_the_engine
    def test_an_async_waiter_times_out_when_nothing_changes(self, storage: Storage) -> None:
        async def wait() -> bool:
            with storage.change_waiter() as waiter:
                return await waiter.wait_async(timeout=0.01)

        assert asyncio.run(wait()) is False

    def test_expiries_reach_a_watch(self, store: Store, storage: Storage, clock: FakeClock) -> None:
        storage.set("t", b"v", ttl=1)
        watching: Iterator[Change] = storage.watch(since=storage.changes().next)
        clock.advance(2)
        store.sweep_expired()
        change = next(watching)
        assert (change.key, change.kind) == ("t", "expire")
