"""Every error the API returns: one status per error code, one JSON body shape.

Body: ``{"error": {"code": ..., "message": ..., <fields>}}``, code, status and
fields as each class declares them in ``errors.py``.  The client maps ``code``
back to the same exception class, so a caller over HTTP sees exactly what an
in-process caller sees.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..error_registry import ERRORS, error_fields
from ..errors import (
    BackendUnavailable,
    PluginKVError,
    ReadOnly,
    VersionConflict,
)
from .hints import route_hint
from .parsing import ClientGone

__all__ = [
    "CODE_HEADER",
    "READ_ONLY_RETRY_AFTER",
    "STATUS",
    "UNAVAILABLE_RETRY_AFTER",
    "error_body",
    "error_response",
    "exception_body",
    "exception_handlers",
    "http_error_response",
    "not_found",
]

# Each error's status as it declares it (errors.py); a subclass has its parent's.
STATUS: dict[type[PluginKVError], int] = {cls: cls.http_status for cls in ERRORS}


def error_body(code: str, message: str, **details: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **details}}


def exception_body(exc: PluginKVError) -> dict[str, Any]:
    """The body of the error response ``exc`` becomes (also a streamed answer's last line)."""
    return error_body(exc.code, str(exc), **error_fields(exc))


# A hint only: the service cannot know when the operator ends a read-only
# spell; a minute keeps the clients that honour it from hammering the service
# meanwhile, and is short beside the export it usually covers.
READ_ONLY_RETRY_AFTER = "60"

# An outage of the database (a failover, a restart) usually ends within seconds;
# one second keeps a client that honours the hint from spinning meanwhile.
UNAVAILABLE_RETRY_AFTER = "1"

# Every error also names its code in a header: a HEAD response has no body, and
# a client must tell "no such key" from "no such route" without one.
CODE_HEADER = "X-Error-Code"


def error_response(exc: PluginKVError) -> JSONResponse:
    status = exc.http_status
    headers = {CODE_HEADER: exc.code}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    elif isinstance(exc, ReadOnly):
        headers["Retry-After"] = READ_ONLY_RETRY_AFTER
    elif isinstance(exc, VersionConflict) and exc.actual is not None:
        headers["ETag"] = f'"{exc.actual}"'
    elif isinstance(exc, BackendUnavailable):
        headers["Retry-After"] = UNAVAILABLE_RETRY_AFTER
    return JSONResponse(exception_body(exc), status_code=status, headers=headers)


def not_found(key: str) -> JSONResponse:
    body = error_body("not_found", f"key {key!r} not found", key=key)
    return JSONResponse(body, 404, headers={CODE_HEADER: "not_found"})


async def _pluginkv_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PluginKVError)
    return error_response(exc)


def http_error_response(exc: HTTPException, hint: str | None = None) -> JSONResponse:
    """The JSON answer of a router or protocol error; ``hint`` follows a 404's message."""
    codes = {
        404: "no_such_route",
        405: "method_not_allowed",
        408: "request_timeout",
        413: "value_too_large",
    }
    code = codes.get(exc.status_code, "http_error")
    headers = {**(exc.headers or {}), CODE_HEADER: code}
    message = str(exc.detail) if hint is None else f"{exc.detail}: {hint}"
    return JSONResponse(error_body(code, message), exc.status_code, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    hint = route_hint(request.scope) if exc.status_code == 404 else None
    return http_error_response(exc, hint)


async def _client_gone(request: Request, exc: Exception) -> Response:
    # The client left mid-body: this answer reaches nobody, and metrics record
    # it under nginx's "client closed request".
    return Response(status_code=499)


exception_handlers = {
    PluginKVError: _pluginkv_error,
    HTTPException: _http_error,
    ClientGone: _client_gone,
}
