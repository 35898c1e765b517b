"""The floor of the HTTP stack: an ASGI app that does nothing but answer.

``bench_http_floor.py`` runs it under uvicorn with ``pluginkv serve``'s options (uvloop,
httptools). A GET is answered with a 100-byte body; a PUT's body is read to its end, then
answered 204. No framework, no routing, no storage: what is left per request is the
server's parsing, the event loop and the ASGI calls. Run with ``--lifespan off``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]

VALUE = bytes(range(100))  # bench_peers' 100-byte values
GET_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", b"application/octet-stream"),
        (b"content-length", str(len(VALUE)).encode()),
    ],
}
GET_BODY = {"type": "http.response.body", "body": VALUE}
PUT_START = {"type": "http.response.start", "status": 204, "headers": []}
EMPTY_BODY = {"type": "http.response.body", "body": b""}


async def app(
    scope: Scope,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    if scope["method"] == "PUT":
        more = True
        while more:  # the body, to its end, as a store would need it
            more = bool((await receive()).get("more_body", False))
        await send(PUT_START)
        await send(EMPTY_BODY)
        return
    await send(GET_START)
    await send(GET_BODY)
