"""The console's routes: its pages, its scripts and style, and the headers that guard them.

No route here reads or writes the store, and none takes a token: a page is
the same shell for everyone, and its script asks the ``/v1`` API for the data
with the admin token from the browser's session storage, sent as
``Authorization: Bearer``.  Nothing rides on a cookie, so a page of another
site cannot make the browser act for the operator (no CSRF by construction).

The front-end library, Alpine.js in its CSP build (no ``eval``), is an npm
package that ``make install`` installs beside this module from
``package-lock.json``; it is never committed.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CONSOLE_PATH", "CONTENT_SECURITY_POLICY", "console_routes", "front_end_library"]

CONSOLE_PATH = "/ui"
_HERE = Path(__file__).parent
_LIBRARY = Path("node_modules", "@alpinejs", "csp", "dist", "cdn.min.js")

# Scripts and styles from the service's own origin only: no inline script, no
# style attribute, no eval; data only from the service; images also as the
# blob: URLs the key browser makes of a value's bytes.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode("ascii")),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]

# path under /ui -> (template, title)
_PAGES = {
    "/": ("overview.html", "Overview"),
    "/signin": ("signin.html", "Sign in"),
    "/scopes": ("scopes.html", "Workspaces and plugins"),
    "/keys": ("keys.html", "Keys"),
    "/plugins": ("plugins.html", "Plugins"),
}
_NAV = [("/", "Overview"), ("/scopes", "Workspaces"), ("/keys", "Keys"), ("/plugins", "Plugins")]

_templates = Environment(
    loader=FileSystemLoader(_HERE / "templates"), autoescape=True, auto_reload=False
)


def front_end_library() -> Path:
    """Where ``make install`` puts the Alpine.js build the pages load."""
    return _HERE / _LIBRARY


class _Guarded:
    """Adds the console's security headers to every answer of ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_HEADERS]
            await send(message)

        await self.app(scope, receive, send_guarded)


def _missing_library() -> Response:
    return PlainTextResponse(
        "The console's front-end library is not installed: run `make install` "
        f"(npm ci in {_HERE}).\n",
        status_code=503,
    )


def _page(path: str) -> Route:
    template, title = _PAGES[path]

    async def page(request: Request) -> Response:
        if not front_end_library().is_file():
            return _missing_library()
        root = request.scope.get("root_path", "")
        # The Mount's root_path ends in /ui: the service's own prefix is before it.
        service = root[: -len(CONSOLE_PATH)] if root.endswith(CONSOLE_PATH) else root
        html = _templates.get_template(template).render(
            title=title, path=path, nav=_NAV, ui=service + CONSOLE_PATH, api=service
        )
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    return Route(path, page, methods=["GET"])


async def _library(request: Request) -> Response:
    path = front_end_library()
    if not path.is_file():
        return _missing_library()
    return FileResponse(path, media_type="text/javascript")


async def _to_console(request: Request) -> Response:
    # Relative, so that a path prefix in front of the service is kept.
    return RedirectResponse("ui/", status_code=308)


def console_routes() -> list[BaseRoute]:
    """``/ui`` (to ``/ui/``), the pages, and their static files."""
    inner = Router(
        routes=[
            *(_page(path) for path in _PAGES),
            Route("/static/vendor/alpine.js", _library, methods=["GET"]),
            Mount("/static", app=StaticFiles(directory=str(_HERE / "static"))),
        ]
    )
    return [
        Route(CONSOLE_PATH, _to_console, methods=["GET"]),
        Mount(CONSOLE_PATH, app=_Guarded(inner)),
    ]
