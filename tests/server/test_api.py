"""The HTTP API in process: every verb, every error status, exact bytes."""

from __future__ import annotations

import base64
from collections.abc import Callable
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient
from starlette.types import Message

from pluginkv import Store
from pluginkv.server.app import create_app
from pluginkv.services.tokens import Tokens

from . import asgi

Auth = Callable[..., dict[str, str]]


def url(key: str) -> str:
    return "/v1/kv/" + quote(key, safe="")


class TestSingleKeys:
    def test_put_then_get_returns_the_exact_bytes(self, client: TestClient, auth: Auth) -> None:
        value = bytes(range(256))
        assert client.put(url("k"), content=value, headers=auth()).status_code == 204
        response = client.get(url("k"), headers=auth())
        assert response.status_code == 200
        assert response.content == value
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.headers["etag"].strip('"').isdigit()

    def test_get_of_an_absent_key_is_404_with_a_json_error(
        self, client: TestClient, auth: Auth
    ) -> None:
        response = client.get(url("nope"), headers=auth())
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"

    def test_head_tells_existence(self, client: TestClient, auth: Auth) -> None:
        assert client.head(url("k"), headers=auth()).status_code == 404
        client.put(url("k"), content=b"", headers=auth())
        assert client.head(url("k"), headers=auth()).status_code == 200

    @pytest.mark.parametrize("method", ["GET", "HEAD"])
    def test_a_get_naming_the_current_version_is_304_without_the_value(
        self, client: TestClient, auth: Auth, method: str
    ) -> None:
        client.put(url("k"), content=b"v1", headers=auth())
        etag = client.get(url("k"), headers=auth()).headers["etag"]
        for held in (etag, f"W/{etag}", f'"999", {etag}', "*"):
            response = client.request(method, url("k"), headers={**auth(), "If-None-Match": held})
            assert (response.status_code, response.content) == (304, b""), held
            assert response.headers["etag"] == etag
        client.put(url("k"), content=b"v2", headers=auth())
        for held in (etag, "junk", '"1x"', ""):
            response = client.request(method, url("k"), headers={**auth(), "If-None-Match": held})
            assert response.status_code == 200, held
        assert client.get(url("k"), headers={**auth(), "If-None-Match": etag}).content == b"v2"
        gone = client.get(url("nope"), headers={**auth(), "If-None-Match": "*"})
        assert gone.status_code == 404

    def test_head_sends_the_headers_a_get_would_without_the_value(
        self, client: TestClient, auth: Auth
    ) -> None:
        absent = client.head(url("k"), headers=auth())
        assert absent.headers["x-error-code"] == "not_found"
        client.put(url("k") + "?ttl=60", content=b"x" * 100, headers=auth())
        for meta in ("", "?meta=1"):
            got = client.get(url("k") + meta, headers=auth())
            head = client.head(url("k") + meta, headers=auth())
            assert (head.status_code, head.content) == (200, b"")
            same = {name: value for name, value in got.headers.items() if name != "date"}
            assert {name: value for name, value in head.headers.items() if name != "date"} == same
            assert head.headers["content-length"] == "100"

    def test_delete_is_idempotent(self, client: TestClient, auth: Auth) -> None:
        client.put(url("k"), content=b"v", headers=auth())
        assert client.delete(url("k"), headers=auth()).status_code == 204
        assert client.delete(url("k"), headers=auth()).status_code == 204
        assert client.get(url("k"), headers=auth()).status_code == 404

    @pytest.mark.parametrize(
        "key",
        ["a/b/c", "a//b", "/leading", "sp ace", "pct%41", "q?x=1#frag", "é🙂", "plus+amp&"],
    )
    def test_keys_round_trip_through_percent_encoding(
        self, client: TestClient, auth: Auth, store: Store, key: str
    ) -> None:
        client.put(url(key), content=b"v", headers=auth())
        assert store.storage(workspace="ws-1", plugin="acme/weather").get(key) == b"v"
        listed = client.get("/v1/keys", headers=auth()).json()["entries"]
        assert [e["key"] for e in listed] == [key]
        assert client.get(url(key), headers=auth()).content == b"v"

    @pytest.mark.parametrize(
        "path", ["/v1/kv/a%5Cb", "/v1/kv/a%00b", "/v1/kv/a/%2E%2E/b", "/v1/kv/%ff"]
    )
    def test_invalid_keys_are_400(self, client: TestClient, auth: Auth, path: str) -> None:
        response = client.put(path, content=b"v", headers=auth())
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_key"

    def test_ttl_query_expires_the_entry(self, client: TestClient, auth: Auth) -> None:
        client.put(url("k") + "?ttl=30", content=b"v", headers=auth())
        response = client.get(url("k"), headers=auth())
        assert float(response.headers["x-expires-at"]) > 0

    def test_bad_ttl_is_400(self, client: TestClient, auth: Auth) -> None:
        for ttl in ["abc", "0", "-5"]:
            response = client.put(url("k") + f"?ttl={ttl}", content=b"v", headers=auth())
            assert response.status_code == 400, ttl

    def test_timestamps_come_only_with_meta(
        self, client: TestClient, auth: Auth, store: Store
    ) -> None:
        client.put(url("k"), content=b"v", headers=auth())
        entry = store.storage(workspace="ws-1", plugin="acme/weather").get_entry("k")
        assert entry is not None
        plain = client.get(url("k"), headers=auth())
        assert "x-created-at" not in plain.headers and "x-updated-at" not in plain.headers
        assert plain.headers["etag"] == f'"{entry.version}"'
        for flag in ("1", "true", "TRUE"):
            with_meta = client.get(url("k") + f"?meta={flag}", headers=auth())
            assert float(with_meta.headers["x-created-at"]) == entry.created_at
            assert float(with_meta.headers["x-updated-at"]) == entry.updated_at
        assert "x-created-at" not in client.get(url("k") + "?meta=0", headers=auth()).headers

    def test_a_meta_flag_that_is_not_a_yes_or_no_is_400_naming_it(
        self, client: TestClient, auth: Auth
    ) -> None:
        client.put(url("k"), content=b"v", headers=auth())
        response = client.get(url("k") + "?meta=yes-please", headers=auth())
        assert response.status_code == 400
        assert "meta='yes-please'" in response.json()["error"]["message"]


class TestConditions:
    def test_if_match_with_the_current_version_writes(self, client: TestClient, auth: Auth) -> None:
        client.put(url("k"), content=b"1", headers=auth())
        etag = client.get(url("k"), headers=auth()).headers["etag"]
        response = client.put(url("k"), content=b"2", headers={**auth(), "If-Match": etag})
        assert response.status_code == 204

    def test_if_match_with_a_stale_version_is_412_and_changes_nothing(
        self, client: TestClient, auth: Auth
    ) -> None:
        client.put(url("k"), content=b"1", headers=auth())
        etag = client.get(url("k"), headers=auth()).headers["etag"]
        current = client.put(url("k"), content=b"2", headers=auth()).headers["etag"]
        response = client.put(url("k"), content=b"3", headers={**auth(), "If-Match": etag})
        assert response.status_code == 412
        assert response.headers["etag"] == current
        error = response.json()["error"]
        assert error["code"] == "version_conflict"
        assert error["expected"] == int(etag.strip('"'))
        assert client.get(url("k"), headers=auth()).content == b"2"

    def test_if_none_match_star_sets_only_once(self, client: TestClient, auth: Auth) -> None:
        headers = {**auth(), "If-None-Match": "*"}
        assert client.put(url("k"), content=b"1", headers=headers).status_code == 204
        assert client.put(url("k"), content=b"2", headers=headers).status_code == 412

    def test_conditional_delete(self, client: TestClient, auth: Auth) -> None:
        client.put(url("k"), content=b"1", headers=auth())
        response = client.delete(url("k"), headers={**auth(), "If-Match": '"999999"'})
        assert response.status_code == 412

    def test_malformed_if_match_is_400(self, client: TestClient, auth: Auth) -> None:
        response = client.put(url("k"), content=b"1", headers={**auth(), "If-Match": "abc"})
        assert response.status_code == 400


class TestLimits:
    def test_value_over_the_limit_is_413_by_content_length(
        self, open_store: Callable[..., Store], auth: Auth, tokens: object
    ) -> None:
        from pluginkv.server.app import create_app

        store = open_store("memory", max_value_bytes=10)
        with TestClient(create_app(store=store, tokens=tokens)) as client:  # type: ignore[arg-type]
            response = client.put(url("k"), content=b"x" * 11, headers=auth())
            assert response.status_code == 413
            assert "PLUGINKV_MAX_VALUE_BYTES" in response.json()["error"]["message"]
            assert client.put(url("k"), content=b"x" * 10, headers=auth()).status_code == 204

    def test_chunked_value_over_the_limit_is_413(
        self, open_store: Callable[..., Store], auth: Auth, tokens: object
    ) -> None:
        from pluginkv.server.app import create_app

        store = open_store("memory", max_value_bytes=10)

        def chunks():  # type: ignore[no-untyped-def]
            for _ in range(100):
                yield b"x" * 5

        with TestClient(create_app(store=store, tokens=tokens)) as client:  # type: ignore[arg-type]
            response = client.put(url("k"), content=chunks(), headers=auth())
            assert response.status_code == 413
            assert store.storage(workspace="ws-1", plugin="acme/weather").get("k") is None

    def test_quota_exceeded_is_507_with_details(
        self, open_store: Callable[..., Store], auth: Auth, tokens: object
    ) -> None:
        from pluginkv.server.app import create_app

        store = open_store("memory", default_quota_bytes=20)
        with TestClient(create_app(store=store, tokens=tokens)) as client:  # type: ignore[arg-type]
            response = client.put(url("k"), content=b"x" * 30, headers=auth())
            assert response.status_code == 507
            error = response.json()["error"]
            assert (error["code"], error["used"], error["limit"], error["needed"]) == (
                "quota_exceeded",
                0,
                20,
                31,
            )


class TestListingAndBatches:
    def test_keys_pages_with_a_cursor(self, client: TestClient, auth: Auth) -> None:
        for i in range(5):
            client.put(url(f"p/{i}"), content=b"v", headers=auth())
        client.put(url("other"), content=b"v", headers=auth())
        seen = []
        params: dict[str, str] = {"prefix": "p/", "limit": "2"}
        while True:
            page = client.get("/v1/keys", params=params, headers=auth()).json()
            seen += [e["key"] for e in page["entries"]]
            if page["next_cursor"] is None:
                break
            params["cursor"] = page["next_cursor"]
        assert seen == [f"p/{i}" for i in range(5)]

    def test_batch_set_get_delete(self, client: TestClient, auth: Auth) -> None:
        items = {"a": base64.b64encode(b"\x00\xff").decode(), "b": base64.b64encode(b"").decode()}
        stored = client.post("/v1/batch/set", json={"items": items}, headers=auth())
        assert set(stored.json()["versions"]) == {"a", "b"}
        got = client.post("/v1/batch/get", json={"keys": ["a", "b", "c"]}, headers=auth()).json()
        assert got == {"values": items}
        deleted = client.post("/v1/batch/delete", json={"keys": ["a", "c"]}, headers=auth())
        assert deleted.json() == {"deleted": 1}

    def test_batch_with_bad_base64_is_400(self, client: TestClient, auth: Auth) -> None:
        response = client.post("/v1/batch/set", json={"items": {"a": "!!"}}, headers=auth())
        assert response.status_code == 400

    def test_delete_prefix_needs_an_explicit_prefix(self, client: TestClient, auth: Auth) -> None:
        client.put(url("t/1"), content=b"v", headers=auth())
        assert client.delete("/v1/keys", headers=auth()).status_code == 400
        response = client.delete("/v1/keys", params={"prefix": "t/"}, headers=auth())
        assert response.json() == {"deleted": 1}

    def test_incr_and_usage(self, client: TestClient, auth: Auth) -> None:
        assert client.post(url("n").replace("/kv/", "/incr/"), json={}, headers=auth()).json() == {
            "value": 1
        }
        response = client.post("/v1/incr/n", json={"delta": 41}, headers=auth())
        assert response.json() == {"value": 42}
        assert client.get(url("n"), headers=auth()).content == b"42"
        usage = client.get("/v1/usage", headers=auth()).json()
        assert usage["bytes_used"] == 3 and usage["keys"] == 1

    def test_incr_of_text_is_400(self, client: TestClient, auth: Auth) -> None:
        client.put(url("n"), content=b"abc", headers=auth())
        response = client.post("/v1/incr/n", json={"delta": 1}, headers=auth())
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "wrong_value_type"


class TestAuth:
    def test_missing_token_is_401(self, client: TestClient) -> None:
        response = client.get(url("k"))
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"

    def test_tampered_token_is_401(self, client: TestClient, auth: Auth) -> None:
        token = auth()["Authorization"]
        header, payload, signature = token.removeprefix("Bearer ").split(".")
        forged = (
            base64.urlsafe_b64encode(
                base64.urlsafe_b64decode(payload + "==").replace(b"ws-1", b"ws-2")
            )
            .decode()
            .rstrip("=")
        )
        headers = {"Authorization": f"Bearer {header}.{forged}.{signature}"}
        assert client.get(url("k"), headers=headers).status_code == 401

    def test_wrong_secret_is_401(self, client: TestClient) -> None:
        from pluginkv.services.tokens import Tokens

        other = Tokens("another-secret-" + "y" * 40, default_ttl=60)
        token = other.issue(workspace="ws-1", plugin="acme/weather")
        response = client.get(url("k"), headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401

    def test_expired_token_is_401(self, client: TestClient) -> None:
        from pluginkv.services.tokens import Tokens

        from .conftest import SECRET

        past = Tokens(SECRET, default_ttl=60, clock=lambda: 1_000_000.0)
        token = past.issue(workspace="ws-1", plugin="acme/weather")
        response = client.get(url("k"), headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert "expired" in response.json()["error"]["message"]

    def test_read_only_token_reads_but_cannot_write(self, client: TestClient, auth: Auth) -> None:
        client.put(url("k"), content=b"v", headers=auth())
        ro = auth(read_only=True)
        assert client.get(url("k"), headers=ro).content == b"v"
        assert client.put(url("k"), content=b"w", headers=ro).status_code == 403
        assert client.delete(url("k"), headers=ro).status_code == 403
        assert client.post("/v1/incr/n", json={}, headers=ro).status_code == 403
        assert client.post("/v1/batch/set", json={"items": {}}, headers=ro).status_code == 403
        assert (
            client.delete("/v1/keys", params={"prefix": "", "all": "true"}, headers=ro).status_code
            == 403
        )

    @pytest.mark.parametrize(
        "other",
        [
            pytest.param({"workspace": "ws-2"}, id="other-workspace"),
            pytest.param({"plugin": "acme/other"}, id="other-plugin"),
        ],
    )
    def test_a_token_never_reaches_another_scope(
        self, client: TestClient, auth: Auth, other: dict[str, str]
    ) -> None:
        mine = auth()
        client.put(url("secret"), content=b"mine", headers=mine)
        theirs = auth(**other)
        assert client.get(url("secret"), headers=theirs).status_code == 404
        assert client.head(url("secret"), headers=theirs).status_code == 404
        assert client.get("/v1/keys", headers=theirs).json()["entries"] == []
        batch = client.post("/v1/batch/get", json={"keys": ["secret"]}, headers=theirs)
        assert batch.json() == {"values": {}}
        assert client.get("/v1/usage", headers=theirs).json()["keys"] == 0
        client.delete(url("secret"), headers=theirs)
        client.delete("/v1/keys", params={"prefix": "", "all": "true"}, headers=theirs)
        client.post("/v1/batch/delete", json={"keys": ["secret"]}, headers=theirs)
        client.put(url("secret"), content=b"theirs", headers=theirs)
        assert client.get(url("secret"), headers=mine).content == b"mine"

    def test_admin_token_cannot_touch_keys(self, client: TestClient, admin: dict[str, str]) -> None:
        assert client.get(url("k"), headers=admin).status_code == 403

    def test_scope_token_cannot_reach_admin(self, client: TestClient, auth: Auth) -> None:
        assert client.get("/v1/admin/scopes", headers=auth()).status_code == 403


class TestAdmin:
    def test_list_quota_and_purge(
        self, client: TestClient, auth: Auth, admin: dict[str, str]
    ) -> None:
        client.put(url("k"), content=b"vv", headers=auth())
        scopes = client.get("/v1/admin/scopes", headers=admin).json()["scopes"]
        assert scopes == [
            {
                "workspace": "ws-1",
                "plugin": "acme/weather",
                "bytes_used": 3,
                "keys": 1,
                "quota_bytes": 100 * 1024 * 1024,
            }
        ]
        body = {"workspace": "ws-1", "plugin": "acme/weather", "quota_bytes": 4}
        assert client.put("/v1/admin/quota", json=body, headers=admin).status_code == 204
        assert client.put(url("j"), content=b"x", headers=auth()).status_code == 507
        body = {"workspace": "ws-1", "plugin": "acme/weather"}
        assert client.post("/v1/admin/purge", json=body, headers=admin).json() == {"deleted": 1}
        assert client.get(url("k"), headers=auth()).status_code == 404


class TestHealth:
    def test_healthz_and_readyz(self, client: TestClient) -> None:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json() == {"status": "ready"}

    def test_readyz_reports_a_closed_database(
        self, open_store: Callable[..., Store], tokens: object
    ) -> None:
        from pluginkv.server.app import create_app

        store = open_store("sqlite")
        with TestClient(create_app(store=store, tokens=tokens)) as client:  # type: ignore[arg-type]
            store.close()
            response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "backend_unavailable"

    def test_unknown_route_is_a_json_404(self, client: TestClient) -> None:
        response = client.get("/v2/nothing")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "no_such_route"


class TestPathsAndBodies:
    def test_a_percent_encoded_route_prefix_is_refused(
        self, client: TestClient, auth: Auth, store: Store
    ) -> None:
        response = client.put("/v1/k%76/abc", content=b"v", headers=auth())
        assert response.status_code == 400
        assert store.storage(workspace="ws-1", plugin="acme/weather").keys().entries == []

    def test_a_whole_number_float_is_an_int(self, client: TestClient, auth: Auth) -> None:
        assert client.post("/v1/incr/n", json={"delta": 5.0}, headers=auth()).json() == {"value": 5}

    def test_default_page_size_follows_a_lower_maximum(
        self, open_store: Callable[..., Store], auth: Auth, tokens: object
    ) -> None:
        from pluginkv.server.app import create_app

        store = open_store("memory", max_page_size=3)
        storage = store.storage(workspace="ws-1", plugin="acme/weather")
        storage.set_many({f"k{i}": b"" for i in range(5)})
        with TestClient(create_app(store=store, tokens=tokens)) as client:  # type: ignore[arg-type]
            page = client.get("/v1/keys", headers=auth()).json()
        assert len(page["entries"]) == 3 and page["next_cursor"] is not None


def test_a_wrong_method_lists_every_allowed_one(client: TestClient, auth: Auth) -> None:
    response = client.post(url("k"), content=b"v", headers=auth())
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "PUT", "DELETE"}


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "/v1/kv/half"), ("POST", "/v1/batch/set")],
)
def test_a_client_that_leaves_mid_body_stores_nothing_and_gets_no_answer(
    store: Store, tokens: Tokens, method: str, path: str
) -> None:
    app = create_app(store=store, tokens=tokens)
    token = tokens.issue(workspace="ws-1", plugin="acme/weather")
    incoming: list[Message] = [
        {"type": "http.request", "body": b'{"items": {"half": "', "more_body": True},
        {"type": "http.disconnect"},
    ]
    headers = [(b"authorization", f"Bearer {token}".encode()), (b"content-length", b"99")]

    sent = asgi.call(app, method, path, headers, incoming)

    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [499]
    assert store.storage(workspace="ws-1", plugin="acme/weather").usage().keys == 0
