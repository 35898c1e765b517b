"""Revoking a scope's tokens: through the admin API, the CLI and another replica."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

import pluginkv
from pluginkv import Store, Unauthorized
from pluginkv.cli import main
from pluginkv.keys import Scope
from pluginkv.server.app import create_app
from pluginkv.services.tokens import Tokens, load_secret

from ..conftest import FakeClock
from ..slow_server import SlowServer
from .conftest import SECRET

Auth = Callable[..., dict[str, str]]
SCOPE = {"workspace": "ws-1", "plugin": "acme/weather"}

VERBS = [
    pytest.param("GET", "/v1/kv/k", {}, id="get"),
    pytest.param("HEAD", "/v1/kv/k", {}, id="head"),
    pytest.param("PUT", "/v1/kv/k", {"content": b"v"}, id="put"),
    pytest.param("DELETE", "/v1/kv/k", {}, id="delete"),
    pytest.param("POST", "/v1/incr/n", {"json": {}}, id="incr"),
    pytest.param("GET", "/v1/keys", {}, id="keys"),
    pytest.param("DELETE", "/v1/keys?prefix=x", {}, id="delete-prefix"),
    pytest.param("POST", "/v1/batch/get", {"json": {"keys": ["k"]}}, id="get-many"),
    pytest.param("POST", "/v1/batch/set", {"json": {"items": {"k": "dg=="}}}, id="set-many"),
    pytest.param("POST", "/v1/batch/delete", {"json": {"keys": ["k"]}}, id="delete-many"),
    pytest.param("GET", "/v1/usage", {}, id="usage"),
]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _revoke(client: TestClient, admin: dict[str, str], **scope: str) -> Any:
    return client.post("/v1/admin/tokens/revoke", json=scope or SCOPE, headers=admin)


class TestTheAdminRoute:
    @pytest.mark.parametrize(("method", "path", "body"), VERBS)
    def test_a_revoked_token_is_401_on_every_verb_while_others_work(
        self,
        client: TestClient,
        auth: Auth,
        admin: dict[str, str],
        method: str,
        path: str,
        body: dict[str, Any],
    ) -> None:
        """Revoking refuses the scope's earlier tokens; another scope's and a new one work."""
        old = auth()
        other_plugin, other_workspace = auth(plugin="acme/other"), auth(workspace="ws-2")
        assert client.request(method, path, headers=old, **body).status_code != 401
        assert _revoke(client, admin).status_code == 200
        refused = client.request(method, path, headers=old, **body)
        assert refused.status_code == 401
        assert refused.headers["X-Error-Code"] == "unauthorized"
        if method != "HEAD":
            message = refused.json()["error"]["message"]
            assert "revoked" in message and "create a new one" in message
        for works in (other_plugin, other_workspace, auth()):
            assert client.request(method, path, headers=works, **body).status_code != 401

    def test_the_answer_names_the_scope_and_the_moment(
        self, client: TestClient, admin: dict[str, str]
    ) -> None:
        before = time.time()
        body = _revoke(client, admin).json()
        assert body["workspace"] == "ws-1" and body["plugin"] == "acme/weather"
        assert body["revoked_at"] >= before - 1

    def test_revoking_again_refuses_the_tokens_made_in_between(
        self, client: TestClient, auth: Auth, admin: dict[str, str]
    ) -> None:
        _revoke(client, admin)
        between = auth()
        assert client.get("/v1/usage", headers=between).status_code == 200
        _revoke(client, admin)
        assert client.get("/v1/usage", headers=between).status_code == 401
        assert client.get("/v1/usage", headers=auth()).status_code == 200

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param({"workspace": "ws-1"}, id="no-plugin"),
            pytest.param({"workspace": "", "plugin": "acme/weather"}, id="empty-workspace"),
            pytest.param({"workspace": "ws-1", "plugin": "no-author"}, id="bad-plugin"),
            pytest.param({"workspace": 3, "plugin": "acme/weather"}, id="not-a-string"),
        ],
    )
    def test_bad_ids_are_400(
        self, client: TestClient, admin: dict[str, str], body: dict[str, Any]
    ) -> None:
        response = client.post("/v1/admin/tokens/revoke", json=body, headers=admin)
        assert response.status_code == 400

    def test_only_the_admin_token_may_revoke(self, client: TestClient, auth: Auth) -> None:
        response = client.post("/v1/admin/tokens/revoke", json=SCOPE, headers=auth())
        assert response.status_code == 403
        assert client.get("/v1/usage", headers=auth()).status_code == 200

    def test_the_admin_token_outlives_any_revocation(
        self, client: TestClient, admin: dict[str, str]
    ) -> None:
        assert _revoke(client, admin).status_code == 200
        assert client.get("/v1/admin/scopes", headers=admin).status_code == 200


class TestTokens:
    def _tokens(self, clock: FakeClock, revoked: dict[Scope, float]) -> Tokens:
        tokens = Tokens(SECRET, default_ttl=60, clock=clock)
        tokens.follow_revocations(lambda: revoked, refresh_seconds=10)
        return tokens

    def test_a_token_made_in_the_same_second_after_a_revocation_works(self) -> None:
        clock = FakeClock(1_800_000_000.2)
        revoked: dict[Scope, float] = {}
        tokens = self._tokens(clock, revoked)
        before = tokens.issue(**SCOPE)
        clock.advance(0.1)
        revoked[Scope("ws-1", "acme/weather")] = clock()
        tokens.refresh_revocations()
        clock.advance(0.1)
        after = tokens.issue(**SCOPE)
        with pytest.raises(Unauthorized, match="revoked"):
            tokens.verify(before)
        assert tokens.verify(after).scope == Scope("ws-1", "acme/weather")

    def test_a_whole_second_token_works_unless_revoked(self) -> None:
        clock = FakeClock(1_800_000_000.0)
        revoked: dict[Scope, float] = {Scope("ws-1", "acme/other"): 1_700_000_000.0}
        tokens = self._tokens(clock, revoked)
        claims = {"iss": "pluginkv", "typ": "scope", "ws": "ws-1", "plugin": "acme/weather"}
        legacy = jwt.encode(
            {**claims, "iat": 1_800_000_000, "exp": 1_800_000_060, "ro": False},
            SECRET,
            algorithm="HS256",
        )
        assert tokens.verify(legacy).scope == Scope("ws-1", "acme/weather")
        revoked[Scope("ws-1", "acme/weather")] = 1_800_000_000.5
        tokens.refresh_revocations()
        with pytest.raises(Unauthorized, match="revoked"):
            tokens.verify(legacy)

    def test_a_revocation_made_elsewhere_applies_after_the_refresh(self) -> None:
        clock = FakeClock()
        revoked: dict[Scope, float] = {}
        tokens = self._tokens(clock, revoked)
        token = tokens.issue(**SCOPE)
        tokens.verify(token)
        clock.advance(1)
        revoked[Scope("ws-1", "acme/weather")] = clock()
        clock.advance(10)
        with pytest.raises(Unauthorized, match="revoked"):
            tokens.verify(token)

    def test_a_failing_refresh_keeps_the_known_revocations(self) -> None:
        clock = FakeClock()
        revoked = {Scope("ws-1", "acme/weather"): clock() + 1}
        tokens = self._tokens(clock, revoked)
        token = tokens.issue(**SCOPE)
        with pytest.raises(Unauthorized):
            tokens.verify(token)

        def down() -> dict[Scope, float]:
            raise pluginkv.BackendUnavailable("the database is away")

        tokens.follow_revocations(down, refresh_seconds=0)
        with pytest.raises(Unauthorized, match="revoked"):
            tokens.verify(token)


def test_the_cli_revokes_on_a_running_services_database(tmp_path: Path) -> None:
    """``pluginkv token revoke`` writes to the database; the service sees it on its next refresh."""
    data_dir = tmp_path / "data"
    env = {"PLUGINKV_DATA_DIR": str(data_dir)}
    runner = CliRunner()
    settings = pluginkv.store.load_settings(
        data_dir=str(data_dir),
        database_url=f"sqlite:///{data_dir / 'pluginkv.db'}",
        token_revocation_refresh_seconds=0.01,
    )
    data_dir.mkdir()
    tokens = Tokens(load_secret(settings), default_ttl=3600)
    token = tokens.issue(**SCOPE)
    other = tokens.issue(workspace="ws-1", plugin="acme/other")
    with Store(settings) as store, TestClient(create_app(settings, store=store)) as client:
        assert client.put("/v1/kv/k", content=b"v", headers=_bearer(token)).status_code == 204
        result = runner.invoke(
            main,
            ["token", "revoke", "--workspace", "ws-1", "--plugin", "acme/weather"],
            env=env,
            prog_name="pluginkv",
        )
        assert result.exit_code == 0, result.output
        assert "revoked the tokens of acme/weather in workspace ws-1" in result.stdout
        deadline = time.monotonic() + 30
        while client.get("/v1/kv/k", headers=_bearer(token)).status_code != 401:
            assert time.monotonic() < deadline, "the service never saw the revocation"
            time.sleep(0.02)
        assert client.get("/v1/usage", headers=_bearer(other)).status_code == 200
        fresh = runner.invoke(
            main,
            ["token", "create", "--workspace", "ws-1", "--plugin", "acme/weather"],
            env=env,
        ).stdout.strip()
        assert client.get("/v1/kv/k", headers=_bearer(fresh)).content == b"v"


def test_the_cli_refuses_bad_ids_without_creating_a_database(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["token", "revoke", "--data-dir", str(tmp_path), "--workspace", "", "--plugin", "a/b"],
    )
    assert result.exit_code == 3
    assert not (tmp_path / "pluginkv.db").exists()


@pytest.mark.postgres
def test_a_revocation_through_one_replica_is_honoured_by_another(
    open_store: Callable[..., Store],
) -> None:
    """Two services on one PostgreSQL database: revoking through one refuses on both."""
    tokens = Tokens(SECRET, default_ttl=3600)
    admin = _bearer(tokens.issue(admin=True))
    token, other = tokens.issue(**SCOPE), tokens.issue(workspace="ws-1", plugin="acme/other")
    first = open_store("postgres", token_revocation_refresh_seconds=0)
    second = open_store("postgres", token_revocation_refresh_seconds=0)
    apps = [
        create_app(store.settings, store=store, tokens=Tokens(SECRET, default_ttl=3600))
        for store in (first, second)
    ]
    with TestClient(apps[0]) as one, TestClient(apps[1]) as two:
        for client in (one, two):
            assert client.get("/v1/usage", headers=_bearer(token)).status_code == 200
        assert _revoke(one, admin).status_code == 200
        assert one.get("/v1/usage", headers=_bearer(token)).status_code == 401  # at once
        # The other re-reads the revocations on a reader thread, off its event loop.
        deadline = time.monotonic() + 30
        while two.get("/v1/usage", headers=_bearer(token)).status_code != 401:
            assert time.monotonic() < deadline, "the other replica never saw the revocation"
            time.sleep(0.02)
        for client in (one, two):
            assert client.get("/v1/usage", headers=_bearer(other)).status_code == 200
        fresh = _bearer(tokens.issue(**SCOPE))
        assert two.get("/v1/usage", headers=fresh).status_code == 200


def test_the_recorded_moment_never_moves_back(store: Store) -> None:
    """A replica with a slower clock cannot un-revoke tokens."""
    scope = Scope("ws-1", "acme/weather")
    with store.backend.write() as tx:
        assert tx.revoke_tokens(scope, 200.0) == 200.0
        assert tx.revoke_tokens(scope, 100.0) == 200.0
    assert store.token_revocations() == {scope: 200.0}


def test_re_reading_revocations_from_a_database_server_never_stalls_the_event_loop() -> None:
    """On a server the refresh runs on a reader thread: while it hangs, requests are answered."""
    backend = SlowServer()
    backend.release.set()  # point reads answer; only the revocations will hang
    store = Store(pluginkv.Settings(database_url="memory://"), backend=backend)
    hang, waiting = threading.Event(), threading.Event()
    read_revocations = store.token_revocations

    def slow_revocations() -> dict[Scope, float]:
        if hang.is_set():
            waiting.set()
            assert released.wait(10), "the test never released the refresh"
        return read_revocations()

    released = threading.Event()
    store.token_revocations = slow_revocations  # type: ignore[method-assign]
    tokens = Tokens(SECRET, default_ttl=3600)
    app = create_app(
        pluginkv.Settings(database_url="memory://", token_revocation_refresh_seconds=0),
        store=store,
        tokens=tokens,
    )
    token = _bearer(tokens.issue(**SCOPE))
    try:
        with TestClient(app) as client:
            hang.set()
            assert waiting.wait(10), "the service never re-read the revocations"
            # The refresh is stuck in the database; on the event loop it would hold this up.
            assert client.get("/healthz").status_code == 200
            assert client.get("/v1/usage", headers=token).status_code == 200
            released.set()
    finally:
        released.set()
        store.close()
