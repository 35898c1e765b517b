"""The admin routes the console stands on: the store's description, and scope tokens."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from starlette.testclient import TestClient

from pluginkv import __version__


def test_info_describes_the_store_to_the_admin_only(
    client: TestClient, admin: dict[str, str], auth: Callable[..., dict[str, str]], backend: str
) -> None:
    info = client.get("/v1/admin/info", headers=admin)
    assert info.status_code == 200
    body = info.json()
    assert body["version"] == __version__
    assert body["backend"] == backend
    assert body["read_only"] is False
    assert body["uptime_seconds"] >= 0
    assert body["started_at"] <= body["started_at"] + body["uptime_seconds"]
    assert body["max_page_size"] == 1000
    assert body["max_changes_wait_seconds"] == 60
    if backend == "sqlite":
        assert body["data_location"].endswith(".db")
    assert client.get("/v1/admin/info", headers=auth()).status_code == 403
    assert client.get("/v1/admin/info").status_code == 401


def test_a_token_issued_by_the_api_reaches_its_scope_and_no_other(
    client: TestClient, admin: dict[str, str]
) -> None:
    issued = client.post(
        "/v1/admin/tokens", headers=admin, json={"workspace": "ws-9", "plugin": "acme/x", "ttl": 60}
    )
    assert issued.status_code == 200
    assert issued.headers["cache-control"] == "no-store"
    body = issued.json()
    assert (body["workspace"], body["plugin"], body["read_only"]) == ("ws-9", "acme/x", False)
    bearer = {"Authorization": f"Bearer {body['token']}"}
    assert client.put("/v1/kv/k", content=b"v", headers=bearer).status_code == 204
    assert client.get("/v1/usage", headers=bearer).json()["keys"] == 1
    assert client.get("/v1/admin/scopes", headers=bearer).status_code == 403


def test_a_read_only_token_issued_by_the_api_cannot_write(
    client: TestClient, admin: dict[str, str]
) -> None:
    issued = client.post(
        "/v1/admin/tokens",
        headers=admin,
        json={"workspace": "ws-9", "plugin": "acme/x", "read_only": True},
    ).json()
    bearer = {"Authorization": f"Bearer {issued['token']}"}
    assert client.put("/v1/kv/k", content=b"v", headers=bearer).status_code == 403
    assert client.get("/v1/kv/k", headers=bearer).status_code == 404


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"workspace": "ws-1", "plugin": "a/b", "admin": True}, "admin"),
        ({"workspace": "ws-1", "plugin": "a/b", "ttl": 0}, "PLUGINKV_TOKEN_MAX_TTL_SECONDS"),
        ({"workspace": "ws-1", "plugin": "a/b", "ttl": 10**12}, "PLUGINKV_TOKEN_MAX_TTL_SECONDS"),
        ({"workspace": "ws-1", "plugin": "a/b", "read_only": "yes"}, "read_only"),
        ({"workspace": "ws-1"}, "plugin"),
        ({"workspace": "bad workspace", "plugin": "a/b"}, "workspace"),
    ],
)
def test_a_bad_token_request_is_refused_by_name(
    client: TestClient, admin: dict[str, str], body: dict[str, object], named: str
) -> None:
    refused = client.post("/v1/admin/tokens", headers=admin, json=body)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] in {"invalid_argument", "invalid_key"}
    assert named in refused.json()["error"]["message"]


def test_only_the_admin_token_issues_tokens(
    client: TestClient, auth: Callable[..., dict[str, str]]
) -> None:
    body = {"workspace": "ws-1", "plugin": "acme/weather"}
    assert client.post("/v1/admin/tokens", headers=auth(), json=body).status_code == 403
    assert client.post("/v1/admin/tokens", json=body).status_code == 401


def test_tokens_issued_by_the_api_are_revoked_with_their_scope(
    client: TestClient, admin: dict[str, str]
) -> None:
    scope = {"workspace": "ws-1", "plugin": "acme/weather"}
    token = client.post("/v1/admin/tokens", headers=admin, json=scope).json()["token"]
    assert client.post("/v1/admin/tokens/revoke", headers=admin, json=scope).status_code == 200
    answer = client.get("/v1/usage", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401
