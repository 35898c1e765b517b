"""Endpoints: requests under ``/e/<hook_id>/`` answered by the example plugin, both transports."""

from __future__ import annotations

import http.client
import json
import shutil
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pluginkv.cli import main
from pluginkv.host.endpoints import raw_request

from .conftest import DENIED_ID, PLUGIN_ID, STORAGE_TOOL, HostService, Plugins

SETTINGS_ID = "pluginkv/storage_tool_settings"


@pytest.fixture(name="endpoint_url")
def _endpoint_url(service: HostService, workspaces: tuple[str, str]) -> str:
    """A new endpoint of the example for the first workspace, greeting 'hi'."""
    body = {"workspace": workspaces[0], "plugin": PLUGIN_ID, "settings": {"greeting": "hi"}}
    status, answer = service.call("POST", "/v1/admin/endpoints", body)
    assert status == 200, answer
    url: str = json.loads(answer)["url"]
    return url


def _request(
    url: str, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=60)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request(method, target, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_an_endpoint_counts_in_its_workspaces_storage(
    endpoint_url: str, service: HostService, workspaces: tuple[str, str]
) -> None:
    _, _, first = _request(endpoint_url + "/visits")
    status, headers, second = _request(endpoint_url + "/visits")
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(second)["visits"] == json.loads(first)["visits"] + 1
    stored = service.store.storage(workspace=workspaces[0], plugin=PLUGIN_ID).get("visits")
    assert stored == str(json.loads(second)["visits"]).encode()


def test_the_request_reaches_the_plugin_as_the_daemon_sends_it(endpoint_url: str) -> None:
    """Query, settings, Host and the hook headers arrive; forwarding headers do not."""
    status, _, body = _request(
        endpoint_url + "/visits?city=Berlin", headers={"X-Forwarded-For": "6.6.6.6"}
    )
    seen = json.loads(body)
    hook_id = endpoint_url.rsplit("/", 1)[1]
    assert status == 200
    assert seen["query"] == {"city": "Berlin"}
    assert seen["greeting"] == "hi"
    assert seen["host"] == urllib.parse.urlsplit(endpoint_url).netloc
    assert seen["hook_id"] == seen["endpoint_id"] == hook_id
    assert seen["hook_url"] == endpoint_url + "/visits"
    assert seen["forwarded_for"] is None


def test_a_body_arrives_exactly_also_when_sent_chunked(
    endpoint_url: str, service: HostService, workspaces: tuple[str, str]
) -> None:
    data = bytes(range(256)) * 40

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(data), 1000):
            yield data[start : start + 1000]

    status, _, answer = _request(endpoint_url + "/notes/plain", "POST", data)
    assert (status, answer) == (201, b"stored 10240 bytes")
    status, _, answer = _request(endpoint_url + "/notes/chunked", "POST", pieces())
    assert (status, answer) == (201, b"stored 10240 bytes")
    storage = service.store.storage(workspace=workspaces[0], plugin=PLUGIN_ID)
    assert storage.get("notes/plain") == storage.get("notes/chunked") == data


def test_a_streamed_response_comes_back_whole(endpoint_url: str) -> None:
    status, headers, body = _request(endpoint_url + "/stream?n=50")
    assert status == 200
    assert headers.get("transfer-encoding") == "chunked"
    assert body == b"".join(f"line {i}\n".encode() for i in range(50))


def test_a_path_the_plugin_does_not_route_is_its_own_404(endpoint_url: str) -> None:
    status, _, body = _request(endpoint_url + "/nowhere")
    assert status == 404
    assert body.startswith(b"Failed to dispatch endpoint request: 404")


def test_a_body_over_the_limit_is_413(endpoint_url: str, service: HostService) -> None:
    saved = service.settings.endpoint_max_body_bytes
    service.settings.endpoint_max_body_bytes = 100
    try:
        status, _, body = _request(endpoint_url + "/notes/big", "POST", b"x" * 101)
    finally:
        service.settings.endpoint_max_body_bytes = saved
    assert status == 413
    assert b"PLUGINKV_ENDPOINT_MAX_BODY_BYTES" in body


def test_an_unknown_hook_is_404(service: HostService) -> None:
    status, headers, body = _request(service.url + "/e/0123/visits")
    assert status == 404
    assert body == f"404 Not Found (request id {headers['x-request-id']})\n".encode()


def test_a_percent_encoded_hook_id_reaches_the_plugin_with_its_path(endpoint_url: str) -> None:
    base, hook_id = endpoint_url.rsplit("/", 1)
    spelt = "".join(f"%{byte:02X}" for byte in hook_id.encode())
    status, _, body = _request(f"{base}/{spelt}/visits?city=K%C3%B6ln")
    assert status == 200, body
    seen = json.loads(body)
    assert seen["hook_id"] == hook_id
    assert seen["hook_url"] == f"{base}/{spelt}/visits"
    assert seen["query"] == {"city": "Köln"}


@pytest.mark.usefixtures("ws1_plugin")
def test_cli_prints_the_url_alone_on_the_last_line(service: HostService) -> None:
    options = ["--url", service.url, "--data-dir", str(service.data_dir), "--workspace", "ws-1"]
    result = CliRunner().invoke(main, ["endpoint", "create", *options, "--plugin", PLUGIN_ID])
    assert result.exit_code == 0, result.output
    url = result.stdout.splitlines()[-1]
    assert url.startswith(service.url + "/e/")
    assert _request(url + "/visits")[0] == 200


def test_a_plugin_without_the_endpoint_permission_gets_none(
    service: HostService, denied_workspace: str
) -> None:
    """The denied copy of the example: its manifest also lacks the endpoint permission."""
    body = {"workspace": denied_workspace, "plugin": DENIED_ID}
    status, answer = service.call("POST", "/v1/admin/endpoints", body)
    assert status == 403
    assert "resource.permission.endpoint" in json.loads(answer)["error"]["message"]


@pytest.mark.usefixtures("ws1_plugin")
def test_an_endpoint_of_a_plugin_not_running_for_the_workspace_is_refused(
    service: HostService,
) -> None:
    body = {"workspace": "ws-nobody", "plugin": PLUGIN_ID}
    status, _ = service.call("POST", "/v1/admin/endpoints", body)
    assert status == 404


def test_raw_request_frames_as_the_daemon_does() -> None:
    raw = raw_request(
        method="POST",
        target=b"/notes/a?x=1",
        headers=[
            (b"host", b"public.example"),
            (b"transfer-encoding", b"chunked"),
            (b"x-real-ip", b"1.1.1.1"),
            (b"x-original-host", b"original.example"),
            (b"bad_name", b"dropped"),
            (b"user-agent", b"test"),
        ],
        body=b"hello",
        default_host=b"127.0.0.1:8787",
        hook_id="h1",
        hook_url="http://127.0.0.1:8787/e/h1/notes/a",
    )
    assert raw == (
        b"POST /notes/a?x=1 HTTP/1.1\r\n"
        b"Host: original.example\r\n"
        b"user-agent: test\r\n"
        b"Dify-Hook-Id: h1\r\n"
        b"Dify-Hook-Url: http://127.0.0.1:8787/e/h1/notes/a\r\n"
        b"Content-Length: 5\r\n"
        b"\r\n"
        b"hello"
    )


@pytest.mark.usefixtures("ws1_plugin")
def test_endpoints_are_listed_and_deleted_from_the_cli(service: HostService) -> None:
    options = ["--url", service.url, "--data-dir", str(service.data_dir)]
    runner = CliRunner()
    created = runner.invoke(
        main, ["endpoint", "create", *options, "--workspace", "ws-1", "--plugin", PLUGIN_ID]
    )
    url = created.stdout.splitlines()[-1]
    listed = runner.invoke(main, ["endpoint", "list", *options, "--workspace", "ws-1"])
    assert listed.exit_code == 0, listed.output
    header, *rows = listed.stdout.splitlines()
    assert header == "URL\tWORKSPACE\tPLUGIN\tCREATED"
    assert [url, "ws-1", PLUGIN_ID] in [row.split("\t")[:3] for row in rows]
    as_json = runner.invoke(main, ["endpoint", "list", *options, "--workspace", "ws-1", "--json"])
    assert url in [json.loads(line)["url"] for line in as_json.stdout.splitlines()]
    deleted = runner.invoke(main, ["endpoint", "delete", url.rsplit("/", 1)[1], *options])
    assert deleted.exit_code == 0, deleted.output
    assert _request(url + "/visits")[0] == 404
    again = runner.invoke(main, ["endpoint", "delete", url.rsplit("/", 1)[1], *options])
    assert again.exit_code == 3 and "no endpoint" in again.stderr


@pytest.fixture(name="settings_plugin", scope="session")
def _settings_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the example, storage_tool_settings, whose greeting setting is required
    and which has a select setting with a default."""
    directory = tmp_path_factory.mktemp("settings") / "storage_tool"
    shutil.copytree(STORAGE_TOOL, directory)
    manifest = directory / "manifest.yaml"
    manifest.write_text(
        manifest.read_text().replace("\nname: storage_tool\n", "\nname: storage_tool_settings\n")
    )
    group = directory / "group" / "storage_tool.yaml"
    text = group.read_text()
    assert "    required: false\n" in text
    text = text.replace("    required: false\n", "    required: true\n")
    text = text.replace(
        "endpoints:\n",
        "  - name: mode\n    type: select\n    required: true\n    default: plain\n"
        "    options:\n      - value: plain\n        label:\n          en_US: Plain\n"
        "      - value: fancy\n        label:\n          en_US: Fancy\n"
        "    label:\n      en_US: Mode\nendpoints:\n",
    )
    group.write_text(text)
    return directory


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        pytest.param({}, "setting 'greeting' is required (declared required: true)", id="missing"),
        pytest.param(
            {"greeting": None},
            "setting 'greeting' is required (declared required: true)",
            id="null",
        ),
        pytest.param({"greeting": 5}, "setting 'greeting' must be a string", id="type"),
        pytest.param(
            {"greeting": "hi", "mode": "loud"},
            "setting 'mode' must be one of 'plain', 'fancy'",
            id="option",
        ),
    ],
)
def test_endpoint_settings_are_checked_against_the_group(
    service: HostService,
    plugins: Plugins,
    settings_plugin: Path,
    transport: str,
    settings: dict[str, Any],
    problem: str,
) -> None:
    """As Dify's daemon checks them when it sets up an endpoint: 400 naming the setting."""
    workspace = f"settings-{transport}"
    if not service.registered(SETTINGS_ID, workspace):
        plugins.serve(service, transport, workspace, directory=settings_plugin, plugin=SETTINGS_ID)
    body = {"workspace": workspace, "plugin": SETTINGS_ID, "settings": settings}
    status, answer = service.call("POST", "/v1/admin/endpoints", body)
    assert (status, json.loads(answer)["error"]) == (
        400,
        {
            "code": "invalid_argument",
            "message": f"the endpoint settings of {SETTINGS_ID} are not valid: {problem}",
        },
    )
    # Declared defaults are filled in, as Dify's settings form does.
    body["settings"] = {"greeting": "hi"}
    status, answer = service.call("POST", "/v1/admin/endpoints", body)
    assert status == 200, answer
    created = service.app.state.host.endpoints.get(json.loads(answer)["hook_id"])
    assert created.settings == {"greeting": "hi", "mode": "plain"}
