"""Admin routes of the Dify plugin host: the plugins it runs, and tool calls to them."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..dify.host import PluginHost, PluginInfo
from ..errors import InvalidArgument
from .routes import admin_json, field

__all__ = ["NDJSON", "host_routes"]

NDJSON = "application/x-ndjson"


def _info(info: PluginInfo) -> dict[str, Any]:
    return {
        "plugin": info.plugin,
        "version": info.version,
        "transport": info.transport,
        "workspaces": info.workspaces,
        "peer": info.peer,
        "since": info.since,
        "last_heartbeat": info.last_heartbeat,
    }


async def list_plugins(request: Request) -> Response:
    await admin_json(request, body=False)
    host: PluginHost = request.app.state.host
    return JSONResponse({"plugins": [_info(info) for info in host.plugins()]})


async def install_plugin(request: Request) -> Response:
    body = await admin_json(request)
    host: PluginHost = request.app.state.host
    info = await host.install(field(body, "directory", str), field(body, "workspace", str))
    return JSONResponse(_info(info))


async def uninstall_plugin(request: Request) -> Response:
    body = await admin_json(request)
    host: PluginHost = request.app.state.host
    plugin = field(body, "plugin", str)
    left = await host.uninstall(plugin, field(body, "workspace", str))
    return JSONResponse({"plugin": plugin, "workspaces": left})


async def invoke_tool(request: Request) -> Response:
    body = await admin_json(request)
    parameters = field(body, "parameters", dict, required=False) or {}
    user = field(body, "user", str, required=False) or ""
    host: PluginHost = request.app.state.host
    messages = await host.invoke_tool(
        workspace=field(body, "workspace", str),
        plugin=field(body, "plugin", str),
        provider=_name(field(body, "provider", str), "provider"),
        tool=_name(field(body, "tool", str), "tool"),
        parameters=parameters,
        user=user,
    )
    lines = b"".join(
        json.dumps(message, separators=(",", ":")).encode() + b"\n" for message in messages
    )
    return Response(lines, media_type=NDJSON)


def _name(text: str, what: str) -> str:
    if not text:
        raise InvalidArgument(f"{what} must not be empty")
    return text


host_routes: list[Any] = [
    Route("/v1/admin/plugins", list_plugins, methods=["GET"]),
    Route("/v1/admin/plugins/install", install_plugin, methods=["POST"]),
    Route("/v1/admin/plugins/uninstall", uninstall_plugin, methods=["POST"]),
    Route("/v1/admin/tools/invoke", invoke_tool, methods=["POST"]),
]
