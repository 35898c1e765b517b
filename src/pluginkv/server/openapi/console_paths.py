"""The OpenAPI document's paths of the admin routes the console stands on (``admin_routes.py``).

Self-contained: the schemas are inline, referring only to the shared
``Workspace`` and ``Plugin``.
"""

from __future__ import annotations

from ...config import Settings
from .common import _BEARER, Json, _ref
from .responses import _errors, _json_content

_INFO: Json = {
    "type": "object",
    "required": [
        "version",
        "backend",
        "data_location",
        "read_only",
        "started_at",
        "uptime_seconds",
    ],
    "properties": {
        "version": {"type": "string", "description": "pluginkv's version."},
        "backend": {"type": "string", "enum": ["sqlite", "postgresql", "memory"]},
        "data_location": {
            "type": "string",
            "description": "The SQLite file, or the database URL with its password as `***`.",
        },
        "read_only": {
            "type": "boolean",
            "description": "The store refuses writes (`PLUGINKV_READ_ONLY`).",
        },
        "started_at": {"type": "number", "description": "Unix time the service started."},
        "uptime_seconds": {"type": "number", "minimum": 0},
    },
}


def _token_request(settings: Settings) -> Json:
    return {
        "type": "object",
        "required": ["workspace", "plugin"],
        "additionalProperties": False,
        "properties": {
            "workspace": _ref("schemas", "Workspace"),
            "plugin": _ref("schemas", "Plugin"),
            "ttl": {
                "type": ["number", "null"],
                "minimum": 1,
                "maximum": settings.token_max_ttl_seconds,
                "description": "Lifetime in seconds; default `PLUGINKV_TOKEN_TTL_SECONDS`, "
                f"at most {settings.token_max_ttl_seconds} "
                "(setting `PLUGINKV_TOKEN_MAX_TTL_SECONDS`).",
            },
            "read_only": {"type": "boolean", "default": False},
        },
    }


_TOKEN: Json = {
    "type": "object",
    "required": ["token", "workspace", "plugin", "read_only", "expires_at"],
    "properties": {
        "token": {"type": "string", "description": "The bearer token; shown this once."},
        "workspace": _ref("schemas", "Workspace"),
        "plugin": _ref("schemas", "Plugin"),
        "read_only": {"type": "boolean"},
        "expires_at": {"type": "integer", "description": "Unix time the token lapses."},
    },
}


def _console_paths(settings: Settings) -> Json:
    batch_limit = (
        f"The JSON body is at most {settings.max_batch_bytes} bytes "
        "(setting `PLUGINKV_MAX_BATCH_BYTES`)."
    )
    return {
        "/v1/admin/info": {
            "get": {
                "operationId": "adminInfo",
                "tags": ["admin"],
                "summary": "The store: backend, data location, version, uptime, read-only",
                "description": "Needs an admin token.",
                "security": _BEARER,
                "responses": {
                    "200": {"description": "The store.", "content": _json_content(_INFO)},
                    **_errors(),
                },
            },
        },
        "/v1/admin/tokens": {
            "post": {
                "operationId": "adminCreateToken",
                "tags": ["admin"],
                "summary": "Issue a scope token",
                "description": "Needs an admin token. A token for one (workspace, plugin), "
                "as `pluginkv token create` prints; admin tokens are never issued here. "
                "Writes nothing, so a read-only store issues them too.",
                "security": _BEARER,
                "requestBody": {
                    "required": True,
                    "description": batch_limit,
                    "content": _json_content(_token_request(settings)),
                },
                "responses": {
                    "200": {"description": "The token.", "content": _json_content(_TOKEN)},
                    **_errors(400, 408, 413),
                },
            },
        },
    }
