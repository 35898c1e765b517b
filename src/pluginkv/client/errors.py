"""The service's JSON error body mapped back to the exception an in-process call raises."""

from __future__ import annotations

import json
from typing import Any

from ..error_registry import error_from_code
from ..errors import (
    BackendUnavailable,
    Forbidden,
    InvalidArgument,
    PluginKVError,
    Unauthorized,
)

__all__ = ["ServiceUnreachable", "error_from_response"]


class ServiceUnreachable(BackendUnavailable):
    """No answer from the service at all: nothing listens, or the connection broke."""


# What a status alone means, for an answer without pluginkv's body (a proxy's
# page, a foreign or older service): the most general error with that status.
_BY_STATUS: dict[int, type[PluginKVError]] = {
    cls.http_status: cls for cls in (InvalidArgument, Unauthorized, Forbidden, BackendUnavailable)
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
    rebuilt = error_from_code(code, message, error)
    if rebuilt is not None:
        return rebuilt
    # An unknown code, or fields missing: the message still says it all.
    return _BY_STATUS.get(status, PluginKVError)(message)
