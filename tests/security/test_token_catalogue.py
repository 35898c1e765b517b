"""The token attacks that held in the hostile review, kept: every route, every forged credential.

The routes come from the served OpenAPI document, so a route added later is
attacked too, or this file fails until it says how to call it.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from starlette.testclient import TestClient

from pluginkv import Store, open_store
from pluginkv.server.app import create_app
from pluginkv.services.tokens import Tokens

SECRET = "catalogue-secret-" + "s" * 40
VICTIM = ("ws-victim", "acme/weather")
ATTACKER = ("ws-attacker", "acme/weather")


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    json: Any = None
    content: bytes | None = None
    params: dict[str, str] = field(default_factory=dict)
    writes: bool = False
    admin: bool = False


# One well-formed request per authenticated operation of the OpenAPI document.
CALLS: dict[tuple[str, str], Call] = {
    ("put", "/v1/kv/{key}"): Call("PUT", "/v1/kv/secret", content=b"mine", writes=True),
    ("get", "/v1/kv/{key}"): Call("GET", "/v1/kv/secret"),
    ("head", "/v1/kv/{key}"): Call("HEAD", "/v1/kv/secret"),
    ("delete", "/v1/kv/{key}"): Call("DELETE", "/v1/kv/secret", writes=True),
    ("post", "/v1/incr/{key}"): Call("POST", "/v1/incr/counter", json={"delta": 1}, writes=True),
    ("get", "/v1/keys"): Call("GET", "/v1/keys", params={"prefix": ""}),
    ("delete", "/v1/keys"): Call("DELETE", "/v1/keys", params={"prefix": "s"}, writes=True),
    ("post", "/v1/batch/get"): Call("POST", "/v1/batch/get", json={"keys": ["secret"]}),
    ("post", "/v1/batch/set"): Call(
        "POST", "/v1/batch/set", json={"items": {"secret": "eA=="}}, writes=True
    ),
    ("post", "/v1/batch/delete"): Call(
        "POST", "/v1/batch/delete", json={"keys": ["secret"]}, writes=True
    ),
    ("get", "/v1/usage"): Call("GET", "/v1/usage"),
    ("post", "/v1/atomic"): Call(
        "POST",
        "/v1/atomic",
        json={"operations": [{"op": "set", "key": "secret", "value": {"text": "mine"}}]},
        writes=True,
    ),
    ("get", "/v1/changes"): Call("GET", "/v1/changes", params={"prefix": ""}),
    ("get", "/v1/admin/scopes"): Call("GET", "/v1/admin/scopes", admin=True),
    ("put", "/v1/admin/quota"): Call(
        "PUT",
        "/v1/admin/quota",
        json={"workspace": VICTIM[0], "plugin": VICTIM[1], "quota_bytes": 0},
        admin=True,
        writes=True,
    ),
    ("post", "/v1/admin/purge"): Call(
        "POST",
        "/v1/admin/purge",
        json={"workspace": VICTIM[0], "plugin": VICTIM[1]},
        admin=True,
        writes=True,
    ),
    ("post", "/v1/admin/tokens/revoke"): Call(
        "POST",
        "/v1/admin/tokens/revoke",
        json={"workspace": VICTIM[0], "plugin": VICTIM[1]},
        admin=True,
        writes=True,
    ),
    ("get", "/v1/admin/info"): Call("GET", "/v1/admin/info", admin=True),
    ("post", "/v1/admin/tokens"): Call(
        "POST", "/v1/admin/tokens", json={"workspace": VICTIM[0], "plugin": VICTIM[1]}, admin=True
    ),
    ("get", "/v1/admin/plugins"): Call("GET", "/v1/admin/plugins", admin=True),
    ("get", "/v1/admin/plugins/{author}/{name}"): Call(
        "GET", f"/v1/admin/plugins/{VICTIM[1]}", admin=True
    ),
    ("get", "/v1/admin/plugins/{author}/{name}/logs"): Call(
        "GET", f"/v1/admin/plugins/{VICTIM[1]}/logs", admin=True
    ),
    ("post", "/v1/admin/tools/validate-credentials"): Call(
        "POST",
        "/v1/admin/tools/validate-credentials",
        json={"workspace": VICTIM[0], "plugin": VICTIM[1], "provider": "p", "credentials": {}},
        admin=True,
    ),
    ("post", "/v1/admin/plugins/install"): Call(
        "POST",
        "/v1/admin/plugins/install",
        json={"directory": "/nonexistent", "workspace": VICTIM[0]},
        admin=True,
        writes=True,
    ),
    ("post", "/v1/admin/plugins/uninstall"): Call(
        "POST",
        "/v1/admin/plugins/uninstall",
        json={"plugin": VICTIM[1], "workspace": VICTIM[0]},
        admin=True,
        writes=True,
    ),
    ("post", "/v1/admin/tools/invoke"): Call(
        "POST",
        "/v1/admin/tools/invoke",
        json={"workspace": VICTIM[0], "plugin": VICTIM[1], "provider": "p", "tool": "t"},
        admin=True,
    ),
    ("delete", "/v1/admin/endpoints/{hook_id}"): Call(
        "DELETE", "/v1/admin/endpoints/nohook", admin=True, writes=True
    ),
    ("get", "/v1/admin/endpoints"): Call("GET", "/v1/admin/endpoints", admin=True),
    ("post", "/v1/admin/endpoints"): Call(
        "POST",
        "/v1/admin/endpoints",
        json={"workspace": VICTIM[0], "plugin": VICTIM[1], "settings": {}},
        admin=True,
        writes=True,
    ),
}


def _authenticated_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if isinstance(operation, dict) and "401" in operation.get("responses", {})
    }


@pytest.fixture(name="tokens")
def _tokens() -> Tokens:
    return Tokens(SECRET, default_ttl=3600)


@pytest.fixture(name="store")
def _store() -> Iterator[Store]:
    with open_store("memory://") as store:
        yield store


@pytest.fixture(name="client")
def _client(store: Store, tokens: Tokens) -> Iterator[TestClient]:
    with TestClient(create_app(store=store, tokens=tokens)) as client:
        yield client


@pytest.fixture(name="victim_data")
def _victim_data(store: Store) -> Callable[[], list[tuple[str, bytes]]]:
    """The victim's scope holds a key; the returned call reads everything it holds."""
    victim = store.storage(workspace=VICTIM[0], plugin=VICTIM[1])
    victim.set("secret", b"victim's value")
    victim.set("counter", b"7")

    def snapshot() -> list[tuple[str, bytes]]:
        return sorted(
            (entry.key, victim.get(entry.key) or b"") for entry in victim.keys("").entries
        )

    return snapshot


def _send(client: TestClient, call: Call, headers: dict[str, str]) -> Any:
    return client.request(
        call.method,
        call.path,
        json=call.json,
        content=call.content,
        params=call.params,
        headers=headers,
    )


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _forged_tokens(tokens: Tokens) -> dict[str, str]:
    now = time.time()
    scope_claims = {
        "iss": "pluginkv",
        "iat": now,
        "exp": int(now) + 600,
        "typ": "scope",
        "ws": VICTIM[0],
        "plugin": VICTIM[1],
        "ro": False,
    }
    admin_claims = {**scope_claims, "typ": "admin"}
    genuine = tokens.issue(workspace=ATTACKER[0], plugin=ATTACKER[1])
    header, payload, signature = genuine.split(".")
    swapped = base64.urlsafe_b64encode(json.dumps({**scope_claims, "iat": now}).encode()).rstrip(
        b"="
    )
    return {
        "alg none (scope)": jwt.encode(scope_claims, None, algorithm="none"),
        "alg none (admin)": jwt.encode(admin_claims, None, algorithm="none"),
        "another secret (scope)": jwt.encode(scope_claims, "x" * 40, algorithm="HS256"),
        "another secret (admin)": jwt.encode(admin_claims, "x" * 40, algorithm="HS256"),
        "payload swapped under a genuine signature": f"{header}.{swapped.decode()}.{signature}",
        "signature dropped": f"{header}.{payload}.",
        "expired": jwt.encode({**scope_claims, "exp": int(now) - 1}, SECRET, algorithm="HS256"),
        "unknown type": jwt.encode({**scope_claims, "typ": "root"}, SECRET, algorithm="HS256"),
        "debug key": tokens.issue_debug_key(workspace=VICTIM[0]),
        "not a token": "garbage",
    }


def test_every_authenticated_route_is_in_the_catalogue(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert _authenticated_operations(document) == set(CALLS)


@pytest.mark.parametrize("call", CALLS.values(), ids=lambda c: f"{c.method} {c.path}")
def test_no_forged_or_missing_credential_reaches_any_route(
    client: TestClient,
    tokens: Tokens,
    call: Call,
    victim_data: Callable[[], list[tuple[str, bytes]]],
) -> None:
    before = victim_data()
    attempts = {"no header": {}, "basic scheme": {"Authorization": "Basic dXNlcjpwYXNz"}}
    attempts.update({name: _bearer(token) for name, token in _forged_tokens(tokens).items()})
    for name, headers in attempts.items():
        response = _send(client, call, headers)
        assert response.status_code == 401, (name, response.status_code, response.text)
    assert victim_data() == before


@pytest.mark.parametrize(
    "call", [c for c in CALLS.values() if c.admin], ids=lambda c: f"{c.method} {c.path}"
)
def test_a_scope_token_never_reaches_an_admin_route(
    client: TestClient,
    tokens: Tokens,
    call: Call,
    victim_data: Callable[[], list[tuple[str, bytes]]],
) -> None:
    before = victim_data()
    token = tokens.issue(workspace=VICTIM[0], plugin=VICTIM[1])
    response = _send(client, call, _bearer(token))
    assert response.status_code == 403, response.text
    assert victim_data() == before


@pytest.mark.parametrize(
    "call",
    [c for c in CALLS.values() if c.writes and not c.admin],
    ids=lambda c: f"{c.method} {c.path}",
)
def test_a_read_only_token_changes_nothing_on_any_write_route(
    client: TestClient,
    tokens: Tokens,
    call: Call,
    victim_data: Callable[[], list[tuple[str, bytes]]],
) -> None:
    before = victim_data()
    token = tokens.issue(workspace=VICTIM[0], plugin=VICTIM[1], read_only=True)
    response = _send(client, call, _bearer(token))
    assert response.status_code == 403, response.text
    assert "read-only" in response.json()["error"]["message"]
    assert victim_data() == before


@pytest.mark.parametrize(
    "call", [c for c in CALLS.values() if not c.admin], ids=lambda c: f"{c.method} {c.path}"
)
def test_another_scopes_token_neither_sees_nor_touches_the_victims_keys(
    client: TestClient,
    tokens: Tokens,
    call: Call,
    victim_data: Callable[[], list[tuple[str, bytes]]],
) -> None:
    before = victim_data()
    for workspace, plugin in (ATTACKER, (VICTIM[0], "acme/other"), ("ws-victim2", VICTIM[1])):
        token = tokens.issue(workspace=workspace, plugin=plugin)
        response = _send(client, call, _bearer(token))
        assert response.status_code < 500, response.text
        assert b"victim" not in response.content
        if call.method in ("GET", "HEAD") and call.path.startswith("/v1/kv/"):
            assert response.status_code == 404
    assert victim_data() == before


def test_an_admin_token_reads_no_keys(client: TestClient, tokens: Tokens) -> None:
    response = client.get("/v1/kv/secret", headers=_bearer(tokens.issue(admin=True)))
    assert response.status_code == 403


def test_a_revoked_token_reaches_no_scope_route(
    client: TestClient, tokens: Tokens, victim_data: Callable[[], list[tuple[str, bytes]]]
) -> None:
    before = victim_data()
    token = tokens.issue(workspace=VICTIM[0], plugin=VICTIM[1])
    admin = _bearer(tokens.issue(admin=True))
    assert client.get("/v1/kv/secret", headers=_bearer(token)).status_code == 200
    revoke = {"workspace": VICTIM[0], "plugin": VICTIM[1]}
    assert client.post("/v1/admin/tokens/revoke", json=revoke, headers=admin).status_code == 200
    for call in (c for c in CALLS.values() if not c.admin):
        response = _send(client, call, _bearer(token))
        assert response.status_code == 401, (call, response.text)
        if call.method != "HEAD":
            assert "revoked" in response.json()["error"]["message"]
    assert victim_data() == before


def test_a_cursor_from_another_scope_lists_only_the_callers_keys(
    client: TestClient, tokens: Tokens, store: Store
) -> None:
    victim = store.storage(workspace=VICTIM[0], plugin=VICTIM[1])
    for i in range(5):
        victim.set(f"v{i}", b"victim")
    store.storage(workspace=ATTACKER[0], plugin=ATTACKER[1]).set("mine", b"attacker")
    victim_token = _bearer(tokens.issue(workspace=VICTIM[0], plugin=VICTIM[1]))
    page = client.get("/v1/keys", params={"limit": "2"}, headers=victim_token).json()
    assert page["next_cursor"] is not None
    attacker_token = _bearer(tokens.issue(workspace=ATTACKER[0], plugin=ATTACKER[1]))
    for cursor in (page["next_cursor"], base64.urlsafe_b64encode(b"\x00").decode()):
        response = client.get("/v1/keys", params={"cursor": cursor}, headers=attacker_token)
        if response.status_code == 200:
            assert all(e["key"] == "mine" for e in response.json()["entries"])
        else:
            assert response.status_code == 400
