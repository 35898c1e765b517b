"""The fields an error carries beyond its code and message, on every wire.

The HTTP API and the plugin channel put them in the error body
(``error_fields``); their clients rebuild the same exception from it
(``error_with_fields``), so a caller over either sees what an in-process
caller sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import PluginKVError, QuotaExceeded, ValueTooLarge, VersionConflict

__all__ = ["error_fields", "error_with_fields"]

_FIELDS: dict[type[PluginKVError], tuple[str, ...]] = {
    QuotaExceeded: ("used", "limit", "needed"),
    ValueTooLarge: ("size", "limit"),
    VersionConflict: ("key", "expected", "actual"),
}


def error_fields(exc: PluginKVError) -> dict[str, Any]:
    """The error's own fields by name; empty for an error that has none."""
    for cls, names in _FIELDS.items():
        if isinstance(exc, cls):
            return {name: getattr(exc, name) for name in names}
    return {}


def error_with_fields(code: str, message: str, body: Mapping[str, Any]) -> PluginKVError | None:
    """The error with fields whose code this is, rebuilt from ``body``.

    ``None`` for a code without fields, or when ``body`` lacks one of them (a
    foreign or older peer): the caller then falls back on the code alone.
    """
    for cls, names in _FIELDS.items():
        if cls.code == code:
            try:
                return cls(message, **{name: body[name] for name in names})
            except KeyError:
                return None
    return None
