"""Commits, the change feed and metadata in plugin code, on the real ``dify_plugin`` SDK.

The example's ``atomic``, ``meta``, ``changes`` and ``watch`` ops call
``pluginkv.dify.storage(self.session)``; each test runs them in a
remote-debug plugin on SDK 0.7.4 (Python 3.11) and on SDK 0.10.2 (Python
3.12).  Each test uses keys of its own, under a fresh prefix.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from pluginkv.client import RemoteStorage
from pluginkv.host import storage_handler

from .conftest import PLUGIN_ENVS, PLUGIN_ID, STORAGE_TOOL, HostService, Plugins, RemoteStarter

SDKS = {"0.7.4": "sdk_python", "0.10.2": "sdk10_python"}


@pytest.fixture(name="ws10", scope="session")
def _ws10(start_remote10: RemoteStarter) -> str:
    """The example (not ``V2``) in remote debugging on SDK 0.10.2, for workspace ws10-1."""
    start_remote10("ws10-1", directory=STORAGE_TOOL, plugin=PLUGIN_ID)
    return "ws10-1"


@pytest.fixture(name="ws", params=list(SDKS), ids=lambda sdk: f"sdk{sdk}")
def _ws(request: pytest.FixtureRequest) -> str:
    """A workspace the example serves, on each SDK."""
    if request.param == "0.7.4":
        request.getfixturevalue("ws1_plugin")
        return "ws-1"
    workspace: str = request.getfixturevalue("ws10")
    return workspace


@pytest.fixture(name="prefix")
def _prefix() -> str:
    return f"t-{uuid.uuid4().hex[:8]}/"


def _op(service: HostService, ws: str, op: str, key: str, value: str | None = None) -> Any:
    answer = service.kv(ws, op, key, value)
    assert "error" not in answer, answer
    return answer


class TestAtomicCommits:
    def test_a_commit_applies_every_operation_and_a_failed_check_changes_nothing(
        self, service: HostService, ws: str, prefix: str
    ) -> None:
        """The op commits twice: the second finds the lock the first took."""
        first, second = _op(service, ws, "atomic", prefix + "job")["commits"]
        lock, takes = prefix + "job/lock", prefix + "job/takes"
        assert first["ok"] and first["failed"] == [] and first["counters"] == {takes: 1}
        assert set(first["versions"]) == {lock, takes}
        assert second == {"ok": False, "versions": {}, "failed": [lock], "counters": {}}
        storage = service.store.storage(workspace=ws, plugin=PLUGIN_ID)
        entry = storage.get_entry(lock)
        assert entry is not None and entry.value == b"mine"
        assert (entry.metadata, entry.content_type) == ({"by": "atomic"}, "text/plain")
        assert storage.get(takes) == b"1"


class TestChangesInPluginCode:
    def test_changes_list_a_write_made_through_the_http_api(
        self, service: HostService, ws: str, prefix: str
    ) -> None:
        since = _op(service, ws, "changes", prefix)["next"]
        token = service.tokens.issue(workspace=ws, plugin=PLUGIN_ID)
        with RemoteStorage(service.url, token) as remote:
            version = remote.set(prefix + "k", b"from HTTP")
            remote.delete(prefix + "k")
        answer = _op(service, ws, "changes", prefix, str(since))
        seen = [(c["key"], c["kind"], c["version"]) for c in answer["changes"]]
        assert seen == [(prefix + "k", "set", version), (prefix + "k", "delete", version)]
        assert answer["next"] == answer["changes"][-1]["seq"]

    def test_a_watch_in_plugin_code_sees_a_write_made_through_the_engine(
        self, service: HostService, ws: str, prefix: str
    ) -> None:
        """The tool call waits in watch() until the engine writes, then answers the change."""
        since = _op(service, ws, "changes", prefix)["next"]
        answers: list[Any] = []
        call = threading.Thread(
            target=lambda: answers.append(_op(service, ws, "watch", prefix, str(since)))
        )
        call.start()
        storage = service.store.storage(workspace=ws, plugin=PLUGIN_ID)
        storage.set("outside/" + prefix, b"v")  # another prefix: not watched
        storage.set(prefix + "first", b"v")
        storage.set(prefix + "second", b"v")
        call.join(timeout=120)
        (answer,) = answers
        change = answer["change"]
        assert (change["key"], change["kind"], change["seq"]) == (
            prefix + "first",
            "set",
            since + 2,
        )

    def test_a_plugin_sees_only_its_own_scopes_changes(
        self, service: HostService, ws: str, prefix: str
    ) -> None:
        """Other workspaces and other plugins write under the same prefix; the host serves
        the session's scope, whatever the plugin asks."""
        store = service.store
        since = _op(service, ws, "changes", prefix)["next"]
        store.storage(workspace=ws + "-other", plugin=PLUGIN_ID).set(prefix + "k", b"v")
        store.storage(workspace=ws, plugin="pluginkv/another").set(prefix + "k", b"v")
        store.storage(workspace=ws, plugin=PLUGIN_ID).set(prefix + "mine", b"v")
        answer = _op(service, ws, "changes", prefix, str(since))
        assert [c["key"] for c in answer["changes"]] == [prefix + "mine"]


class TestMetadataInPluginCode:
    def test_metadata_and_content_type_round_trip(
        self, service: HostService, ws: str, prefix: str
    ) -> None:
        answer = _op(service, ws, "meta", prefix + "doc")
        kept = {"metadata": {"owner": "plugin", "tags": ["a"]}, "content_type": "application/json"}
        assert answer["entry"] == kept and answer["listed"] == [kept]
        entry = service.store.storage(workspace=ws, plugin=PLUGIN_ID).get_entry(prefix + "doc")
        assert entry is not None and entry.version == answer["version"]
        assert (entry.metadata, entry.content_type) == (kept["metadata"], kept["content_type"])


@pytest.mark.parametrize("sdk", list(SDKS), ids=lambda sdk: f"sdk{sdk}")
def test_a_plugin_behind_the_retention_window_gets_changes_expired_with_the_oldest(
    sdk: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, request: Any
) -> None:
    python = request.getfixturevalue(SDKS[sdk])
    service = HostService(
        tmp_path / "data", plugin_envs_dir=str(PLUGIN_ENVS), changes_retention_count=1
    )
    plugins = Plugins(python, tmp_path_factory)
    try:
        plugins.remote(service, "ws-exp")
        storage = service.store.storage(workspace="ws-exp", plugin=PLUGIN_ID)
        storage.set_many({"a": b"1", "b": b"2", "c": b"3"})
        service.store.sweep_expired()
        for op in ("changes", "watch"):
            answer = service.kv("ws-exp", op, "", "0")
            assert answer["oldest"] == 3, answer
            assert "PLUGINKV_CHANGES_RETENTION_COUNT" in answer["expired"]
        assert [c["key"] for c in service.kv("ws-exp", "changes", "", "2")["changes"]] == ["c"]
    finally:
        plugins.stop()
        service.stop()


def test_on_a_host_with_only_difys_four_verbs_they_raise_not_supported(
    service: HostService, ws: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host answers pluginkv's own calls with an error event, as Dify's daemon
    answers an operation it does not know; the four verbs still work."""
    monkeypatch.setattr(storage_handler, "EXTENDED_OPT", "not-served-here")
    for op in ("atomic", "meta", "changes", "watch"):
        answer = service.kv(ws, op, prefix + "k")
        assert answer["error_type"] == "NotSupported", answer
        assert "is not supported by this host: it serves only Dify's" in answer["error"]
    assert "error" not in service.kv(ws, "set", prefix + "k", "v")
    assert service.kv(ws, "get", prefix + "k")["value"] == "v"
    storage = service.store.storage(workspace=ws, plugin=PLUGIN_ID)
    assert [meta.key for meta in storage.keys(prefix)] == [prefix + "k"]
