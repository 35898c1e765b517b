"""``pluginkv.dify.storage(session)`` on pluginkv's host, and on one with only Dify's four verbs.

The SDK's side of the channel is played by stand-ins here (its
``StorageInvocation``); ``test_plugins.py`` runs the same through the real SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

import pluginkv
import pluginkv.dify
from pluginkv import (
    ChangesExpired,
    InvalidArgument,
    InvalidKey,
    NotSupported,
    QuotaExceeded,
    ReadOnly,
    Store,
    VersionConflict,
)
from pluginkv.dify.messages import LOAD_FAILED
from pluginkv.dify.plugin_storage import ChannelStorage
from pluginkv.host.extended_storage import serve_extended
from pluginkv.host.manifest import parse_manifest
from pluginkv.host.storage_handler import StorageRefused, serve_storage
from pluginkv.services.readers import Readers
from pluginkv.services.write_groups import WriteQueue
from pluginkv.testing import FakeSession

from .fake_plugin import manifest


class _RecordingWriter(WriteQueue):
    def __init__(self, written: list[str], call: object) -> None:
        super().__init__(max_group=1)
        self._written, self._call = written, str(call)

    async def run(self, backend: Any, call: Callable[[], Any], *, quick: bool = False) -> Any:
        self._written.append(self._call)
        return await super().run(backend, call, quick=quick)


class PluginkvHost:
    """What the SDK's StorageInvocation does on pluginkv's host, for extended requests."""

    def __init__(self, store: Store) -> None:
        self.storage = store.storage(workspace="ws-1", plugin="acme/plus")
        self.store = store
        self.requests: list[dict[str, Any]] = []
        self.written: list[str] = []  # the calls that went through the service's writer
        self.waiting = threading.Event()  # set when a changes call that may wait arrives

    def _backwards_invoke(self, kind: Any, data_type: Any, request: dict[str, Any]) -> Any:
        self.requests.append(request)
        if request.get("call") == "changes" and request["args"].get("wait"):
            self.waiting.set()

        async def serve() -> Any:
            writer = _RecordingWriter(self.written, request.get("call"))
            readers = Readers(threads=1)
            try:
                return await serve_extended(
                    request, storage=self.storage, store=self.store, writer=writer, readers=readers
                )
            finally:
                readers.shutdown()
                writer.shutdown()

        yield asyncio.run(serve())

    @contextlib.contextmanager
    def writing_once_waited_on(self, key: str) -> Iterator[None]:
        """Set ``key`` (through the engine) once a ``changes`` call that may wait came."""

        def write() -> None:
            if self.waiting.wait(30):
                self.storage.set(key, b"v")

        writer = threading.Thread(target=write)
        writer.start()
        try:
            yield
        finally:
            writer.join()


class DifyDaemon:
    """A host with Dify's four verbs only: an error for anything else."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def _backwards_invoke(self, kind: Any, data_type: Any, request: dict[str, Any]) -> Any:
        raise Exception(f"unsupported storage operation: {request['opt']}")

    def set(self, key: str, val: bytes) -> None:
        self.data[key] = val

    def get(self, key: str) -> bytes:
        if key not in self.data:
            raise Exception(LOAD_FAILED)
        return self.data[key]

    def exist(self, key: str) -> bool:
        return key in self.data

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


# The plugin channel's storage on every engine: reads of PostgreSQL go through
# the service's reader threads, writes through its writer.
@pytest.fixture(name="store", params=["memory", "sqlite", "postgres"])
def _store(open_store: Callable[..., Store], request: pytest.FixtureRequest) -> Store:
    return open_store(request.param, plugin_quotas={"acme/plus": 100})


class TestOnPluginkvsHost:
    def test_every_storage_method_works(self, store: Store) -> None:
        full = ChannelStorage(PluginkvHost(store))
        full.set("a", b"1", ttl=60)
        full.set_many({"b": b"2", "c": b"3"})
        assert full.get("a") == b"1" and full.get("nope") is None
        assert full.exist("b") and not full.exist("nope")
        assert [e.key for e in full.keys()] == ["a", "b", "c"]
        assert full.get_many(["a", "c", "x"]) == {"a": b"1", "c": b"3"}
        entry = full.get_entry("a")
        assert entry is not None and entry.expires_at is not None
        meta = full.get_meta("a")
        assert meta is not None and (meta.version, meta.size) == (entry.version, entry.size)
        assert full.get_meta("nope") is None
        assert full.incr("n", 5) == 5
        full.set_json("j", {"x": 1})
        assert full.get_json("j") == {"x": 1}
        assert full.delete_many(["b", "x"]) == 1
        assert full.delete_prefix("", all=True) == 4
        assert full.usage().keys == 0

    def test_writes_return_their_versions_and_conditions_hold(self, store: Store) -> None:
        full = ChannelStorage(PluginkvHost(store))
        version = full.set("k", b"1")
        assert version == full.get_entry("k").version  # type: ignore[union-attr]
        assert full.set("k", b"2", if_version=version) == version + 1  # type: ignore[operator]
        with pytest.raises(VersionConflict):
            full.set("absent", b"v", if_exists=True)
        with pytest.raises(VersionConflict):
            full.delete("absent", if_exists=True)
        assert full.set_many({"a": b"1"}) == {"a": full.get_entry("a").version}  # type: ignore[union-attr]
        full.set_many({f"p/{i}": b"v" for i in range(5)})
        assert [e.key for e in full.iter_keys("p/", page_size=2)] == [f"p/{i}" for i in range(5)]

    def test_engine_errors_arrive_as_the_engines_exceptions(self, store: Store) -> None:
        full = ChannelStorage(PluginkvHost(store))
        full.set("k", b"v")
        with pytest.raises(VersionConflict) as conflict:
            full.set("k", b"w", if_absent=True)
        assert conflict.value.actual == 1
        with pytest.raises(QuotaExceeded) as quota:
            full.set("big", b"x" * 200)
        assert quota.value.limit == 100


class TestCommitsOnPluginkvsHost:
    def test_a_commit_applies_every_operation_in_one_call(self, store: Store) -> None:
        host = PluginkvHost(store)
        full = ChannelStorage(host)
        version = full.set("a", b"old")
        host.requests.clear()
        host.written.clear()
        result = (
            full.atomic()
            .check("a", version=version)
            .check("lock", version=None)
            .set("a", b"x", ttl=60, metadata={"by": "me"}, content_type="text/plain")
            .incr("n", 5)
            .commit()
        )
        assert result.ok and result.failed == [] and result.counters == {"n": 5}
        assert result.versions == {"a": version + 1, "n": result.versions["n"]}
        assert [request["call"] for request in host.requests] == ["atomic"]
        assert host.written == ["atomic"]  # through the service's writer, as other writes
        entry = host.storage.get_entry("a")
        assert entry is not None and entry.value == b"x" and entry.metadata == {"by": "me"}

    def test_a_failed_check_is_a_result_and_changes_nothing(self, store: Store) -> None:
        full = ChannelStorage(PluginkvHost(store))
        full.set("lock", b"held")
        result = full.atomic().check("lock", version=None).set("a", b"1").commit()
        assert (result.ok, result.failed, result.versions) == (False, ["lock"], {})
        assert full.get("a") is None

    def test_bad_input_raises_where_it_is_given_as_a_plain_set_does(self, store: Store) -> None:
        full = ChannelStorage(PluginkvHost(store))
        with pytest.raises(InvalidKey):
            full.atomic().set("a\\b", b"v")
        with pytest.raises(InvalidKey, match="names no file"):
            full.atomic().delete("a/..")
        with pytest.raises(InvalidArgument):
            full.atomic().set("a", b"1", ttl=-1)
        with pytest.raises(InvalidArgument):
            full.atomic().check("a", version=0)
        with pytest.raises(InvalidArgument):
            full.atomic().set("a", b"1", metadata={"x": float("nan")})
        assert full.usage().keys == 0

    def test_the_hosts_limits_are_refused_by_commit_naming_the_setting(
        self, open_store: Callable[..., Store]
    ) -> None:
        full = ChannelStorage(
            PluginkvHost(
                open_store("memory", max_commit_operations=2, plugin_quotas={"acme/plus": 100})
            )
        )
        commit = full.atomic().set("a", b"1").set("b", b"2").set("c", b"3")
        with pytest.raises(InvalidArgument, match="PLUGINKV_MAX_COMMIT_OPERATIONS"):
            commit.commit()
        with pytest.raises(QuotaExceeded):
            full.atomic().set("big", b"x" * 200).commit()
        assert full.usage().keys == 0

    def test_the_keys_of_a_commit_are_cleaned_as_the_four_verbs_clean_them(
        self, store: Store
    ) -> None:
        full = ChannelStorage(PluginkvHost(store))
        assert full.atomic().set("/p//a", b"1").commit().versions == {"p/a": 1}
        assert full.atomic().check("./p/a", version=1).delete("p/./a").commit().ok
        assert full.get("p/a") is None


class TestChangesOnPluginkvsHost:
    def test_a_changes_call_that_may_wait_is_answered_when_a_write_comes(
        self, open_store: Callable[..., Store]
    ) -> None:
        """The host holds the call, not the plugin a loop of empty answers."""
        store = open_store("memory")  # reads inline: the call runs until it waits
        storage = store.storage(workspace="ws-1", plugin="acme/plus")

        async def call_then_write() -> Any:
            writer, readers = WriteQueue(max_group=1), Readers(threads=1)
            request = {"opt": "pluginkv", "call": "changes", "args": {"since": 0, "wait": 30}}
            try:
                call = asyncio.create_task(
                    serve_extended(
                        request, storage=storage, store=store, writer=writer, readers=readers
                    )
                )
                await asyncio.sleep(0)  # the call reads the empty log, then waits
                assert not call.done()
                storage.set("k", b"v")
                return await call
            finally:
                readers.shutdown()
                writer.shutdown()

        answer = asyncio.run(call_then_write())
        assert [change["key"] for change in answer["result"]["changes"]] == ["k"]
        assert answer["result"]["next"] == 1

    def test_a_watch_sees_an_engine_write_after_one_waiting_call(self, store: Store) -> None:
        host = PluginkvHost(store)
        full = ChannelStorage(host)
        watching = full.watch("p/")
        with host.writing_once_waited_on("p/k"):
            change = next(watching)
        assert (change.key, change.kind, change.seq) == ("p/k", "set", 1)
        waits = [r for r in host.requests if r["call"] == "changes" and r["args"].get("wait")]
        assert len(waits) == 1 and 0 < waits[0]["args"]["wait"] <= 20

    def test_a_watch_asks_less_of_a_host_that_allows_less(
        self, open_store: Callable[..., Store]
    ) -> None:
        host = PluginkvHost(open_store("memory", max_changes_wait_seconds=1))
        full = ChannelStorage(host)
        with pytest.raises(InvalidArgument, match="PLUGINKV_MAX_CHANGES_WAIT_SECONDS"):
            full.changes(wait=2)
        host.waiting.clear()
        watching = full.watch()
        with host.writing_once_waited_on("k"):
            assert next(watching).key == "k"

    def test_a_watch_asks_the_host_to_wait_well_inside_the_sdks_timeout(self, store: Store) -> None:
        """The SDK gives up on an answer after MAX_INVOCATION_TIMEOUT seconds."""
        host = PluginkvHost(store)
        host.session = SimpleNamespace(max_invocation_timeout=8)  # type: ignore[attr-defined]
        watching = ChannelStorage(host).watch()
        with host.writing_once_waited_on("k"):
            next(watching)
        waits = [r["args"]["wait"] for r in host.requests if r["args"].get("wait")]
        assert waits == [2]

    def test_changes_past_the_retention_window_raise_changes_expired_with_the_oldest(
        self, open_store: Callable[..., Store]
    ) -> None:
        store = open_store("memory", changes_retention_count=1)
        full = ChannelStorage(PluginkvHost(store))
        full.set_many({"a": b"1", "b": b"2", "c": b"3"})
        store.sweep_expired()
        with pytest.raises(ChangesExpired, match="PLUGINKV_CHANGES_RETENTION") as expired:
            full.changes(since=0)
        assert expired.value.oldest == 3
        with pytest.raises(ChangesExpired):
            full.watch(since=1)
        assert [c.key for c in full.changes(since=2)] == ["c"]

    def test_the_host_decides_the_scope_whatever_the_plugin_sends(self, store: Store) -> None:
        host = PluginkvHost(store)
        store.storage(workspace="ws-2", plugin="acme/plus").set("k", b"other workspace")
        store.storage(workspace="ws-1", plugin="acme/other").set("k", b"other plugin")
        request = {
            "opt": "pluginkv",
            "call": "changes",
            "args": {"prefix": "", "workspace": "ws-2", "plugin": "acme/other", "scope": "x"},
        }
        (answer,) = host._backwards_invoke(None, dict, request)
        assert answer == {"data": "ok", "result": {"changes": [], "next": 0}}


class TestMetadataOnPluginkvsHost:
    def test_metadata_and_content_type_round_trip(self, store: Store) -> None:
        full = ChannelStorage(PluginkvHost(store))
        full.set("k", b"{}", metadata={"owner": "u1", "n": [1]}, content_type="application/json")
        full.set("plain", b"v")
        entry = full.get_entry("k")
        assert entry is not None
        assert (entry.metadata, entry.content_type) == (
            {"owner": "u1", "n": [1]},
            "application/json",
        )
        listed = {meta.key: meta for meta in full.keys()}
        assert listed["k"].metadata == {"owner": "u1", "n": [1]}
        assert listed["plain"].metadata is None and listed["plain"].content_type is None
        meta = full.get_meta("k")
        assert meta is not None and meta.content_type == "application/json"
        assert meta.size == entry.size

    def test_metadata_that_is_no_json_object_is_refused_before_it_is_sent(
        self, store: Store
    ) -> None:
        host = PluginkvHost(store)
        with pytest.raises(InvalidArgument, match="metadata must be a dict"):
            ChannelStorage(host).set("k", b"v", metadata=["not", "an", "object"])  # type: ignore[arg-type]
        assert host.requests == []


def test_a_call_that_fails_on_a_host_known_to_serve_them_is_no_not_supported(
    store: Store,
) -> None:
    """The host ended the session while a watch waited: the next call says so."""
    host = PluginkvHost(store)
    full = ChannelStorage(host)
    full.set("k", b"v")
    ended = "session 0a1b is not open on this host (timed out or unknown)"

    def refuse(*args: Any) -> Any:
        raise Exception(ended)

    host._backwards_invoke = refuse  # type: ignore[method-assign]
    with pytest.raises(pluginkv.PluginKVError, match="changes failed: session 0a1b") as failed:
        full.changes(wait=1)
    assert not isinstance(failed.value, NotSupported)


class TestOnAHostWithDifysFourVerbs:
    def test_the_four_verbs_work(self) -> None:
        full = ChannelStorage(DifyDaemon())
        assert full.set("k", b"v") is None  # Dify's set tells no version
        assert full.get("k") == b"v" and full.exist("k")
        assert full.get("nope") is None
        full.delete("k")
        assert not full.exist("k")

    def test_the_rest_raise_not_supported_naming_the_call(self) -> None:
        full = ChannelStorage(DifyDaemon())
        with pytest.raises(NotSupported, match="incr is not supported by this host"):
            full.incr("n")
        with pytest.raises(NotSupported, match="set is not supported"):
            full.set("k", b"v", ttl=5)

    def test_commits_changes_and_metadata_raise_not_supported(self) -> None:
        daemon = DifyDaemon()
        full = ChannelStorage(daemon)
        with pytest.raises(NotSupported, match="atomic is not supported by this host"):
            full.atomic().check("k", version=None).set("k", b"v").commit()
        with pytest.raises(NotSupported, match="changes is not supported"):
            full.changes()
        with pytest.raises(NotSupported, match="last_seq is not supported"):
            full.watch()
        with pytest.raises(NotSupported, match="changes is not supported"):
            full.watch(since=0)
        with pytest.raises(NotSupported, match="set is not supported"):
            full.set("k", b"v", metadata={"owner": "me"})
        with pytest.raises(NotSupported, match="get_entry is not supported"):
            full.get_entry("k")
        assert daemon.data == {}


def test_storage_of_a_fake_session_is_its_in_memory_storage() -> None:
    session = FakeSession()
    assert pluginkv.dify.storage(session) is session.kv


class TestOnAReadOnlyStore:
    """Plugin code gets the refusal as any engine error: the SDK's text, or ``ReadOnly``."""

    @pytest.fixture(name="read_only_store")
    def _read_only_store(self, open_store: Callable[..., Store]) -> Store:
        writable = open_store("sqlite")
        for plugin in ("fake/plugin", "acme/plus"):  # the handler's and PluginkvHost's scopes
            writable.storage(workspace="ws-1", plugin=plugin).set("k", b"v")
        writable.close()
        return open_store("sqlite", read_only=True)

    def test_session_storage_set_and_del_fail_naming_the_setting(
        self, read_only_store: Store
    ) -> None:
        async def call(**request: Any) -> Any:
            writer, readers = WriteQueue(max_group=1), Readers(threads=1)
            try:
                return await serve_storage(
                    request,
                    store=read_only_store,
                    writer=writer,
                    readers=readers,
                    workspace="ws-1",
                    manifest=parse_manifest(manifest()),
                )
            finally:
                readers.shutdown()
                writer.shutdown()

        with pytest.raises(StorageRefused, match=r"^save data failed: .*PLUGINKV_READ_ONLY"):
            asyncio.run(call(opt="set", key="k", value="77"))
        with pytest.raises(StorageRefused, match=r"^delete data failed: .*PLUGINKV_READ_ONLY"):
            asyncio.run(call(opt="del", key="k"))
        assert asyncio.run(call(opt="get", key="k")) == {"data": b"v".hex()}

    def test_the_full_api_raises_read_only(self, read_only_store: Store) -> None:
        host = PluginkvHost(read_only_store)
        full = pluginkv.dify.storage(SimpleNamespace(storage=host))
        with pytest.raises(ReadOnly, match="PLUGINKV_READ_ONLY"):
            full.set("k", b"w")
        with pytest.raises(ReadOnly):
            full.incr("n")
        with pytest.raises(ReadOnly):
            full.atomic().set("k", b"w").commit()
        assert [change.key for change in full.changes()] == ["k"]
        assert full.get("k") == b"v"
