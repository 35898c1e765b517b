"""The registry of error classes: from a code to its class, from an error to its fields.

Each class in ``errors.py`` declares its code, HTTP status, fields and CLI
exit code; this module lists them and turns a wire's code and fields back
into the exception, so the HTTP service, its two clients and the plugin
channel rebuild what an in-process caller would have caught.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import errors
from .errors import PluginKVError

__all__ = ["ERRORS", "error_class", "error_fields", "error_from_code"]


ERRORS: tuple[type[PluginKVError], ...] = tuple(
    obj
    for obj in vars(errors).values()
    if isinstance(obj, type) and issubclass(obj, PluginKVError) and obj is not PluginKVError
)
"""Every error class below the root, in the order ``errors.py`` defines them.

The root stands for an error of no more specific kind: 500 on the service,
and what a client raises for a code it does not know.
"""

_BY_CODE = {cls.code: cls for cls in ERRORS}


def error_class(code: str) -> type[PluginKVError] | None:
    """The class whose ``code`` this is; ``None`` for a code no class below the root has."""
    return _BY_CODE.get(code)


def error_fields(exc: PluginKVError) -> dict[str, Any]:
    """The error's own fields by name; empty for an error that has none."""
    return {name: getattr(exc, name) for name in exc.fields}


def error_from_code(code: str, message: str, body: Mapping[str, Any]) -> PluginKVError | None:
    """The error a wire's ``code`` and ``message`` name, with its fields from ``body``.

    ``None`` for a code no class below the root has, or when ``body`` lacks a
    field the class requires (a foreign or older peer): the caller then falls
    back on what else it knows (the HTTP status).
    """
    cls = _BY_CODE.get(code)
    if cls is None:
        return None
    try:  # a field with a default may be missing; one without it may not
        return cls(message, **{name: body[name] for name in cls.fields if name in body})
    except TypeError:
        return None
