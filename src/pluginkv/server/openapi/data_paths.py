"""The OpenAPI document's paths: the key-value routes (keys, batches, usage) and the probes."""

from __future__ import annotations

from ...config import Settings
from .common import _BEARER, OPENAPI_PATH, Json, _ref
from .parameters import _json_body, _prefix_schema, _query
from .responses import _code_header, _errors, _json_content, _write_errors


def _data_paths(settings: Settings) -> Json:
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
                    "204": _ref("responses", "Written"),
                    **_write_errors(400, 408, 412, 413, 507),
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
                    **_errors(400),
                    "404": _ref("responses", "KeyNotFound"),
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
                        "description": "The key holds no value (`no_such_route`: the key is "
                        "empty, `/v1/kv/`).",
                        "headers": {"X-Error-Code": _code_header(["not_found", "no_such_route"])},
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
                    **_write_errors(400, 412),
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
                "as ASCII decimal. `delta` and the result must stay in the signed 64-bit "
                "range (else 400).",
                "security": _BEARER,
                "requestBody": {
                    "required": False,
                    "description": "Optional: no body, or `{}`, adds 1.",
                    "content": _json_content(_ref("schemas", "IncrRequest")),
                },
                "responses": {
                    "200": {
                        "description": "The new value; `ETag` is the entry's new version.",
                        "headers": {"ETag": _ref("headers", "ETag")},
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
                "requestBody": _json_body("BatchGetRequest", batch_limit),
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
                    "200": {
                        "description": "Stored, each key with its new version.",
                        "content": _json_content(_ref("schemas", "BatchVersions")),
                    },
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
    }


def _probe_paths() -> Json:
    return {
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
                "description": "Still 200 on a full disk, with `status` `disk_full` and the "
                "reason: reads and deletes are served, and deletes are what make room.",
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
