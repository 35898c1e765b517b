"""An in-process service on a memory or SQLite store, and tokens for it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from starlette.testclient import TestClient

from pluginkv import Store
from pluginkv.server.app import create_app
from pluginkv.services.tokens import Tokens

SECRET = "test-secret-" + "x" * 40


@pytest.fixture(name="tokens")
def _tokens() -> Tokens:
    return Tokens(SECRET, default_ttl=3600)


@pytest.fixture(name="client")
def _client(store: Store, tokens: Tokens) -> Iterator[TestClient]:
    app = create_app(store=store, tokens=tokens)
    with TestClient(app) as client:
        yield client


@pytest.fixture(name="auth")
def _auth(tokens: Tokens) -> Callable[..., dict[str, str]]:
    """Headers with a token: ``auth()`` for ws-1/acme/weather, or any scope or admin."""

    def headers(
        workspace: str = "ws-1", plugin: str = "acme/weather", **kwargs: object
    ) -> dict[str, str]:
        token = tokens.issue(workspace=workspace, plugin=plugin, **kwargs)  # type: ignore[arg-type]
        return {"Authorization": f"Bearer {token}"}

    return headers


@pytest.fixture(name="admin")
def _admin(tokens: Tokens) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.issue(admin=True)}"}


@pytest.fixture(name="backend", params=["memory", "sqlite"])
def _backend(request: pytest.FixtureRequest) -> str:
    """The service's own tests run it on the in-process stores only."""
    return str(request.param)
