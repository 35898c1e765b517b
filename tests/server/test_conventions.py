"""The conventions HTTP clients bring: strict parameters, versions on writes, 412, one listing path.

Each test sends what a person used to another key-value API would send, and
checks what comes back over HTTP (the app in process, through Starlette's
TestClient).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

from pluginkv import Store
from pluginkv.server.app import create_app
from pluginkv.services.tokens import Tokens

Auth = Callable[..., dict[str, str]]


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _error(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


# -- unknown parameters and fields ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "unknown"),
    [
        ("PUT", "/v1/kv/k?expiration_ttl=60", "expiration_ttl"),
        ("GET", "/v1/kv/k?metadata=1", "metadata"),
        ("DELETE", "/v1/kv/k?recursive=1", "recursive"),
        ("GET", "/v1/keys?limt=2", "limt"),
        ("DELETE", "/v1/keys?prefix=a/&everything=1", "everything"),
        ("POST", "/v1/incr/n?by=2", "by"),
        ("GET", "/v1/usage?verbose=1", "verbose"),
        ("GET", "/healthz?deep=1", "deep"),
        ("GET", "/readyz?deep=1", "deep"),
    ],
)
def test_an_unknown_query_parameter_is_a_400_that_names_it_and_changes_nothing(
    client: TestClient, auth: Auth, method: str, path: str, unknown: str
) -> None:
    client.put("/v1/kv/a/1", content=b"v", headers=auth())
    response = client.request(method, path, content=b"new", headers=auth())
    assert response.status_code == 400
    assert _error(response)["code"] == "invalid_argument"
    assert repr(unknown) in _error(response)["message"]
    assert client.get("/v1/kv/k", headers=auth()).status_code == 404
    assert client.get("/v1/kv/n", headers=auth()).status_code == 404
    assert client.get("/v1/kv/a/1", headers=auth()).content == b"v"


def test_a_put_with_cloudflares_ttl_spelling_stores_nothing(client: TestClient, auth: Auth) -> None:
    response = client.put("/v1/kv/k?expiration_ttl=60", content=b"v", headers=auth())
    assert response.status_code == 400
    assert "ttl" in _error(response)["message"]  # it names what the route takes
    assert client.get("/v1/kv/k", headers=auth()).status_code == 404


@pytest.mark.parametrize(
    ("path", "body", "unknown"),
    [
        ("/v1/incr/n", {"detla": 2}, "detla"),
        ("/v1/batch/set", {"items": {"a": _b64(b"1")}, "expiration_ttl": 60}, "expiration_ttl"),
        ("/v1/batch/get", {"keys": ["a"], "limit": 1}, "limit"),
        ("/v1/batch/delete", {"keys": ["a"], "prefix": "a"}, "prefix"),
    ],
)
def test_an_unknown_json_field_is_a_400_that_names_it_and_changes_nothing(
    client: TestClient, auth: Auth, path: str, body: dict[str, Any], unknown: str
) -> None:
    client.put("/v1/kv/a", content=b"0", headers=auth())
    response = client.post(path, json=body, headers=auth())
    assert response.status_code == 400
    assert repr(unknown) in _error(response)["message"]
    assert client.get("/v1/kv/a", headers=auth()).content == b"0"
    assert client.get("/v1/kv/n", headers=auth()).status_code == 404


_SCOPE = {"workspace": "ws-1", "plugin": "acme/weather"}
_PROVIDER = {**_SCOPE, "provider": "p"}
_TOOL = {**_PROVIDER, "tool": "t"}


@pytest.mark.parametrize(
    ("method", "path", "body", "unknown"),
    [
        ("PUT", "/v1/admin/quota", {**_SCOPE, "quota": 10}, "quota"),
        ("POST", "/v1/admin/plugins/install", {"directory": "/x", "workspace": "w", "ws": 1}, "ws"),
        ("POST", "/v1/admin/plugins/uninstall", {**_SCOPE, "force": True}, "force"),
        ("POST", "/v1/admin/tools/invoke", {**_TOOL, "params": {}}, "params"),
        ("POST", "/v1/admin/tools/validate-credentials", {**_PROVIDER, "creds": {}}, "creds"),
        ("POST", "/v1/admin/endpoints", {**_SCOPE, "setting": {}}, "setting"),
    ],
)  # fmt: skip
def test_an_unknown_field_of_an_admin_call_is_a_400(
    client: TestClient,
    admin: dict[str, str],
    method: str,
    path: str,
    body: dict[str, Any],
    unknown: str,
) -> None:
    response = client.request(method, path, json=body, headers=admin)
    assert response.status_code == 400
    assert repr(unknown) in _error(response)["message"]


# -- versions on writes -------------------------------------------------------------------------
def test_a_put_answers_the_new_version_as_etag(client: TestClient, auth: Auth) -> None:
    first = client.put("/v1/kv/k", content=b"1", headers=auth())
    assert first.status_code == 204
    assert re.fullmatch(r'"[1-9][0-9]*"', first.headers["etag"])
    assert client.get("/v1/kv/k", headers=auth()).headers["etag"] == first.headers["etag"]
    second = client.put(
        "/v1/kv/k", content=b"2", headers={**auth(), "If-Match": first.headers["etag"]}
    )
    assert second.status_code == 204
    assert int(second.headers["etag"].strip('"')) > int(first.headers["etag"].strip('"'))


def test_incr_answers_its_version_as_etag(client: TestClient, auth: Auth) -> None:
    response = client.post("/v1/incr/n", json={"delta": 2}, headers=auth())
    assert response.json() == {"value": 2}
    assert client.get("/v1/kv/n", headers=auth()).headers["etag"] == response.headers["etag"]


def test_incr_without_a_body_adds_one(client: TestClient, auth: Auth) -> None:
    assert client.post("/v1/incr/n", headers=auth()).json() == {"value": 1}
    assert client.post("/v1/incr/n", content=b"", headers=auth()).json() == {"value": 2}


@pytest.mark.parametrize("delta", [2**63, -(2**63) - 1])
def test_an_incr_delta_outside_64_bits_is_400(client: TestClient, auth: Auth, delta: int) -> None:
    client.put("/v1/kv/n", content=b"-1" if delta > 0 else b"1", headers=auth())
    response = client.post("/v1/incr/n", json={"delta": delta}, headers=auth())
    assert response.status_code == 400
    assert "64-bit" in _error(response)["message"]


def test_batch_set_answers_each_keys_version(client: TestClient, auth: Auth) -> None:
    items = {"a": _b64(b"1"), "b": _b64(b"2")}
    response = client.post("/v1/batch/set", json={"items": items}, headers=auth())
    assert response.status_code == 200
    versions = response.json()["versions"]
    for key in ("a", "b"):
        etag = client.get(f"/v1/kv/{key}", headers=auth()).headers["etag"]
        assert etag == f'"{versions[key]}"'


# -- preconditions --------------------------------------------------------------------------------
def test_a_failed_precondition_is_412_with_the_current_etag(client: TestClient, auth: Auth) -> None:
    current = client.put("/v1/kv/k", content=b"1", headers=auth()).headers["etag"]
    for method in ("PUT", "DELETE"):
        response = client.request(
            method, "/v1/kv/k", content=b"2", headers={**auth(), "If-Match": '"999999"'}
        )
        assert response.status_code == 412
        assert response.headers["etag"] == current
        assert _error(response)["code"] == "version_conflict"
    taken = client.put("/v1/kv/k", content=b"3", headers={**auth(), "If-None-Match": "*"})
    assert (taken.status_code, taken.headers["etag"]) == (412, current)
    assert client.get("/v1/kv/k", headers=auth()).content == b"1"


def test_if_match_star_writes_only_a_key_that_holds_a_value(client: TestClient, auth: Auth) -> None:
    only_if_there = {**auth(), "If-Match": "*"}
    absent = client.put("/v1/kv/k", content=b"1", headers=only_if_there)
    assert absent.status_code == 412
    assert "etag" not in absent.headers
    assert client.delete("/v1/kv/k", headers=only_if_there).status_code == 412
    assert client.get("/v1/kv/k", headers=auth()).status_code == 404
    client.put("/v1/kv/k", content=b"1", headers=auth())
    assert client.put("/v1/kv/k", content=b"2", headers=only_if_there).status_code == 204
    assert client.get("/v1/kv/k", headers=auth()).content == b"2"
    assert client.delete("/v1/kv/k", headers=only_if_there).status_code == 204
    assert client.get("/v1/kv/k", headers=auth()).status_code == 404


def test_if_match_with_if_none_match_is_400(client: TestClient, auth: Auth) -> None:
    headers = {**auth(), "If-Match": "*", "If-None-Match": "*"}
    assert client.put("/v1/kv/k", content=b"1", headers=headers).status_code == 400
    assert client.get("/v1/kv/k", headers=auth()).status_code == 404


# -- batch values ---------------------------------------------------------------------------
def test_batch_values_may_be_text_or_base64_per_item(client: TestClient, auth: Auth) -> None:
    items = {
        "plain": _b64(b"\x00\xff"),
        "tagged": {"base64": _b64(b"\x01")},
        "text": {"text": "grüße"},
    }
    assert client.post("/v1/batch/set", json={"items": items}, headers=auth()).status_code == 200
    assert client.get("/v1/kv/plain", headers=auth()).content == b"\x00\xff"
    assert client.get("/v1/kv/tagged", headers=auth()).content == b"\x01"
    assert client.get("/v1/kv/text", headers=auth()).content == "grüße".encode()


def test_batch_get_answers_text_where_the_value_is_utf8_when_asked(
    client: TestClient, auth: Auth
) -> None:
    client.put("/v1/kv/text", content="grüße".encode(), headers=auth())
    client.put("/v1/kv/bytes", content=b"\xff\xfe", headers=auth())
    keys = ["text", "bytes"]
    as_text = client.post("/v1/batch/get", json={"keys": keys, "encoding": "text"}, headers=auth())
    assert as_text.json() == {
        "values": {"text": {"text": "grüße"}, "bytes": {"base64": _b64(b"\xff\xfe")}}
    }
    by_default = client.post("/v1/batch/get", json={"keys": keys}, headers=auth())
    assert by_default.json() == {
        "values": {"text": _b64("grüße".encode()), "bytes": _b64(b"\xff\xfe")}
    }


@pytest.mark.parametrize(
    "item",
    [{"text": "a", "base64": "YQ=="}, {"txt": "a"}, {"text": 1}, {}, 5],
    ids=["both", "misspelt", "not-a-string", "empty", "number"],
)
def test_a_malformed_batch_value_is_400_and_stores_nothing(
    client: TestClient, auth: Auth, item: object
) -> None:
    items = {"good": _b64(b"1"), "bad": item}
    response = client.post("/v1/batch/set", json={"items": items}, headers=auth())
    assert response.status_code == 400
    assert client.get("/v1/kv/good", headers=auth()).status_code == 404


def test_a_batch_longer_than_the_setting_is_400_with_duplicates_counted(
    open_store: Callable[..., Store], tokens: Tokens, auth: Auth
) -> None:
    app = create_app(store=open_store("memory", max_batch_items=3), tokens=tokens)
    with TestClient(app) as client:
        for path in ("/v1/batch/get", "/v1/batch/delete"):
            response = client.post(path, json={"keys": ["a"] * 4}, headers=auth())
            assert response.status_code == 400
            assert "PLUGINKV_MAX_BATCH_ITEMS" in _error(response)["message"]
        assert client.post("/v1/batch/get", json={"keys": ["a"] * 3}, headers=auth()).is_success


# -- paths ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/v1/kv", "/v1/kv/", "/v1/list", "/v1/keys/"])
def test_listing_near_misses_answer_404_with_a_hint_never_a_redirect(
    client: TestClient, auth: Auth, path: str
) -> None:
    response = client.get(path, headers=auth(), follow_redirects=False)
    assert response.status_code == 404
    assert _error(response)["code"] == "no_such_route"
    assert "GET /v1/keys" in _error(response)["message"]


@pytest.mark.parametrize(
    ("method", "prefix"),
    [("PUT", "/v1/kv/"), ("GET", "/v1/kv/"), ("DELETE", "/v1/kv/"), ("POST", "/v1/incr/")],
)
@pytest.mark.parametrize("encoded", ["a%0Ab", "a%00b", "..%2Fx", "%5C"])
def test_a_bad_key_is_the_same_400_invalid_key_on_every_route(
    client: TestClient, auth: Auth, method: str, prefix: str, encoded: str
) -> None:
    response = client.request(method, prefix + encoded, headers=auth())
    assert response.status_code == 400
    assert _error(response)["code"] == "invalid_key"


# -- the API page ------------------------------------------------------------------------------
def test_docs_serves_swagger_ui_from_the_package_over_the_served_document(
    client: TestClient,
) -> None:
    assert client.get("/docs", follow_redirects=False).headers["location"] == "docs/"
    page = client.get("/docs/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.text == (Path(str(swagger_ui_path)) / "index.html").read_text()
    scripts = re.findall(r'src="([^"]+)"', page.text)
    assert scripts and all(not re.match(r"^(https?:)?//", src) for src in scripts)
    for src in scripts:
        assert client.get("/docs/" + src.removeprefix("./")).status_code == 200
    bundle = client.get("/docs/swagger-ui-bundle.js")
    assert bundle.content == (Path(str(swagger_ui_path)) / "swagger-ui-bundle.js").read_bytes()
    initializer = client.get("/docs/swagger-initializer.js").text
    assert '"../openapi.json"' in initializer and "petstore" not in initializer


def test_docs_allows_only_its_own_origin(client: TestClient) -> None:
    for path in ("/docs/", "/docs/swagger-ui-bundle.js", "/docs/swagger-initializer.js"):
        policy = client.get(path).headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        assert directives["default-src"] == "'self'"
        assert "http" not in policy and "*" not in policy
