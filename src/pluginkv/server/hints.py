"""What to use instead, for paths people reach for that the API does not have.

Listing has one path, ``GET /v1/keys``; the spellings other stores use
(``/v1/kv``, ``/v1/list``, ...) answer 404 with a pointer to it, never a
redirect: a client that follows one would list with the wrong method's
semantics, or repeat a write.
"""

from __future__ import annotations

from starlette.types import Scope

__all__ = ["LISTING_HINT", "route_hint"]

LISTING_HINT = "to list keys use GET /v1/keys?prefix=P (also limit, cursor)"

_HINTS = {
    "/v1/kv": LISTING_HINT,
    "/v1/kv/": LISTING_HINT,
    "/v1/keys/": LISTING_HINT,
    "/v1/list": LISTING_HINT,
    "/v1/list/": LISTING_HINT,
    "/v1/incr": "to add to a counter use POST /v1/incr/{key}",
    "/": "the API is under /v1; its description is /openapi.json, its page /docs/",
    "/v1": "the API's description is /openapi.json, its page /docs/",
    "/v1/": "the API's description is /openapi.json, its page /docs/",
}


def route_hint(scope: Scope) -> str | None:
    """The pointer a 404 for the request's path carries, if one fits."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return _HINTS.get(path)
