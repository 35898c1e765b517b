"""The ``pluginkv`` commands of the Dify plugin host: debug keys, plugins, tool calls.

Registered on ``main`` in ``pluginkv.cli``.  The commands that talk
to a running service take ``--url`` and ``--data-dir`` and sign a short-lived
admin token with that data directory's secret themselves, as ``token create``
does; a command that prints one thing to use next prints it alone on the last
line.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from ..errors import InvalidArgument, PluginKVError
from ..host.tools import CREDENTIAL_TYPES, check_credentials
from ..keys import check_scope
from .common import (
    CommandFailed,
    PluginKVFailure,
    Unreachable,
    data_dir_option,
    engine_errors,
    service_settings,
    service_url,
    signing_tokens,
    url_option,
)

__all__ = ["debug_key", "endpoint", "plugin", "plugins", "tool"]

_ADMIN_TOKEN_TTL = 900  # seconds: one command's worth, an install included
_INSTALL_TIMEOUT = 900  # building an environment downloads and installs packages
_FOLLOW_POLL = 0.5  # seconds between two reads of a followed log
_FOLLOW_RETRY = 2.0  # seconds before trying an unreachable service again


def _call(
    url: str | None,
    data_dir: Path,
    method: str,
    path: str,
    body: Any = None,
    *,
    timeout: float | None = None,
) -> bytes:
    """One admin call to the service of ``data_dir``; errors become one-line exits."""
    with _answer(url, data_dir, method, path, body, timeout=timeout) as response:
        try:
            data: bytes = response.read()
        except (http.client.HTTPException, OSError) as exc:
            raise CommandFailed(f"the answer broke off: {exc}") from None
        return data


@contextlib.contextmanager
def _answer(
    url: str | None,
    data_dir: Path,
    method: str,
    path: str,
    body: Any = None,
    *,
    timeout: float | None = None,
) -> Iterator[http.client.HTTPResponse]:
    """``_call``'s answer, open for reading as it arrives (a streamed one line by line)."""
    from ..client.admin import AdminClient

    settings = service_settings(data_dir, create=False)
    wait = timeout if timeout is not None else settings.session_timeout_seconds + 30
    with engine_errors():
        base = service_url(url)
        token = signing_tokens(data_dir, _ADMIN_TOKEN_TTL).issue(admin=True)
        admin = AdminClient(base, token, timeout=wait)
        with admin.open(method, path, body) as response:
            try:
                yield response
            except (http.client.HTTPException, TimeoutError, ConnectionResetError) as exc:
                raise CommandFailed(f"the answer of {admin.url} broke off: {exc}") from None


def _error(status: int, body: bytes) -> PluginKVError:
    from ..client.errors import error_from_response

    return error_from_response(status, body)


@click.group("debug-key")
def debug_key() -> None:
    """Keys with which remote-debug Dify plugins connect to the service."""


@debug_key.command("create")
@data_dir_option
@click.option("--workspace", required=True, help="The workspace the plugin's calls serve.")
@click.option("--ttl", type=float, metavar="SECONDS", help="Lifetime [default: 30 days].")
def debug_key_create(data_dir: Path, workspace: str, ttl: float | None) -> None:
    """Print a key for REMOTE_INSTALL_KEY; a plugin connecting with it serves WORKSPACE."""
    settings = service_settings(data_dir, create=False)
    with engine_errors():
        tokens = signing_tokens(data_dir, settings.token_ttl_seconds)
        key = tokens.issue_debug_key(workspace=workspace, ttl=ttl)
    host, port = settings.debug_host, settings.debug_port
    click.echo(
        "# for the plugin's .env or environment: dify_plugin 0.2.3 and later read\n"
        "# REMOTE_INSTALL_URL, older releases REMOTE_INSTALL_HOST and REMOTE_INSTALL_PORT\n"
        "# INSTALL_METHOD=remote\n"
        f"# REMOTE_INSTALL_URL={host}:{port}\n"
        f"# REMOTE_INSTALL_HOST={host}\n"
        f"# REMOTE_INSTALL_PORT={port}\n"
        "# REMOTE_INSTALL_KEY=<the key below>",
        err=True,
    )
    click.echo(key)


# -- plugins ------------------------------------------------------------------------------------
@click.command("plugins")
@url_option
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per plugin.")
def plugins(url: str | None, data_dir: Path, as_json: bool) -> None:
    """List the Dify plugins: connected ones, and installed ones whatever their state.

    Tab-separated: id, version, transport, workspaces, since, last heartbeat,
    state (running, starting, restarting or failed) and, for a plugin that is
    not running, the last error.
    """
    listed = json.loads(_call(url, data_dir, "GET", "/v1/admin/plugins"))["plugins"]
    for info in listed:
        if as_json:
            click.echo(json.dumps(info))
            continue
        heartbeat = info["last_heartbeat"]
        fields = [
            info["plugin"],
            info["version"] or "-",
            info["transport"],
            ",".join(info["workspaces"]),
            _moment(info["since"]),
            "-" if heartbeat is None else _moment(heartbeat),
            info["state"],
        ]
        if info["error"]:
            fields.append(" ".join(info["error"].split()))  # one line, whatever stderr held
        click.echo("\t".join(fields))


def _object(text: str, option: str) -> dict[str, Any]:
    """The JSON object an option holds; a one-line exit otherwise, before anything is sent."""
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise PluginKVFailure(InvalidArgument(f"{option} is not JSON: {exc}")) from None
    if not isinstance(parsed, dict):
        raise PluginKVFailure(InvalidArgument(f"{option} must be a JSON object"))
    return parsed


def _moment(timestamp: float) -> str:
    return (
        datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


# -- installed plugins ----------------------------------------------------------------------
@click.group()
def plugin() -> None:
    """Install Dify plugin folders for workspaces; the service runs them over stdio."""


@plugin.command("install")
@click.argument("directory", type=click.Path(exists=True, resolve_path=True, path_type=Path))
@url_option
@data_dir_option
@click.option("--workspace", required=True, help="The workspace to install it for.")
def plugin_install(directory: Path, url: str | None, data_dir: Path, workspace: str) -> None:
    """Install the plugin in DIRECTORY (a folder or a .difypkg) for a workspace; wait until it runs.

    The first install builds the plugin's virtual environment with uv (from its
    uv.lock, pyproject.toml or requirements.txt, on the Python its manifest asks
    for), which takes a while; installing it for more workspaces reuses the
    running process. A .difypkg is unpacked under the service's data directory.
    """
    body = {"directory": str(directory), "workspace": workspace}
    info = json.loads(
        _call(url, data_dir, "POST", "/v1/admin/plugins/install", body, timeout=_INSTALL_TIMEOUT)
    )
    click.echo(
        f"{info['plugin']} {info['version']} runs ({info['transport']}, {info['peer']}) "
        f"for {', '.join(info['workspaces'])}"
    )


@plugin.command("uninstall")
@url_option
@data_dir_option
@click.option("--workspace", required=True, help="The workspace to uninstall it from.")
@click.option("--plugin", "plugin_id", required=True, metavar="AUTHOR/NAME", help="The plugin.")
def plugin_uninstall(url: str | None, data_dir: Path, workspace: str, plugin_id: str) -> None:
    """Stop serving a plugin in a workspace; its data there stays until purged."""
    body = {"plugin": plugin_id, "workspace": workspace}
    left = json.loads(_call(url, data_dir, "POST", "/v1/admin/plugins/uninstall", body))
    if left["workspaces"]:
        click.echo(f"{plugin_id} still serves {', '.join(left['workspaces'])}")
    else:
        click.echo(f"{plugin_id} serves no workspace any more and was stopped")


@plugin.command("show")
@click.argument("plugin_id", metavar="AUTHOR/NAME")
@url_option
@data_dir_option
@click.option("--workspace", help="As the plugin serving this workspace declares it.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON object the service gives.")
def plugin_show(
    plugin_id: str, url: str | None, data_dir: Path, workspace: str | None, as_json: bool
) -> None:
    """What a plugin offers: permissions, tool providers and their tools with their
    parameters, endpoints with their settings, and where it runs."""
    if plugin_id.count("/") != 1:
        raise PluginKVFailure(InvalidArgument(f"{plugin_id!r} is no AUTHOR/NAME"))
    path = "/v1/admin/plugins/" + urllib.parse.quote(plugin_id, safe="/")
    if workspace is not None:
        path += "?" + urllib.parse.urlencode({"workspace": workspace})
    offer = json.loads(_call(url, data_dir, "GET", path))
    if as_json:
        click.echo(json.dumps(offer, indent=2))
        return
    click.echo(f"{offer['plugin']} {offer['version']}")
    for running in offer["running"]:
        where = ", ".join(running["workspaces"]) or "no workspace"
        click.echo(f"  {running['transport']}, {running['state']}, for {where}")
    click.echo(f"permissions: {_permissions(offer['permissions']) or 'none'}")
    for provider in offer["providers"]:
        click.echo(f"tool provider {provider['name']}{_about(provider['description'])}")
        if provider["credentials"]:
            click.echo(f"  credentials: {', '.join(map(_field, provider['credentials']))}")
        for declared in provider["tools"]:
            click.echo(f"  tool {declared['name']}{_about(declared['description'])}")
            for parameter in declared["parameters"]:
                click.echo(f"    {_field(parameter)}")
    for group in offer["endpoints"]:
        click.echo("endpoints")
        if group["settings"]:
            click.echo(f"  settings: {', '.join(map(_field, group['settings']))}")
        for one in group["endpoints"]:
            click.echo(f"  {one['method']} {one['path']}{' (hidden)' if one['hidden'] else ''}")


def _permissions(declared: dict[str, Any]) -> str:
    """The manifest permissions that are on, e.g. ``storage (65536 bytes), endpoint``."""
    granted = []
    for name, permission in declared.items():
        if not isinstance(permission, dict) or permission.get("enabled") is not True:
            continue
        size = permission.get("size")
        granted.append(f"{name} ({size} bytes)" if isinstance(size, int) else name)
    return ", ".join(granted)


def _field(item: dict[str, Any]) -> str:
    """A parameter, credential or setting on one line: name (type, required, default, options)."""
    notes = [str(item["type"])]
    if item.get("options"):
        notes.append("one of " + "|".join(map(str, item["options"])))
    if item["required"]:
        notes.append("required")
    if item["default"] is not None:
        notes.append(f"default {json.dumps(item['default'])}")
    return f"{item['name']} ({', '.join(notes)})"


def _about(description: str | None) -> str:
    return f": {' '.join(description.split())}" if description else ""


@plugin.command("logs")
@click.argument("plugin_id", metavar="AUTHOR/NAME")
@url_option
@data_dir_option
@click.option(
    "--lines",
    "-n",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="How many of the last lines to print first.",
)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until Ctrl-C.")
def plugin_logs(plugin_id: str, url: str | None, data_dir: Path, lines: int, follow: bool) -> None:
    """Print the log of an installed plugin: what it printed and logged, its starts and exits.

    The service keeps it in <data-dir>/plugin-logs/AUTHOR/NAME.log.  With
    --follow, new lines are printed as the plugin writes them, across
    restarts of the plugin and of the service.
    """
    try:
        check_scope("logs", plugin_id)
    except PluginKVError as exc:
        raise PluginKVFailure(exc) from None
    path = f"/v1/admin/plugins/{plugin_id}/logs"
    page = json.loads(_call(url, data_dir, "GET", f"{path}?lines={lines}"))
    click.echo(page["text"], nl=False)
    unreachable = False
    try:
        while follow:
            query = urllib.parse.urlencode({"cursor": page["cursor"]})
            try:
                page = json.loads(_call(url, data_dir, "GET", f"{path}?{query}"))
            except Unreachable as exc:  # the service restarts, say
                if not unreachable:
                    click.echo(f"{exc.format_message()}; trying again", err=True)
                unreachable = True
                time.sleep(_FOLLOW_RETRY)
                continue
            unreachable = False
            click.echo(page["text"], nl=False)
            if not page["more"]:
                time.sleep(_FOLLOW_POLL)
    except KeyboardInterrupt:
        pass


# -- endpoints ----------------------------------------------------------------------------------
@click.group()
def endpoint() -> None:
    """Public URLs whose requests a running Dify plugin answers."""


@endpoint.command("create")
@url_option
@data_dir_option
@click.option("--workspace", required=True, help="The workspace the endpoint serves.")
@click.option("--plugin", "plugin_id", required=True, metavar="AUTHOR/NAME", help="The plugin.")
@click.option(
    "--settings", default="{}", metavar="JSON", help="The endpoint's settings, an object."
)
def endpoint_create(
    url: str | None, data_dir: Path, workspace: str, plugin_id: str, settings: str
) -> None:
    """Create an endpoint; print its base URL, http://HOST:PORT/e/<hook_id>, alone on a line.

    Any request under the URL goes to the plugin, which routes it by the path
    after the hook id against its endpoint declarations.
    """
    parsed = _object(settings, "--settings")
    body = {"workspace": workspace, "plugin": plugin_id, "settings": parsed}
    created = json.loads(_call(url, data_dir, "POST", "/v1/admin/endpoints", body))
    click.echo(created["url"])


@endpoint.command("list")
@url_option
@data_dir_option
@click.option("--workspace", help="Only this workspace's endpoints.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per endpoint, no header.")
def endpoint_list(url: str | None, data_dir: Path, workspace: str | None, as_json: bool) -> None:
    """List endpoints, oldest first: a header line, then URL, workspace, plugin and
    created, tab-separated."""
    path = "/v1/admin/endpoints"
    if workspace is not None:
        path += "?" + urllib.parse.urlencode({"workspace": workspace})
    endpoints = json.loads(_call(url, data_dir, "GET", path))["endpoints"]
    if as_json:
        for e in endpoints:
            click.echo(json.dumps(e))
        return
    click.echo(ENDPOINTS_HEADER)
    for e in endpoints:
        click.echo("\t".join([e["url"], e["workspace"], e["plugin"], _moment(e["created_at"])]))


ENDPOINTS_HEADER = "URL\tWORKSPACE\tPLUGIN\tCREATED"


@endpoint.command("delete")
@click.argument("hook_id")
@url_option
@data_dir_option
def endpoint_delete(hook_id: str, url: str | None, data_dir: Path) -> None:
    """Delete the endpoint HOOK_ID (the last part of its URL); its URL answers 404 after."""
    _call(url, data_dir, "DELETE", f"/v1/admin/endpoints/{urllib.parse.quote(hook_id, safe='')}")


# -- tools --------------------------------------------------------------------------------------
@click.group()
def tool() -> None:
    """Call the tools of running Dify plugins."""


@tool.command("invoke")
@url_option
@data_dir_option
@click.option("--workspace", required=True, help="The workspace the call is made for.")
@click.option("--plugin", required=True, metavar="AUTHOR/NAME", help="The plugin.")
@click.option("--provider", required=True, help="The tool provider's name (identity.name).")
@click.option("--tool", "tool_name", required=True, help="The tool's name (identity.name).")
@click.option("--params", default="{}", metavar="JSON", help="The tool's parameters, an object.")
@click.option("--user", default="", help="The user id the plugin sees (self.runtime.user_id).")
@click.option("--conversation-id", help="self.session.conversation_id in the plugin.")
@click.option("--app-id", help="self.session.app_id in the plugin.")
@click.option("--message-id", help="self.session.message_id in the plugin.")
@click.option(
    "--credentials",
    default="{}",
    metavar="JSON",
    help="The tool provider's credentials, an object of strings, numbers or booleans.",
)
@click.option(
    "--credential-type",
    type=click.Choice(CREDENTIAL_TYPES),
    default="api-key",
    show_default=True,
    help="How the credentials were obtained, as the plugin sees it.",
)
def tool_invoke(
    url: str | None,
    data_dir: Path,
    workspace: str,
    plugin: str,
    provider: str,
    tool_name: str,
    params: str,
    user: str,
    conversation_id: str | None,
    app_id: str | None,
    message_id: str | None,
    credentials: str,
    credential_type: str,
) -> None:
    """Invoke a tool through the running service; print each message as a JSON line.

    Each line comes out as the tool sends it.  A tool that fails after its
    first message exits 3 with one error line, after the lines it sent.
    """
    parameters = _object(params, "--params")
    given = _object(credentials, "--credentials")
    try:
        check_credentials(given, credential_type)
    except PluginKVError as exc:
        raise PluginKVFailure(exc) from None
    body = {
        "workspace": workspace,
        "plugin": plugin,
        "provider": provider,
        "tool": tool_name,
        "parameters": parameters,
        "user": user,
        "credentials": given,
        "credential_type": credential_type,
        "conversation_id": conversation_id,
        "app_id": app_id,
        "message_id": message_id,
    }
    with _answer(url, data_dir, "POST", "/v1/admin/tools/invoke", body) as response:
        for line in response:
            message = json.loads(line)
            if "error" in message and "type" not in message:  # the tool failed after its start
                raise PluginKVFailure(_error(502, line))
            click.echo(line.rstrip(b"\n"))


@tool.command("validate-credentials")
@url_option
@data_dir_option
@click.option("--workspace", required=True, help="The workspace the call is made for.")
@click.option("--plugin", required=True, metavar="AUTHOR/NAME", help="The plugin.")
@click.option("--provider", required=True, help="The tool provider's name (identity.name).")
@click.option(
    "--credentials",
    default="{}",
    metavar="JSON",
    help="The credentials to check, an object of strings, numbers or booleans.",
)
@click.option("--user", default="", help="The user id the plugin sees.")
def tool_validate_credentials(
    url: str | None,
    data_dir: Path,
    workspace: str,
    plugin: str,
    provider: str,
    credentials: str,
    user: str,
) -> None:
    """Have a tool provider check credentials, as Dify does before keeping them.

    Runs the provider's _validate_credentials in the plugin.  Prints "valid";
    credentials the provider refuses exit 3 with its reason.
    """
    given = _object(credentials, "--credentials")
    try:
        check_credentials(given, "api-key")
    except PluginKVError as exc:
        raise PluginKVFailure(exc) from None
    body = {
        "workspace": workspace,
        "plugin": plugin,
        "provider": provider,
        "credentials": given,
        "user": user,
    }
    _call(url, data_dir, "POST", "/v1/admin/tools/validate-credentials", body)
    click.echo("valid")
