"""Real ``dify_plugin`` plugins against a live service, over TCP and over stdio.

The example under ``examples/storage_tool`` runs unchanged on the SDK's own
interpreter, as a remote-debug plugin (one process per workspace) and as an
installed one (one process for two workspaces); its ``self.session.storage``
calls land in the service's store.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pluginkv.cli import main

from .conftest import (
    DENIED_ID,
    PLUGIN_ENVS,
    PLUGIN_ID,
    STORAGE_TOOL,
    HostService,
    PluginProcess,
    Plugins,
    RemoteStarter,
)

Kv = Callable[..., dict[str, Any]]
Ws = tuple[str, str]

pytestmark = pytest.mark.usefixtures("ws1_plugin")


class TestRegistration:
    def test_the_plugin_is_listed_with_its_workspace_and_transport(
        self, service: HostService
    ) -> None:
        """A plugin that connected with a ws-1 debug key is listed for ws-1, over tcp."""
        (entry,) = [p for p in service.plugins() if p["workspaces"] == ["ws-1"]]
        assert entry["plugin"] == PLUGIN_ID
        assert (entry["transport"], entry["version"]) == ("tcp", "0.1.0")
        assert entry["since"] <= entry["last_heartbeat"] <= time.time()

    def test_plugins_command_lists_it(self, service: HostService) -> None:
        """`pluginkv plugins` finds the admin secret of the data directory by itself."""
        result = CliRunner().invoke(
            main, ["plugins", "--url", service.url, "--data-dir", str(service.data_dir)]
        )
        assert result.exit_code == 0, result.output
        assert any(
            line.split("\t")[:4] == [PLUGIN_ID, "0.1.0", "tcp", "ws-1"]
            for line in result.stdout.splitlines()
        )

    def test_a_plugin_with_a_bad_key_is_refused_and_never_registered(
        self, service: HostService, start_remote: RemoteStarter
    ) -> None:
        """The host refuses the handshake; the SDK keeps retrying, unregistered."""
        plugin = start_remote("ws-bad", key="not-a-debug-key", wait=False)
        time.sleep(2)
        assert not service.registered(PLUGIN_ID, "ws-bad")
        assert plugin.process.poll() is None  # the SDK does not exit on a refusal
        plugin.stop()


def test_debug_key_create_prints_the_settings_every_sdk_generation_reads(
    service: HostService, plugins: Plugins, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both forms; a plugin given only REMOTE_INSTALL_HOST and _PORT (what SDKs before
    0.2.3 read) registers."""
    monkeypatch.setenv("PLUGINKV_DEBUG_PORT", str(service.debug_port))
    result = CliRunner().invoke(
        main, ["debug-key", "create", "--data-dir", str(service.data_dir), "--workspace", "ws-hp"]
    )
    assert result.exit_code == 0, result.output
    key = result.stdout.splitlines()[-1]
    printed = dict(
        line.removeprefix("# ").split("=", 1)
        for line in result.stderr.splitlines()
        if line.startswith("# ") and "=" in line
    )
    assert printed == {
        "INSTALL_METHOD": "remote",
        "REMOTE_INSTALL_URL": f"127.0.0.1:{service.debug_port}",
        "REMOTE_INSTALL_HOST": "127.0.0.1",
        "REMOTE_INSTALL_PORT": str(service.debug_port),
        "REMOTE_INSTALL_KEY": "<the key below>",
    }
    env = {name: printed[name] for name in ("INSTALL_METHOD", "REMOTE_INSTALL_HOST")}
    env |= {"REMOTE_INSTALL_PORT": printed["REMOTE_INSTALL_PORT"], "REMOTE_INSTALL_KEY": key}
    log = service.data_dir.parent / "host-port-plugin.log"
    process = PluginProcess(plugins.python, STORAGE_TOOL, env, log)
    try:
        service.wait_for(lambda: service.registered(PLUGIN_ID, "ws-hp"), "registration")
    finally:
        process.stop()


class TestStorage:
    """On both transports: a remote-debug plugin per workspace, one local plugin for both."""

    def test_set_get_exist_delete_round_trip(self, kv: Kv, workspaces: Ws) -> None:
        """The four documented verbs, called by plugin code, as Dify documents them."""
        ws, _ = workspaces
        assert "error" not in kv(ws, "set", "greeting", "hello")
        assert kv(ws, "get", "greeting")["value"] == "hello"
        assert kv(ws, "exist", "greeting")["exist"] is True
        assert "error" not in kv(ws, "delete", "greeting")
        assert kv(ws, "exist", "greeting")["exist"] is False

    def test_what_the_plugin_stores_is_in_the_store_and_the_reverse(
        self, kv: Kv, workspaces: Ws, service: HostService
    ) -> None:
        """Scope (workspace of the session, author/name): the same the HTTP API and CLI see."""
        ws, _ = workspaces
        kv(ws, "set", "city", "Berlin")
        storage = service.store.storage(workspace=ws, plugin=PLUGIN_ID)
        assert storage.get("city") == b"Berlin"
        storage.set("from-outside", b"hi")
        assert kv(ws, "get", "from-outside")["value"] == "hi"

    def test_workspaces_keep_separate_keys(
        self, kv: Kv, workspaces: Ws, service: HostService
    ) -> None:
        """The same plugin in two workspaces: two independent counters."""
        first, second = workspaces
        for _ in range(2):
            kv(first, "count", "tool-counter")
        assert kv(second, "count", "tool-counter")["count"] == 1
        assert kv(first, "count", "tool-counter")["count"] == 3
        stored = service.store.storage(workspace=second, plugin=PLUGIN_ID).get("tool-counter")
        assert stored == b"1"

    def test_get_of_a_missing_key_raises_the_daemons_error(self, kv: Kv, workspaces: Ws) -> None:
        """As on Dify: a plain Exception with the daemon's text; exist is False."""
        ws, _ = workspaces
        answer = kv(ws, "get", "never-set")
        assert answer["error_type"] == "Exception"
        assert answer["error"].startswith("load data failed, please check if the key is correct")
        assert kv(ws, "exist", "never-set")["exist"] is False

    def test_delete_of_a_missing_key_is_ok(self, kv: Kv, workspaces: Ws) -> None:
        assert "error" not in kv(workspaces[0], "delete", "never-set")

    def test_an_invalid_key_reaches_plugin_code_as_an_exception(
        self, kv: Kv, workspaces: Ws
    ) -> None:
        answer = kv(workspaces[0], "set", "a..b", "x")
        assert answer["error_type"] == "Exception"
        assert "'..'" in answer["error"]

    @pytest.mark.parametrize("spelling", ["paths//a", "/paths/a", "./paths/./a/", "paths/x/../a"])
    def test_keys_are_cleaned_as_file_paths_as_on_dify(
        self, kv: Kv, service: HostService, workspaces: Ws, spelling: str
    ) -> None:
        """Dify's daemon stores keys as cleaned paths: every spelling is the key paths/a."""
        ws, _ = workspaces
        value = uuid.uuid4().hex
        assert "error" not in kv(ws, "set", spelling, value)
        assert kv(ws, "get", "paths/a")["value"] == value
        assert kv(ws, "exist", spelling)["exist"] is True
        stored = service.store.storage(workspace=ws, plugin=PLUGIN_ID)
        assert stored.get("paths/a") == value.encode()
        assert [entry.key for entry in stored.keys("paths").entries] == ["paths/a"]

    def test_keys_over_the_http_api_stay_opaque(
        self, kv: Kv, service: HostService, workspaces: Ws
    ) -> None:
        """Written by the HTTP API or the engine, a//b is its own key, which a plugin
        asking for a//b does not reach (it asks for a/b)."""
        ws, _ = workspaces
        service.store.storage(workspace=ws, plugin=PLUGIN_ID).set("opaque//k", b"engine's")
        assert kv(ws, "exist", "opaque//k")["exist"] is False

    @pytest.mark.parametrize(
        ("key", "message"),
        [
            (".", "key '.' names no file once cleaned as a path, as Dify's daemon does"),
            ("a/..", "key 'a/..' names no file once cleaned as a path, as Dify's daemon does"),
            ("a/../../b", "'..'"),
        ],
    )
    def test_a_key_that_cleans_to_no_file_or_outside_is_refused(
        self, kv: Kv, workspaces: Ws, key: str, message: str
    ) -> None:
        answer = kv(workspaces[0], "set", key, "x")
        assert answer["error_type"] == "Exception"
        assert answer["error"].startswith("save data failed: ") and message in answer["error"]

    def test_a_failed_exist_says_exist_as_the_daemon_does(self, kv: Kv, workspaces: Ws) -> None:
        answer = kv(workspaces[0], "exist", "a/..")
        assert answer["error"].startswith("exist data failed: key 'a/..' names no file")

    def test_the_manifest_storage_size_is_the_quota_and_its_error_names_it(
        self, kv: Kv, workspaces: Ws, service: HostService
    ) -> None:
        """The example declares 64 KiB; a write past it fails and stores nothing."""
        ws, _ = workspaces
        answer = kv(ws, "set", "big", "x" * 70_000)
        assert answer["error_type"] == "Exception"
        assert "65536" in answer["error"]
        assert "resource.permission.storage.size" in answer["error"]
        assert service.store.storage(workspace=ws, plugin=PLUGIN_ID).get("big") is None

    def test_storage_disabled_in_the_manifest_is_permission_denied(
        self, kv: Kv, denied_workspace: str, service: HostService
    ) -> None:
        """Every verb gets Dify's error, and nothing is stored."""
        denied = "permission denied, you need to enable storage access in plugin manifest"
        for op in ("set", "get", "exist", "delete"):
            answer = kv(denied_workspace, op, "k", "v", plugin=DENIED_ID)
            assert (answer["error_type"], answer["error"]) == ("Exception", denied), op
        storage = service.store.storage(workspace=denied_workspace, plugin=DENIED_ID)
        assert storage.usage().keys == 0

    def test_twenty_concurrent_sessions_on_one_plugin(self, kv: Kv, workspaces: Ws) -> None:
        ws, _ = workspaces

        def one(i: int) -> str:
            kv(ws, "set", f"c/{i}", f"value-{i}")
            return str(kv(ws, "get", f"c/{i}")["value"])

        with ThreadPoolExecutor(20) as pool:
            assert list(pool.map(one, range(20))) == [f"value-{i}" for i in range(20)]

    def test_a_one_mib_value_round_trips_through_the_channel(
        self, kv: Kv, workspaces: Ws, service: HostService
    ) -> None:
        """2 MiB of hex on one line each way; the workspace gets room beyond the manifest's."""
        _, ws = workspaces
        service.store.set_quota(workspace=ws, plugin=PLUGIN_ID, quota_bytes=4 * 2**20)
        value = "v" * 2**20
        assert "error" not in kv(ws, "set", "big", value)
        assert kv(ws, "get", "big")["value"] == value
        assert service.store.storage(workspace=ws, plugin=PLUGIN_ID).get("big") == (value.encode())


class TestFullStorageApi:
    """pluginkv.dify.storage(self.session): the whole Storage API over the plugin channel."""

    def test_incr_is_atomic_under_concurrency(self, kv: Kv, service: HostService) -> None:
        with ThreadPoolExecutor(10) as pool:
            counts = sorted(pool.map(lambda _: kv("ws-1", "incr", "hits")["count"], range(10)))
        assert counts == list(range(1, 11))
        assert service.store.storage(workspace="ws-1", plugin=PLUGIN_ID).get("hits") == b"10"

    def test_a_failed_condition_raises_version_conflict_in_plugin_code(self, kv: Kv) -> None:
        answer = kv("ws-1", "cas", "lock")
        assert "already holds a value" in answer["conflict"] and answer["version"] >= 1

    def test_batches_listing_and_ttl(self, kv: Kv, service: HostService) -> None:
        answer = kv("ws-1", "batch", "b")
        assert answer["keys"] == ["b/a", "b/b"]
        assert answer["values"] == {"b/a": "1", "b/b": "2"}
        entry = service.store.storage(workspace="ws-1", plugin=PLUGIN_ID).get_entry("b/a")
        assert entry is not None and entry.expires_at is not None


class TestOtherInvocations:
    def test_an_unsupported_invocation_is_refused_at_once(
        self, kv: Kv, workspaces: Ws, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Not the SDK's 250-second wait: an error naming the type and what is served.

        The host logs the refusal with the plugin, the type and the session.
        """
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="pluginkv.dify"):
            answer = kv(workspaces[0], "call_other_tool")
        assert time.monotonic() - started < 5
        assert answer["error"] == (
            "backwards invocation 'tool' is not supported by this host: pluginkv serves "
            "storage and upload_file only; LLM, tool, app and other calls need Dify"
        )
        (logged,) = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert re.fullmatch(
            f"{PLUGIN_ID}: refused a backwards 'tool' call in session [0-9a-f]{{32}} "
            f"\\(workspace {workspaces[0]}\\): this host serves storage and upload_file only",
            logged,
        )


class TestToolInvoke:
    def test_cli_prints_the_tools_messages_as_json_lines(self, service: HostService) -> None:
        args = ["--url", service.url, "--data-dir", str(service.data_dir), "--workspace", "ws-1"]
        args += ["--plugin", PLUGIN_ID, "--provider", "storage_tool", "--tool", "kv"]
        result = CliRunner().invoke(
            main, ["tool", "invoke", *args, "--params", '{"op": "exist", "key": "nope"}']
        )
        assert result.exit_code == 0, result.output
        (line,) = result.stdout.splitlines()
        assert json.loads(line) == {
            "type": "json",
            "message": {"json_object": {"op": "exist", "key": "nope", "exist": False}},
            "meta": None,
        }

    def test_a_plugin_not_running_for_the_workspace_is_404(self, service: HostService) -> None:
        body = {
            "workspace": "ws-none",
            "plugin": PLUGIN_ID,
            "provider": "storage_tool",
            "tool": "kv",
            "parameters": {},
        }
        status, answer = service.call("POST", "/v1/admin/tools/invoke", body)
        assert status == 404
        assert json.loads(answer)["error"]["code"] == "plugin_not_found"

    def test_an_undeclared_tool_is_404_naming_the_declared_ones(self, service: HostService) -> None:
        body = {
            "workspace": "ws-1",
            "plugin": PLUGIN_ID,
            "provider": "storage_tool",
            "tool": "nope",
            "parameters": {},
        }
        status, answer = service.call("POST", "/v1/admin/tools/invoke", body)
        assert status == 404
        assert "'kv'" in json.loads(answer)["error"]["message"]

    def test_an_error_in_the_tool_is_502_with_its_type_and_message(
        self, service: HostService
    ) -> None:
        """The example's raise op: the tool raises, the session ends in error."""
        body = {
            "workspace": "ws-1",
            "plugin": PLUGIN_ID,
            "provider": "storage_tool",
            "tool": "kv",
            "parameters": {"op": "raise", "value": "out of coffee"},
        }
        status, answer = service.call("POST", "/v1/admin/tools/invoke", body)
        assert status == 502
        error = json.loads(answer)["error"]
        assert error["code"] == "plugin_error"
        assert "RuntimeError: out of coffee" in error["message"]

    def test_a_tool_past_the_session_timeout_is_504(self, service: HostService) -> None:
        body = {
            "workspace": "ws-1",
            "plugin": PLUGIN_ID,
            "provider": "storage_tool",
            "tool": "kv",
            "parameters": {"op": "sleep", "value": "2"},
        }
        saved = service.settings.session_timeout_seconds
        service.settings.session_timeout_seconds = 0.3
        try:
            status, answer = service.call("POST", "/v1/admin/tools/invoke", body)
        finally:
            service.settings.session_timeout_seconds = saved
        assert status == 504
        error = json.loads(answer)["error"]
        assert error["code"] == "plugin_timeout"
        assert "PLUGINKV_SESSION_TIMEOUT_SECONDS" in error["message"]

    def test_cli_reports_an_error_on_one_line(self, tmp_path: Path, service: HostService) -> None:
        args = ["--url", service.url, "--data-dir", str(service.data_dir), "--workspace", "ws-x"]
        args += ["--plugin", PLUGIN_ID, "--provider", "storage_tool", "--tool", "kv"]
        result = CliRunner().invoke(main, ["tool", "invoke", *args])
        assert result.exit_code == 3
        assert result.stderr.startswith("error: no running plugin pluginkv/storage_tool")


def test_what_a_plugin_stored_survives_a_restart_of_the_service_and_the_plugin(
    tmp_path: Path, transport: str, plugins: Plugins
) -> None:
    """A new service on the same data directory, with the plugin started again, counts on.

    The remote-debug plugin is restarted by hand here: waiting out the SDK's
    own reconnect takes about 15 s (the slow test below).
    """
    first = HostService(tmp_path / "data", plugin_envs_dir=str(PLUGIN_ENVS))
    try:
        plugins.serve(first, transport, "ws-r")
        assert first.kv("ws-r", "count", "n")["count"] == 1
    finally:
        first.stop()  # an installed plugin goes with it
        plugins.stop()  # a remote-debug one would outlive its host
    second = HostService(tmp_path / "data", plugin_envs_dir=str(PLUGIN_ENVS))
    try:
        plugins.serve(second, transport, "ws-r")
        assert second.kv("ws-r", "count", "n")["count"] == 2
    finally:
        second.stop()


@pytest.mark.slow
def test_a_remote_plugin_reconnects_to_a_restarted_host_and_finds_its_data(
    tmp_path: Path, plugins: Plugins
) -> None:
    """The SDK reconnects by itself (after about 15 s); the data was on disk all along."""
    from .conftest import free_port

    debug_port = free_port()
    first = HostService(tmp_path / "data", debug_port=debug_port)
    try:
        plugins.remote(first, "ws-p")
        assert first.kv("ws-p", "count", "n")["count"] == 1
    finally:
        first.stop()  # the plugin stays, and keeps trying to reconnect
    second = HostService(tmp_path / "data", debug_port=debug_port)
    try:
        second.wait_for(lambda: second.registered(PLUGIN_ID, "ws-p"), "the reconnect", 90)
        assert second.kv("ws-p", "count", "n")["count"] == 2
    finally:
        second.stop()
