"""What a plugin offers: ``pluginkv plugin show`` and ``GET /v1/admin/plugins/{author}/{name}``.

The same description whether it comes from a remote plugin's registration
(the SDK's models) or an installed plugin's YAML files.
"""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner

from pluginkv.cli import main

from .conftest import PLUGIN_ID, HostService

Ws = tuple[str, str]


def _offer(service: HostService, query: str = "") -> tuple[int, Any]:
    status, body = service.call("GET", f"/v1/admin/plugins/{PLUGIN_ID}{query}")
    return status, json.loads(body)


def test_the_offer_lists_providers_tools_parameters_endpoints_and_permissions(
    service: HostService, workspaces: Ws, transport: str
) -> None:
    status, offer = _offer(service, f"?workspace={workspaces[0]}")
    assert status == 200
    assert (offer["plugin"], offer["version"]) == (PLUGIN_ID, "0.1.0")
    assert offer["permissions"] == {
        "endpoint": {"enabled": True},
        "storage": {"enabled": True, "size": 65536},
    }
    (provider,) = offer["providers"]
    assert provider["name"] == "storage_tool"
    assert provider["description"] == "Reads and writes the plugin's storage."
    assert [(c["name"], c["type"], c["default"]) for c in provider["credentials"]] == [
        ("api_key", "secret-input", None),
        ("region", "text-input", "eu"),
    ]
    (kv,) = provider["tools"]
    assert kv["name"] == "kv" and kv["description"] == "One storage operation on a key."
    parameters = {p["name"]: p for p in kv["parameters"]}
    assert list(parameters) == ["op", "key", "value", "encoding", "step", "missing_ok"]
    assert parameters["op"] == {
        "name": "op",
        "type": "string",
        "required": True,
        "default": None,
        "form": "llm",
    }
    assert parameters["encoding"]["options"] == ["utf-8", "latin-1"]
    # As a call gets them, on both transports (the SDK's model makes a boolean's false 0).
    defaults = [parameters[n]["default"] for n in ("encoding", "step", "missing_ok")]
    assert defaults == ["utf-8", 1, False] and defaults[2] is False
    (group,) = offer["endpoints"]
    assert [s["name"] for s in group["settings"]] == ["greeting"]
    assert [(e["method"], e["path"]) for e in group["endpoints"]] == [
        ("GET", "/visits"),
        ("POST", "/notes/<name>"),
        ("GET", "/stream"),
    ]
    # Where it runs: one remote-debug connection per workspace, or one process for both.
    expected = (
        [{"transport": "tcp", "workspaces": [ws], "state": "running"} for ws in workspaces]
        if transport == "tcp"
        else [{"transport": "stdio", "workspaces": list(workspaces), "state": "running"}]
    )
    assert all(entry in offer["running"] for entry in expected)


def test_an_unknown_plugin_is_404(service: HostService) -> None:
    status, body = service.call("GET", "/v1/admin/plugins/nobody/nothing")
    assert (status, json.loads(body)["error"]["code"]) == (404, "plugin_not_found")


def test_cli_shows_the_offer(service: HostService, workspaces: Ws) -> None:
    options = ["--url", service.url, "--data-dir", str(service.data_dir)]
    result = CliRunner().invoke(main, ["plugin", "show", PLUGIN_ID, *options])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"{PLUGIN_ID} 0.1.0"
    assert "permissions: endpoint, storage (65536 bytes)" in lines
    assert "tool provider storage_tool: Reads and writes the plugin's storage." in lines
    assert '  credentials: api_key (secret-input), region (text-input, default "eu")' in lines
    assert '    encoding (select, one of utf-8|latin-1, required, default "utf-8")' in lines
    assert "    missing_ok (boolean, default false)" in lines
    assert "  POST /notes/<name>" in lines
    as_json = CliRunner().invoke(main, ["plugin", "show", PLUGIN_ID, *options, "--json"])
    assert json.loads(as_json.stdout)["plugin"] == PLUGIN_ID
