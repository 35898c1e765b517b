"""The service's JSON error body mapped back to the exception an in-process call raises."""

from __future__ import annotations

import json
from typing import Any

from ..errors import (
    BackendUnavailable,
    Forbidden,
    InvalidArgument,
    InvalidKey,
    InvalidValueType,
    PluginFailed,
    PluginKVError,
    PluginNotFound,
    PluginTimeout,
    QuotaExceeded,
    Unauthorized,
    ValueTooLarge,
    VersionConflict,
    WrongValueType,
)

__all__ = ["error_from_response"]

_SIMPLE: dict[str, type[PluginKVError]] = {
    cls.code: cls
    for cls in (
        BackendUnavailable,
        Forbidden,
        InvalidArgument,
        InvalidKey,
        InvalidValueType,
        PluginFailed,
        PluginNotFound,
        PluginTimeout,
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
    try:
        if code == QuotaExceeded.code:
            return QuotaExceeded(
                message, used=error["used"], limit=error["limit"], needed=error["needed"]
            )
        if code == ValueTooLarge.code:
            return ValueTooLarge(message, size=error["size"], limit=error["limit"])
        if code == VersionConflict.code:
            return VersionConflict(
                message, key=error["key"], expected=error["expected"], actual=error["actual"]
            )
    except KeyError:
        pass  # details missing (a foreign or older service): the message still says it all
    cls = _SIMPLE.get(code) or _BY_STATUS.get(status) or PluginKVError
    return cls(message)
