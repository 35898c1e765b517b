"""The service's JSON error body mapped back to the exception an in-process call raises."""

from __future__ import annotations

import json
from typing import Any

from ..error_fields import error_with_fields
from ..errors import (
    BackendUnavailable,
    DiskFull,
    Forbidden,
    InvalidArgument,
    InvalidKey,
    InvalidValueType,
    PluginFailed,
    PluginKVError,
    PluginNotFound,
    PluginTimeout,
    ReadOnly,
    Unauthorized,
    WrongValueType,
)

__all__ = ["ServiceUnreachable", "error_from_response"]


class ServiceUnreachable(BackendUnavailable):
    """No answer from the service at all: nothing listens, or the connection broke."""


_SIMPLE: dict[str, type[PluginKVError]] = {
    cls.code: cls
    for cls in (
        BackendUnavailable,
        DiskFull,
        Forbidden,
        InvalidArgument,
        InvalidKey,
        InvalidValueType,
        PluginFailed,
        PluginNotFound,
        PluginTimeout,
        ReadOnly,
        Unauthorized,
        WrongValueType,
    )
}
_BY_STATUS: dict[int, type[PluginKVError]] = {
    400: InvalidArgument,
    401: Unauthorized,
    403: Forbidden,
    503: BackendUnavailable,
}


def error_from_response(status: int, body: bytes) -> PluginKVError:
    """The exception for an error response, from its ``{"error": {...}}`` body if it has one."""
    try:
        error: dict[str, Any] = json.loads(body)["error"]
        code = str(error["code"])
        message = str(error["message"])
    except (ValueError, KeyError, TypeError):
        cls = _BY_STATUS.get(status, BackendUnavailable if status >= 500 else PluginKVError)
        return cls(f"HTTP {status}: {body[:200]!r}")
    rebuilt = error_with_fields(code, message, error)
    if rebuilt is not None:
        return rebuilt
    # Fields missing (a foreign or older service): the message still says it all.
    cls = _SIMPLE.get(code) or _BY_STATUS.get(status) or PluginKVError
    return cls(message)
