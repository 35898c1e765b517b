"""``POST /v1/atomic``, ``GET /v1/changes`` (pages and long polls) and metadata on keys."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from pluginkv import Store
from pluginkv.server.app import create_app
from pluginkv.services.tokens import Tokens

from ..conftest import ENGINE_BACKENDS

Auth = Callable[..., dict[str, str]]


@pytest.fixture(name="backend", params=ENGINE_BACKENDS)
def _backend(request: pytest.FixtureRequest) -> str:
    """Memory, SQLite and PostgreSQL: waiting differs on each."""
    return str(request.param)


def _atomic(client: TestClient, auth: Auth, body: dict[str, Any]) -> Any:
    return client.post("/v1/atomic", json=body, headers=auth())


def _changes(client: TestClient, auth: Auth, **params: Any) -> Any:
    return client.get("/v1/changes", params=params, headers=auth())


# -- POST /v1/atomic ---------------------------------------------------------------------
def test_a_commit_applies_every_operation_in_order(client: TestClient, auth: Auth) -> None:
    client.put("/v1/kv/a", content=b"old", headers=auth())
    answer = _atomic(
        client,
        auth,
        {
            "checks": [{"key": "a", "version": 1}, {"key": "lock", "version": None}],
            "operations": [
                {
                    "op": "set",
                    "key": "a",
                    "value": {"text": "x"},
                    "ttl": 60,
                    "metadata": {"owner": "u1"},
                    "content_type": "application/json",
                },
                {"op": "set", "key": "b", "value": {"base64": "eA=="}},
                {"op": "delete", "key": "b"},
                {"op": "set", "key": "n", "value": {"text": "7"}},
                {"op": "incr", "key": "n", "delta": 5},
                {"op": "incr", "key": "m"},
            ],
        },
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["ok"] is True
    assert set(body["versions"]) == {"a", "n", "m"}
    assert body["counters"] == {"n": 12, "m": 1}
    got = client.get("/v1/kv/a", headers=auth())
    assert got.content == b"x"
    assert got.headers["content-type"] == "application/json"
    assert json.loads(got.headers["pluginkv-metadata"]) == {"owner": "u1"}
    assert got.headers["etag"] == f'"{body["versions"]["a"]}"'
    assert client.get("/v1/kv/b", headers=auth()).status_code == 404
    assert client.get("/v1/kv/n", headers=auth()).content == b"12"


def test_a_failed_check_is_412_naming_the_keys_and_changes_nothing(
    client: TestClient, auth: Auth
) -> None:
    client.put("/v1/kv/a", content=b"old", headers=auth())
    answer = _atomic(
        client,
        auth,
        {
            "checks": [{"key": "a", "version": 7}, {"key": "free", "version": None}],
            "operations": [{"op": "set", "key": "a", "value": {"text": "new"}}],
        },
    )
    assert answer.status_code == 412
    assert answer.headers["x-error-code"] == "check_failed"
    error = answer.json()["error"]
    assert error["code"] == "check_failed"
    assert error["failed"] == ["a"]
    assert "'a'" in error["message"]
    assert client.get("/v1/kv/a", headers=auth()).content == b"old"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"operations": [{"op": "rename", "key": "a"}]}, "operations[0]"),
        ({"operations": [{"op": "set", "key": "a"}]}, "'value'"),
        ({"operations": [{"op": "delete", "key": "a", "ttl": 5}]}, "ttl"),
        ({"operations": [{"op": "set", "key": "a", "value": {"text": "x"}, "ttl": -1}]}, "ttl"),
        ({"operations": [{"op": "set", "key": "..", "value": {"text": "x"}}]}, ".."),
        ({"checks": [{"key": "a", "version": "3"}]}, "checks[0]"),
        ({"checks": ["a"]}, "checks[0]"),
        ({"steps": []}, "steps"),
    ],
)
def test_bad_input_to_a_commit_is_400_naming_it_and_changes_nothing(
    client: TestClient, auth: Auth, body: dict[str, Any], named: str
) -> None:
    body = {**body}
    body.setdefault("operations", [])
    body["operations"] = [*body["operations"], {"op": "set", "key": "kept", "value": {"text": "x"}}]
    answer = _atomic(client, auth, body)
    assert answer.status_code == 400, answer.text
    assert named in answer.json()["error"]["message"]
    assert client.get("/v1/kv/kept", headers=auth()).status_code == 404


def test_a_commit_over_its_operations_limit_names_the_setting(
    open_store: Callable[..., Store], tokens: Tokens, auth: Auth
) -> None:
    store = open_store("memory", max_commit_operations=2)
    with TestClient(create_app(store=store, tokens=tokens)) as client:
        operations = [{"op": "delete", "key": f"k{i}"} for i in range(3)]
        answer = _atomic(client, auth, {"operations": operations})
    assert answer.status_code == 400
    assert "PLUGINKV_MAX_COMMIT_OPERATIONS" in answer.json()["error"]["message"]


def test_a_commit_past_the_quota_is_507_and_changes_nothing(
    open_store: Callable[..., Store], tokens: Tokens, auth: Auth
) -> None:
    store = open_store("memory", default_quota_bytes=10)
    with TestClient(create_app(store=store, tokens=tokens)) as client:
        answer = _atomic(
            client,
            auth,
            {
                "operations": [
                    {"op": "set", "key": "a", "value": {"text": "x"}},
                    {"op": "set", "key": "b", "value": {"text": "y" * 20}},
                ]
            },
        )
        assert answer.status_code == 507
        assert client.get("/v1/kv/a", headers=auth()).status_code == 404


def test_a_read_only_token_may_not_commit(client: TestClient, auth: Auth) -> None:
    answer = client.post("/v1/atomic", json={}, headers=auth(read_only=True))
    assert answer.status_code == 403


# -- GET /v1/changes -----------------------------------------------------------------------
def test_changes_list_what_was_written_under_the_prefix(client: TestClient, auth: Auth) -> None:
    first_tag = client.put("/v1/kv/cfg/a", content=b"1", headers=auth()).headers["etag"]
    client.put("/v1/kv/other", content=b"1", headers=auth())
    second_tag = client.put("/v1/kv/cfg/a", content=b"2", headers=auth()).headers["etag"]
    client.delete("/v1/kv/cfg/a", headers=auth())
    page = _changes(client, auth, prefix="cfg/").json()
    first, second = int(first_tag.strip('"')), int(second_tag.strip('"'))
    assert [(c["key"], c["kind"], c["version"]) for c in page["changes"]] == [
        ("cfg/a", "set", first),
        ("cfg/a", "set", second),
        ("cfg/a", "delete", second),
    ]
    assert page["next"] == 4
    assert set(page["changes"][0]) == {"seq", "key", "kind", "version"}
    assert _changes(client, auth, since=page["next"]).json() == {"changes": [], "next": 4}
    first = _changes(client, auth, limit=1).json()
    assert [c["seq"] for c in first["changes"]] == [1]
    assert first["next"] == 1


def test_a_long_poll_answers_when_a_change_comes(client: TestClient, auth: Auth) -> None:
    since = _changes(client, auth).json()["next"]
    answers: list[Any] = []
    poll = threading.Thread(
        target=lambda: answers.append(_changes(client, auth, prefix="cfg/", since=since, wait=30))
    )
    poll.start()
    client.put("/v1/kv/elsewhere", content=b"1", headers=auth())  # outside the prefix
    client.put("/v1/kv/cfg/a", content=b"1", headers=auth())
    poll.join(timeout=30)
    assert not poll.is_alive()
    (answer,) = answers
    assert answer.status_code == 200
    assert [c["key"] for c in answer.json()["changes"]] == ["cfg/a"]


def test_a_long_poll_without_a_change_answers_an_empty_page_when_the_wait_ends(
    client: TestClient, auth: Auth
) -> None:
    client.put("/v1/kv/a", content=b"1", headers=auth())
    answer = _changes(client, auth, since=1, wait=0.2)
    assert answer.json() == {"changes": [], "next": 1}


@pytest.mark.parametrize("wait", ["61", "-1", "nan", "inf", "soon"])
def test_a_wait_out_of_range_is_400(client: TestClient, auth: Auth, wait: str) -> None:
    answer = _changes(client, auth, wait=wait)
    assert answer.status_code == 400
    message = answer.json()["error"]["message"]
    assert "wait" in message


def test_a_wait_past_the_setting_names_it(client: TestClient, auth: Auth) -> None:
    answer = _changes(client, auth, wait=61)
    assert "PLUGINKV_MAX_CHANGES_WAIT_SECONDS" in answer.json()["error"]["message"]


def test_a_position_older_than_the_log_is_410_with_the_oldest(
    open_store: Callable[..., Store], backend: str, tokens: Tokens, auth: Auth
) -> None:
    store = open_store(backend, changes_retention_count=1)
    with TestClient(create_app(store=store, tokens=tokens)) as client:
        for value in (b"1", b"2", b"3"):
            client.put("/v1/kv/a", content=value, headers=auth())
        store.sweep_expired()
        answer = _changes(client, auth, since=0)
        streamed = client.get(
            "/v1/changes", params={"since": 0}, headers={**auth(), "Accept": "text/event-stream"}
        )
    assert answer.status_code == 410
    assert answer.json()["error"]["code"] == "changes_expired"
    assert answer.json()["error"]["oldest"] == 3
    assert streamed.status_code == 410


def test_a_bad_last_event_id_is_400_naming_it(client: TestClient, auth: Auth) -> None:
    answer = client.get(
        "/v1/changes",
        headers={**auth(), "Accept": "text/event-stream", "Last-Event-ID": "x1"},
    )
    assert answer.status_code == 400
    assert "Last-Event-ID" in answer.json()["error"]["message"]


def test_a_stream_under_a_bad_prefix_is_400_before_it_starts(
    client: TestClient, auth: Auth
) -> None:
    answer = client.get(
        "/v1/changes",
        params={"prefix": "a/../b"},
        headers={**auth(), "Accept": "text/event-stream"},
    )
    assert answer.status_code == 400


def test_another_scope_sees_none_of_the_changes(client: TestClient, auth: Auth) -> None:
    client.put("/v1/kv/a", content=b"1", headers=auth())
    other = client.get("/v1/changes", headers=auth(plugin="acme/other"))
    assert other.json() == {"changes": [], "next": 0}


# -- metadata and content type on single keys -------------------------------------------------
def test_a_put_stores_metadata_and_content_type_that_get_head_and_listing_return(
    client: TestClient, auth: Auth
) -> None:
    headers = {
        **auth(),
        "Content-Type": "application/json",
        "Pluginkv-Metadata": json.dumps({"owner": "u1", "tags": ["é"]}),
    }
    assert client.put("/v1/kv/cfg", content=b"{}", headers=headers).status_code == 204
    for method in ("GET", "HEAD"):
        answer = client.request(method, "/v1/kv/cfg", headers=auth())
        assert answer.headers["content-type"] == "application/json"
        assert json.loads(answer.headers["pluginkv-metadata"]) == {"owner": "u1", "tags": ["é"]}
    (entry,) = client.get("/v1/keys", headers=auth()).json()["entries"]
    assert entry["metadata"] == {"owner": "u1", "tags": ["é"]}
    assert entry["content_type"] == "application/json"


@pytest.mark.parametrize(
    "sent", ["application/x-www-form-urlencoded", "Application/Octet-Stream", None]
)
def test_a_put_with_a_tools_default_type_stores_no_type(
    client: TestClient, auth: Auth, sent: str | None
) -> None:
    """curl --data-binary and urllib send the form type with any body: it says nothing."""
    headers = auth() if sent is None else {**auth(), "Content-Type": sent}
    assert client.put("/v1/kv/k", content=b"Paris", headers=headers).status_code == 204
    assert client.get("/v1/kv/k", headers=auth()).headers["content-type"] == (
        "application/octet-stream"
    )
    (entry,) = client.get("/v1/keys", headers=auth()).json()["entries"]
    assert (entry["content_type"], entry["size"]) == (None, len("k") + len("Paris"))


def test_a_head_sends_the_content_length_a_get_sends(client: TestClient, auth: Auth) -> None:
    headers = {
        **auth(),
        "Content-Type": "application/json; charset=utf-8",
        "Pluginkv-Metadata": json.dumps({"owner": "ü", "n": [1, 2.5]}),
    }
    client.put("/v1/kv/k", content=b'{"a": 1}', headers=headers)
    got = client.get("/v1/kv/k", headers=auth())
    head = client.head("/v1/kv/k", headers=auth())
    assert head.headers["content-length"] == got.headers["content-length"] == "8"


def test_a_put_without_them_stores_none_and_get_answers_octet_stream(
    client: TestClient, auth: Auth
) -> None:
    headers = {**auth(), "Content-Type": "text/plain", "Pluginkv-Metadata": '{"a": 1}'}
    client.put("/v1/kv/k", content=b"v", headers=headers)
    plain = {**auth(), "Content-Type": "application/octet-stream"}
    client.put("/v1/kv/k", content=b"v", headers=plain)  # a write replaces the whole entry
    answer = client.get("/v1/kv/k", headers=auth())
    assert answer.headers["content-type"] == "application/octet-stream"
    assert "pluginkv-metadata" not in answer.headers
    (entry,) = client.get("/v1/keys", headers=auth()).json()["entries"]
    assert entry["metadata"] is None
    assert entry["content_type"] is None


@pytest.mark.parametrize("header", ["[1, 2]", "{oops", '"text"'])
def test_a_bad_metadata_header_is_400_naming_it_and_stores_nothing(
    client: TestClient, auth: Auth, header: str
) -> None:
    answer = client.put("/v1/kv/k", content=b"v", headers={**auth(), "Pluginkv-Metadata": header})
    assert answer.status_code == 400
    assert "Pluginkv-Metadata" in answer.json()["error"]["message"]
    assert client.get("/v1/kv/k", headers=auth()).status_code == 404


def test_metadata_over_its_limit_names_the_setting(client: TestClient, auth: Auth) -> None:
    big = json.dumps({"x": "y" * 2000})
    answer = client.put("/v1/kv/k", content=b"v", headers={**auth(), "Pluginkv-Metadata": big})
    assert answer.status_code == 413
    assert "PLUGINKV_MAX_METADATA_BYTES" in answer.json()["error"]["message"]


def test_a_malformed_content_type_is_400_naming_the_header(client: TestClient, auth: Auth) -> None:
    answer = client.put("/v1/kv/k", content=b"v", headers={**auth(), "Content-Type": "nonsense"})
    assert answer.status_code == 400
    assert "Content-Type" in answer.json()["error"]["message"]


# -- across two services on one database -----------------------------------------------------
@pytest.fixture(name="two_services")
def _two_services(
    open_store: Callable[..., Store], backend: str, tokens: Tokens
) -> Iterator[tuple[TestClient, TestClient]]:
    if backend == "memory":
        pytest.skip("a memory store is one process's own")
    first, second = open_store(backend), open_store(backend)
    with (
        TestClient(create_app(store=first, tokens=tokens)) as one,
        TestClient(create_app(store=second, tokens=tokens)) as two,
    ):
        yield one, two


def test_a_long_poll_on_one_service_sees_a_write_through_another(
    two_services: tuple[TestClient, TestClient], auth: Auth
) -> None:
    one, two = two_services
    since = _changes(two, auth).json()["next"]
    answers: list[Any] = []
    poll = threading.Thread(
        target=lambda: answers.append(_changes(two, auth, since=since, wait=30))
    )
    poll.start()
    one.put("/v1/kv/shared", content=b"1", headers=auth())
    poll.join(timeout=60)
    assert not poll.is_alive()
    assert [c["key"] for c in answers[0].json()["changes"]] == ["shared"]
