"""The OpenAPI document as a whole, and the route that serves it."""

from __future__ import annotations

import copy
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ... import __version__
from ...config import Settings
from ...store import Store
from .admin_paths import _admin_paths
from .common import _TIMESTAMP_HEADER, OPENAPI_PATH, Json
from .console_paths import _console_paths
from .data_paths import _data_paths, _probe_paths
from .parameters import _parameters
from .responses import _responses
from .schemas import _schemas


# -- the paths -----------------------------------------------------------------------------
def _paths(settings: Settings) -> Json:
    return {
        **_data_paths(settings),
        **_admin_paths(settings),
        **_console_paths(settings),
        **_probe_paths(),
    }


def openapi_document(settings: Settings) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the service running with ``settings``.

    A new document each call, sharing nothing, so a caller may change it freely.
    """
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "pluginkv",
            "version": __version__,
            "summary": "Workspace-scoped key-value storage for plugins.",
            "description": "Every call under `/v1` needs `Authorization: Bearer <token>`. A "
            "scope token reaches exactly one (workspace, plugin), which never appears in a "
            "URL; the `/v1/admin` calls need an admin token. Every error is one status and a "
            'JSON body `{"error": {"code": ..., "message": ..., ...details}}`. '
            "A query parameter or body field a route does not take is a 400 that names it. "
            "HEAD is also answered on every GET route, as HTTP requires.",
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "tags": [
            {"name": "keys", "description": "Single keys, listing, counters and usage."},
            {
                "name": "batches",
                "description": "Many keys in one call; values in base64 or as UTF-8 text.",
            },
            {"name": "admin", "description": "Administration; needs an admin token."},
            {
                "name": "plugins",
                "description": "The Dify plugin host; needs an admin token.",
            },
            {"name": "endpoints", "description": "Plugin endpoints: public, no token."},
            {"name": "health", "description": "Unauthenticated probes."},
        ],
        "paths": _paths(settings),
        "components": {
            "schemas": _schemas(settings),
            "responses": _responses(),
            "parameters": _parameters(),
            "headers": {
                "ETag": {
                    "description": 'The entry\'s version, quoted: `"3"` (after a write: the '
                    "version it made). Send it back as `If-Match` for compare-and-set.",
                    "required": True,
                    "schema": {"type": "string", "pattern": r'^"[1-9][0-9]*"$'},
                },
                "CurrentETag": {
                    "description": 'The entry\'s current version, quoted (`"3"`); absent '
                    "when the key holds no value.",
                    "required": False,
                    "schema": {"type": "string", "pattern": r'^"[1-9][0-9]*"$'},
                },
                "X-Created-At": {
                    "description": "Unix time in seconds at which the key was created (a "
                    "replaced value keeps it; a key stored again after it expired or was "
                    "deleted starts anew). Only with `?meta=1`.",
                    "required": False,
                    "schema": _TIMESTAMP_HEADER,
                },
                "X-Updated-At": {
                    "description": "Unix time in seconds of the entry's last write. Only "
                    "with `?meta=1`.",
                    "required": False,
                    "schema": _TIMESTAMP_HEADER,
                },
                "X-Expires-At": {
                    "description": "Unix time in seconds at which the entry expires; only "
                    "present when it has a TTL.",
                    "required": False,
                    "schema": _TIMESTAMP_HEADER,
                },
                "WWW-Authenticate": {
                    "required": True,
                    "schema": {"type": "string", "enum": ["Bearer"]},
                },
            },
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A scope token (`pluginkv token create`) or an admin "
                    "token (`pluginkv token create --admin`).",
                }
            },
        },
    }
    return copy.deepcopy(document)  # the module's constants stay out of the caller's reach


async def _serve(request: Request) -> Response:
    # The store's settings: the limits the handlers enforce are the store's.
    store: Store = request.app.state.store
    return JSONResponse(openapi_document(store.settings))


openapi_route = Route(OPENAPI_PATH, _serve, methods=["GET"])
