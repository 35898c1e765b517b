"""Admin routes the operator console stands on: what the store is, and scope tokens.

``GET /v1/admin/info`` says which database the service runs on, its version,
how long it has run and whether it is read-only.  ``POST /v1/admin/tokens``
issues a scope token, as ``pluginkv token create`` does: the console shows it
once to an operator who creates one, and takes a short-lived one for itself
to browse a scope's keys through the same ``/v1/keys`` and ``/v1/kv`` routes
a plugin uses, so that no admin-only path to the data exists.  Admin tokens
are never issued here: one comes from the signing secret (the command line).
"""

from __future__ import annotations

import math
import os
import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import __version__
from ..config import Settings, redact_url
from ..errors import InvalidArgument
from ..services.tokens import Tokens
from ..store import sqlite_path
from .answers import IssuedToken, StoreInfo
from .bodies import TokenRequest
from .describe import ApiRoute, Operation, errors, json_body, ok
from .routes import admin_json, admin_only

__all__ = ["admin_routes", "backend_name"]


def backend_name(database_url: str) -> str:
    """``sqlite``, ``postgresql`` or ``memory``: the kind of database a URL names."""
    if database_url == "memory://":
        return "memory"
    if database_url.startswith(("postgresql://", "postgres://")):
        return "postgresql"
    return "sqlite"


def _location(database_url: str) -> str:
    """The SQLite file, or the URL with its password hidden."""
    path = sqlite_path(database_url)
    return str(path.resolve()) if path is not None else redact_url(database_url)


ADMIN_INFO = Operation(
    "adminInfo",
    "admin",
    "The store: backend, data location, version, uptime, read-only, page and wait limits",
    description="Needs an admin token.",
    responses={"200": ok("The store.", StoreInfo), **errors()},
)


async def admin_info(request: Request) -> Response:
    admin_only(request)
    settings: Settings = request.app.state.settings
    started: float = request.app.state.started_at
    siblings = request.app.state.siblings
    now = time.time()
    return JSONResponse(
        {
            "version": __version__,
            "backend": backend_name(settings.database_url),
            "data_location": _location(settings.database_url),
            "read_only": settings.read_only,
            "started_at": started,
            "uptime_seconds": max(0.0, now - started),
            # What a client following the change feed may ask for (the console does).
            "max_page_size": settings.max_page_size,
            "max_changes_wait_seconds": settings.max_changes_wait_seconds,
            "worker": 0 if siblings is None else siblings.index,
            "workers": 1 if siblings is None else siblings.count,
            "pid": os.getpid(),
        }
    )


ADMIN_CREATE_TOKEN = Operation(
    "adminCreateToken",
    "admin",
    "Issue a scope token",
    description="Needs an admin token. A token for one (workspace, plugin), as `pluginkv "
    "token create` prints; admin tokens are never issued here. Writes nothing, so a "
    "read-only store issues them too.",
    body=json_body(TokenRequest),
    responses={"200": ok("The token.", IssuedToken), **errors(400, 408, 413)},
)


async def admin_create_token(request: Request) -> Response:
    body = await admin_json(request, TokenRequest)
    workspace, plugin, ttl, read_only = body.workspace, body.plugin, body.ttl, body.read_only
    settings: Settings = request.app.state.settings
    longest = settings.token_max_ttl_seconds
    if ttl is not None and not (math.isfinite(ttl) and 1 <= ttl <= longest):
        raise InvalidArgument(
            f"field 'ttl' must be from 1 to {longest} seconds "
            f"(setting PLUGINKV_TOKEN_MAX_TTL_SECONDS), got {ttl!r}"
        )
    tokens: Tokens = request.app.state.tokens
    lifetime = min(settings.token_ttl_seconds, longest) if ttl is None else ttl
    token = tokens.issue(workspace=workspace, plugin=plugin, ttl=lifetime, read_only=read_only)
    return JSONResponse(
        {
            "token": token,
            "workspace": workspace,
            "plugin": plugin,
            "read_only": read_only,
            "expires_at": int(time.time()) + int(lifetime),
        },
        headers={"Cache-Control": "no-store"},
    )


admin_routes = [
    ApiRoute("/v1/admin/info", GET=(admin_info, ADMIN_INFO)),
    ApiRoute("/v1/admin/tokens", POST=(admin_create_token, ADMIN_CREATE_TOKEN)),
]
