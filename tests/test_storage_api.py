"""One Storage API: every implementation offers the Protocol's methods (mypy checks signatures)."""

from __future__ import annotations

import inspect

import pytest

import pluginkv
import pluginkv.dify
from pluginkv import AsyncChangesAPI, AsyncStorageAPI, ChangesAPI, StorageAPI
from pluginkv.client import AsyncRemoteStorage, RemoteStorage
from pluginkv.dify.plugin_storage import ChannelStorage
from pluginkv.testing import FakeSession

# What only the engine's own Storage has: its scope, incr with the version, and the
# registration a long poll waits on.
ENGINE_ONLY = {"workspace", "plugin", "incr_versioned", "change_waiter"}


def _members(cls: type) -> set[str]:
    return {name for name in vars(cls) if not name.startswith("_")}


def _public_methods(cls: type) -> set[str]:
    return {name for name, _ in inspect.getmembers(cls) if not name.startswith("_")}


def test_the_protocol_is_storages_methods_but_its_scope() -> None:
    assert _members(StorageAPI) == (
        _public_methods(pluginkv.Storage) - ENGINE_ONLY - _members(ChangesAPI)
    )


def test_storage_follows_changes_and_commits_atomically() -> None:
    assert _members(ChangesAPI) == {"atomic", "changes", "watch"}
    assert _members(ChangesAPI) <= _public_methods(pluginkv.Storage)
    with pluginkv.open_store("memory://") as store:
        assert isinstance(store.storage(workspace="w", plugin="a/b"), ChangesAPI)


def test_both_clients_follow_changes_and_commit_atomically() -> None:
    assert isinstance(RemoteStorage("http://127.0.0.1:1", "t"), ChangesAPI)
    assert isinstance(AsyncRemoteStorage("http://127.0.0.1:1", "t"), AsyncChangesAPI)
    assert _members(AsyncChangesAPI) == _members(ChangesAPI)
    assert inspect.iscoroutinefunction(AsyncRemoteStorage.changes)
    assert inspect.iscoroutinefunction(type(AsyncRemoteStorage("http://h", "t").atomic()).commit)


def test_the_async_protocol_has_the_same_methods_awaited() -> None:
    assert _members(AsyncStorageAPI) == _members(StorageAPI)
    for name in _members(AsyncStorageAPI) - {"iter_keys"}:
        assert inspect.iscoroutinefunction(getattr(AsyncStorageAPI, name)), name
        assert inspect.iscoroutinefunction(getattr(AsyncRemoteStorage, name)), name
    assert inspect.isasyncgenfunction(AsyncRemoteStorage.iter_keys)


@pytest.mark.parametrize("cls", [pluginkv.Storage, RemoteStorage, ChannelStorage])
def test_every_sync_implementation_has_every_method(cls: type) -> None:
    assert _members(StorageAPI) <= _public_methods(cls)


def test_the_async_client_has_every_method() -> None:
    assert _members(AsyncStorageAPI) <= _public_methods(AsyncRemoteStorage)


def test_dify_storage_is_a_storage_api_on_either_session() -> None:
    session = FakeSession(workspace="ws-1", plugin="acme/weather")
    assert isinstance(pluginkv.dify.storage(session), StorageAPI)
    assert isinstance(pluginkv.dify.storage(session), ChangesAPI)
    channel = ChannelStorage(session.storage)
    assert isinstance(channel, StorageAPI) and isinstance(channel, ChangesAPI)
    channel.set("k", b"v")
    assert session.kv.get("k") == b"v"
