"""The error bodies of the OpenAPI document, and the responses its operations share."""

from __future__ import annotations

from ...error_registry import ERRORS
from ...errors import (
    BackendUnavailable,
    ChangesExpired,
    Forbidden,
    InvalidArgument,
    InvalidExportFile,
    NotSupported,
    PluginFailed,
    PluginNotFound,
    PluginTimeout,
    QuotaExceeded,
    ReadOnly,
    Unauthorized,
    ValueTooLarge,
    VersionConflict,
)
from ..describe import (
    CHECK_FAILED,
    ERROR_RESPONSES,
    WRITE_UNAVAILABLE,
    Json,
    code_header,
    json_content,
    ref,
)

# Codes that name no exception: the storage routes answer them themselves (`not_found`
# too: the one route that answers it has a 404 response of its own, `KeyNotFound`).
_ANSWERED_CODES: dict[int, list[str]] = {408: ["request_timeout"]}

# Not on the `/v1` storage routes: the plugin host's errors (beside them, below), and
# two the service never answers (an import's, raised where the file is read; and the
# one the plugin-side storage raises on a host without pluginkv's calls).
_HOST_CLASSES = (PluginNotFound, PluginFailed, PluginTimeout, InvalidExportFile, NotSupported)


def _codes(status: int) -> list[str]:
    """The storage routes' codes with this status, as the error classes declare them."""
    codes = [cls.code for cls in ERRORS if cls.http_status == status and cls not in _HOST_CLASSES]
    # A read-only store refuses only writes: its 503 has a response of its own.
    return [code for code in codes if code != ReadOnly.code] + _ANSWERED_CODES.get(status, [])


_ERROR_CODES: dict[int, tuple[str, list[str], str]] = {
    # status: (schema name, codes, description)
    InvalidArgument.http_status: (
        ERROR_RESPONSES[InvalidArgument.http_status],
        _codes(InvalidArgument.http_status),
        "The request is malformed: an invalid key, query parameter, header or body field "
        "(`wrong_value_type`: incr of a value that is not a decimal integer).",
    ),
    Unauthorized.http_status: (
        ERROR_RESPONSES[Unauthorized.http_status],
        _codes(Unauthorized.http_status),
        "No valid bearer token: missing, malformed, tampered, signed with another secret "
        "or expired.",
    ),
    Forbidden.http_status: (
        ERROR_RESPONSES[Forbidden.http_status],
        _codes(Forbidden.http_status),
        "The token is valid but does not allow this call: a read-only token writing, an "
        "admin token on a key route, or a scope token on an admin route.",
    ),
    408: (
        ERROR_RESPONSES[408],
        _codes(408),
        "The body did not arrive within the time allowed (setting "
        "`PLUGINKV_REQUEST_TIMEOUT_SECONDS`).",
    ),
    ChangesExpired.http_status: (
        ERROR_RESPONSES[ChangesExpired.http_status],
        _codes(ChangesExpired.http_status),
        "The changes after `since` (or `Last-Event-ID`) are no longer kept (settings "
        "`PLUGINKV_CHANGES_RETENTION_SECONDS`, `PLUGINKV_CHANGES_RETENTION_COUNT`); `oldest` "
        "is where the log starts now. Read the keys again, then follow from a new position.",
    ),
    VersionConflict.http_status: (
        ERROR_RESPONSES[VersionConflict.http_status],
        _codes(VersionConflict.http_status),
        "A precondition (`If-Match`, `If-None-Match: *`) did not hold; nothing was changed. "
        "`ETag` is the entry's current version, when it has one.",
    ),
    ValueTooLarge.http_status: (
        ERROR_RESPONSES[ValueTooLarge.http_status],
        _codes(ValueTooLarge.http_status),
        "The body is over the limit; refused as soon as `Content-Length` or the bytes read "
        "pass it, without reading the body whole.",
    ),
    BackendUnavailable.http_status: (
        ERROR_RESPONSES[BackendUnavailable.http_status],
        _codes(BackendUnavailable.http_status),
        "The database could not answer (locked past the timeout, unreachable, broken).",
    ),
    QuotaExceeded.http_status: (
        ERROR_RESPONSES[QuotaExceeded.http_status],
        _codes(QuotaExceeded.http_status),
        "Nothing was stored: `quota_exceeded`, the write would take the scope past its "
        "quota (with `used`, `limit`, `needed`); `disk_full`, the database's disk is full "
        "(deletes still succeed).",
    ),
}

# The plugin host's errors: (status, schema name, code, description).  404 shares its
# status with `not_found`, so these sit beside the table keyed by status.
_HOST_ERRORS: list[tuple[int, str, str, str]] = [
    (
        PluginNotFound.http_status,
        "PluginNotFoundError",
        PluginNotFound.code,
        "No running plugin serves this plugin for the workspace, or it declares no such "
        "tool provider or tool.",
    ),
    (
        PluginFailed.http_status,
        "PluginError",
        PluginFailed.code,
        "The plugin answered with an error; the message carries its type and text.",
    ),
    (
        PluginTimeout.http_status,
        "PluginTimeoutError",
        PluginTimeout.code,
        "The plugin did not finish within `PLUGINKV_SESSION_TIMEOUT_SECONDS`.",
    ),
]

# POST /v1/atomic's failed check: an answer, not an exception (the engine returns it as
# CommitResult(ok=False)), so no error class declares its code.
_CHECK_FAILED = (
    "CheckFailedError",
    "A check did not hold; nothing was changed. `failed` names the keys whose checks failed, "
    "in the order checked.",
)

# A write's 503 is one of two: the database is away, or the store is read-only
# (setting PLUGINKV_READ_ONLY).  One status holds one response per operation,
# so writing operations get this one in place of BackendUnavailableError.
_WRITE_UNAVAILABLE = (
    WRITE_UNAVAILABLE,
    [BackendUnavailable.code, ReadOnly.code],
    "The database could not answer (`backend_unavailable`: locked past the timeout, "
    "unreachable, broken), or the store is read-only (`read_only`: setting "
    "`PLUGINKV_READ_ONLY`, with `Retry-After`); nothing was changed.",
)

_ERROR_DETAILS: dict[int, Json] = {
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
    410: {
        "oldest": {
            "type": "integer",
            "minimum": 1,
            "description": "The oldest change still kept (one past the last when none is).",
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


# The fields of the plugin host's errors, by code.
_HOST_ERROR_DETAILS: dict[str, Json] = {
    CHECK_FAILED: {
        "failed": {
            "type": "array",
            "items": {"type": "string"},
            "minItems": 1,
            "description": "The keys whose checks failed.",
        }
    },
    PluginFailed.code: {
        "error_type": {
            "type": ["string", "null"],
            "description": "The exception the plugin's code raised; null when it failed "
            "otherwise (its channel closed, say).",
        }
    },
}


def _error_schema(status: int, codes: list[str] | None = None) -> Json:
    if codes is None:
        details = _ERROR_DETAILS.get(status, {})
    else:
        details = _HOST_ERROR_DETAILS.get(codes[0], {}) if len(codes) == 1 else {}
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
_RETRY_AFTER: Json = {
    "description": "Seconds after which to try again: 1 with `backend_unavailable` (a failover "
    "or a restart of the database ends within seconds), 60 with `read_only`.",
    "required": False,
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}


def _responses() -> Json:
    responses: Json = {
        "NoContent": {"description": "Done."},
        "Written": {
            "description": "Stored; `ETag` is the entry's new version.",
            "headers": {"ETag": ref("headers", "ETag")},
        },
        "NotModified": {
            "description": "The entry is at a version `If-None-Match` names: no body.",
            "headers": {
                "ETag": ref("headers", "ETag"),
                "X-Expires-At": ref("headers", "X-Expires-At"),
            },
        },
        "Deleted": {
            "description": "Done.",
            "content": json_content(ref("schemas", "Deleted")),
        },
        "KeyNotFound": {
            "description": "The key holds no value. `no_such_route` for an empty key "
            "(`GET /v1/kv/`): the message points to `GET /v1/keys`, the one listing path.",
            "headers": {"X-Error-Code": code_header(["not_found", "no_such_route"])},
            "content": json_content(_error_schema(404, ["not_found", "no_such_route"])),
        },
    }
    for status, (name, codes, description) in _ERROR_CODES.items():
        headers = {"X-Error-Code": code_header(codes)}
        if status == 401:
            headers["WWW-Authenticate"] = ref("headers", "WWW-Authenticate")
        elif status == 503:
            headers["Retry-After"] = _RETRY_AFTER
        elif status == 412:
            headers["ETag"] = ref("headers", "CurrentETag")
        responses[name] = {
            "description": description,
            "headers": headers,
            "content": json_content(ref("schemas", name)),
        }
    for _, name, code, description in _HOST_ERRORS:
        responses[name] = {
            "description": description,
            "headers": {"X-Error-Code": code_header([code])},
            "content": json_content(ref("schemas", name)),
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
    name, description = _CHECK_FAILED
    responses[name] = {
        "description": description,
        "headers": {"X-Error-Code": code_header([CHECK_FAILED])},
        "content": json_content(ref("schemas", name)),
    }
    name, codes, description = _WRITE_UNAVAILABLE
    responses[name] = {
        "description": description,
        "headers": {
            "X-Error-Code": code_header(codes),
            "Retry-After": _RETRY_AFTER,
        },
        "content": json_content(ref("schemas", name)),
    }
    return responses
