"""An endpoint's settings checked against what its group declares, as Dify's daemon checks them.

The daemon refuses to set up an endpoint whose settings lack a ``required``
one or hold a value of the wrong kind (``ValidateProviderConfigs``): the
plugin would otherwise meet the gap only when a request arrives.  The
declared ``default`` of a setting left out is filled in first, as Dify's
settings form does.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidArgument
from .parameter_types import declared_default

__all__ = ["checked_settings"]

_TEXT = ("text-input", "secret-input", "select")
# The keys the daemon wants in a selector's object.
_SELECTOR_KEYS = {
    "app-selector": ("app_id",),
    "model-selector": ("provider", "model", "model_type"),
}


def checked_settings(groups: list[Any], settings: dict[str, Any], plugin: str) -> dict[str, Any]:
    """``settings`` with declared defaults filled in; ``InvalidArgument`` names what is wrong.

    ``groups`` are the plugin's endpoint declarations; settings they do not
    declare pass as given.
    """
    filled = dict(settings)
    for group in groups:
        declared = group.get("settings") if isinstance(group, dict) else None
        for item in declared if isinstance(declared, list) else []:
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str):
                continue
            if filled.get(name) is None and item.get("default") is not None:
                filled[name] = declared_default(item)
            problem = _problem(item, filled.get(name))
            if problem is not None:
                raise InvalidArgument(
                    f"the endpoint settings of {plugin} are not valid: setting {name!r} {problem}"
                )
    return filled


def _problem(item: dict[str, Any], value: Any) -> str | None:
    """What is wrong with ``value`` for the declared setting ``item``, if anything."""
    kind = item.get("type")
    if value is None:
        return "is required (declared required: true)" if item.get("required") is True else None
    if kind in _TEXT and not isinstance(value, str):
        return "must be a string"
    if kind == "select":
        options = [o.get("value") for o in item.get("options") or [] if isinstance(o, dict)]
        if value not in options:
            return f"must be one of {', '.join(map(repr, options))}"
    if kind == "boolean" and not isinstance(value, bool):
        return "must be true or false"
    keys = _SELECTOR_KEYS.get(str(kind))
    if keys is not None:
        if not isinstance(value, dict):
            return "must be an object"
        missing = [key for key in keys if key not in value]
        if missing:
            return f"needs {', '.join(map(repr, missing))}"
    return None
