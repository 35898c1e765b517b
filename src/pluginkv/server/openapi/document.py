"""The OpenAPI document as a whole, built from the app's routes, and the route that serves it.

Every path and method is an ``ApiRoute``'s, with the ``Operation`` its handler's module
defines beside the handler (``describe.py``); the bodies' schemas are the pydantic
models' (``schemas.py``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from ... import __version__
from ...config import Settings
from ...store import Store
from ..admin_routes import admin_routes
from ..change_routes import change_routes
from ..describe import ApiRoute, Json, Operation, fill_settings, json_content
from ..file_routes import file_routes
from ..host_routes import host_routes
from ..metrics import metrics_route
from ..routes import routes
from .parameters import _parameters
from .responses import _responses
from .schemas import schemas

OPENAPI_PATH = "/openapi.json"


# A Python float's repr, as the handlers write Unix times into headers.
_TIMESTAMP_HEADER = {
    "type": "string",
    "pattern": r"^[0-9]+(\.[0-9]+)?(e[+-]?[0-9]+)?$",
}


def _paths(routes: Sequence[BaseRoute]) -> Json:
    """Each ``ApiRoute``'s path, with an operation for each method it describes."""
    paths: Json = {}
    for route in routes:
        if not isinstance(route, ApiRoute):
            continue
        item = paths.setdefault(_template(route.path), {})
        if route.path_parameters:
            item["parameters"] = route.path_parameters
        for method, operation in route.operations.items():
            item[method.lower()] = operation.as_json()
    return paths


def _template(path: str) -> str:
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", path)  # {key:path} -> {key}


def openapi_document(
    settings: Settings, routes: Sequence[BaseRoute] | None = None
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the service's ``routes`` running with ``settings``.

    ``routes``: an app's (``app.routes``); by default those ``api_routes`` lists.  A new
    document each call, sharing nothing, so a caller may change it freely.
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
        "paths": _paths(api_routes if routes is None else routes),
        "components": {
            "schemas": schemas(),
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
                "Pluginkv-Metadata": {
                    "description": "The entry's metadata, a JSON object as compact ASCII "
                    "JSON; only present when its write gave some.",
                    "required": False,
                    "schema": {"type": "string", "pattern": "^[{].*[}]$"},
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
    # A copy with the settings' limits in: the constants stay out of the caller's reach.
    filled: dict[str, Any] = fill_settings(document, settings)
    return filled


OPENAPI = Operation(
    "openapi",
    "health",
    "This document",
    public=True,
    responses={
        "200": {
            "description": "The OpenAPI 3.1 description of the API.",
            "content": json_content({"type": "object"}),
        }
    },
)


async def serve_openapi(request: Request) -> Response:
    # The store's settings: the limits the handlers enforce are the store's.
    store: Store = request.app.state.store
    return JSONResponse(openapi_document(store.settings, request.app.routes))


openapi_route = ApiRoute(OPENAPI_PATH, GET=(serve_openapi, OPENAPI))

# The routes of the API, each with its description: the app serves these.
api_routes: list[BaseRoute] = [
    *routes,
    *change_routes,
    *admin_routes,
    *host_routes,
    *file_routes,
    metrics_route,
    openapi_route,
]
