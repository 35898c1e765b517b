"""JSON request bodies are parsed with the models the document describes them with.

Every operation the document gives a JSON body refuses a field its schema does not
list, with a 400 that names it; missing and mistyped fields are 400s that name them,
in the service's words; and the patterns of names in the document are the ones the
server checks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonschema_rs  # the JSON Schema validator schemathesis checks answers with
import pytest
from starlette.testclient import TestClient

import pluginkv
from pluginkv.errors import InvalidArgument
from pluginkv.keys import check_scope, check_workspace
from pluginkv.server.openapi import openapi_document

Auth = Callable[..., dict[str, str]]

_DOCUMENT = openapi_document(pluginkv.Settings())
_JSON_BODIES = sorted(
    (path, method)
    for path, item in _DOCUMENT["paths"].items()
    for method, operation in item.items()
    if isinstance(operation, dict)
    and "application/json" in operation.get("requestBody", {}).get("content", {})
)


def test_the_document_gives_json_bodies_to_the_batch_admin_and_host_calls() -> None:
    assert len(_JSON_BODIES) >= 12
    assert ("/v1/batch/set", "post") in _JSON_BODIES
    assert ("/v1/admin/tools/invoke", "post") in _JSON_BODIES


@pytest.mark.parametrize(("path", "method"), _JSON_BODIES)
def test_a_field_the_documented_body_does_not_list_is_a_400_that_names_it(
    client: TestClient, auth: Auth, admin: dict[str, str], path: str, method: str
) -> None:
    headers = admin if path.startswith("/v1/admin/") else auth()
    url = path.replace("{key}", "counter")
    response = client.request(method.upper(), url, json={"surplus": 1}, headers=headers)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_argument"
    assert error["message"].startswith("unknown field 'surplus' in the request body; it takes ")


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/v1/batch/get", {}, "request body needs the field 'keys'"),
        ("/v1/batch/get", {"keys": None}, "request body needs the field 'keys'"),
        ("/v1/batch/get", {"keys": "a"}, "field 'keys' must be a list"),
        ("/v1/batch/delete", {"keys": ["a", 1]}, "field 'keys' must be a list of strings"),
        ("/v1/batch/get", {"keys": [], "encoding": 5}, "field 'encoding' must be a str"),
        ("/v1/batch/get", {"keys": [], "encoding": "hex"},
         "field 'encoding' must be 'base64' or 'text', got 'hex'"),
        ("/v1/batch/set", {"items": []}, "field 'items' must be a dict"),
        ("/v1/batch/set", {"items": {}, "ttl": True}, "field 'ttl' must be a int or float"),
        ("/v1/batch/set", {"items": {}, "ttl": "60"}, "field 'ttl' must be a int or float"),
        ("/v1/incr/n", {"delta": "5"}, "field 'delta' must be a int"),
        ("/v1/incr/n", {"delta": True}, "field 'delta' must be a int"),
        ("/v1/incr/n", {"delta": 1.5}, "field 'delta' must be a int"),
    ],
)  # fmt: skip
def test_a_missing_or_mistyped_field_is_a_400_that_names_it_and_stores_nothing(
    client: TestClient, auth: Auth, path: str, body: dict[str, Any], message: str
) -> None:
    response = client.post(path, json=body, headers=auth())
    assert response.status_code == 400
    assert response.json()["error"] == {"code": "invalid_argument", "message": message}
    assert client.get("/v1/kv/n", headers=auth()).status_code == 404


def test_a_whole_float_is_an_integer_as_json_does_not_tell_them_apart(
    client: TestClient, auth: Auth
) -> None:
    response = client.post("/v1/incr/n", json={"delta": 5.0}, headers=auth())
    assert (response.status_code, response.json()) == (200, {"value": 5})


def test_a_scope_field_of_the_wrong_type_names_the_field(
    client: TestClient, admin: dict[str, str]
) -> None:
    body = {"workspace": 7, "plugin": "acme/weather"}
    response = client.post("/v1/admin/purge", json=body, headers=admin)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "field 'workspace' must be a str"


_NAMES = ["ws-1", "a", "A.b:c_d-e", "-ws", "", "w s", "ws/1", "x" * 128, "x" * 129, "é"]


@pytest.mark.parametrize("name", _NAMES)
def test_the_documented_workspace_pattern_accepts_what_the_server_accepts(name: str) -> None:
    schema = _DOCUMENT["components"]["schemas"]["Workspace"]
    documented = jsonschema_rs.Draft202012Validator(schema).is_valid(name)
    assert documented == _accepted(check_workspace, name)


@pytest.mark.parametrize("name", [f"{a}/{b}" for a in _NAMES[:4] for b in _NAMES[:4]] + ["a"])
def test_the_documented_plugin_pattern_accepts_what_the_server_accepts(name: str) -> None:
    schema = _DOCUMENT["components"]["schemas"]["Plugin"]
    documented = jsonschema_rs.Draft202012Validator(schema).is_valid(name)
    assert documented == _accepted(lambda plugin: check_scope("ws-1", plugin), name)


def _accepted(check: Callable[[str], object], name: str) -> bool:
    try:
        check(name)
    except InvalidArgument:
        return False
    return True
