"""The remote-debug port: what a connection may hold before its key is checked, and what a
registered plugin may reach (its debug key's workspace, for as long as it stays registered).

Over the real port of a real service: a hand-written plugin (``tests/dify/fake_plugin.py``)
registers whatever manifest a test needs; installed plugins are the example on the real SDK.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dify.conftest import (  # noqa: F401 (fixtures)
    DENIED_ID,
    PLUGIN_ENVS,
    PLUGIN_ID,
    HostService,
    _denied_directory,
    _sdk_python,
)
from tests.dify.fake_plugin import TOOL_DECLARATION, FakePlugin, manifest

ENDPOINT_DECLARATION = [{"settings": [], "endpoints": [{"path": "/x", "method": "GET"}]}]


@pytest.fixture(name="service", scope="module")
def _service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostService]:
    service = HostService(
        tmp_path_factory.mktemp("debug-port") / "data",
        plugin_envs_dir=str(PLUGIN_ENVS),
        plugin_quotas={"acme/capped": 1024},
    )
    yield service
    service.stop()


def register(
    service: HostService,
    workspace: str,
    plugin: str,
    *,
    storage_bytes: int = 4096,
    endpoint: bool = False,
) -> FakePlugin:
    """A plugin registered over the debug port with a key for ``workspace``, as ``plugin``."""
    author, name = plugin.split("/")
    declared = manifest(author, name)
    declared["resource"]["permission"]["storage"]["size"] = storage_bytes
    declared["resource"]["permission"]["endpoint"] = {"enabled": endpoint}
    fake = FakePlugin(service.debug_port)
    fake.send({"type": "handshake", "data": {"key": debug_key(service, workspace)}})
    fake.send({"type": "manifest_declaration", "data": declared})
    fake.send({"type": "tool_declaration", "data": TOOL_DECLARATION})
    if endpoint:
        fake.send({"type": "endpoint_declaration", "data": ENDPOINT_DECLARATION})
    fake.send({"type": "end", "data": {}})
    service.wait_for(lambda: serves(service, plugin, workspace, fake), "the registration")
    return fake


def debug_key(service: HostService, workspace: str) -> str:
    return service.tokens.issue_debug_key(workspace=workspace)


def serves(service: HostService, plugin: str, workspace: str, fake: FakePlugin) -> bool:
    """Whether the fake's own connection is registered for ``plugin`` in ``workspace``."""
    peer = "{}:{}".format(*fake.sock.getsockname()[:2])
    return any(
        p["plugin"] == plugin and p["workspaces"] == [workspace] and p["peer"] == peer
        for p in service.plugins()
    )


def disconnect(service: HostService, fake: FakePlugin, plugin: str, workspace: str) -> None:
    fake.close()
    service.wait_for(
        lambda: (
            not any(
                p["plugin"] == plugin and p["transport"] == "tcp" and workspace in p["workspaces"]
                for p in service.plugins()
            )
        ),
        "the unregistration",
    )


def put(service: HostService, workspace: str, plugin: str, size: int) -> tuple[int, Any]:
    """Store ``size`` bytes under ``k`` in the scope, over HTTP with the scope's token."""
    token = service.tokens.issue(workspace=workspace, plugin=plugin)
    request = urllib.request.Request(
        f"{service.url}/v1/kv/k",
        data=b"x" * size,
        method="PUT",
        headers={"Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, None
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())["error"]


def invoke(service: HostService, workspace: str, plugin: str) -> int:
    body = {
        "workspace": workspace,
        "plugin": plugin,
        "provider": "fake",
        "tool": "echo",
        "parameters": {},
    }
    status, _ = service.call("POST", "/v1/admin/tools/invoke", body)
    return status


# -- tenancy: a registration acts for its key's workspace, and only while it lasts ------------
def test_a_debug_manifest_quota_binds_only_its_keys_workspace_and_ends_with_it(
    service: HostService,
) -> None:
    fake = register(service, "ws-a", "acme/weather", storage_bytes=0)
    try:
        assert put(service, "ws-b", "acme/weather", 100)[0] == 204
        status, error = put(service, "ws-a", "acme/weather", 100)
        assert status == 507 and error["limit"] == 0
        assert "the manifest of acme/weather" in error["message"]
    finally:
        disconnect(service, fake, "acme/weather", "ws-a")
    assert put(service, "ws-a", "acme/weather", 100)[0] == 204


def test_a_reconnect_keeps_the_new_registrations_quota(service: HostService) -> None:
    """The old connection's end withdraws its own declaration, not the one replacing it."""
    first = register(service, "ws-a", "acme/reconnect", storage_bytes=0)
    second = register(service, "ws-a", "acme/reconnect", storage_bytes=0)
    try:
        assert first.closed_by_host()
        service.wait_for(lambda: not serves(service, "acme/reconnect", "ws-a", first), "drop")
        assert put(service, "ws-a", "acme/reconnect", 100)[0] == 507
    finally:
        first.close()
        disconnect(service, second, "acme/reconnect", "ws-a")


@pytest.mark.parametrize("operator", ["setting", "override"])
def test_a_debug_manifest_never_raises_an_operators_quota(
    service: HostService, operator: str
) -> None:
    plugin = "acme/capped" if operator == "setting" else "acme/overridden"
    if operator == "override":
        body = {"workspace": "ws-a", "plugin": plugin, "quota_bytes": 1024}
        assert service.call("PUT", "/v1/admin/quota", body)[0] == 204
    fake = register(service, "ws-a", plugin, storage_bytes=50 * 1024 * 1024)
    try:
        status, error = put(service, "ws-a", plugin, 2048)
        assert status == 507 and error["limit"] == 1024
        assert ("PLUGINKV_PLUGIN_QUOTAS" if operator == "setting" else "override") in error[
            "message"
        ]
    finally:
        disconnect(service, fake, plugin, "ws-a")


def test_tools_and_endpoints_of_a_registration_are_its_workspaces_alone(
    service: HostService,
) -> None:
    fake = register(service, "ws-a", "acme/tools", endpoint=True)
    try:
        assert invoke(service, "ws-b", "acme/tools") == 404
        for workspace, expected in (("ws-b", 404), ("ws-a", 200)):
            body = {"workspace": workspace, "plugin": "acme/tools", "settings": {}}
            assert service.call("POST", "/v1/admin/endpoints", body)[0] == expected
    finally:
        disconnect(service, fake, "acme/tools", "ws-a")
    assert invoke(service, "ws-a", "acme/tools") == 404
    body = {"workspace": "ws-a", "plugin": "acme/tools", "settings": {}}
    assert service.call("POST", "/v1/admin/endpoints", body)[0] == 404


def test_a_registration_stores_only_in_the_sessions_its_workspace_opens(
    service: HostService,
) -> None:
    """A storage call on a session the host did not open is refused; one on a session of a
    call for the key's workspace lands there, and nowhere else."""
    fake = register(service, "ws-a", "acme/sneaky")
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        fake.send(storage_set("guessed", "k"))
        answer = json.loads(fake.read_line())
        assert answer["data"]["event"] == "error" and "not open" in answer["data"]["message"]
        assert json.loads(fake.read_line())["data"]["event"] == "end"
        call = pool.submit(invoke, service, "ws-a", "acme/sneaky")
        request = json.loads(fake.read_line())
        assert request["event"] == "request"
        fake.send(storage_set(request["session_id"], "mine"))
        answer = json.loads(fake.read_line())
        assert answer["data"]["event"] == "response", answer
        assert json.loads(fake.read_line())["data"]["event"] == "end"
        end = {"type": "end", "data": None}
        fake.send({"event": "session", "session_id": request["session_id"], "data": end})
        assert call.result() == 200
    finally:
        disconnect(service, fake, "acme/sneaky", "ws-a")  # a call still open fails with it
        pool.shutdown()
    stored = {
        (scope.workspace, scope.plugin): usage.keys
        for scope, usage in service.store.scopes()
        if scope.plugin == "acme/sneaky"
    }
    assert stored == {("ws-a", "acme/sneaky"): 1}


def storage_set(session_id: str, key: str) -> dict[str, Any]:
    invoke = {
        "backwards_request_id": "r-1",
        "type": "storage",
        "request": {"opt": "set", "key": key, "value": b"v".hex()},
    }
    return {
        "event": "session",
        "session_id": session_id,
        "data": {"type": "invoke", "data": invoke},
    }


# -- a remote-debug plugin next to an installed one -------------------------------------------
@pytest.fixture(name="installed", scope="module")
def _installed(service: HostService, sdk_python: Path) -> None:
    """The example installed (stdio) for ws-i: its manifest asks for 64 KiB."""
    service.install("ws-i")


def test_calls_for_the_installed_workspace_reach_the_installed_plugin(
    service: HostService, installed: None
) -> None:
    """A remote plugin with the installed one's id, for another workspace, changes nothing."""
    fake = register(service, "ws-r", PLUGIN_ID, storage_bytes=0)
    try:
        assert service.kv("ws-i", "set", "city", "Berlin") == {"op": "set", "key": "city"}
        assert service.kv("ws-i", "get", "city")["value"] == "Berlin"
        assert put(service, "ws-r", PLUGIN_ID, 100)[0] == 507
    finally:
        disconnect(service, fake, PLUGIN_ID, "ws-r")


def test_a_debug_manifest_cannot_lift_the_quota_an_install_declared(
    service: HostService, installed: None
) -> None:
    fake = register(service, "ws-i", PLUGIN_ID, storage_bytes=50 * 1024 * 1024)
    try:
        status, error = put(service, "ws-i", PLUGIN_ID, 100 * 1024)
        assert status == 507 and error["limit"] == 64 * 1024
    finally:
        disconnect(service, fake, PLUGIN_ID, "ws-i")
    status, error = put(service, "ws-i", PLUGIN_ID, 100 * 1024)
    assert status == 507 and error["limit"] == 64 * 1024  # the install's, as before


def test_an_endpoint_made_under_a_registration_ends_with_its_permission(
    service: HostService, denied_directory: Path
) -> None:
    """The endpoint outlives the registration that had the permission; the plugin that
    serves the workspace afterwards, installed without it, gets none of its requests."""
    service.install("ws-e", denied_directory)
    fake = register(service, "ws-e", DENIED_ID, endpoint=True)
    try:
        body = {"workspace": "ws-e", "plugin": DENIED_ID, "settings": {}}
        status, answer = service.call("POST", "/v1/admin/endpoints", body)
        assert status == 200, answer
        url = json.loads(answer)["url"]
    finally:
        disconnect(service, fake, DENIED_ID, "ws-e")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url + "/visits", timeout=30).close()
    with refused.value:
        assert refused.value.code == 403


# -- before the key is checked -----------------------------------------------------------------
def test_a_handshake_line_over_the_limit_is_refused_before_it_is_read(
    service: HostService, caplog: pytest.LogCaptureFixture
) -> None:
    """32 MiB without a newline: the service closes the connection after 64 KiB, so the
    sender fails long before the rest fits in the sockets' buffers."""
    caplog.set_level(logging.WARNING, logger="pluginkv.dify")
    with (
        socket.create_connection(("127.0.0.1", service.debug_port), timeout=30) as sock,
        pytest.raises(OSError),
    ):
        sock.sendall(b'{"type":"handshake","data":{"key":"' + b"x" * 32 * 1024 * 1024)
    service.wait_for(lambda: "PLUGINKV_DEBUG_HANDSHAKE_MAX_BYTES" in caplog.text, "the log")
    assert "the handshake line is over 65536 bytes" in caplog.text


@pytest.fixture(name="strict_service")
def _strict_service(tmp_path: Path) -> Iterator[HostService]:
    """A service with small debug-port limits: 4 KiB lines, 0.5 s, two waiting connections."""
    service = HostService(
        tmp_path / "data",
        debug_handshake_max_bytes=4096,
        debug_handshake_timeout_seconds=0.5,
        debug_max_pending_connections=2,
    )
    yield service
    service.stop()


def handshake(service: HostService, workspace: str, padding: int = 0) -> bytes:
    line = {"type": "handshake", "data": {"key": debug_key(service, workspace)}}
    return json.dumps(line).encode() + b" " * padding + b"\n"


def test_the_handshake_line_limit_is_the_setting(strict_service: HostService) -> None:
    service = strict_service
    bare = len(handshake(service, "ws-a")) - 1  # without its newline
    with FakePlugin(service.debug_port) as plugin:
        plugin.send(handshake(service, "ws-a", padding=4096 - bare))
        plugin.send({"type": "manifest_declaration", "data": manifest()})
        plugin.send({"type": "tool_declaration", "data": TOOL_DECLARATION})
        plugin.send({"type": "end", "data": {}})
        service.wait_for(lambda: serves(service, "fake/plugin", "ws-a", plugin), "registration")
    with FakePlugin(service.debug_port) as plugin:
        plugin.send(handshake(service, "ws-a", padding=4097 - bare))
        assert plugin.read_line() == (
            b"handshake failed, the handshake line is over 4096 bytes "
            b"(setting PLUGINKV_DEBUG_HANDSHAKE_MAX_BYTES)\n"
        )
        assert plugin.closed_by_host()


@pytest.mark.parametrize("sent", [b"", b'{"type": "handshake", "data": {"key": "'])
def test_a_connection_without_its_handshake_line_in_time_is_closed(
    strict_service: HostService, sent: bytes
) -> None:
    """Silent, or a line begun and never ended: the timeout counts from the accept."""
    with FakePlugin(strict_service.debug_port) as plugin:
        plugin.send(sent)
        assert plugin.read_line() == (
            b"handshake failed, no handshake within 0.5 seconds "
            b"(setting PLUGINKV_DEBUG_HANDSHAKE_TIMEOUT_SECONDS)\n"
        )
        assert plugin.closed_by_host()


def test_connections_waiting_for_their_handshake_are_capped(strict_service: HostService) -> None:
    """Two may wait at once (the setting); a registered plugin no longer counts."""
    service = strict_service
    registered = register(service, "ws-a", "acme/first")
    with (
        registered,
        FakePlugin(service.debug_port) as first,
        FakePlugin(service.debug_port) as second,
    ):
        first.send(b'{"type": ')  # a handshake begun, well within the timeout
        with FakePlugin(service.debug_port) as third:
            assert third.read_line() == (
                b"handshake failed, 2 connections are already waiting for their handshake "
                b"(setting PLUGINKV_DEBUG_MAX_PENDING_CONNECTIONS)\n"
            )
            assert third.closed_by_host()
        # The second was let in and waits: it registers when it goes on.
        second.send(handshake(service, "ws-a"))
        second.send({"type": "manifest_declaration", "data": manifest("acme", "second")})
        second.send({"type": "tool_declaration", "data": TOOL_DECLARATION})
        second.send({"type": "end", "data": {}})
        service.wait_for(lambda: serves(service, "acme/second", "ws-a", second), "second")
