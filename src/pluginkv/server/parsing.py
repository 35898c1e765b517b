"""Reading a request: token, key, conditions and body, from plain ASGI values.

Shared by the Starlette routes and the plain-ASGI single-key path
(``kv.py``), so both accept and refuse exactly the same input.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import NamedTuple, TypeVar
from urllib.parse import unquote_to_bytes

from starlette.convertors import Convertor, register_url_convertor
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope

from ..errors import InvalidArgument, InvalidKey, Unauthorized, ValueTooLarge
from ..keys import check_key
from ..services.tokens import Grant, Tokens

N = TypeVar("N", int, float)

__all__ = [
    "ClientGone",
    "Conditions",
    "KeyConvertor",
    "conditions",
    "grant",
    "key_from_path",
    "known_fields",
    "query_flag",
    "query_number",
    "query_params",
    "read_body",
    "unchanged",
]


class ClientGone(Exception):
    """The client disconnected before its request body arrived: nobody to answer."""


def grant(tokens: Tokens, header: str | None) -> Grant:
    """What the ``Authorization`` header's token allows."""
    if header is None:
        raise Unauthorized("missing Authorization header: send 'Authorization: Bearer <token>'")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    return tokens.verify(token.strip())


def key_from_path(scope: Scope, prefix: str) -> str:
    """The key exactly as the client percent-encoded it (the raw path, not a decoded one)."""
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    route = (scope.get("root_path", "") + prefix).encode()
    if not raw.startswith(route):
        # The router matched a decoded path whose prefix was percent-encoded
        # (/v1/k%76/x): where the key starts in the raw path is then ambiguous.
        raise InvalidArgument(f"the path must start with {prefix} literally, not percent-encoded")
    encoded = raw[len(route) :]
    try:
        key = (unquote_to_bytes(encoded) if b"%" in encoded else encoded).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidKey("key is not valid UTF-8 once percent-decoded") from None
    check_key(key)
    return key


def query_number(params: Mapping[str, str], name: str, kind: type[N]) -> N | None:
    """The query parameter ``name`` as a number, ``None`` when absent."""
    text = params.get(name)
    if text is None:
        return None
    try:
        return kind(text)
    except ValueError:
        raise InvalidArgument(f"query parameter {name}={text!r} is not a number") from None


def query_flag(params: Mapping[str, str], name: str) -> bool:
    """The query parameter ``name`` as a yes/no: ``1``/``true`` or ``0``/``false``, absent = no."""
    text = params.get(name)
    if text is None:
        return False
    flag = _FLAGS.get(text.lower())
    if flag is None:
        raise InvalidArgument(f"query parameter {name}={text!r} must be 1, true, 0 or false")
    return flag


_FLAGS = {"1": True, "true": True, "0": False, "false": False}


def unchanged(if_none_match: str | None, version: int) -> bool:
    """Whether a GET's ``If-None-Match`` names ``version`` (or is ``*``): the answer is 304.

    Lenient, as a cache validator is: entries that are not versions never
    match, so a malformed header costs the client a full answer, not an error.
    """
    if if_none_match is None:
        return False
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*":
            return True
        tag = tag.removeprefix("W/").strip('"')
        if tag.isascii() and tag.isdigit() and len(tag) <= 19 and int(tag) == version:
            return True
    return False


class Conditions(NamedTuple):
    """A write's preconditions, from ``If-Match`` and ``If-None-Match``."""

    if_version: int | None
    if_absent: bool
    if_exists: bool


def conditions(if_match: str | None, if_none_match: str | None) -> Conditions:
    """The conditions the ``If-Match`` and ``If-None-Match`` headers set.

    ``If-Match: *`` is HTTP's "only if it exists"; ``If-None-Match: *`` its
    "only if absent"; ``If-Match: "3"`` "only at version 3".
    """
    if_version = None
    if_exists = False
    if if_match is not None and if_match.strip() == "*":
        if_exists = True
    elif if_match is not None:
        tag = if_match.strip().removeprefix("W/").strip('"')
        # ASCII digits only ('²'.isdigit() is true, int('²') fails); 19 digits span int64.
        if not (tag.isascii() and tag.isdigit() and len(tag) <= 19):
            raise InvalidArgument(
                f"If-Match must be an entry version such as '\"3\"', got {if_match!r}"
            )
        if_version = int(tag)
    if if_none_match is not None and if_none_match.strip() != "*":
        raise InvalidArgument("If-None-Match supports only '*' (set only if absent)")
    if if_match is not None and if_none_match is not None:
        raise InvalidArgument("If-Match and If-None-Match cannot be combined")
    return Conditions(if_version, if_none_match is not None, if_exists)


def query_params(scope: Scope, allowed: frozenset[str]) -> QueryParams:
    """The request's query parameters, or ``InvalidArgument`` naming any not in ``allowed``.

    A misspelt parameter (``limt=2``, Cloudflare's ``expiration_ttl=60``)
    would otherwise be ignored, and the request would do something else than
    its sender meant.
    """
    params = QueryParams(scope.get("query_string", b""))
    unknown = sorted(set(params.keys()) - allowed)
    if unknown:
        raise InvalidArgument(
            f"unknown query parameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}; this route takes "
            + (", ".join(sorted(allowed)) if allowed else "none")
        )
    return params


def known_fields(body: Mapping[str, object], allowed: frozenset[str]) -> None:
    """``InvalidArgument`` naming the fields of a JSON body that are not in ``allowed``."""
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidArgument(
            f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"in the request body; it takes {', '.join(sorted(allowed))}"
        )


class KeyConvertor(Convertor[str]):
    """A key in a route path: any characters, newlines included.

    Starlette's ``path`` stops at a newline (its regex is ``.*``), so a key
    with one would miss the route and answer 404 ``no_such_route``; with this,
    every key reaches ``key_from_path`` and gets the same 400 on every route.
    """

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("key", KeyConvertor())


async def read_body(
    receive: Receive, declared: str | None, limit: int, setting: str, timeout: float
) -> bytes:
    """The request body, refused with 413 as soon as it is known to pass ``limit``.

    ``declared`` is the ``Content-Length`` header: a body announced too large is
    refused before any of it is read.  A body that takes longer than
    ``timeout`` seconds to arrive gets 408.
    """
    if declared is not None:
        if not declared.isdigit():
            raise InvalidArgument(f"Content-Length {declared!r} is not a number")
        if int(declared) > limit:
            raise ValueTooLarge(
                f"body of {declared} bytes is over the limit of {limit} bytes (setting {setting})",
                size=int(declared),
                limit=limit,
            )
    chunks = []
    size = 0
    # A client that trickles its body must not hold a worker forever.  A bare
    # timer that cancels this task, not asyncio.timeout(): 3.7 against 11 µs
    # per request under uvloop, on the path of every write.
    task = asyncio.current_task()
    assert task is not None
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    timer = asyncio.get_running_loop().call_later(timeout, expire)
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise ValueTooLarge(
                    f"body is over the limit of {limit} bytes (setting {setting})",
                    size=size,
                    limit=limit,
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
    except asyncio.CancelledError:
        if not expired:
            raise  # somebody else's cancellation
        task.uncancel()  # ours, and handled here: the task goes on to answer 408
        raise HTTPException(
            408,
            f"the body did not arrive within {timeout} s "
            "(setting PLUGINKV_REQUEST_TIMEOUT_SECONDS)",
        ) from None
    finally:
        timer.cancel()
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
