"""Unit tests for Dify plugins without a host: a fake session whose storage is real.

``FakeSession`` stands in for the ``session`` a ``dify_plugin`` ``Tool`` or
``Endpoint`` is built with.  Its ``storage`` answers exactly as the host
serves ``self.session.storage`` (``get`` of a missing key raises the
daemon's plain ``Exception``; engine errors arrive as ``Exception`` with the
host's text), on a real in-memory ``Storage`` that the test reads through
``session.kv``::

    session = FakeSession(workspace="ws-1", plugin="acme/weather")
    tool = WeatherTool(runtime=ToolRuntime(credentials={}, user_id="u", session_id="s"),
                       session=session)
    list(tool.invoke({"city": "Berlin"}))
    assert session.kv.get("last-city") == b"Berlin"

Nothing here imports ``dify_plugin``, so it is also usable where the SDK is
not installed; see ``docs/dify-host.md`` for a complete example.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from .dify.extended_calls import answer
from .dify.key_paths import clean_key
from .dify.messages import LOAD_FAILED, PERMISSION_DENIED
from .errors import PluginKVError
from .storage import Storage
from .store import Store, open_store

__all__ = ["DifyStorage", "FakeSession"]


class DifyStorage:
    """``session.storage`` as a plugin sees it on pluginkv's host: Dify's four verbs,
    keys cleaned as file paths (``dify/key_paths.py``), and pluginkv's own calls on
    the same channel, answered in process (``ChannelStorage`` over it has them all)."""

    def __init__(self, storage: Storage, *, enabled: bool = True) -> None:
        self._storage = storage
        self._enabled = enabled

    def set(self, key: str, val: bytes) -> None:
        self._check()
        try:
            self._storage.set(clean_key(key), bytes(val))
        except PluginKVError as exc:
            raise Exception(f"save data failed: {exc}") from None

    def get(self, key: str) -> bytes:
        self._check()
        try:
            value = self._storage.get(clean_key(key))
        except PluginKVError as exc:
            raise Exception(f"load data failed: {exc}") from None
        if value is None:
            raise Exception(LOAD_FAILED)
        return value

    def exist(self, key: str) -> bool:
        self._check()
        try:
            return self._storage.exist(clean_key(key))
        except PluginKVError as exc:
            raise Exception(f"exist data failed: {exc}") from None

    def delete(self, key: str) -> None:
        self._check()
        try:
            self._storage.delete(clean_key(key))
        except PluginKVError as exc:
            raise Exception(f"delete data failed: {exc}") from None

    def _backwards_invoke(
        self, invoke_type: Any, data_type: Any, request: dict[str, Any]
    ) -> Iterator[dict[str, Any]]:
        """The SDK's storage request, as the host answers an ``opt: "pluginkv"`` one."""
        self._check()
        if request.get("opt") != "pluginkv":
            raise Exception(f"unsupported storage operation: {request.get('opt')!r}")
        yield answer(request, self._storage)

    def _check(self) -> None:
        if not self._enabled:
            raise Exception(PERMISSION_DENIED)


class FakeSession:
    """A session for one workspace and plugin, on an in-memory store (or ``store``).

    Args:
        workspace: the workspace the session serves (the plugin never sees it).
        plugin: ``author/name`` of the plugin: its storage scope.
        storage_enabled: ``False`` as a manifest without the storage permission.
        quota_bytes: the manifest's ``resource.permission.storage.size``, in ``workspace``.
        store: a store to share between sessions (two workspaces, say).
        endpoint_id, app_id, conversation_id, message_id, user_id: what the
            session carries for the plugin, as on Dify.

    Attributes:
        storage: ``self.session.storage`` as plugin code uses it.
        kv: the full ``Storage`` of the scope, for the test's own checks.
        store: the ``Store`` behind it.
    """

    def __init__(
        self,
        *,
        workspace: str = "test-workspace",
        plugin: str = "test/plugin",
        storage_enabled: bool = True,
        quota_bytes: int | None = None,
        store: Store | None = None,
        endpoint_id: str | None = None,
        app_id: str | None = None,
        conversation_id: str | None = None,
        message_id: str | None = None,
        user_id: str | None = None,
    ) -> None:
        self.store = store if store is not None else open_store("memory://")
        if quota_bytes is not None:
            self.store.declare_quota(
                plugin=plugin,
                workspaces=[workspace],
                quota_bytes=quota_bytes,
                source=f"the manifest of {plugin} (resource.permission.storage.size)",
                by=self,
            )
        self.kv = self.store.storage(workspace=workspace, plugin=plugin)
        self.storage = DifyStorage(self.kv, enabled=storage_enabled)
        self.session_id = uuid.uuid4().hex
        self.endpoint_id = endpoint_id
        self.app_id = app_id
        self.conversation_id = conversation_id
        self.message_id = message_id
        self.user_id = user_id

    def __repr__(self) -> str:
        return f"<FakeSession {self.kv.workspace!r} {self.kv.plugin!r}>"
