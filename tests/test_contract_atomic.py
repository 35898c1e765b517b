"""``atomic()``: many operations on one scope, all or nothing, on every backend of the engine,
through both HTTP clients and through the plugin channel (``ChannelStorage``)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from pluginkv import (
    CommitResult,
    InvalidArgument,
    InvalidKey,
    QuotaExceeded,
    Storage,
    Store,
    ValueTooLarge,
    WrongValueType,
)

from .conftest import CLIENT_BACKENDS, ENGINE_BACKENDS, FakeClock


@pytest.fixture(name="backend", params=[*ENGINE_BACKENDS, *CLIENT_BACKENDS, "channel"])
def _backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# The engine refuses a commit's limits as each operation is added; a client, which
# does not know the service's settings, from commit() (test_changes_end_to_end.py).
on_the_engine = pytest.mark.parametrize("backend", ENGINE_BACKENDS, indirect=True)


def _small(open_store: Callable[..., Store], backend: str, **settings: object) -> Storage:
    return open_store(backend, **settings).storage(workspace="w", plugin="a/b")


def test_a_commit_applies_every_operation(storage: Storage) -> None:
    version = storage.set("a", b"old")
    storage.set("b", b"gone")
    result = (
        storage.atomic()
        .check("a", version=version)
        .check("lock", version=None)
        .set("a", b"x", ttl=60)
        .delete("b")
        .incr("n", 5)
        .commit()
    )
    assert result.ok and result.failed == []
    assert set(result.versions) == {"a", "n"}
    assert result.counters == {"n": 5}
    assert storage.get("a") == b"x" and storage.get("b") is None and storage.get("n") == b"5"
    entry = storage.get_entry("a")
    assert entry is not None and entry.version == result.versions["a"]
    assert entry.expires_at is not None


def test_a_failed_check_changes_nothing(storage: Storage) -> None:
    version = storage.set("a", b"old")
    storage.set("lock", b"held")
    since = storage.changes().next
    result = (
        storage.atomic()
        .check("a", version=version + 100)
        .check("lock", version=None)
        .check("free", version=None)
        .set("a", b"new")
        .delete("lock")
        .commit()
    )
    assert result == CommitResult(False, {}, ["a", "lock"])
    assert storage.get("a") == b"old" and storage.get("lock") == b"held"
    assert storage.changes(since=since).changes == []


def test_a_check_on_an_expired_key_sees_it_absent(storage: Storage, clock: FakeClock) -> None:
    storage.set("lock", b"held", ttl=5)
    clock.advance(5)
    assert storage.atomic().check("lock", version=None).set("lock", b"mine").commit().ok
    assert storage.get("lock") == b"mine"


def test_operations_apply_in_order(storage: Storage) -> None:
    result = (
        storage.atomic()
        .set("n", b"10")
        .incr("n", 5)
        .set("gone", b"x")
        .delete("gone")
        .delete("back")
        .set("back", b"y")
        .commit()
    )
    assert result.ok and result.counters == {"n": 15}
    assert storage.get("n") == b"15" and storage.get("gone") is None and storage.get("back") == b"y"
    assert set(result.versions) == {"n", "back"}
    assert storage.usage().keys == 2


def test_each_stored_key_gets_one_new_version_and_one_change(storage: Storage) -> None:
    since = storage.changes().next
    result = storage.atomic().set("a", b"1").incr("a").set("b", b"2").commit()
    changes = storage.changes(since=since).changes
    assert [(c.key, c.kind, c.version) for c in changes] == [
        ("a", "set", result.versions["a"]),
        ("b", "set", result.versions["b"]),
    ]
    assert result.versions["b"] == result.versions["a"] + 1


def test_set_in_a_commit_keeps_metadata(storage: Storage) -> None:
    storage.atomic().set("k", b"{}", metadata={"o": 1}, content_type="application/json").commit()
    entry = storage.get_entry("k")
    assert entry is not None
    assert (entry.metadata, entry.content_type) == ({"o": 1}, "application/json")


def test_an_empty_commit_succeeds_and_changes_nothing(storage: Storage) -> None:
    assert storage.atomic().commit() == CommitResult(True, {}, [])
    assert storage.changes().next == 0


def test_the_quota_is_checked_for_the_commit_as_a_whole(
    open_store: Callable[..., Store], backend: str
) -> None:
    storage = _small(open_store, backend, default_quota_bytes=20)
    storage.set("a", b"x" * 9)  # 10 bytes
    with pytest.raises(QuotaExceeded):
        storage.atomic().set("b", b"x" * 9).set("c", b"x" * 9).commit()
    assert storage.get("b") is None and storage.usage().bytes_used == 10
    # A delete in the same commit makes room for what it adds.
    assert storage.atomic().delete("a").set("b", b"x" * 9).set("c", b"x" * 9).commit().ok
    assert storage.usage().bytes_used == 20


def test_an_incr_the_value_refuses_fails_the_whole_commit(storage: Storage) -> None:
    storage.set("text", b"hello")
    with pytest.raises(WrongValueType):
        storage.atomic().set("a", b"1").incr("text").commit()
    assert storage.get("a") is None


@on_the_engine
def test_too_many_operations_are_refused_and_name_the_setting(
    open_store: Callable[..., Store], backend: str
) -> None:
    storage = _small(open_store, backend, max_commit_operations=3)
    commit = storage.atomic().check("a", version=None).set("a", b"1").delete("b")
    with pytest.raises(InvalidArgument, match="PLUGINKV_MAX_COMMIT_OPERATIONS"):
        commit.incr("c")
    assert commit.commit().ok


@on_the_engine
def test_too_many_bytes_are_refused_and_name_the_setting(
    open_store: Callable[..., Store], backend: str
) -> None:
    storage = _small(open_store, backend, max_commit_bytes=10)
    commit = storage.atomic().set("a", b"x" * 4).set("b", b"x" * 4)
    with pytest.raises(InvalidArgument, match="PLUGINKV_MAX_COMMIT_BYTES"):
        commit.set("c", b"x")
    commit.commit()
    assert storage.get_many(["a", "b", "c"]) == {"a": b"xxxx", "b": b"xxxx"}


@on_the_engine
def test_bad_input_raises_as_a_plain_set_does(
    open_store: Callable[..., Store], backend: str
) -> None:
    storage = _small(open_store, backend, max_value_bytes=4)
    with pytest.raises(InvalidKey):
        storage.atomic().set("a\\b", b"v")
    with pytest.raises(ValueTooLarge, match="PLUGINKV_MAX_VALUE_BYTES"):
        storage.atomic().set("a", b"12345")
    with pytest.raises(InvalidArgument):
        storage.atomic().set("a", b"1", ttl=-1)
    with pytest.raises(InvalidArgument):
        storage.atomic().check("a", version=0)
    with pytest.raises(InvalidArgument):
        storage.atomic().incr("a", 2**63)
    assert storage.usage().keys == 0


def test_a_commit_runs_once(storage: Storage) -> None:
    commit = storage.atomic().incr("n")
    commit.commit()
    with pytest.raises(InvalidArgument, match="committed already"):
        commit.commit()
    assert storage.get("n") == b"1"


def test_concurrent_commits_on_the_same_keys_serialise(store: Store) -> None:
    """Each thread moves one unit from "a" to "b" with a checked commit, retrying on a
    failed check: the sum never changes and every move lands exactly once."""
    storage = store.storage(workspace="ws-1", plugin="acme/bank")
    storage.set_many({"a": b"40", "b": b"0"})
    moves, threads = 10, 4

    def move() -> None:
        handle = store.storage(workspace="ws-1", plugin="acme/bank")
        done = 0
        while done < moves:
            a, b = handle.get_entry("a"), handle.get_entry("b")
            assert a is not None and b is not None
            result = (
                handle.atomic()
                .check("a", version=a.version)
                .check("b", version=b.version)
                .set("a", str(int(a.value) - 1).encode())
                .set("b", str(int(b.value) + 1).encode())
                .commit()
            )
            done += result.ok

    workers = [threading.Thread(target=move) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert (storage.get("a"), storage.get("b")) == (b"0", b"40")
