"""The OpenAPI document's paths: the admin routes, the plugin host's, files and endpoints."""

from __future__ import annotations

from ...config import Settings
from .common import _BEARER, Json, _ref
from .parameters import _json_body, _query
from .responses import _WRITE_UNAVAILABLE, _errors, _json_content, _write_errors


def _admin_paths(settings: Settings) -> Json:
    value_limit = f"At most {settings.max_value_bytes} bytes (setting `PLUGINKV_MAX_VALUE_BYTES`)."
    batch_limit = (
        f"The JSON body is at most {settings.max_batch_bytes} bytes "
        "(setting `PLUGINKV_MAX_BATCH_BYTES`)."
    )
    return {
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
                "virtual environment with uv (from its uv.lock, pyproject.toml or "
                "requirements.txt, on the Python its manifest asks for; shared by plugins with "
                "the same dependency files) and starts it; installing it for more workspaces "
                "shares the running process. A folder with another version starts beside the "
                "running one, which serves until the new one is ready; if the new one fails, "
                "the old one stays. Answers once the plugin is running, or with why it could "
                "not start (a first install that fails stays listed as failed). Installs are "
                "kept in the data directory and started with the service.",
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
        "/v1/admin/plugins/{author}/{name}/logs": {
            "get": {
                "operationId": "adminPluginLogs",
                "tags": ["plugins"],
                "summary": "Read an installed plugin's log file",
                "description": "Needs an admin token. What the plugin printed (stderr, "
                "stdout lines that are not protocol messages), its log events, and each start "
                "and exit, one timestamped line each, from "
                "`<data-dir>/plugin-logs/<author>/<name>.log` (rotated at "
                "`PLUGINKV_PLUGIN_LOG_MAX_BYTES`). Without `cursor`, the last `lines` lines; "
                "with the `cursor` of an earlier answer, what was written since (poll with it "
                "to follow the log).",
                "security": _BEARER,
                "parameters": [
                    {
                        "name": "author",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                    _query(
                        "lines",
                        {"type": "integer", "minimum": 0, "default": 100},
                        "Without `cursor`: how many of the last lines.",
                    ),
                    _query(
                        "cursor",
                        {"type": "string", "pattern": "^[0-9]+:[0-9]+$"},
                        "The `cursor` of an earlier answer: what was written after it.",
                    ),
                ],
                "responses": {
                    "200": {
                        "description": "Lines of the log.",
                        "content": _json_content(_ref("schemas", "PluginLog")),
                    },
                    **_errors(400),
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
                    "507": _ref("responses", "InsufficientStorageError"),
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
                    **_errors(400),
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
    }
