"""The OpenAPI document's schemas: request and response bodies."""

from __future__ import annotations

from ...config import Settings
from ...keys import MAX_KEY_BYTES
from .common import (
    _BASE64,
    _INT64_MAX,
    _INT64_MIN,
    _KEY_RULES,
    _NO_FORBIDDEN,
    _PLUGIN,
    _WORKSPACE,
    Json,
    _ref,
)
from .responses import _ERROR_CODES, _HOST_ERRORS, _WRITE_UNAVAILABLE, _error_schema


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
    key_list = {
        "type": "array",
        "maxItems": settings.max_batch_items,
        "items": _ref("schemas", "Key"),
        "description": f"At most {settings.max_batch_items} keys, duplicates counted "
        "(setting `PLUGINKV_MAX_BATCH_ITEMS`).",
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
            "additionalProperties": False,
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
            "additionalProperties": False,
            "properties": {"keys": key_list},
        },
        "BatchGetRequest": {
            "type": "object",
            "required": ["keys"],
            "additionalProperties": False,
            "properties": {
                "keys": key_list,
                "encoding": {
                    "type": ["string", "null"],
                    "enum": ["base64", "text", None],
                    "default": "base64",
                    "description": "`base64` (default, also null): each value a base64 string. "
                    "`text`: "
                    'each value `{"text": "..."}` when it is UTF-8, else `{"base64": "..."}`.',
                },
            },
        },
        "TextValue": {
            "type": "object",
            "required": ["text"],
            "additionalProperties": False,
            "properties": {"text": {"type": "string", "description": "The value as UTF-8 text."}},
        },
        "TaggedBase64Value": {
            "type": "object",
            "required": ["base64"],
            "additionalProperties": False,
            "properties": {"base64": _ref("schemas", "Base64Value")},
        },
        "BatchValues": {
            "type": "object",
            "required": ["values"],
            "properties": {
                "values": {
                    "type": "object",
                    "additionalProperties": {
                        "oneOf": [
                            _ref("schemas", "Base64Value"),
                            _ref("schemas", "TextValue"),
                            _ref("schemas", "TaggedBase64Value"),
                        ]
                    },
                    "description": "The keys that are present, with their values, as "
                    "`encoding` asked.",
                }
            },
        },
        "BatchVersions": {
            "type": "object",
            "required": ["versions"],
            "properties": {
                "versions": {
                    "type": "object",
                    "additionalProperties": {"type": "integer", "minimum": 1},
                    "description": "Each stored key's new version (its `ETag`, unquoted).",
                }
            },
        },
        "BatchSetRequest": {
            "type": "object",
            "required": ["items"],
            "additionalProperties": False,
            "properties": {
                "items": {
                    "type": "object",
                    "maxProperties": settings.max_batch_items,
                    "propertyNames": _ref("schemas", "Key"),
                    "additionalProperties": {
                        "oneOf": [
                            _ref("schemas", "Base64Value"),
                            _ref("schemas", "TextValue"),
                            _ref("schemas", "TaggedBase64Value"),
                        ]
                    },
                    "description": "Key to value: a base64 string, "
                    '`{"base64": "..."}`, or `{"text": "..."}` (stored as its UTF-8 bytes). '
                    f"At most {settings.max_batch_items} items "
                    "(setting `PLUGINKV_MAX_BATCH_ITEMS`).",
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
            "additionalProperties": False,
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
            "additionalProperties": False,
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
            "additionalProperties": False,
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
            "additionalProperties": False,
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
            "additionalProperties": False,
            "properties": {
                "directory": {
                    "type": "string",
                    "description": "Absolute path, on the service's machine, of a plugin "
                    "folder (manifest.yaml, pyproject.toml and uv.lock or requirements.txt, "
                    "_assets/, the YAML and Python files), from which the plugin runs, or of a "
                    ".difypkg file, which is checked and unpacked under the data directory.",
                },
                "workspace": _ref("schemas", "Workspace"),
            },
        },
        "EndpointRequest": {
            "type": "object",
            "required": ["workspace", "plugin"],
            "additionalProperties": False,
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
            "additionalProperties": False,
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
        "PluginLog": {
            "type": "object",
            "required": ["plugin", "text", "cursor", "more"],
            "properties": {
                "plugin": _ref("schemas", "Plugin"),
                "text": {"type": "string", "description": "Whole lines, each ending in a newline."},
                "cursor": {
                    "type": "string",
                    "description": "Pass it back to read what is written after these lines.",
                },
                "more": {
                    "type": "boolean",
                    "description": "More was written already: read on at once with the cursor.",
                },
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
            "properties": {
                "status": {"enum": ["ready", "disk_full"]},
                "error": {
                    "type": "object",
                    "description": "With `disk_full`: why writes that add data are refused.",
                    "properties": {"code": {"const": "disk_full"}, "message": {"type": "string"}},
                },
            },
        },
    }
    for status, (name, _, _) in _ERROR_CODES.items():
        schemas[name] = _error_schema(status)
    for status, name, code, _ in _HOST_ERRORS:
        schemas[name] = _error_schema(status, [code])
    schemas[_WRITE_UNAVAILABLE[0]] = _error_schema(503, _WRITE_UNAVAILABLE[1])
    return schemas
