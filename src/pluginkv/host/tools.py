"""Tool calls as Dify's API makes them: the declared tool, its parameters, its credentials.

The SDK hands ``tool_parameters`` and ``credentials`` to plugin code as they
arrive (``docs/dify-protocol.md`` §6.1): filling in the declared defaults,
refusing a call that lacks a required parameter and checking the
credentials is the caller's work, which Dify's API does before a request
reaches the daemon, and which the host does here before anything goes to
the plugin.  The declarations are those the host has for the plugin: sent by
a remote plugin at registration, or read from an installed plugin's YAML
files.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidArgument, PluginNotFound
from .parameter_types import cast_parameter, declared_default

__all__ = [
    "CREDENTIAL_TYPES",
    "check_credentials",
    "find_provider",
    "find_tool",
    "with_declared_credentials",
    "with_defaults",
]

# The SDK's CredentialType values; it takes "api-key" when none is sent.
CREDENTIAL_TYPES = ("api-key", "oauth2", "unauthorized")


def find_tool(
    declarations: dict[str, list[Any]], plugin: str, provider: str, tool: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The declarations of ``provider`` and of its ``tool``; ``PluginNotFound`` names what there is.

    Refused here because the SDK would answer an undeclared one with an empty session.
    """
    entry = find_provider(declarations, plugin, provider)
    tools = [t for t in entry.get("tools", []) if isinstance(t, dict)]
    for declared in tools:
        if declared.get("identity", {}).get("name") == tool:
            return entry, declared
    names = [t.get("identity", {}).get("name") for t in tools]
    raise PluginNotFound(
        f"{plugin} has no tool {tool!r} in provider {provider!r} "
        f"(it has {', '.join(map(repr, names)) or 'none'})"
    )


def find_provider(declarations: dict[str, list[Any]], plugin: str, provider: str) -> dict[str, Any]:
    """The declaration of the tool provider ``provider``; ``PluginNotFound`` names what there is."""
    providers = [e for e in declarations.get("tool", []) if isinstance(e, dict)]
    for entry in providers:
        if entry.get("identity", {}).get("name") == provider:
            return entry
    known = [e.get("identity", {}).get("name") for e in providers]
    raise PluginNotFound(
        f"{plugin} has no tool provider {provider!r} "
        f"(it has {', '.join(map(repr, known)) or 'none'})"
    )


def with_defaults(
    declaration: dict[str, Any], parameters: dict[str, Any], what: str
) -> dict[str, Any]:
    """``parameters`` with the declared defaults of those missing (absent or null) filled in,
    and every declared one cast to its type (``parameter_types.py``).

    ``InvalidArgument`` names every required parameter that is missing and has
    no default, or the first value that cannot be cast.  Parameters the tool
    does not declare pass as given.
    """
    declared = declaration.get("parameters")
    items = [p for p in declared if isinstance(p, dict)] if isinstance(declared, list) else []
    numbers = {p.get("name") for p in items if p.get("type") == "number"}
    # An empty number field is no number: Dify sends null for it, or the default.
    given = {k: None if k in numbers and v == "" else v for k, v in parameters.items()}
    filled = _filled(items, given, what, "parameter", "required, and declared without a default")
    for item in items:
        name = item.get("name")
        if isinstance(name, str) and name in filled:
            filled[name] = cast_parameter(item, filled[name], what)
    return filled


def _filled(
    declared: list[dict[str, Any]], given: dict[str, Any], what: str, kind: str, why: str
) -> dict[str, Any]:
    """``given`` with the defaults of the ``declared`` items it lacks (absent or null).

    ``InvalidArgument`` names every required item that is missing and has no
    default; items not declared pass as given.  Defaults are cast to their
    declared type.
    """
    filled = dict(given)
    missing: list[str] = []
    for item in declared:
        name = item.get("name")
        if not isinstance(name, str) or filled.get(name) is not None:
            continue
        default = item.get("default")
        if default is not None:
            filled[name] = declared_default(item)
        elif item.get("required") is True:
            missing.append(name)
    if missing:
        names = ", ".join(map(repr, missing))
        raise InvalidArgument(
            f"{what} needs the {kind}{'s' if len(missing) > 1 else ''} {names}: {why}"
        )
    return filled


def with_declared_credentials(
    provider: dict[str, Any], credentials: dict[str, Any], what: str
) -> dict[str, Any]:
    """``credentials`` with the provider's declared defaults filled in.

    ``InvalidArgument`` names every credential the provider declares required
    that is missing and has no default: the plugin would fail on it, or worse,
    call its service without it.  Credentials it does not declare pass as given.
    """
    return _filled(
        _credential_schema(provider),
        credentials,
        what,
        "credential",
        "required by the provider, declared without a default (give it with --credentials "
        "or the credentials field)",
    )


def _credential_schema(provider: dict[str, Any]) -> list[dict[str, Any]]:
    """The provider's credential declarations, each with its ``name``.

    A remote plugin registers them as the SDK's model dumps them (a list under
    ``credentials_schema``); an installed plugin's YAML has a mapping of name
    to declaration under ``credentials_for_provider``.
    """
    listed = provider.get("credentials_schema")
    if isinstance(listed, list):
        return [item for item in listed if isinstance(item, dict)]
    by_name = provider.get("credentials_for_provider")
    if isinstance(by_name, dict):
        return [{**item, "name": name} for name, item in by_name.items() if isinstance(item, dict)]
    if isinstance(by_name, list):
        return [item for item in by_name if isinstance(item, dict)]
    return []


def check_credentials(credentials: object, credential_type: object) -> None:
    """Refuse credentials the plugin could not take as a provider's credential form gives them.

    A form (secret-input, text-input, select, boolean) gives each credential a
    string, a number or a boolean, by name.
    """
    if not isinstance(credentials, dict):
        raise InvalidArgument(f"credentials must be a JSON object, not {_json_type(credentials)}")
    for name, value in credentials.items():
        if not isinstance(name, str) or not name:
            raise InvalidArgument("credential names must be non-empty strings")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise InvalidArgument(
                f"credential {name!r} must be a string, a number, a boolean or null, "
                f"not {_json_type(value)}"
            )
    if credential_type not in CREDENTIAL_TYPES:
        raise InvalidArgument(
            f"credential type {credential_type!r} must be one of {', '.join(CREDENTIAL_TYPES)}"
        )


def _json_type(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__
