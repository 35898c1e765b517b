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
from starlette.routing import Route
from starlette.types import Scope

from ..config import Settings
from ..errors import InvalidArgument, PluginFailed, PluginKVError, PluginNotFound, ValueTooLarge
from ..host.endpoints import raw_request
from ..host.plugin_host import PluginHost, PluginInfo
from ..keys import check_workspace
from .errors import exception_body
from .parsing import ClientGone, query_number, read_body
from .routes import admin_json, by_method, field

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


_WORKSPACE_PARAM = frozenset({"workspace"})


async def list_plugins(request: Request) -> Response:
    await admin_json(request, body=False)
    host: PluginHost = request.app.state.host
    return JSONResponse({"plugins": [_info(info) for info in host.plugins()]})


async def show_plugin(request: Request) -> Response:
    await admin_json(request, body=False, params=_WORKSPACE_PARAM)
    host: PluginHost = request.app.state.host
    plugin = f"{request.path_params['author']}/{request.path_params['name']}"
    return JSONResponse(host.offer(plugin, request.query_params.get("workspace")))


async def install_plugin(request: Request) -> Response:
    body = await admin_json(request, fields=frozenset({"directory", "workspace"}))
    host: PluginHost = request.app.state.host
    info = await host.install(field(body, "directory", str), field(body, "workspace", str))
    return JSONResponse(_info(info))


async def uninstall_plugin(request: Request) -> Response:
    body = await admin_json(request, fields=frozenset({"plugin", "workspace"}))
    host: PluginHost = request.app.state.host
    plugin = field(body, "plugin", str)
    left = await host.uninstall(plugin, field(body, "workspace", str))
    return JSONResponse({"plugin": plugin, "workspaces": left})


async def plugin_logs(request: Request) -> Response:
    await admin_json(request, body=False, params=frozenset({"lines", "cursor"}))
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


_INVOKE_FIELDS = frozenset(
    {"workspace", "plugin", "provider", "tool", "parameters", "user", "credentials"}
    | {"credential_type", "conversation_id", "message_id", "app_id"}
)


async def invoke_tool(request: Request) -> Response:
    body = await admin_json(request, fields=_INVOKE_FIELDS)
    parameters = field(body, "parameters", dict, required=False) or {}
    user = field(body, "user", str, required=False) or ""
    credentials = field(body, "credentials", dict, required=False) or {}
    credential_type = field(body, "credential_type", str, required=False)
    host: PluginHost = request.app.state.host
    messages = host.invoke_tool(
        workspace=field(body, "workspace", str),
        plugin=field(body, "plugin", str),
        provider=_name(field(body, "provider", str), "provider"),
        tool=_name(field(body, "tool", str), "tool"),
        parameters=parameters,
        user=user,
        credentials=credentials,
        credential_type="api-key" if credential_type is None else credential_type,
        conversation_id=field(body, "conversation_id", str, required=False),
        message_id=field(body, "message_id", str, required=False),
        app_id=field(body, "app_id", str, required=False),
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


async def validate_credentials(request: Request) -> Response:
    body = await admin_json(
        request, fields=frozenset({"workspace", "plugin", "provider", "credentials", "user"})
    )
    host: PluginHost = request.app.state.host
    plugin = field(body, "plugin", str)
    provider = _name(field(body, "provider", str), "provider")
    await host.validate_credentials(
        workspace=field(body, "workspace", str),
        plugin=plugin,
        provider=provider,
        credentials=field(body, "credentials", dict, required=False) or {},
        user=field(body, "user", str, required=False) or "",
    )
    return JSONResponse({"plugin": plugin, "provider": provider, "valid": True})


def _ndjson(message: object) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


async def create_endpoint(request: Request) -> Response:
    body = await admin_json(request, fields=frozenset({"workspace", "plugin", "settings"}))
    host: PluginHost = request.app.state.host
    endpoint = host.create_endpoint(
        workspace=field(body, "workspace", str),
        plugin=field(body, "plugin", str),
        settings=field(body, "settings", dict, required=False) or {},
    )
    url = f"{str(request.base_url).rstrip('/')}/e/{endpoint.hook_id}"
    return JSONResponse({"hook_id": endpoint.hook_id, "url": url})


async def list_endpoints(request: Request) -> Response:
    await admin_json(request, body=False, params=_WORKSPACE_PARAM)
    host: PluginHost = request.app.state.host
    base = str(request.base_url).rstrip("/")
    workspace = request.query_params.get("workspace")
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


async def delete_endpoint(request: Request) -> Response:
    await admin_json(request, body=False)
    host: PluginHost = request.app.state.host
    host.endpoints.delete(request.path_params["hook_id"])
    return Response(status_code=204)


# Hop-by-hop and framing headers of the plugin's response: the server frames it anew.
_NOT_PASSED = {"transfer-encoding", "connection", "keep-alive"}


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
    Route("/v1/admin/plugins", list_plugins, methods=["GET"]),
    Route("/v1/admin/plugins/install", install_plugin, methods=["POST"]),
    Route("/v1/admin/plugins/uninstall", uninstall_plugin, methods=["POST"]),
    Route("/v1/admin/plugins/{author}/{name}", show_plugin, methods=["GET"]),
    Route("/v1/admin/plugins/{author}/{name}/logs", plugin_logs, methods=["GET"]),
    Route("/v1/admin/tools/invoke", invoke_tool, methods=["POST"]),
    Route("/v1/admin/tools/validate-credentials", validate_credentials, methods=["POST"]),
    Route(
        "/v1/admin/endpoints",
        by_method(GET=list_endpoints, POST=create_endpoint),
        methods=["GET", "POST"],
    ),
    Route("/v1/admin/endpoints/{hook_id}", delete_endpoint, methods=["DELETE"]),
    Route("/e/{hook_id}/{path:anything}", endpoint, methods=ENDPOINT_METHODS),
]
