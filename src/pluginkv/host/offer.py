"""What a plugin offers, as `pluginkv plugin show` lists it: tools, endpoints, permissions.

Built from the declarations the host has for the plugin, which come in two
shapes: a remote plugin's registration (the SDK's models, dumped: a
provider's ``credentials_schema`` is a list) and an installed plugin's YAML
files (``credentials_for_provider`` is a mapping by name).  Both give the
same description.
"""

from __future__ import annotations

from typing import Any

from .manifest import Manifest
from .parameter_types import declared_default

__all__ = ["describe"]


def describe(manifest: Manifest, declarations: dict[str, list[Any]]) -> dict[str, Any]:
    """The plugin's offer: ``permissions``, ``providers`` (with ``tools``) and ``endpoints``."""
    resource = _object(manifest.raw.get("resource"))
    # A remote plugin's manifest went through the SDK's model: permissions not asked for are null.
    permissions = {k: v for k, v in _object(resource.get("permission")).items() if v is not None}
    return {
        "plugin": manifest.plugin_id,
        "version": manifest.version,
        "permissions": permissions,
        "providers": [_provider(p) for p in declarations.get("tool", []) if isinstance(p, dict)],
        "endpoints": [_group(g) for g in declarations.get("endpoint", []) if isinstance(g, dict)],
    }


def _provider(provider: dict[str, Any]) -> dict[str, Any]:
    identity = _object(provider.get("identity"))
    return {
        "name": identity.get("name"),
        "description": _text(identity.get("description")),
        "credentials": [_field(item) for item in _credentials(provider)],
        "tools": [_tool(t) for t in provider.get("tools") or [] if isinstance(t, dict)],
    }


def _credentials(provider: dict[str, Any]) -> list[dict[str, Any]]:
    listed = provider.get("credentials_schema")
    if isinstance(listed, list):
        return [item for item in listed if isinstance(item, dict)]
    by_name = provider.get("credentials_for_provider")
    if isinstance(by_name, dict):
        return [{**item, "name": name} for name, item in by_name.items() if isinstance(item, dict)]
    return [item for item in by_name or [] if isinstance(item, dict)]


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    description = _object(tool.get("description"))
    return {
        "name": _object(tool.get("identity")).get("name"),
        "description": _text(description.get("human")),
        "parameters": [_field(p) for p in tool.get("parameters") or [] if isinstance(p, dict)],
    }


def _group(group: dict[str, Any]) -> dict[str, Any]:
    return {
        "settings": [_field(s) for s in group.get("settings") or [] if isinstance(s, dict)],
        "endpoints": [
            {"method": e.get("method"), "path": e.get("path"), "hidden": e.get("hidden") is True}
            for e in group.get("endpoints") or []
            if isinstance(e, dict)
        ],
    }


def _field(item: dict[str, Any]) -> dict[str, Any]:
    """A parameter, credential or setting: what a caller needs to give it."""
    described: dict[str, Any] = {
        "name": item.get("name"),
        "type": item.get("type"),
        "required": item.get("required") is True,
        "default": declared_default(item),
    }
    if item.get("form") is not None:  # tool parameters: llm, form or schema
        described["form"] = item.get("form")
    options = item.get("options")
    if isinstance(options, list) and options:
        described["options"] = [o.get("value") for o in options if isinstance(o, dict)]
    return described


def _text(value: object) -> str | None:
    """An i18n text in English, or its first language; a plain string as it is."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and value:
        text = value.get("en_US", next(iter(value.values())))
        return text if isinstance(text, str) else None
    return None


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
