"""Tokens: what verifies, what expires, and that the verification cache changes neither."""

from __future__ import annotations

import pytest

from pluginkv import Unauthorized
from pluginkv.keys import Scope
from pluginkv.services.tokens import Tokens

from ..conftest import FakeClock

SECRET = "s" * 40


def test_a_scope_token_grants_its_scope() -> None:
    tokens = Tokens(SECRET, default_ttl=60)
    grant = tokens.verify(tokens.issue(workspace="w", plugin="a/b", read_only=True))
    assert grant.scope == Scope("w", "a/b") and grant.read_only


def test_a_cached_token_still_expires_on_time() -> None:
    clock = FakeClock()
    tokens = Tokens(SECRET, default_ttl=60, clock=clock)
    token = tokens.issue(workspace="w", plugin="a/b")
    assert tokens.verify(token).scope == Scope("w", "a/b")
    clock.advance(59)
    assert tokens.verify(token).scope == Scope("w", "a/b")  # from the cache
    clock.advance(1)
    with pytest.raises(Unauthorized):
        tokens.verify(token)


def test_a_token_signed_with_another_secret_never_verifies() -> None:
    token = Tokens("t" * 40, default_ttl=60).issue(workspace="w", plugin="a/b")
    tokens = Tokens(SECRET, default_ttl=60)
    for _ in range(2):
        with pytest.raises(Unauthorized):
            tokens.verify(token)


def test_the_cache_stays_bounded() -> None:
    tokens = Tokens(SECRET, default_ttl=60, cache_size=3)
    for i in range(10):
        tokens.verify(tokens.issue(workspace=f"w{i}", plugin="a/b"))
    assert len(tokens._verified) <= 3


def test_a_debug_key_names_its_workspace() -> None:
    tokens = Tokens(SECRET, default_ttl=60)
    assert tokens.debug_workspace(tokens.issue_debug_key(workspace="ws-9")) == "ws-9"


def test_a_debug_key_is_no_bearer_token_and_a_token_no_debug_key() -> None:
    tokens = Tokens(SECRET, default_ttl=60)
    with pytest.raises(Unauthorized):
        tokens.verify(tokens.issue_debug_key(workspace="ws-9"))
    with pytest.raises(Unauthorized, match="not a debug key"):
        tokens.debug_workspace(tokens.issue(admin=True))
    with pytest.raises(Unauthorized):
        tokens.debug_workspace(
            Tokens("another-" + "s" * 40, default_ttl=60).issue_debug_key(workspace="ws-9")
        )


def test_an_expired_debug_key_is_refused() -> None:
    clock = FakeClock()
    tokens = Tokens(SECRET, default_ttl=60, clock=clock)
    key = tokens.issue_debug_key(workspace="ws-9", ttl=10)
    clock.advance(11)
    with pytest.raises(Unauthorized, match="expired"):
        tokens.debug_workspace(key)
