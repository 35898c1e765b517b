"""Bearer tokens: JWTs (HS256) scoped to one (workspace, plugin), or admin tokens; debug keys.

Claims: ``iss`` = ``pluginkv``, ``typ`` = ``scope``, ``admin`` or ``debug``
(or the type of a signed URL, ``issue_signed``),
``iat``, ``exp``; scope tokens add ``ws``, ``plugin`` and ``ro`` (read-only).
A debug key (``typ`` = ``debug``, ``ws``) is what a remote-debug Dify plugin
sends as ``REMOTE_INSTALL_KEY``: it binds the connection to one workspace, as
Dify's keys do, and is no bearer token (``verify`` refuses it).  Being signed,
it needs no table and survives restarts; it lapses at ``exp``.  The
signing secret comes from the ``token_secret`` setting or is generated on first
use into ``<data_dir>/token-secret`` with mode 0600.

Revocation is per scope: the database records a moment per (workspace,
plugin), and a scope token whose ``iat`` is at or before it is refused.  So
that a token created in the same second right after a revocation works,
``iat`` carries the fraction of the second (a float is a valid NumericDate;
tokens from before had whole seconds and are compared the same way).  The
recorded moments are read from the database at most every
``token_revocation_refresh_seconds``, not per request; admin tokens and debug
keys are not revocable this way (rotate the secret).
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt

from ..config import Settings
from ..errors import Forbidden, InvalidArgument, PluginKVError, Unauthorized
from ..keys import Scope, check_scope
from ..private_files import private_dir, secure_data_dir

__all__ = ["SECRET_FILE", "Grant", "Tokens", "load_secret"]

logger = logging.getLogger(__name__)

_WORKSPACE_ONLY_PLUGIN = "pluginkv/debug"  # check_scope wants a plugin; any valid one does

SECRET_FILE = "token-secret"
_ISSUER = "pluginkv"
_ALGORITHM = "HS256"


@dataclass(frozen=True, slots=True)
class Grant:
    """What a verified token allows."""

    scope: Scope | None  # None for an admin token
    read_only: bool = False

    @property
    def admin(self) -> bool:
        return self.scope is None

    def require_scope(self, *, write: bool) -> Scope:
        """The token's scope; refuses admin tokens and, for writes, read-only ones."""
        if self.scope is None:
            raise Forbidden("an admin token cannot read or write keys; use a scope token")
        if write and self.read_only:
            raise Forbidden(f"this token is read-only for {self.scope}")
        return self.scope

    def require_admin(self) -> None:
        if self.scope is not None:
            raise Forbidden("this call needs the admin token")


class Tokens:
    """Issues and verifies tokens with one secret."""

    def __init__(
        self,
        secret: str,
        *,
        default_ttl: int,
        clock: Callable[[], float] = time.time,
        cache_size: int = 10_000,
    ) -> None:
        self._secret = secret
        self._default_ttl = default_ttl
        self._clock = clock
        self._cache_size = cache_size
        # token -> (grant, exp).  Checking an HS256 signature costs tens of
        # microseconds, more than a SQLite read; a token string that verified
        # once stays valid until its exp, and a tampered one is another string.
        self._verified: dict[str, tuple[Grant, float, float]] = {}  # + iat
        self._revoked: dict[Scope, float] = {}
        self._revocation_source: Callable[[], Mapping[Scope, float]] | None = None
        self._refresh_seconds = 0.0
        self._next_refresh = 0.0

    def follow_revocations(
        self,
        source: Callable[[], Mapping[Scope, float]],
        *,
        refresh_seconds: float,
        inline: bool = True,
    ) -> None:
        """Refuse tokens of revoked scopes, re-reading ``source`` at most every ``refresh_seconds``.

        Reading on a timer rather than per request keeps verification off the
        database; a revocation made elsewhere (another replica, the CLI) takes
        effect here within the interval.  With ``inline`` the timer is checked
        by ``verify``; without, whoever follows calls ``refresh_revocations``
        (the service does, on a reader thread, for a database server).
        """
        self._revocation_source = source
        self._refresh_seconds = refresh_seconds
        self._next_refresh = 0.0 if inline else math.inf

    def refresh_revocations(self) -> None:
        """Re-read the revoked scopes now."""
        source = self._revocation_source
        if source is None:
            return
        if self._next_refresh != math.inf:
            self._next_refresh = self._clock() + self._refresh_seconds
        try:
            self._revoked = dict(source())
        except PluginKVError as exc:
            # The revocations already known keep applying; refusing every
            # token while the database is away would add nothing, as every
            # call then fails on the database anyway.
            logger.warning("reading the token revocations failed: %s", exc)

    def revoked(self, scope: Scope, at: float) -> None:
        """Apply a revocation this process made at once, without waiting for a refresh."""
        self._revoked[scope] = max(at, self._revoked.get(scope, at))

    def issue(
        self,
        *,
        workspace: str | None = None,
        plugin: str | None = None,
        ttl: float | None = None,
        read_only: bool = False,
        admin: bool = False,
    ) -> str:
        """A scope token for (workspace, plugin), or with ``admin=True`` an admin token."""
        lifetime = self._default_ttl if ttl is None else ttl
        if lifetime <= 0:
            raise InvalidArgument(f"token ttl must be positive, got {lifetime!r}")
        now = self._clock()
        claims: dict[str, object] = {"iss": _ISSUER, "iat": now, "exp": int(now) + int(lifetime)}
        if admin:
            claims["typ"] = "admin"
        else:
            scope = check_scope(workspace, plugin)
            claims.update(typ="scope", ws=scope.workspace, plugin=scope.plugin, ro=read_only)
        return jwt.encode(claims, self._secret, algorithm=_ALGORITHM)

    def issue_debug_key(self, *, workspace: str, ttl: float | None = None) -> str:
        """A key a remote-debug plugin connects with; its connection serves ``workspace``."""
        lifetime = self._default_ttl if ttl is None else ttl
        if lifetime <= 0:
            raise InvalidArgument(f"debug key ttl must be positive, got {lifetime!r}")
        scope = check_scope(workspace, _WORKSPACE_ONLY_PLUGIN)
        now = int(self._clock())
        claims = {
            "iss": _ISSUER,
            "iat": now,
            "exp": now + int(lifetime),
            "typ": "debug",
            "ws": scope.workspace,
        }
        return jwt.encode(claims, self._secret, algorithm=_ALGORITHM)

    def issue_signed(self, typ: str, claims: Mapping[str, object], ttl: float) -> str:
        """A short-lived token of type ``typ`` carrying ``claims``, for a signed URL.

        What the URL's bearer may do is in the claims, so it needs no bearer
        token: the plugin host's file upload and preview URLs are these.
        """
        now = self._clock()
        signed = {**claims, "iss": _ISSUER, "iat": now, "exp": math.ceil(now + ttl), "typ": typ}
        return jwt.encode(signed, self._secret, algorithm=_ALGORITHM)

    def signed_claims(self, token: str, typ: str) -> dict[str, Any]:
        """The claims of a valid ``issue_signed`` token of type ``typ``; ``Forbidden`` otherwise."""
        try:
            claims = self._claims(token)
        except Unauthorized as exc:
            raise Forbidden(f"this URL is not valid: {exc}") from None
        if claims["typ"] != typ:
            raise Forbidden("this URL is not valid: it was signed for something else")
        return claims

    def debug_workspace(self, key: str) -> str:
        """The workspace a valid debug key is bound to; ``Unauthorized`` for anything else."""
        claims = self._claims(key)
        if claims["typ"] != "debug":
            raise Unauthorized("not a debug key")
        try:
            return check_scope(claims.get("ws"), _WORKSPACE_ONLY_PLUGIN).workspace
        except InvalidArgument:
            raise Unauthorized("invalid debug key: malformed workspace") from None

    def verify(self, token: str) -> Grant:
        """The grant of a valid token; ``Unauthorized`` for anything else."""
        now = self._clock()
        if self._revocation_source is not None and now >= self._next_refresh:
            self.refresh_revocations()
        cached = self._verified.get(token)
        if cached is None or now >= cached[1]:
            self._verified.pop(token, None)
            cached = self._decode(token)
            if len(self._verified) >= self._cache_size:
                self._verified.clear()  # bounded; a full cache is rebuilt by the next requests
            self._verified[token] = cached
        grant, _, issued = cached
        if self._revoked and grant.scope is not None:
            revoked_at = self._revoked.get(grant.scope)
            if revoked_at is not None and issued <= revoked_at:
                raise Unauthorized(
                    f"this token was revoked (with every token of {grant.scope} issued up to "
                    f"{_utc(revoked_at)}); create a new one"
                )
        return grant

    def _decode(self, token: str) -> tuple[Grant, float, float]:
        claims = self._claims(token)
        expires = float(claims["exp"])
        try:
            issued = float(claims["iat"])
        except (TypeError, ValueError):
            raise Unauthorized("invalid token: iat is not a number") from None
        if claims["typ"] == "admin":
            return Grant(None), expires, issued
        if claims["typ"] != "scope":
            raise Unauthorized(f"invalid token: unknown type {claims['typ']!r}")
        try:
            scope = check_scope(claims.get("ws"), claims.get("plugin"))
        except InvalidArgument:
            raise Unauthorized("invalid token: malformed scope") from None
        return Grant(scope, read_only=claims.get("ro") is True), expires, issued

    def _claims(self, token: str) -> dict[str, Any]:
        """The claims of a token signed with this secret and not expired."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                issuer=_ISSUER,
                # Expiry is judged below on this object's clock, the one the
                # cache uses too; PyJWT would read the system clock.
                options={
                    "require": ["exp", "iat", "iss", "typ"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
        try:
            expires = float(claims["exp"])
        except (TypeError, ValueError):
            raise Unauthorized("invalid token: exp is not a number") from None
        if expires <= self._clock():
            raise Unauthorized("the token has expired; create a new one")
        return claims


def _utc(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="microseconds")


def load_secret(settings: Settings) -> str:
    """The signing secret: the setting, else ``<data_dir>/token-secret`` (created 0600)."""
    if settings.token_secret is not None:
        return settings.token_secret
    path = Path(settings.data_dir) / SECRET_FILE
    private_dir(path.parent)
    secure_data_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise InvalidArgument(
                f"{path} is readable by others (mode {mode:o}); chmod 600 it"
            ) from None
        secret = path.read_text().strip()
        if len(secret) < 32:
            raise InvalidArgument(f"{path} holds no usable secret (under 32 characters)") from None
        return secret
    secret = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as file:
        file.write(secret + "\n")
    return secret
