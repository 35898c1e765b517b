"""Admin routes of the Dify plugin host: the plugins it runs, and tool calls to them."""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.types import Scope

from ..config import Settings
from ..errors import InvalidArgument, PluginFailed, PluginKVError, PluginNotFound, ValueTooLarge
from ..host.endpoints import raw_request
from ..host.plugin_host import PluginHost, PluginInfo
from ..keys import check_workspace
from .answers import (
    CredentialsValid,
    EndpointCreated,
    EndpointList,
    PluginList,
    PluginLog,
    PluginOffer,
    Uninstalled,
)
from .answers import (
    PluginInfo as PluginInfoAnswer,
)
from .bodies import (
    CredentialsRequest,
    EndpointRequest,
    InstallRequest,
    ToolInvokeRequest,
    UninstallRequest,
)
from .describe import ApiRoute, Json, Operation, errors, json_body, ok, query, ref
from .errors import exception_body
from .parsing import ClientGone, query_number, read_body
from .routes import admin_json, admin_only

__all__ = ["ENDPOINT_METHODS", "NDJSON", "REQUEST_ID_HEADER", "hook_and_target", "host_routes"]

NDJSON = "application/x-ndjson"
REQUEST_ID_HEADER = "X-Request-Id"  # on an endpoint's error: the id its log line carries
ENDPOINT_METHODS = ["DELETE", "GET", "OPTIONS", "PATCH", "POST", "PUT"]  # HEAD comes with GET
logger = logging.getLogger("pluginkv.dify")


def _info(info: PluginInfo) -> dict[str, Any]:
    return {
        "plugin": info.plugin,
        "version": info.version,
        "transport": info.transport,
        "workspaces": info.workspaces,
        "peer": info.peer,
        "since": info.since,
        "last_heartbeat": info.last_heartbeat,
        "state": info.state,
        "error": info.error,
    }


_NOT_FOUND = ref("responses", "PluginNotFoundError")
_FAILED = ref("responses", "PluginError")
_TIMED_OUT = ref("responses", "PluginTimeoutError")
_PLUGIN_PATH: list[Json] = [
    {"name": "author", "in": "path", "required": True, "schema": {"type": "string"}},
    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
]

LIST_PLUGINS = Operation(
    "adminPlugins",
    "plugins",
    "The Dify plugins the host runs",
    description="Needs an admin token. One entry per remote-debug connection and per "
    "installed plugin, whatever its state: one that is starting, restarting or failed is "
    "listed too, with why.",
    responses={"200": ok("By plugin, then workspace.", PluginList), **errors()},
)


async def list_plugins(request: Request) -> Response:
    admin_only(request)
    host: PluginHost = request.app.state.host
    return JSONResponse({"plugins": [_info(info) for info in host.plugins()]})


SHOW_PLUGIN = Operation(
    "adminShowPlugin",
    "plugins",
    "What a plugin offers: providers, tools, endpoints, permissions",
    description="Needs an admin token. With `workspace`, as the plugin serving that "
    "workspace declared it; without, as the installed plugin's files declare it (whatever "
    "its state), else as its latest remote-debug connection did.",
    parameters=[
        *_PLUGIN_PATH,
        query("workspace", ref("schemas", "Workspace"), "As it serves this one."),
    ],
    responses={
        "200": ok("The plugin's offer.", PluginOffer),
        **errors(400),
        "404": _NOT_FOUND,
    },
)


async def show_plugin(request: Request) -> Response:
    params = admin_only(request, SHOW_PLUGIN.query_names)
    host: PluginHost = request.app.state.host
    plugin = f"{request.path_params['author']}/{request.path_params['name']}"
    return JSONResponse(host.offer(plugin, params.get("workspace")))


INSTALL_PLUGIN = Operation(
    "adminInstallPlugin",
    "plugins",
    "Install a plugin folder for a workspace and run it over stdio",
    description="Needs an admin token. The first install builds the plugin's virtual "
    "environment with uv (from its uv.lock, pyproject.toml or requirements.txt, on the "
    "Python its manifest asks for; shared by plugins with the same dependency files) and "
    "starts it; installing it for more workspaces shares the running process. A folder with "
    "another version starts beside the running one, which serves until the new one is "
    "ready; if the new one fails, the old one stays. Answers once the plugin is running, or "
    "with why it could not start (a first install that fails stays listed as failed). "
    "Installs are kept in the data directory and started with the service.",
    body=json_body(InstallRequest),
    responses={
        "200": ok("The running plugin.", PluginInfoAnswer),
        **errors(400, 408, 413),
        "502": _FAILED,
    },
)


async def install_plugin(request: Request) -> Response:
    body = await admin_json(request, InstallRequest)
    host: PluginHost = request.app.state.host
    info = await host.install(body.directory, body.workspace)
    return JSONResponse(_info(info))


UNINSTALL_PLUGIN = Operation(
    "adminUninstallPlugin",
    "plugins",
    "Stop serving an installed plugin in a workspace",
    description="Needs an admin token. The workspace's data of the plugin stays (`POST "
    "/v1/admin/purge` deletes it); the process stops with its last workspace.",
    body=json_body(UninstallRequest),
    responses={
        "200": ok("The workspaces it still serves.", Uninstalled),
        **errors(400, 408, 413),
        "404": _NOT_FOUND,
    },
)


async def uninstall_plugin(request: Request) -> Response:
    body = await admin_json(request, UninstallRequest)
    host: PluginHost = request.app.state.host
    left = await host.uninstall(body.plugin, body.workspace)
    return JSONResponse({"plugin": body.plugin, "workspaces": left})


PLUGIN_LOGS = Operation(
    "adminPluginLogs",
    "plugins",
    "Read an installed plugin's log file",
    description="Needs an admin token. What the plugin printed (stderr, stdout lines that "
    "are not protocol messages), its log events, and each start and exit, one timestamped "
    "line each, from `<data-dir>/plugin-logs/<author>/<name>.log` (rotated at "
    "`PLUGINKV_PLUGIN_LOG_MAX_BYTES`). Without `cursor`, the last `lines` lines; with the "
    "`cursor` of an earlier answer, what was written since (poll with it to follow the log).",
    parameters=[
        *_PLUGIN_PATH,
        query(
            "lines",
            {"type": "integer", "minimum": 0, "default": 100},
            "Without `cursor`: how many of the last lines.",
        ),
        query(
            "cursor",
            {"type": "string", "pattern": "^[0-9]+:[0-9]+$"},
            "The `cursor` of an earlier answer: what was written after it.",
        ),
    ],
    responses={"200": ok("Lines of the log.", PluginLog), **errors(400), "404": _NOT_FOUND},
)


async def plugin_logs(request: Request) -> Response:
    admin_only(request, PLUGIN_LOGS.query_names)
    host: PluginHost = request.app.state.host
    plugin = f"{request.path_params['author']}/{request.path_params['name']}"
    lines = query_number(request.query_params, "lines", int)
    if lines is not None and lines < 0:
        raise InvalidArgument(f"query parameter lines={lines} must not be negative")
    page = await host.read_log(
        plugin, lines=100 if lines is None else lines, cursor=request.query_params.get("cursor")
    )
    body = {"plugin": plugin, "text": page.text, "cursor": page.cursor, "more": page.more}
    return JSONResponse(body)


INVOKE_TOOL = Operation(
    "adminInvokeTool",
    "plugins",
    "Invoke a tool of a running Dify plugin for a workspace",
    description="Needs an admin token. The plugin's storage calls during the call reach the "
    "workspace's storage of that plugin. The answer streams: one `ToolInvokeMessage` JSON "
    "object per line, each sent as the plugin sends it. The status goes out with the first "
    "message; a failure after it (the tool raised, or ran past the session timeout) is the "
    'last line, an error body `{"error": {"code", "message"}}`, which has no `type`.',
    body=json_body(ToolInvokeRequest),
    responses={
        "200": {
            "description": "The tool's messages, one JSON object per line, as they come; an "
            "error body as the last line if the tool failed after its first message.",
            "content": {NDJSON: {"schema": {"type": "string"}}},
        },
        **errors(400, 408, 413),
        "404": _NOT_FOUND,
        "502": _FAILED,
        "504": _TIMED_OUT,
    },
)


async def invoke_tool(request: Request) -> Response:
    body = await admin_json(request, ToolInvokeRequest)
    host: PluginHost = request.app.state.host
    messages = host.invoke_tool(
        workspace=body.workspace,
        plugin=body.plugin,
        provider=_name(body.provider, "provider"),
        tool=_name(body.tool, "tool"),
        parameters=body.parameters or {},
        user=body.user or "",
        credentials=body.credentials or {},
        credential_type="api-key" if body.credential_type is None else body.credential_type,
        conversation_id=body.conversation_id,
        message_id=body.message_id,
        app_id=body.app_id,
    )
    try:
        # The first message before the status: a call refused before the tool
        # ran answers with its own (400, 404, 502, 504).
        first = await anext(messages)
    except StopAsyncIteration:
        return Response(b"", media_type=NDJSON)

    async def lines() -> AsyncIterator[bytes]:
        async with contextlib.aclosing(messages):
            yield _ndjson(first)
            try:
                async for message in messages:
                    yield _ndjson(message)
            except PluginKVError as exc:  # 200 has gone out: the error is the last line
                yield _ndjson(exception_body(exc))

    return StreamingResponse(lines(), media_type=NDJSON)


VALIDATE_CREDENTIALS = Operation(
    "adminValidateCredentials",
    "plugins",
    "Have a tool provider check credentials, as Dify does",
    description="Needs an admin token. Sends Dify's credential-validation request, so the "
    "provider's `_validate_credentials` runs in the plugin. Credentials it refuses (it "
    "raised) are a 400 with its exception's type and text.",
    body=json_body(CredentialsRequest),
    responses={
        "200": ok("The provider accepted them.", CredentialsValid),
        **errors(400, 408, 413),
        "404": _NOT_FOUND,
        "502": _FAILED,
        "504": _TIMED_OUT,
    },
)


async def validate_credentials(request: Request) -> Response:
    body = await admin_json(request, CredentialsRequest)
    host: PluginHost = request.app.state.host
    provider = _name(body.provider, "provider")
    await host.validate_credentials(
        workspace=body.workspace,
        plugin=body.plugin,
        provider=provider,
        credentials=body.credentials or {},
        user=body.user or "",
    )
    return JSONResponse({"plugin": body.plugin, "provider": provider, "valid": True})


def _ndjson(message: object) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


CREATE_ENDPOINT = Operation(
    "adminCreateEndpoint",
    "plugins",
    "Create an endpoint of a running plugin for a workspace",
    description="Needs an admin token. The plugin must be running for the workspace and "
    "declare endpoints (else 404), and its manifest must enable "
    "`resource.permission.endpoint` (else 403). The settings are checked against the "
    "endpoint group's, as Dify's daemon checks them: declared defaults fill in those left "
    "out, and a `required` one missing or a value of the wrong kind is a 400 naming the "
    "setting. Endpoints are kept in the data directory.",
    body=json_body(EndpointRequest),
    responses={
        "200": ok("The new endpoint.", EndpointCreated),
        **errors(400, 408, 413),
        "404": _NOT_FOUND,
    },
)


async def create_endpoint(request: Request) -> Response:
    body = await admin_json(request, EndpointRequest)
    host: PluginHost = request.app.state.host
    endpoint = host.create_endpoint(
        workspace=body.workspace, plugin=body.plugin, settings=body.settings or {}
    )
    url = f"{str(request.base_url).rstrip('/')}/e/{endpoint.hook_id}"
    return JSONResponse({"hook_id": endpoint.hook_id, "url": url})


LIST_ENDPOINTS = Operation(
    "adminEndpoints",
    "plugins",
    "The endpoints, oldest first",
    description="Needs an admin token.",
    parameters=[query("workspace", ref("schemas", "Workspace"), "Only this workspace's.")],
    responses={"200": ok("The endpoints.", EndpointList), **errors(400)},
)


async def list_endpoints(request: Request) -> Response:
    params = admin_only(request, LIST_ENDPOINTS.query_names)
    host: PluginHost = request.app.state.host
    base = str(request.base_url).rstrip("/")
    workspace = params.get("workspace")
    if workspace is not None:
        check_workspace(workspace)  # as the document says; "" would list every workspace
    return JSONResponse(
        {
            "endpoints": [
                {
                    "hook_id": e.hook_id,
                    "url": f"{base}/e/{e.hook_id}",
                    "workspace": e.workspace,
                    "plugin": e.plugin,
                    "created_at": e.created_at,
                }
                for e in host.endpoints.list(workspace)
            ]
        }
    )


DELETE_ENDPOINT = Operation(
    "adminDeleteEndpoint",
    "plugins",
    "Delete an endpoint",
    description="Needs an admin token. Its URL answers 404 from then on.",
    parameters=[{"name": "hook_id", "in": "path", "required": True, "schema": {"type": "string"}}],
    responses={"204": ref("responses", "NoContent"), **errors(), "404": _NOT_FOUND},
)


async def delete_endpoint(request: Request) -> Response:
    admin_only(request)
    host: PluginHost = request.app.state.host
    host.endpoints.delete(request.path_params["hook_id"])
    return Response(status_code=204)


# Hop-by-hop and framing headers of the plugin's response: the server frames it anew.
_NOT_PASSED = {"transfer-encoding", "connection", "keep-alive"}


def _endpoint_operation(method: str) -> Operation:
    return Operation(
        f"endpoint{method.capitalize()}",
        "endpoints",
        f"{method} a plugin endpoint",
        description="Public: no token. The request goes to the endpoint's plugin as the raw "
        "HTTP request Dify's daemon sends (the path after the hook id exactly as the caller "
        "percent-encoded it, `Dify-Hook-Id` and `Dify-Hook-Url` set, forwarding headers "
        "stripped, exact `Content-Length`), and the plugin's response comes back, streamed as "
        "it produces it. An error of the host answers with a short text and a request id; "
        "what went wrong is in the service's log under that id.",
        public=True,
        body={
            "required": False,
            "description": "Passed on; at most {settings.endpoint_max_body_bytes} bytes "
            "(setting `PLUGINKV_ENDPOINT_MAX_BODY_BYTES`).",
            "content": {"*/*": {"schema": {}}},
        },
        responses={
            "200": {
                "description": "The plugin's response, with its own status, headers and body.",
                "content": {"*/*": {"schema": {}}},
            },
            **{
                str(status): ref("responses", "EndpointError")
                for status in (400, 404, 408, 413, 500, 502, 504)
            },
        },
    )


_ENDPOINT_PATH: list[Json] = [
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
]


async def endpoint(request: Request) -> Response:
    """A request under ``/e/<hook_id>/``, answered by the endpoint's plugin.

    Anyone may call it, so a failure answers with its status and a request id
    only: what went wrong (paths, the plugin's output) goes to the log under that id.
    """
    try:
        return await _forward(request)
    except ClientGone:
        raise
    except Exception as exc:
        return _public_error(exc)


async def _forward(request: Request) -> Response:
    host: PluginHost = request.app.state.host
    hook_id, target = hook_and_target(request.scope)
    host.endpoints.get(hook_id)  # an unknown hook is 404 before the body is read
    settings: Settings = request.app.state.settings
    body = await read_body(
        request.receive,
        request.headers.get("content-length"),
        settings.endpoint_max_body_bytes,
        "PLUGINKV_ENDPOINT_MAX_BODY_BYTES",
        settings.request_timeout_seconds,
    )
    query: bytes = request.scope.get("query_string", b"")
    if query:
        target += b"?" + query
    raw_path: bytes = request.scope.get("raw_path") or request.scope["path"].encode()
    base = str(request.base_url).rstrip("/")
    raw = raw_request(
        method=request.method,
        target=target,
        headers=request.scope["headers"],
        body=body,
        default_host=request.url.netloc.encode(),
        hook_id=hook_id,
        hook_url=base + raw_path.decode("latin-1"),
    )
    stream = host.endpoint_stream(hook_id, raw)
    try:
        first = await anext(stream)
    except StopAsyncIteration:
        raise PluginFailed(f"the plugin sent no response for endpoint {hook_id}") from None
    status, headers, opening = _response_head(first)

    async def rest() -> AsyncIterator[bytes]:
        async with contextlib.aclosing(stream):
            if opening:
                yield opening
            try:
                async for chunk in stream:
                    yield _result(chunk)
            except PluginKVError as exc:  # the head has gone out: all that can be done is stop
                logger.warning("endpoint %s broke off: %s", hook_id, exc)

    return StreamingResponse(rest(), status_code=status, headers=headers)


def hook_and_target(scope: Scope) -> tuple[str, bytes]:
    """The hook id and the path after it, from the raw path as the caller encoded it.

    The router matched the decoded path, where ``%2F`` is a ``/`` and the hook
    id may have been spelt ``%61%62...``: only the raw path says where the hook
    id ends, and the plugin gets what follows it byte for byte.
    """
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    root = scope.get("root_path", "").encode()
    if root and raw.startswith(root):
        raw = raw[len(root) :]
    parts = raw.split(b"/", 3)  # b"", b"e", hook id, the rest
    if len(parts) < 3:
        raise PluginNotFound("no endpoint in this path")
    hook_id = unquote_to_bytes(parts[2]).decode("utf-8", "replace")
    return hook_id, b"/" + (parts[3] if len(parts) == 4 else b"")


# Errors that tell the caller about its own request, not about the host: these
# keep their message (the limit it passed and the setting behind it).
_CALLERS_OWN = (InvalidArgument, ValueTooLarge)


def _public_error(exc: Exception) -> Response:
    request_id = secrets.token_hex(8)
    if isinstance(exc, PluginKVError):
        status = exc.http_status
    elif isinstance(exc, HTTPException):
        status = exc.status_code
    else:
        status = 500
    if isinstance(exc, (PluginKVError, HTTPException)):
        logger.warning("endpoint request %s answered %d: %s", request_id, status, exc)
    else:  # a bug of the host: its traceback is what the operator needs
        logger.error("endpoint request %s failed: %r", request_id, exc, exc_info=exc)
    text = f"{status} {HTTPStatus(status).phrase}"
    if isinstance(exc, _CALLERS_OWN) or (isinstance(exc, HTTPException) and status == 408):
        text += f": {exc.detail if isinstance(exc, HTTPException) else exc}"
    return PlainTextResponse(
        f"{text} (request id {request_id})\n",
        status_code=status,
        headers={REQUEST_ID_HEADER: request_id},
    )


def _response_head(chunk: object) -> tuple[int, dict[str, str], bytes]:
    if not isinstance(chunk, dict):
        raise PluginFailed("the plugin's endpoint response is not an object")
    status = chunk.get("status", 200)
    headers = chunk.get("headers") or {}
    if type(status) is not int or not 100 <= status <= 599 or not isinstance(headers, dict):
        raise PluginFailed(f"the plugin's endpoint response head is malformed: {chunk!r}")
    kept = {
        str(name): str(value)
        for name, value in headers.items()
        if str(name).lower() not in _NOT_PASSED
    }
    return status, kept, _result(chunk)


def _result(chunk: object) -> bytes:
    text = chunk.get("result") if isinstance(chunk, dict) else None
    if not text:
        return b""
    try:
        return bytes.fromhex(str(text))
    except ValueError:
        raise PluginFailed("the plugin's endpoint response body is not hex") from None


class _Anything(Convertor[str]):
    """Starlette's ``path`` convertor, line breaks included: a plugin routes any path."""

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("anything", _Anything())


def _name(text: str, what: str) -> str:
    if not text:
        raise InvalidArgument(f"{what} must not be empty")
    return text


host_routes: list[Any] = [
    ApiRoute("/v1/admin/plugins", GET=(list_plugins, LIST_PLUGINS)),
    ApiRoute("/v1/admin/plugins/install", POST=(install_plugin, INSTALL_PLUGIN)),
    ApiRoute("/v1/admin/plugins/uninstall", POST=(uninstall_plugin, UNINSTALL_PLUGIN)),
    ApiRoute("/v1/admin/plugins/{author}/{name}", GET=(show_plugin, SHOW_PLUGIN)),
    ApiRoute("/v1/admin/plugins/{author}/{name}/logs", GET=(plugin_logs, PLUGIN_LOGS)),
    ApiRoute("/v1/admin/tools/invoke", POST=(invoke_tool, INVOKE_TOOL)),
    ApiRoute(
        "/v1/admin/tools/validate-credentials", POST=(validate_credentials, VALIDATE_CREDENTIALS)
    ),
    ApiRoute(
        "/v1/admin/endpoints",
        GET=(list_endpoints, LIST_ENDPOINTS),
        POST=(create_endpoint, CREATE_ENDPOINT),
    ),
    ApiRoute("/v1/admin/endpoints/{hook_id}", DELETE=(delete_endpoint, DELETE_ENDPOINT)),
    ApiRoute(
        "/e/{hook_id}/{path:anything}",
        parameters=_ENDPOINT_PATH,
        **{m: (endpoint, _endpoint_operation(m)) for m in ENDPOINT_METHODS},
    ),
]
