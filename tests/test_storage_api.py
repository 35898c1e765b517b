"""One Storage API: every implementation offers the Protocol's methods (mypy checks signatures)."""

from __future__ import annotations

import inspect

import pytest

import pluginkv
import pluginkv.dify
from pluginkv import AsyncStorageAPI, StorageAPI
from pluginkv.client import AsyncRemoteStorage, RemoteStorage
from pluginkv.dify.plugin_storage import ChannelStorage
from pluginkv.testing import FakeSession

# What only the engine's own Storage has: its scope, and incr with the version.
ENGINE_ONLY = {"workspace", "plugin", "incr_versioned"}


def _members(cls: type) -> set[str]:
    return {name for name in vars(cls) if not name.startswith("_")}


def _public_methods(cls: type) -> set[str]:
    return {name for name, _ in inspect.getmembers(cls) if not name.startswith("_")}


def test_the_protocol_is_storages_methods_but_its_scope() -> None:
    assert _members(StorageAPI) == _public_methods(pluginkv.Storage) - ENGINE_ONLY


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
    channel = ChannelStorage(session.storage)
    assert isinstance(channel, StorageAPI)
    channel.set("k", b"v")
    assert session.kv.get("k") == b"v"
