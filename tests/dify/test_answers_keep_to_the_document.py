"""The plugin host's answers keep to the OpenAPI document, on both transports.

The schemathesis run (tests/server/test_openapi.py) has no plugin running, so these
routes answer it with errors only; here real plugins answer, and each 2xx body is
checked against the schema the document the service serves gives for it.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema_rs  # the JSON Schema validator schemathesis checks answers with
import pytest

from .conftest import PLUGIN_ID, STORAGE_TOOL, HostService

pytestmark = pytest.mark.usefixtures("sdk_python")

Ws = tuple[str, str]


def _keeps_to_the_document(
    service: HostService, method: str, path: str, status: int, body: Any = None
) -> Any:
    """Call the service; assert the answer has ``status`` and the body its documented schema."""
    served, raw = service.call("GET", "/openapi.json")
    assert served == 200
    document = json.loads(raw)
    got, answer = service.call(method, path, body)
    assert got == status, answer
    template = _template(document, path.partition("?")[0])
    response = document["paths"][template][method.lower()]["responses"][str(status)]
    while "$ref" in response:
        response = _resolve(document, response["$ref"])
    if "content" not in response:
        assert answer == b""
        return None
    parsed = json.loads(answer)
    schema = {**document, "$ref": response["content"]["application/json"]["schema"]["$ref"]}
    jsonschema_rs.Draft202012Validator(schema).validate(parsed)
    return parsed


def _template(document: dict[str, Any], path: str) -> str:
    """The document's path template that ``path`` matches."""
    parts = path.strip("/").split("/")
    for template in document["paths"]:
        pattern = template.strip("/").split("/")
        if len(pattern) == len(parts) and all(
            p.startswith("{") or p == part for p, part in zip(pattern, parts, strict=True)
        ):
            return template
    raise AssertionError(f"no path of the document matches {path}")


def _resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_the_plugin_list_and_offers_keep_to_the_document(
    service: HostService, workspaces: Ws
) -> None:
    listed = _keeps_to_the_document(service, "GET", "/v1/admin/plugins", 200)
    assert any(plugin["plugin"] == PLUGIN_ID for plugin in listed["plugins"])
    path = f"/v1/admin/plugins/{PLUGIN_ID}"
    offer = _keeps_to_the_document(service, "GET", f"{path}?workspace={workspaces[0]}", 200)
    assert offer["providers"] and offer["endpoints"]
    _keeps_to_the_document(service, "GET", path, 200)


def test_endpoints_created_listed_and_deleted_keep_to_the_document(
    service: HostService, workspaces: Ws
) -> None:
    body = {"workspace": workspaces[0], "plugin": PLUGIN_ID, "settings": {"greeting": "hi"}}
    created = _keeps_to_the_document(service, "POST", "/v1/admin/endpoints", 200, body)
    listed = _keeps_to_the_document(
        service, "GET", f"/v1/admin/endpoints?workspace={workspaces[0]}", 200
    )
    assert created["hook_id"] in {endpoint["hook_id"] for endpoint in listed["endpoints"]}
    _keeps_to_the_document(service, "DELETE", f"/v1/admin/endpoints/{created['hook_id']}", 204)


def test_accepted_credentials_keep_to_the_document(service: HostService, workspaces: Ws) -> None:
    body = {
        "workspace": workspaces[0],
        "plugin": PLUGIN_ID,
        "provider": "storage_tool",
        "credentials": {"api_key": "sk-1"},
    }
    path = "/v1/admin/tools/validate-credentials"
    assert _keeps_to_the_document(service, "POST", path, 200, body)["valid"] is True


def test_an_install_its_uninstall_and_its_log_keep_to_the_document(
    service: HostService, local_plugin: dict[str, Any]
) -> None:
    """Installed once more, for one more workspace: the running process serves it too."""
    install = {"directory": str(STORAGE_TOOL), "workspace": "ls-answers"}
    info = _keeps_to_the_document(service, "POST", "/v1/admin/plugins/install", 200, install)
    assert "ls-answers" in info["workspaces"]
    log = _keeps_to_the_document(service, "GET", f"/v1/admin/plugins/{PLUGIN_ID}/logs", 200)
    assert log["plugin"] == PLUGIN_ID
    body = {"plugin": PLUGIN_ID, "workspace": "ls-answers"}
    left = _keeps_to_the_document(service, "POST", "/v1/admin/plugins/uninstall", 200, body)
    assert "ls-answers" not in left["workspaces"]
