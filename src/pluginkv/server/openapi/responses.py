"""The error bodies of the OpenAPI document, and the responses its operations share."""

from __future__ import annotations

from .common import Json, _ref

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
    412: (
        "VersionConflictError",
        ["version_conflict"],
        "A precondition (`If-Match`, `If-None-Match: *`) did not hold; nothing was changed. "
        "`ETag` is the entry's current version, when it has one.",
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
        "InsufficientStorageError",
        ["quota_exceeded", "disk_full"],
        "Nothing was stored: `quota_exceeded`, the write would take the scope past its "
        "quota (with `used`, `limit`, `needed`); `disk_full`, the database's disk is full "
        "(deletes still succeed).",
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
    412: {
        "key": {"type": "string"},
        "expected": {
            "type": ["integer", "null"],
            "description": "The version the request named; null for `If-None-Match: *` "
            "and `If-Match: *`.",
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
    507: {  # quota_exceeded only
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
                # Details belong to one code; a status shared by two requires none.
                "required": ["code", "message", *(details if len(codes) == 1 else [])],
                "properties": {
                    "code": {"type": "string", "enum": codes},
                    "message": {"type": "string"},
                    **details,
                },
            }
        },
    }


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
        "Written": {
            "description": "Stored; `ETag` is the entry's new version.",
            "headers": {"ETag": _ref("headers", "ETag")},
        },
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
        "KeyNotFound": {
            "description": "The key holds no value. `no_such_route` for an empty key "
            "(`GET /v1/kv/`): the message points to `GET /v1/keys`, the one listing path.",
            "headers": {"X-Error-Code": _code_header(["not_found", "no_such_route"])},
            "content": _json_content(_error_schema(404, ["not_found", "no_such_route"])),
        },
    }
    for status, (name, codes, description) in _ERROR_CODES.items():
        headers = {"X-Error-Code": _code_header(codes)}
        if status == 401:
            headers["WWW-Authenticate"] = _ref("headers", "WWW-Authenticate")
        elif status == 503:
            headers["Retry-After"] = _RETRY_AFTER
        elif status == 412:
            headers["ETag"] = _ref("headers", "CurrentETag")
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
