"""``pluginkv.dify.storage(session)`` on pluginkv's host, and on one with only Dify's four verbs.

The SDK's side of the channel is played by stand-ins here (its
``StorageInvocation``); ``test_plugins.py`` runs the same through the real SDK.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

import pluginkv
import pluginkv.dify
from pluginkv import NotSupported, QuotaExceeded, ReadOnly, Store, VersionConflict
from pluginkv.dify.messages import LOAD_FAILED
from pluginkv.dify.plugin_storage import ChannelStorage
from pluginkv.host.extended_storage import serve_extended
from pluginkv.host.manifest import parse_manifest
from pluginkv.host.storage_handler import StorageRefused, serve_storage
from pluginkv.services.readers import Readers
from pluginkv.services.write_groups import WriteQueue
from pluginkv.testing import FakeSession

from .fake_plugin import manifest


class PluginkvHost:
    """What the SDK's StorageInvocation does on pluginkv's host, for extended requests."""

    def __init__(self, store: Store) -> None:
        self.storage = store.storage(workspace="ws-1", plugin="acme/plus")
        self.store = store

    def _backwards_invoke(self, kind: Any, data_type: Any, request: dict[str, Any]) -> Any:
        async def serve() -> Any:
            writer = WriteQueue(max_group=1)
            readers = Readers(threads=1)
            try:
                return await serve_extended(
                    request, storage=self.storage, store=self.store, writer=writer, readers=readers
                )
            finally:
                readers.shutdown()
                writer.shutdown()

        yield asyncio.run(serve())


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
        assert full.get("k") == b"v"
