"""How a handler describes itself in the OpenAPI document, and the route that carries it.

Each handler module defines an ``Operation`` beside each handler (its summary,
description, tags, parameters, request body and responses) and puts both on an
``ApiRoute``: ``ApiRoute("/v1/usage", GET=(usage, USAGE))``.  The document
(``openapi/``) is then built by walking the app's routes, so a route without a
description, or a description without a route, cannot happen silently
(``tests/server/test_openapi.py``).

Limits that come from the settings are written ``{settings.max_batch_bytes}`` in any
string of a description: the document fills them in from the ``Settings`` the app runs
with (a string that is only that becomes the number).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..keys import FORBIDDEN_CHARACTERS, MAX_KEY_BYTES

__all__ = [
    "BATCH_LIMIT",
    "CHECK_FAILED",
    "ERROR_RESPONSES",
    "KEY_RULES",
    "NO_FORBIDDEN",
    "VALUE_LIMIT",
    "WRITE_UNAVAILABLE",
    "ApiRoute",
    "Json",
    "Operation",
    "code_header",
    "errors",
    "json_body",
    "json_content",
    "model_ref",
    "ok",
    "prefix_schema",
    "query",
    "ref",
    "write_errors",
]

Json = dict[str, Any]
Endpoint = Callable[[Request], Awaitable[Response]]

# The error responses (components/responses) an operation names by status.
ERROR_RESPONSES: dict[int, str] = {
    400: "BadRequestError",
    401: "UnauthorizedError",
    403: "ForbiddenError",
    408: "RequestTimeoutError",
    410: "ChangesExpiredError",
    412: "VersionConflictError",
    413: "ValueTooLargeError",
    503: "BackendUnavailableError",
    507: "InsufficientStorageError",
}
# POST /v1/atomic's 412 when a check fails: an answer the engine returns
# (CommitResult(ok=False)), not an exception, so no error class declares its code.
CHECK_FAILED = "check_failed"
# A write's 503: the database is away, or the store is read-only.
WRITE_UNAVAILABLE = "WriteUnavailableError"

VALUE_LIMIT = "At most {settings.max_value_bytes} bytes (setting `PLUGINKV_MAX_VALUE_BYTES`)."
BATCH_LIMIT = (
    "The JSON body is at most {settings.max_batch_bytes} bytes "
    "(setting `PLUGINKV_MAX_BATCH_BYTES`)."
)


# Keys: 1-256 bytes of UTF-8, none of the forbidden characters, no "..".  JSON
# Schema's `maxLength` counts characters, and no schema keyword counts bytes: 256
# characters is the bound that holds for every key (a character is 1 to 4 bytes),
# exact for ASCII keys; the description says what the server counts.
NO_FORBIDDEN = f"^[^{FORBIDDEN_CHARACTERS}]*$"
KEY_RULES = (
    f"1 to {MAX_KEY_BYTES} **bytes** of UTF-8 (the schema's `maxLength` counts characters: "
    f"{MAX_KEY_BYTES} ASCII characters fit, {MAX_KEY_BYTES // 2} two-byte ones); "
    "no control characters (C0, DEL, C1), "
    "no backslash, no `..`. Keys are opaque: nothing is normalised, so `a//b` and `a/b` "
    "are two keys."
)


@dataclass(frozen=True)
class Operation:
    """One method of one path, as the OpenAPI document describes it.

    ``public``: no bearer token (``security: []``); else the token is required.
    ``body``: the ``requestBody`` object.
    """

    operation_id: str
    tag: str
    summary: str
    responses: Json
    description: str | None = None
    parameters: Sequence[Json] = ()
    body: Json | None = None
    public: bool = False

    @functools.cached_property
    def query_names(self) -> frozenset[str]:
        """The query parameters it takes, as its handler checks them: any other is a 400."""
        return frozenset(p["name"] for p in self.parameters if p.get("in") == "query")

    def as_json(self) -> Json:
        operation: Json = {"operationId": self.operation_id, "tags": [self.tag]}
        operation["summary"] = self.summary
        if self.description is not None:
            operation["description"] = self.description
        operation["security"] = [] if self.public else [{"bearerAuth": []}]
        if self.parameters:
            operation["parameters"] = list(self.parameters)
        if self.body is not None:
            operation["requestBody"] = self.body
        operation["responses"] = self.responses
        return operation


class ApiRoute(Route):
    """A route with an ``Operation`` for each method it serves, and a handler for each.

    ``ApiRoute(path, GET=(handler, operation), DELETE=(...))``.  Several handlers share
    the route through one dispatching endpoint (so a 405 lists every method in
    ``Allow``); HEAD, which Starlette answers on every GET route, runs GET's handler
    unless it has its own, and is described only when it has its own operation.
    ``parameters`` are the path's, shared by its methods.
    """

    def __init__(
        self,
        path: str,
        *,
        parameters: Sequence[Json] = (),
        **methods: tuple[Any, Operation],
    ) -> None:
        self.operations: Mapping[str, Operation] = {m: op for m, (_, op) in methods.items()}
        self.path_parameters = list(parameters)
        handlers = {method: handler for method, (handler, _) in methods.items()}
        distinct = {id(handler) for handler in handlers.values()}
        endpoint = next(iter(handlers.values())) if len(distinct) == 1 else _dispatch(handlers)
        super().__init__(path, endpoint, methods=sorted(handlers))


def _dispatch(handlers: dict[str, Endpoint]) -> Endpoint:
    async def dispatch(request: Request) -> Response:
        return await handlers.get(request.method, handlers["GET"])(request)

    return dispatch


# -- pieces of operations --------------------------------------------------------------------
def ref(kind: str, name: str) -> Json:
    return {"$ref": f"#/components/{kind}/{name}"}


def model_ref(model: type[BaseModel]) -> Json:
    return ref("schemas", model.__name__)


def json_content(schema: Json) -> Json:
    return {"application/json": {"schema": schema}}


def query(name: str, schema: Json, description: str, *, required: bool = False) -> Json:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


def prefix_schema() -> Json:
    return {
        "type": "string",
        "description": f"At most {MAX_KEY_BYTES} bytes of UTF-8 (`maxLength` counts "
        "characters); the characters a key may hold.",
        "maxLength": MAX_KEY_BYTES,
        "pattern": NO_FORBIDDEN,
        "not": {"pattern": r"\.\."},
    }


def json_body(model: type[BaseModel], description: str = BATCH_LIMIT) -> Json:
    return {"required": True, "description": description, "content": json_content(model_ref(model))}


def ok(description: str, model: type[BaseModel], **headers: Json) -> Json:
    """A JSON answer whose body ``model`` describes."""
    response: Json = {"description": description}
    if headers:
        response["headers"] = headers
    response["content"] = json_content(model_ref(model))
    return response


def code_header(codes: list[str]) -> Json:
    return {
        "description": "The error's code, as in the body: a HEAD answer has no body.",
        "required": True,
        "schema": {"type": "string", "enum": codes},
    }


def errors(*statuses: int) -> Json:
    """The error responses of a `/v1` operation: 401, 403 and 503 always, plus ``statuses``."""
    return {
        str(status): ref("responses", ERROR_RESPONSES[status])
        for status in sorted({401, 403, 503, *statuses})
    }


def write_errors(*statuses: int) -> Json:
    """The error responses of a `/v1` operation that writes: a read-only store refuses it."""
    return {**errors(*statuses), "503": ref("responses", WRITE_UNAVAILABLE)}


_PLACEHOLDER = re.compile(r"\{settings\.(\w+)\}")


def fill_settings(node: Any, settings: object) -> Any:
    """``node`` with every ``{settings.NAME}`` replaced by the setting's value."""
    if isinstance(node, dict):
        return {name: fill_settings(value, settings) for name, value in node.items()}
    if isinstance(node, list):
        return [fill_settings(value, settings) for value in node]
    if isinstance(node, str) and "{settings." in node:
        whole = _PLACEHOLDER.fullmatch(node)
        if whole is not None:
            return getattr(settings, whole[1])
        return _PLACEHOLDER.sub(lambda m: str(getattr(settings, m[1])), node)
    return node
