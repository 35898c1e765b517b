"""``/docs/``: Swagger UI over the service's own ``/openapi.json``, served from the package.

The page and its scripts come from the ``swagger-ui-bundle-v2`` wheel (the
Swagger UI distribution, repackaged by the Connexion maintainers); nothing is
fetched from a CDN.  Only the initializer is this module's own: it points the
UI at ``../openapi.json`` (relative, so the page also works under a path
prefix) and turns off the validator badge, which would send the document to
validator.swagger.io.  Every answer carries a Content-Security-Policy that
allows the page's own origin only (images also as ``data:`` URIs, which the
bundled stylesheet uses for its icons).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

__all__ = ["CONTENT_SECURITY_POLICY", "DOCS_PATH", "docs_routes"]

DOCS_PATH = "/docs"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
_CSP = (b"content-security-policy", CONTENT_SECURITY_POLICY.encode("ascii"))

# Swagger UI's own swagger-initializer.js points at the Petstore example.
_INITIALIZER = b"""window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: new URL("../openapi.json", window.location.href).href,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "BaseLayout",
  });
};
"""


class _WithPolicy:
    """Adds the Content-Security-Policy header to every answer of ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), _CSP]
            await send(message)

        await self.app(scope, receive, send_with_policy)


async def _to_page(request: Request) -> Response:
    # Relative, so that a path prefix in front of the service is kept.
    return RedirectResponse("docs/", status_code=308)


async def _initializer(request: Request) -> Response:
    return Response(
        _INITIALIZER,
        media_type="text/javascript",
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY},
    )


def docs_routes() -> list[BaseRoute]:
    """``/docs`` (to ``/docs/``), the page, and its assets."""
    assets = StaticFiles(directory=str(swagger_ui_path), html=True)
    return [
        Route(DOCS_PATH, _to_page, methods=["GET"]),
        Route(f"{DOCS_PATH}/swagger-initializer.js", _initializer, methods=["GET"]),
        Mount(DOCS_PATH, app=_WithPolicy(assets)),
    ]
