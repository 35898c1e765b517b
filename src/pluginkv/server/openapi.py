"""The OpenAPI 3.1 description of the HTTP API, served at ``GET /openapi.json``.

Written by hand as data, beside the routes it describes, so it says exactly
what the handlers do (statuses, headers, error bodies) rather than what a
framework infers.  ``tests/server/test_openapi.py`` keeps it honest: the set of
(path, method) pairs must equal the app's routes, and schemathesis fuzzes the
live app against it.

Limits that come from the settings (page size, batch size, byte limits) are
filled in from the ``Settings`` the app runs with.
"""

from __future__ import annotations

import copy
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import __version__
from ..config import Settings
from ..keys import MAX_KEY_BYTES
from ..store import Store

__all__ = ["OPENAPI_PATH", "openapi_document", "openapi_route"]

OPENAPI_PATH = "/openapi.json"

Json = dict[str, Any]

_BEARER: list[Json] = [{"bearerAuth": []}]
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _ref(kind: str, name: str) -> Json:
    return {"$ref": f"#/components/{kind}/{name}"}


# -- schemas -------------------------------------------------------------------------------
# Keys: 1-256 bytes of UTF-8 (JSON Schema counts characters, so `maxLength` is the
# character bound an ASCII key reaches), no control character, no backslash, no "..".
_NO_FORBIDDEN = r"^[^\x00-\x1f\x7f-\x9f\\]*$"
_KEY_RULES = (
    f"1 to {MAX_KEY_BYTES} bytes of UTF-8; no control characters (C0, DEL, C1), "
    "no backslash, no `..`. Keys are opaque: nothing is normalised, so `a//b` and `a/b` "
    "are two keys."
)
_BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
# A Python float's repr, as the handlers write Unix times into headers.
_TIMESTAMP_HEADER = {
    "type": "string",
    "pattern": r"^[0-9]+(\.[0-9]+)?(e[+-]?[0-9]+)?$",
}
_WORKSPACE = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
_PLUGIN_PART = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}"
_PLUGIN = rf"^{_PLUGIN_PART}/{_PLUGIN_PART}$"

_ERROR_CODES: dict[int, tuple[str, list[str], str]] = {
    # status: (schema name, codes, description)
    400: (
        "BadRequestError",
        ["invalid_key", "invalid_argument", "invalid_value_type", "wrong_value_type"],
        "The request is malformed: an invalid key, query parameter, header or body field "
        "(`wrong_value_type`: incr of a value that is not a decimal integer).",
    ),
    401: (
        "UnauthorizedError",
        ["unauthorized"],
        "No valid bearer token: missing, malformed, tampered, signed with another secret "
        "or expired.",
    ),
    403: (
        "ForbiddenError",
        ["forbidden"],
        "The token is valid but does not allow this call: a read-only token writing, an "
        "admin token on a key route, or a scope token on an admin route.",
    ),
    404: ("NotFoundError", ["not_found"], "The key holds no value."),
    408: (
        "RequestTimeoutError",
        ["request_timeout"],
        "The body did not arrive within the time allowed (setting "
        "`PLUGINKV_REQUEST_TIMEOUT_SECONDS`).",
    ),
    409: (
        "VersionConflictError",
        ["version_conflict"],
        "A condition (`If-Match`, `If-None-Match: *`) did not hold; nothing was changed.",
    ),
    413: (
        "ValueTooLargeError",
        ["value_too_large"],
        "The body is over the limit; refused as soon as `Content-Length` or the bytes read "
        "pass it, without reading the body whole.",
    ),
    503: (
        "BackendUnavailableError",
        ["backend_unavailable"],
        "The database could not answer (locked past the timeout, unreachable, broken).",
    ),
    507: (
        "QuotaExceededError",
        ["quota_exceeded"],
        "The write would take the scope past its quota; nothing was stored.",
    ),
}

# The plugin host's errors: (status, schema name, code, description).  404 shares its
# status with `not_found`, so these sit beside the table keyed by status.
_HOST_ERRORS: list[tuple[int, str, str, str]] = [
    (
        404,
        "PluginNotFoundError",
        "plugin_not_found",
        "No running plugin serves this plugin for the workspace, or it declares no such "
        "tool provider or tool.",
    ),
    (
        502,
        "PluginError",
        "plugin_error",
        "The plugin answered with an error; the message carries its type and text.",
    ),
    (
        504,
        "PluginTimeoutError",
        "plugin_timeout",
        "The plugin did not finish within `PLUGINKV_SESSION_TIMEOUT_SECONDS`.",
    ),
]

# A write's 503 is one of two: the database is away, or the store is read-only
# (setting PLUGINKV_READ_ONLY).  One status holds one response per operation,
# so writing operations get this one in place of BackendUnavailableError.
_WRITE_UNAVAILABLE = (
    "WriteUnavailableError",
    ["backend_unavailable", "read_only"],
    "The database could not answer (`backend_unavailable`: locked past the timeout, "
    "unreachable, broken), or the store is read-only (`read_only`: setting "
    "`PLUGINKV_READ_ONLY`, with `Retry-After`); nothing was changed.",
)

_ERROR_DETAILS: dict[int, Json] = {
    404: {"key": {"type": "string"}},
    409: {
        "key": {"type": "string"},
        "expected": {
            "type": ["integer", "null"],
            "description": "The version the request named; null for `If-None-Match: *`.",
        },
        "actual": {
            "type": ["integer", "null"],
            "description": "The entry's current version; null when it is absent.",
        },
    },
    413: {
        "size": {"type": "integer", "minimum": 0, "description": "Bytes declared or read."},
        "limit": {"type": "integer", "minimum": 0},
    },
    507: {
        "used": {"type": "integer", "minimum": 0, "description": "Bytes the scope holds now."},
        "limit": {"type": "integer", "minimum": 0, "description": "The scope's quota."},
        "needed": {"type": "integer", "description": "Bytes the refused write would add."},
    },
}


def _error_schema(status: int, codes: list[str] | None = None) -> Json:
    details = _ERROR_DETAILS.get(status, {}) if codes is None else {}
    codes = _ERROR_CODES[status][1] if codes is None else codes
    return {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", *details],
                "properties": {
                    "code": {"type": "string", "enum": codes},
                    "message": {"type": "string"},
                    **details,
                },
            }
        },
    }


def _schemas(settings: Settings) -> Json:
    key = {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_KEY_BYTES,
        "pattern": _NO_FORBIDDEN,
        "not": {"pattern": r"\.\."},
        "description": _KEY_RULES,
    }
    base64_value = {
        "type": "string",
        "contentEncoding": "base64",
        "pattern": _BASE64,
        "description": "The value's bytes in standard base64 with padding.",
    }
    scope_usage = {
        "bytes_used": {
            "type": "integer",
            "minimum": 0,
            "description": "Bytes stored: each live key's UTF-8 bytes plus its value's bytes.",
        },
        "keys": {"type": "integer", "minimum": 0, "description": "Live keys."},
        "quota_bytes": {"type": "integer", "minimum": 0, "description": "The scope's quota."},
    }
    schemas: Json = {
        "Key": key,
        "Base64Value": base64_value,
        "Workspace": {"type": "string", "pattern": _WORKSPACE},
        "Plugin": {
            "type": "string",
            "pattern": _PLUGIN,
            "description": "`author/name`, without a version.",
        },
        "EntryMeta": {
            "type": "object",
            "required": ["key", "size", "version", "created_at", "updated_at", "expires_at"],
            "properties": {
                "key": {"type": "string"},
                "size": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "The key's UTF-8 bytes plus the value's bytes, as the "
                    "quota counts them.",
                },
                "version": {"type": "integer", "minimum": 1},
                "created_at": {"type": "number", "description": "Unix time, seconds."},
                "updated_at": {"type": "number", "description": "Unix time, seconds."},
                "expires_at": {
                    "type": ["number", "null"],
                    "description": "Unix time, seconds; null without a TTL.",
                },
            },
        },
        "KeyPage": {
            "type": "object",
            "required": ["entries", "next_cursor"],
            "properties": {
                "entries": {
                    "type": "array",
                    "maxItems": settings.max_page_size,
                    "items": _ref("schemas", "EntryMeta"),
                },
                "next_cursor": {
                    "type": ["string", "null"],
                    "description": "Pass back as `cursor` for the next page; null on the last.",
                },
            },
        },
        "IncrRequest": {
            "type": "object",
            "properties": {
                "delta": {
                    "type": ["integer", "null"],
                    "format": "int64",
                    "minimum": _INT64_MIN,
                    "maximum": _INT64_MAX,
                    "description": "Added to the stored integer; absent or null means 1.",
                }
            },
        },
        "IncrResult": {
            "type": "object",
            "required": ["value"],
            "properties": {
                "value": {
                    "type": "integer",
                    "format": "int64",
                    "minimum": _INT64_MIN,
                    "maximum": _INT64_MAX,
                }
            },
        },
        "Deleted": {
            "type": "object",
            "required": ["deleted"],
            "properties": {
                "deleted": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "How many keys held a value and were removed.",
                }
            },
        },
        "KeyList": {
            "type": "object",
            "required": ["keys"],
            "properties": {
                "keys": {
                    "type": "array",
                    "maxItems": settings.max_batch_items,
                    "items": _ref("schemas", "Key"),
                    "description": "At most `PLUGINKV_MAX_BATCH_ITEMS` distinct keys "
                    "(duplicates count once).",
                }
            },
        },
        "BatchValues": {
            "type": "object",
            "required": ["values"],
            "properties": {
                "values": {
                    "type": "object",
                    "additionalProperties": _ref("schemas", "Base64Value"),
                    "description": "The keys that are present, with their values.",
                }
            },
        },
        "BatchSetRequest": {
            "type": "object",
            "required": ["items"],
            "properties": {
                "items": {
                    "type": "object",
                    "maxProperties": settings.max_batch_items,
                    "propertyNames": _ref("schemas", "Key"),
                    "additionalProperties": _ref("schemas", "Base64Value"),
                },
                "ttl": {
                    "type": ["number", "null"],
                    "exclusiveMinimum": 0,
                    "maximum": settings.max_ttl_seconds,
                    "description": "Seconds until every item expires, at most "
                    "`PLUGINKV_MAX_TTL_SECONDS`; null keeps them forever.",
                },
            },
        },
        "Usage": {
            "type": "object",
            "required": list(scope_usage),
            "properties": scope_usage,
        },
        "ScopeUsage": {
            "type": "object",
            "required": ["workspace", "plugin", *scope_usage],
            "properties": {
                "workspace": _ref("schemas", "Workspace"),
                "plugin": _ref("schemas", "Plugin"),
                **scope_usage,
            },
        },
        "ScopeList": {
            "type": "object",
            "required": ["scopes"],
            "properties": {"scopes": {"type": "array", "items": _ref("schemas", "ScopeUsage")}},
        },
        "QuotaRequest": {
            "type": "object",
            "required": ["workspace", "plugin"],
            "properties": {
                "workspace": _ref("schemas", "Workspace"),
                "plugin": _ref("schemas", "Plugin"),
                "quota_bytes": {
                    "type": ["integer", "null"],
                    "minimum": 0,
                    "maximum": _INT64_MAX,
                    "description": "The scope's quota override; null (or absent) returns it "
                    "to the settings.",
                },
            },
        },
        "ScopeRef": {
            "type": "object",
            "required": ["workspace", "plugin"],
            "properties": {
                "workspace": _ref("schemas", "Workspace"),
                "plugin": _ref("schemas", "Plugin"),
            },
        },
        "Revoked": {
            "type": "object",
            "required": ["workspace", "plugin", "revoked_at"],
            "properties": {
                "workspace": _ref("schemas", "Workspace"),
                "plugin": _ref("schemas", "Plugin"),
                "revoked_at": {
                    "type": "number",
                    "description": "Unix time: the scope's tokens issued at or before it are "
                    "refused; tokens created afterwards work.",
                },
            },
        },
        "ToolInvokeRequest": {
            "type": "object",
            "required": ["workspace", "plugin", "provider", "tool"],
            "properties": {
                "workspace": _ref("schemas", "Workspace"),
                "plugin": _ref("schemas", "Plugin"),
                "provider": {
                    "type": "string",
                    "minLength": 1,
                    "description": "The tool provider's `identity.name` (not `author/name`).",
                },
                "tool": {
                    "type": "string",
                    "minLength": 1,
                    "description": "The tool's `identity.name`.",
                },
                "parameters": {
                    "type": ["object", "null"],
                    "description": "The tool's parameters. Those missing (absent or null) get "
                    "the defaults the tool declares; every declared one, given or defaulted, is "
                    'cast to its type as Dify does (`"false"` for a boolean is `false`, '
                    '`"3"` for a number is `3`). A required one missing without a default, or a '
                    "value that cannot be cast, is a 400 naming it, and the plugin is not "
                    "called.",
                },
                "user": {
                    "type": ["string", "null"],
                    "description": "The user id the plugin sees (`self.runtime.user_id`).",
                },
                **{
                    name: {
                        "type": ["string", "null"],
                        "description": f"`self.session.{name}` in the plugin; default null.",
                    }
                    for name in ("conversation_id", "app_id", "message_id")
                },
                "credentials": {
                    "type": ["object", "null"],
                    "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
                    "propertyNames": {"minLength": 1},
                    "description": "The tool provider's credentials by name, as Dify's daemon "
                    "sends them decrypted (`self.runtime.credentials`); default none. Anything "
                    "but an object of strings, numbers, booleans or nulls is a 400 and nothing "
                    "reaches the plugin.",
                },
                "credential_type": {
                    "type": ["string", "null"],
                    "enum": ["api-key", "oauth2", "unauthorized", None],
                    "description": "How they were obtained (`self.runtime.credential_type`); "
                    "default `api-key`.",
                },
            },
        },
        "CredentialsRequest": {
            "type": "object",
            "required": ["workspace", "plugin", "provider"],
            "properties": {
                "workspace": _ref("schemas", "Workspace"),
                "plugin": _ref("schemas", "Plugin"),
                "provider": {
                    "type": "string",
                    "minLength": 1,
                    "description": "The tool provider's `identity.name`.",
                },
                "credentials": {
                    "type": ["object", "null"],
                    "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
                    "propertyNames": {"minLength": 1},
                    "description": "The credentials to check, by name; the provider's declared "
                    "defaults fill in those left out.",
                },
                "user": {
                    "type": ["string", "null"],
                    "description": "The user id the plugin sees.",
                },
            },
        },
        "CredentialsValid": {
            "type": "object",
            "required": ["plugin", "provider", "valid"],
            "properties": {
                "plugin": _ref("schemas", "Plugin"),
                "provider": {"type": "string"},
                "valid": {"type": "boolean", "const": True},
            },
        },
        "PluginOffer": {
            "type": "object",
            "required": ["plugin", "version", "permissions", "providers", "endpoints", "running"],
            "properties": {
                "plugin": _ref("schemas", "Plugin"),
                "version": {"type": "string"},
                "permissions": {
                    "type": "object",
                    "description": "The manifest's `resource.permission`, as declared.",
                },
                "providers": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "description", "credentials", "tools"],
                        "properties": {
                            "name": {"type": ["string", "null"]},
                            "description": {"type": ["string", "null"]},
                            "credentials": {
                                "type": "array",
                                "items": _ref("schemas", "DeclaredField"),
                            },
                            "tools": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["name", "description", "parameters"],
                                    "properties": {
                                        "name": {"type": ["string", "null"]},
                                        "description": {"type": ["string", "null"]},
                                        "parameters": {
                                            "type": "array",
                                            "items": _ref("schemas", "DeclaredField"),
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
                "endpoints": {
                    "type": "array",
                    "description": "The endpoint groups: their settings and endpoints.",
                    "items": {
                        "type": "object",
                        "required": ["settings", "endpoints"],
                        "properties": {
                            "settings": {
                                "type": "array",
                                "items": _ref("schemas", "DeclaredField"),
                            },
                            "endpoints": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["method", "path", "hidden"],
                                    "properties": {
                                        "method": {"type": ["string", "null"]},
                                        "path": {"type": ["string", "null"]},
                                        "hidden": {"type": "boolean"},
                                    },
                                },
                            },
                        },
                    },
                },
                "running": {
                    "type": "array",
                    "description": "Where it runs: each connection or installed process.",
                    "items": {
                        "type": "object",
                        "required": ["transport", "workspaces", "state"],
                        "properties": {
                            "transport": {"type": "string", "enum": ["tcp", "stdio"]},
                            "workspaces": {
                                "type": "array",
                                "items": _ref("schemas", "Workspace"),
                            },
                            "state": {"type": "string"},
                        },
                    },
                },
            },
        },
        "DeclaredField": {
            "type": "object",
            "description": "A declared tool parameter, credential or setting.",
            "required": ["name", "type", "required", "default"],
            "properties": {
                "name": {"type": ["string", "null"]},
                "type": {"type": ["string", "null"]},
                "required": {"type": "boolean"},
                "default": {"description": "The declared default, or null."},
                "form": {"type": "string", "description": "Tool parameters: llm, form, ..."},
                "options": {"type": "array", "description": "A select's option values."},
            },
        },
        "UploadedFile": {
            "type": "object",
            "description": "A file a plugin uploaded, described as Dify's upload answers it.",
            "required": ["id", "name", "size", "extension", "mime_type", "preview_url"],
            "properties": {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "size": {"type": "integer", "minimum": 0},
                "extension": {"type": "string", "description": "From the MIME type: `.txt`."},
                "mime_type": {"type": "string"},
                "preview_url": {
                    "type": "string",
                    "description": "Signed URL of this service that serves the file.",
                },
                "source_url": {"type": "null"},
                "original_url": {"type": "null"},
                "user_id": {"type": "null"},
                "tenant_id": _ref("schemas", "Workspace"),
                "conversation_id": {"type": "null"},
                "file_key": {"type": "string", "description": "Its key in the plugin's scope."},
            },
        },
        "InstallRequest": {
            "type": "object",
            "required": ["directory", "workspace"],
            "properties": {
                "directory": {
                    "type": "string",
                    "description": "Absolute path, on the service's machine, of a plugin "
                    "folder: manifest.yaml, requirements.txt, _assets/, the YAML and Python "
                    "files. The plugin runs from there.",
                },
                "workspace": _ref("schemas", "Workspace"),
            },
        },
        "EndpointRequest": {
            "type": "object",
            "required": ["workspace", "plugin"],
            "properties": {
                "workspace": _ref("schemas", "Workspace"),
                "plugin": _ref("schemas", "Plugin"),
                "settings": {
                    "type": ["object", "null"],
                    "description": "The endpoint's settings (the endpoint group's `settings` "
                    "schema), passed to the plugin with every request.",
                },
            },
        },
        "EndpointCreated": {
            "type": "object",
            "required": ["hook_id", "url"],
            "properties": {
                "hook_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                "url": {
                    "type": "string",
                    "description": "The base URL, `<service>/e/<hook_id>`; requests go under it.",
                },
            },
        },
        "EndpointList": {
            "type": "object",
            "required": ["endpoints"],
            "properties": {
                "endpoints": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["hook_id", "url", "workspace", "plugin", "created_at"],
                        "properties": {
                            "hook_id": {"type": "string"},
                            "url": {"type": "string"},
                            "workspace": _ref("schemas", "Workspace"),
                            "plugin": _ref("schemas", "Plugin"),
                            "created_at": {"type": "number", "description": "Unix time."},
                        },
                    },
                }
            },
        },
        "UninstallRequest": {
            "type": "object",
            "required": ["plugin", "workspace"],
            "properties": {
                "plugin": _ref("schemas", "Plugin"),
                "workspace": _ref("schemas", "Workspace"),
            },
        },
        "Uninstalled": {
            "type": "object",
            "required": ["plugin", "workspaces"],
            "properties": {
                "plugin": {"type": "string"},
                "workspaces": {
                    "type": "array",
                    "items": _ref("schemas", "Workspace"),
                    "description": "The workspaces it still serves; none: it was stopped.",
                },
            },
        },
        "PluginList": {
            "type": "object",
            "required": ["plugins"],
            "properties": {
                "plugins": {
                    "type": "array",
                    "items": _ref("schemas", "PluginInfo"),
                }
            },
        },
        "PluginInfo": {
            "type": "object",
            "required": [
                "plugin",
                "version",
                "transport",
                "workspaces",
                "peer",
                "since",
                "last_heartbeat",
                "state",
                "error",
            ],
            "properties": {
                "plugin": _ref("schemas", "Plugin"),
                "version": {"type": "string"},
                "transport": {"type": "string", "enum": ["tcp", "stdio"]},
                "workspaces": {
                    "type": "array",
                    "items": _ref("schemas", "Workspace"),
                    "description": "The workspaces it serves: a remote-debug "
                    "plugin the one of its key, a local one those that "
                    "installed it.",
                },
                "peer": {
                    "type": "string",
                    "description": "host:port of a remote plugin, pid of a local one; empty "
                    "while no process of it runs.",
                },
                "since": {
                    "type": "number",
                    "description": "Unix time, seconds: when it connected or started, or "
                    "entered its state if it is not running.",
                },
                "last_heartbeat": {
                    "type": ["number", "null"],
                    "description": "Unix time, seconds; null while no process of it runs.",
                },
                "state": {
                    "type": "string",
                    "enum": ["running", "starting", "restarting", "failed"],
                    "description": "A remote-debug plugin is listed while connected, so "
                    "running. An installed one is starting (its environment is built or its "
                    "process launched), running, restarting (its process ended; it is "
                    "launched again after a pause, until it runs) or failed (it could not "
                    "start; the next install or service start tries again).",
                },
                "error": {
                    "type": ["string", "null"],
                    "description": "Why it is not running: the last failure (the end of its "
                    "stderr included); null while it runs.",
                },
            },
        },
        "Alive": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"const": "ok"}},
        },
        "Ready": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"const": "ready"}},
        },
    }
    for status, (name, _, _) in _ERROR_CODES.items():
        schemas[name] = _error_schema(status)
    for status, name, code, _ in _HOST_ERRORS:
        schemas[name] = _error_schema(status, [code])
    schemas[_WRITE_UNAVAILABLE[0]] = _error_schema(503, _WRITE_UNAVAILABLE[1])
    return schemas


# -- responses -----------------------------------------------------------------------------
def _json_content(schema: Json) -> Json:
    return {"application/json": {"schema": schema}}


_RETRY_AFTER: Json = {
    "description": "Seconds after which to try again: 1 with `backend_unavailable` (a failover "
    "or a restart of the database ends within seconds), 60 with `read_only`.",
    "required": False,
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}


def _code_header(codes: list[str]) -> Json:
    return {
        "description": "The error's code, as in the body: a HEAD answer has no body.",
        "required": True,
        "schema": {"type": "string", "enum": codes},
    }


def _responses() -> Json:
    responses: Json = {
        "NoContent": {"description": "Done."},
        "NotModified": {
            "description": "The entry is at a version `If-None-Match` names: no body.",
            "headers": {
                "ETag": _ref("headers", "ETag"),
                "X-Expires-At": _ref("headers", "X-Expires-At"),
            },
        },
        "Deleted": {
            "description": "Done.",
            "content": _json_content(_ref("schemas", "Deleted")),
        },
    }
    for status, (name, codes, description) in _ERROR_CODES.items():
        headers = {"X-Error-Code": _code_header(codes)}
        if status == 401:
            headers["WWW-Authenticate"] = _ref("headers", "WWW-Authenticate")
        elif status == 503:
            headers["Retry-After"] = _RETRY_AFTER
        responses[name] = {
            "description": description,
            "headers": headers,
            "content": _json_content(_ref("schemas", name)),
        }
    for _, name, code, description in _HOST_ERRORS:
        responses[name] = {
            "description": description,
            "headers": {"X-Error-Code": _code_header([code])},
            "content": _json_content(_ref("schemas", name)),
        }
    responses["EndpointError"] = {
        "description": "`<status> <reason> (request id <id>)`: the plugin is not running, "
        "failed or took too long, the hook id is unknown, or (then with what was wrong, such "
        "as the limit a body passed) the request itself is refused. Nothing about the host.",
        "headers": {
            "X-Request-Id": {
                "description": "The id the service's log line about this error carries.",
                "required": True,
                "schema": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
            }
        },
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
    name, codes, description = _WRITE_UNAVAILABLE
    responses[name] = {
        "description": description,
        "headers": {
            "X-Error-Code": _code_header(codes),
            "Retry-After": _RETRY_AFTER,
        },
        "content": _json_content(_ref("schemas", name)),
    }
    return responses


def _errors(*statuses: int) -> Json:
    """The error responses of a `/v1` operation: 401, 403 and 503 always, plus ``statuses``."""
    return {
        str(status): _ref("responses", _ERROR_CODES[status][0])
        for status in sorted({401, 403, 503, *statuses})
    }


def _write_errors(*statuses: int) -> Json:
    """The error responses of a `/v1` operation that writes: a read-only store refuses it."""
    return {**_errors(*statuses), "503": _ref("responses", _WRITE_UNAVAILABLE[0])}


# -- parameters ----------------------------------------------------------------------------
def _parameters() -> Json:
    return {
        "Key": {
            "name": "key",
            "in": "path",
            "required": True,
            "description": "The key, percent-encoded as one path segment (encode `/` as "
            "`%2F`, and `%`, `?`, `#`); the server decodes the raw path itself, so every key "
            "round-trips exactly and `a%2Fb` and `a/b` name the same key `a/b`. " + _KEY_RULES,
            "schema": _ref("schemas", "Key"),
            "examples": {
                "plain": {"value": "greeting"},
                "with slashes": {
                    "summary": "`/` is part of the key: send `reports%2F2024%2Fsummary.json`",
                    "value": "reports/2024/summary.json",
                },
            },
        },
        "IfMatch": {
            "name": "If-Match",
            "in": "header",
            "required": False,
            "description": "Compare-and-set: act only if the entry is at this version (the `ETag` "
            'of a GET, e.g. `"3"`; `W/` and the quotes are optional).',
            "schema": {"type": "string", "pattern": r'^(W/)?"?[1-9][0-9]{0,18}"?$'},
        },
        "Meta": _query(
            "meta",
            {"type": "string", "enum": ["1", "true", "0", "false"]},
            "`1` or `true`: also send the entry's timestamps (`X-Created-At`, `X-Updated-At`). "
            "Off by default: every header costs each read.",
        ),
        "IfNoneMatchVersion": {
            "name": "If-None-Match",
            "in": "header",
            "required": False,
            "description": "Versions the client holds (`ETag`s of earlier reads, "
            'comma-separated, e.g. `"3"`), or `*`: when the entry is at one of them (or '
            "exists, for `*`), the answer is 304 and the value is not read. Entries that "
            "are not versions never match.",
            "schema": {"type": "string"},
        },
        "IfNoneMatch": {
            "name": "If-None-Match",
            "in": "header",
            "required": False,
            "description": "`*`: store only if the key holds no value (else 409). Not "
            "combinable with `If-Match` (400).",
            "schema": {"type": "string", "enum": ["*"]},
        },
    }


def _query(name: str, schema: Json, description: str, *, required: bool = False) -> Json:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


def _prefix_schema() -> Json:
    return {
        "type": "string",
        "maxLength": MAX_KEY_BYTES,
        "pattern": _NO_FORBIDDEN,
        "not": {"pattern": r"\.\."},
    }


def _json_body(name: str, description: str) -> Json:
    return {
        "required": True,
        "description": description,
        "content": _json_content(_ref("schemas", name)),
    }


# -- the paths -----------------------------------------------------------------------------
def _paths(settings: Settings) -> Json:
    key_param = [_ref("parameters", "Key")]
    value_limit = f"At most {settings.max_value_bytes} bytes (setting `PLUGINKV_MAX_VALUE_BYTES`)."
    batch_limit = (
        f"The JSON body is at most {settings.max_batch_bytes} bytes "
        "(setting `PLUGINKV_MAX_BATCH_BYTES`)."
    )
    return {
        "/v1/kv/{key}": {
            "parameters": key_param,
            "put": {
                "operationId": "putValue",
                "tags": ["keys"],
                "summary": "Store a value",
                "description": "The body is the value, raw bytes. " + value_limit,
                "security": _BEARER,
                "parameters": [
                    _query(
                        "ttl",
                        {
                            "type": "number",
                            "exclusiveMinimum": 0,
                            "maximum": settings.max_ttl_seconds,
                        },
                        "Seconds until the entry expires, at most `PLUGINKV_MAX_TTL_SECONDS` "
                        f"({settings.max_ttl_seconds}; `nan` and `inf` are refused too); "
                        "without it the entry is kept forever, also when it replaces one that "
                        "had a TTL.",
                    ),
                    _ref("parameters", "IfMatch"),
                    _ref("parameters", "IfNoneMatch"),
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}
                        }
                    },
                },
                "responses": {
                    "204": _ref("responses", "NoContent"),
                    **_write_errors(400, 408, 409, 413, 507),
                },
            },
            "get": {
                "operationId": "getValue",
                "tags": ["keys"],
                "summary": "Read a value",
                "security": _BEARER,
                "parameters": [
                    _ref("parameters", "Meta"),
                    _ref("parameters", "IfNoneMatchVersion"),
                ],
                "responses": {
                    "304": _ref("responses", "NotModified"),
                    "200": {
                        "description": "The value, raw bytes.",
                        "headers": {
                            "ETag": _ref("headers", "ETag"),
                            "X-Created-At": _ref("headers", "X-Created-At"),
                            "X-Updated-At": _ref("headers", "X-Updated-At"),
                            "X-Expires-At": _ref("headers", "X-Expires-At"),
                        },
                        "content": {
                            "application/octet-stream": {
                                "schema": {"type": "string", "format": "binary"}
                            }
                        },
                    },
                    **_errors(400, 404),
                },
            },
            "head": {
                "operationId": "valueExists",
                "tags": ["keys"],
                "summary": "Tell whether a key holds a value, and its metadata",
                "description": "The headers a GET would send, with no body: the value is "
                "not read. `Content-Length` is the value's length.",
                "security": _BEARER,
                "parameters": [
                    _ref("parameters", "Meta"),
                    _ref("parameters", "IfNoneMatchVersion"),
                ],
                "responses": {
                    "304": _ref("responses", "NotModified"),
                    "200": {
                        "description": "The key holds a value.",
                        "headers": {
                            "ETag": _ref("headers", "ETag"),
                            "X-Created-At": _ref("headers", "X-Created-At"),
                            "X-Updated-At": _ref("headers", "X-Updated-At"),
                            "X-Expires-At": _ref("headers", "X-Expires-At"),
                        },
                    },
                    "404": {
                        "description": "The key holds no value.",
                        "headers": {"X-Error-Code": _code_header(["not_found"])},
                    },
                    **_errors(400),
                },
            },
            "delete": {
                "operationId": "deleteValue",
                "tags": ["keys"],
                "summary": "Remove a key",
                "description": "Removing an absent key is not an error (204).",
                "security": _BEARER,
                "parameters": [_ref("parameters", "IfMatch")],
                "responses": {
                    "204": _ref("responses", "NoContent"),
                    **_write_errors(400, 409),
                },
            },
        },
        "/v1/incr/{key}": {
            "parameters": key_param,
            "post": {
                "operationId": "incr",
                "tags": ["keys"],
                "summary": "Add to an integer counter",
                "description": "Adds `delta` to the decimal integer stored at the key (an "
                "absent key counts as 0), atomically, and keeps its TTL. The value is stored "
                "as ASCII decimal. The result must stay in the signed 64-bit range.",
                "security": _BEARER,
                "requestBody": _json_body("IncrRequest", "`{}` adds 1."),
                "responses": {
                    "200": {
                        "description": "The new value.",
                        "content": _json_content(_ref("schemas", "IncrResult")),
                    },
                    **_write_errors(400, 408, 413, 507),
                },
            },
        },
        "/v1/keys": {
            "get": {
                "operationId": "listKeys",
                "tags": ["keys"],
                "summary": "One page of entries, in key order",
                "security": _BEARER,
                "parameters": [
                    _query("prefix", _prefix_schema(), "Only keys that start with it."),
                    _query(
                        "limit",
                        {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": settings.max_page_size,
                            "default": 100,
                        },
                        "Page size (setting `PLUGINKV_MAX_PAGE_SIZE` bounds it).",
                    ),
                    _query(
                        "cursor",
                        {"type": "string", "minLength": 1},
                        "The `next_cursor` of the previous page; opaque.",
                    ),
                ],
                "responses": {
                    "200": {
                        "description": "One page.",
                        "content": _json_content(_ref("schemas", "KeyPage")),
                    },
                    **_errors(400),
                },
            },
            "delete": {
                "operationId": "deletePrefix",
                "tags": ["keys"],
                "summary": "Remove every key with a prefix",
                "security": _BEARER,
                "parameters": [
                    _query(
                        "prefix",
                        _prefix_schema(),
                        "Required. The empty prefix, every key of the scope, only with "
                        "`all=true`: a missing or empty prefix without it is 400.",
                        required=True,
                    ),
                    _query(
                        "all",
                        {"type": "string", "enum": ["true", "false", "1", "0"]},
                        "`true` with `prefix=` (and only with it): delete every key of the scope.",
                    ),
                ],
                "responses": {"200": _ref("responses", "Deleted"), **_write_errors(400)},
            },
        },
        "/v1/batch/get": {
            "post": {
                "operationId": "batchGet",
                "tags": ["batches"],
                "summary": "Read many keys",
                "security": _BEARER,
                "requestBody": _json_body("KeyList", batch_limit),
                "responses": {
                    "200": {
                        "description": "The present keys only.",
                        "content": _json_content(_ref("schemas", "BatchValues")),
                    },
                    **_errors(400, 408, 413),
                },
            },
        },
        "/v1/batch/set": {
            "post": {
                "operationId": "batchSet",
                "tags": ["batches"],
                "summary": "Store many values, all or nothing",
                "description": batch_limit + " Each value is also bound by "
                "`PLUGINKV_MAX_VALUE_BYTES`.",
                "security": _BEARER,
                "requestBody": _json_body("BatchSetRequest", batch_limit),
                "responses": {
                    "204": _ref("responses", "NoContent"),
                    **_write_errors(400, 408, 413, 507),
                },
            },
        },
        "/v1/batch/delete": {
            "post": {
                "operationId": "batchDelete",
                "tags": ["batches"],
                "summary": "Remove many keys",
                "security": _BEARER,
                "requestBody": _json_body("KeyList", batch_limit),
                "responses": {"200": _ref("responses", "Deleted"), **_write_errors(400, 408, 413)},
            },
        },
        "/v1/usage": {
            "get": {
                "operationId": "usage",
                "tags": ["keys"],
                "summary": "The scope's usage and quota",
                "security": _BEARER,
                "responses": {
                    "200": {
                        "description": "Usage.",
                        "content": _json_content(_ref("schemas", "Usage")),
                    },
                    **_errors(),
                },
            },
        },
        "/v1/admin/scopes": {
            "get": {
                "operationId": "adminScopes",
                "tags": ["admin"],
                "summary": "Every scope that stores something, with its usage",
                "description": "Needs an admin token.",
                "security": _BEARER,
                "responses": {
                    "200": {
                        "description": "By workspace, then plugin.",
                        "content": _json_content(_ref("schemas", "ScopeList")),
                    },
                    **_errors(),
                },
            },
        },
        "/v1/admin/quota": {
            "put": {
                "operationId": "adminSetQuota",
                "tags": ["admin"],
                "summary": "Override one scope's quota",
                "description": "Needs an admin token. A quota below the current usage "
                "refuses further growth but deletes nothing.",
                "security": _BEARER,
                "requestBody": _json_body("QuotaRequest", batch_limit),
                "responses": {
                    "204": _ref("responses", "NoContent"),
                    **_write_errors(400, 408, 413),
                },
            },
        },
        "/v1/admin/purge": {
            "post": {
                "operationId": "adminPurge",
                "tags": ["admin"],
                "summary": "Delete every entry of one scope and its quota override",
                "description": "Needs an admin token. What an uninstall does.",
                "security": _BEARER,
                "requestBody": _json_body("ScopeRef", batch_limit),
                "responses": {"200": _ref("responses", "Deleted"), **_write_errors(400, 408, 413)},
            },
        },
        "/v1/admin/tokens/revoke": {
            "post": {
                "operationId": "adminRevokeTokens",
                "tags": ["admin"],
                "summary": "Revoke every token of one scope issued until now",
                "description": "Needs an admin token. The scope's tokens issued until now "
                "answer 401 from then on, on this replica at once and on the others sharing "
                "the database within `PLUGINKV_TOKEN_REVOCATION_REFRESH_SECONDS`; tokens "
                "created afterwards work. Admin tokens are not revocable: rotate the secret.",
                "security": _BEARER,
                "requestBody": _json_body("ScopeRef", batch_limit),
                "responses": {
                    "200": {
                        "description": "Revoked.",
                        "content": _json_content(_ref("schemas", "Revoked")),
                    },
                    **_write_errors(400, 408, 413),
                },
            },
        },
        "/v1/admin/plugins": {
            "get": {
                "operationId": "adminPlugins",
                "tags": ["plugins"],
                "summary": "The Dify plugins the host runs",
                "description": "Needs an admin token. One entry per remote-debug connection "
                "and per installed plugin, whatever its state: one that is starting, "
                "restarting or failed is listed too, with why.",
                "security": _BEARER,
                "responses": {
                    "200": {
                        "description": "By plugin, then workspace.",
                        "content": _json_content(_ref("schemas", "PluginList")),
                    },
                    **_errors(),
                },
            },
        },
        "/v1/admin/plugins/{author}/{name}": {
            "get": {
                "operationId": "adminShowPlugin",
                "tags": ["plugins"],
                "summary": "What a plugin offers: providers, tools, endpoints, permissions",
                "description": "Needs an admin token. With `workspace`, as the plugin serving "
                "that workspace declared it; without, as the installed plugin's files declare "
                "it (whatever its state), else as its latest remote-debug connection did.",
                "security": _BEARER,
                "parameters": [
                    {
                        "name": "author",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                    _query("workspace", _ref("schemas", "Workspace"), "As it serves this one."),
                ],
                "responses": {
                    "200": {
                        "description": "The plugin's offer.",
                        "content": _json_content(_ref("schemas", "PluginOffer")),
                    },
                    **_errors(400),
                    "404": _ref("responses", "PluginNotFoundError"),
                },
            },
        },
        "/v1/admin/plugins/install": {
            "post": {
                "operationId": "adminInstallPlugin",
                "tags": ["plugins"],
                "summary": "Install a plugin folder for a workspace and run it over stdio",
                "description": "Needs an admin token. The first install builds the plugin's "
                "virtual environment from its requirements.txt (shared by plugins with the same "
                "requirements) and starts it; installing it for more workspaces shares the "
                "running process; a folder with another version replaces it. Answers once the "
                "plugin is running. Installs are kept in the data directory and started with "
                "the service.",
                "security": _BEARER,
                "requestBody": _json_body("InstallRequest", batch_limit),
                "responses": {
                    "200": {
                        "description": "The running plugin.",
                        "content": _json_content(_ref("schemas", "PluginInfo")),
                    },
                    **_errors(400, 408, 413),
                    "502": _ref("responses", "PluginError"),
                },
            },
        },
        "/v1/admin/plugins/uninstall": {
            "post": {
                "operationId": "adminUninstallPlugin",
                "tags": ["plugins"],
                "summary": "Stop serving an installed plugin in a workspace",
                "description": "Needs an admin token. The workspace's data of the plugin "
                "stays (`POST /v1/admin/purge` deletes it); the process stops with its last "
                "workspace.",
                "security": _BEARER,
                "requestBody": _json_body("UninstallRequest", batch_limit),
                "responses": {
                    "200": {
                        "description": "The workspaces it still serves.",
                        "content": _json_content(_ref("schemas", "Uninstalled")),
                    },
                    **_errors(400, 408, 413),
                    "404": _ref("responses", "PluginNotFoundError"),
                },
            },
        },
        "/v1/admin/tools/invoke": {
            "post": {
                "operationId": "adminInvokeTool",
                "tags": ["plugins"],
                "summary": "Invoke a tool of a running Dify plugin for a workspace",
                "description": "Needs an admin token. The plugin's storage calls during the "
                "call reach the workspace's storage of that plugin. The answer streams: one "
                "`ToolInvokeMessage` JSON object per line, each sent as the plugin sends it. "
                "The status goes out with the first message; a failure after it (the tool "
                "raised, or ran past the session timeout) is the last line, an error body "
                '`{"error": {"code", "message"}}`, which has no `type`.',
                "security": _BEARER,
                "requestBody": _json_body("ToolInvokeRequest", batch_limit),
                "responses": {
                    "200": {
                        "description": "The tool's messages, one JSON object per line, as "
                        "they come; an error body as the last line if the tool failed after its "
                        "first message.",
                        "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
                    },
                    **_errors(400, 408, 413),
                    "404": _ref("responses", "PluginNotFoundError"),
                    "502": _ref("responses", "PluginError"),
                    "504": _ref("responses", "PluginTimeoutError"),
                },
            },
        },
        "/v1/admin/tools/validate-credentials": {
            "post": {
                "operationId": "adminValidateCredentials",
                "tags": ["plugins"],
                "summary": "Have a tool provider check credentials, as Dify does",
                "description": "Needs an admin token. Sends Dify's credential-validation "
                "request, so the provider's `_validate_credentials` runs in the plugin. "
                "Credentials it refuses (it raised) are a 400 with its exception's type and "
                "text.",
                "security": _BEARER,
                "requestBody": _json_body("CredentialsRequest", batch_limit),
                "responses": {
                    "200": {
                        "description": "The provider accepted them.",
                        "content": _json_content(_ref("schemas", "CredentialsValid")),
                    },
                    **_errors(400, 408, 413),
                    "404": _ref("responses", "PluginNotFoundError"),
                    "502": _ref("responses", "PluginError"),
                    "504": _ref("responses", "PluginTimeoutError"),
                },
            },
        },
        "/files/upload/for-plugin": {
            "post": {
                "operationId": "uploadPluginFile",
                "tags": ["endpoints"],
                "summary": "Upload a file a plugin sends (`self.session.file.upload`)",
                "description": "No bearer token: the signed URL the plugin got from its "
                "`upload_file` call carries a `token` for one file name and MIME type, valid "
                "`PLUGINKV_FILES_ACCESS_TIMEOUT_SECONDS`. The file is kept in the plugin's "
                "storage scope of the workspace and counts against its quota.",
                "security": [],
                "parameters": [
                    _query("token", {"type": "string"}, "The URL's signature.", required=True)
                ],
                "requestBody": {
                    "required": True,
                    "description": f"{value_limit} for the file.",
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["file"],
                                "properties": {
                                    "file": {"type": "string", "contentMediaType": "*/*"}
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "201": {
                        "description": "Kept.",
                        "content": _json_content(_ref("schemas", "UploadedFile")),
                    },
                    "400": _ref("responses", "BadRequestError"),
                    "403": _ref("responses", "ForbiddenError"),
                    "408": _ref("responses", "RequestTimeoutError"),
                    "413": _ref("responses", "ValueTooLargeError"),
                    "503": _ref("responses", _WRITE_UNAVAILABLE[0]),
                    "507": _ref("responses", "QuotaExceededError"),
                },
            },
        },
        "/files/tools/{name}": {
            "get": {
                "operationId": "previewPluginFile",
                "tags": ["endpoints"],
                "summary": "A file a plugin uploaded, by its signed preview URL",
                "description": "No bearer token: the `preview_url` of the upload's answer "
                "carries a `token` for this file, valid "
                "`PLUGINKV_FILES_ACCESS_TIMEOUT_SECONDS`.",
                "security": [],
                "parameters": [
                    {
                        "name": "name",
                        "in": "path",
                        "required": True,
                        "description": "The file's id and extension.",
                        "schema": {"type": "string"},
                    },
                    _query("token", {"type": "string"}, "The URL's signature.", required=True),
                ],
                "responses": {
                    "200": {
                        "description": "The file, with its MIME type.",
                        "content": {"*/*": {"schema": {}}},
                    },
                    "403": _ref("responses", "ForbiddenError"),
                    "404": _ref("responses", "PluginNotFoundError"),
                    "503": _ref("responses", "BackendUnavailableError"),
                },
            },
        },
        "/v1/admin/endpoints/{hook_id}": {
            "delete": {
                "operationId": "adminDeleteEndpoint",
                "tags": ["plugins"],
                "summary": "Delete an endpoint",
                "description": "Needs an admin token. Its URL answers 404 from then on.",
                "security": _BEARER,
                "parameters": [
                    {
                        "name": "hook_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "204": _ref("responses", "NoContent"),
                    **_errors(),
                    "404": _ref("responses", "PluginNotFoundError"),
                },
            },
        },
        "/v1/admin/endpoints": {
            "get": {
                "operationId": "adminEndpoints",
                "tags": ["plugins"],
                "summary": "The endpoints, oldest first",
                "description": "Needs an admin token.",
                "security": _BEARER,
                "parameters": [
                    _query("workspace", _ref("schemas", "Workspace"), "Only this workspace's.")
                ],
                "responses": {
                    "200": {
                        "description": "The endpoints.",
                        "content": _json_content(_ref("schemas", "EndpointList")),
                    },
                    **_errors(),
                },
            },
            "post": {
                "operationId": "adminCreateEndpoint",
                "tags": ["plugins"],
                "summary": "Create an endpoint of a running plugin for a workspace",
                "description": "Needs an admin token. The plugin must be running for the "
                "workspace and declare endpoints (else 404), and its manifest must enable "
                "`resource.permission.endpoint` (else 403). The settings are checked against "
                "the endpoint group's, as Dify's daemon checks them: declared defaults fill in "
                "those left out, and a `required` one missing or a value of the wrong kind is "
                "a 400 naming the setting. Endpoints are kept in the data directory.",
                "security": _BEARER,
                "requestBody": _json_body("EndpointRequest", batch_limit),
                "responses": {
                    "200": {
                        "description": "The new endpoint.",
                        "content": _json_content(_ref("schemas", "EndpointCreated")),
                    },
                    **_errors(400, 408, 413),
                    "404": _ref("responses", "PluginNotFoundError"),
                },
            },
        },
        "/e/{hook_id}/{path}": {
            "parameters": [
                {
                    "name": "hook_id",
                    "in": "path",
                    "required": True,
                    "description": "The endpoint's hook id, from `POST /v1/admin/endpoints`.",
                    "schema": {"type": "string"},
                },
                {
                    "name": "path",
                    "in": "path",
                    "required": True,
                    "description": "The path the plugin routes, after the hook id.",
                    "schema": {"type": "string"},
                },
            ],
            **{
                method: {
                    "operationId": f"endpoint{method.capitalize()}",
                    "tags": ["endpoints"],
                    "summary": f"{method.upper()} a plugin endpoint",
                    "description": "Public: no token. The request goes to the endpoint's "
                    "plugin as the raw HTTP request Dify's daemon sends (the path after the hook "
                    "id exactly as the caller percent-encoded it, `Dify-Hook-Id` and "
                    "`Dify-Hook-Url` set, forwarding headers stripped, exact `Content-Length`), "
                    "and the plugin's response comes back, streamed as it produces it. An error "
                    "of the host answers with a short text and a request id; what went wrong is "
                    "in the service's log under that id.",
                    "security": [],
                    "requestBody": {
                        "required": False,
                        "description": f"Passed on; at most {settings.endpoint_max_body_bytes} "
                        "bytes (setting `PLUGINKV_ENDPOINT_MAX_BODY_BYTES`).",
                        "content": {"*/*": {"schema": {}}},
                    },
                    "responses": {
                        "200": {
                            "description": "The plugin's response, with its own status, "
                            "headers and body.",
                            "content": {"*/*": {"schema": {}}},
                        },
                        **{
                            str(status): _ref("responses", "EndpointError")
                            for status in (400, 404, 408, 413, 500, 502, 504)
                        },
                    },
                }
                for method in ("get", "post", "put", "patch", "delete", "options")
            },
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "tags": ["health"],
                "summary": "Liveness: 200 while the process runs",
                "security": [],
                "responses": {
                    "200": {
                        "description": '`{"status": "ok"}`',
                        "content": _json_content(_ref("schemas", "Alive")),
                    }
                },
            },
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "tags": ["health"],
                "summary": "Readiness: 200 when the database answers a query",
                "security": [],
                "responses": {
                    "200": {
                        "description": '`{"status": "ready"}`',
                        "content": _json_content(_ref("schemas", "Ready")),
                    },
                    "503": _ref("responses", "BackendUnavailableError"),
                },
            },
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "tags": ["health"],
                "summary": "Prometheus metrics",
                "description": "The Prometheus text exposition format: requests by route "
                "template, method and status, durations, body bytes, quota denials. No keys, "
                "values, workspaces or plugins appear in it.",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The metrics of this process.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            },
        },
        OPENAPI_PATH: {
            "get": {
                "operationId": "openapi",
                "tags": ["health"],
                "summary": "This document",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The OpenAPI 3.1 description of the API.",
                        "content": _json_content({"type": "object"}),
                    }
                },
            },
        },
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
            "HEAD is also answered on every GET route, as HTTP requires.",
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "tags": [
            {"name": "keys", "description": "Single keys, listing, counters and usage."},
            {"name": "batches", "description": "Many keys in one call; values in base64."},
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
                    "description": 'The entry\'s version, quoted: `"3"`. Send it back as '
                    "`If-Match` for compare-and-set.",
                    "required": True,
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
