"""The operator console at ``/ui``: pages in the browser over the service's own API.

The pages are Jinja2 shells and static scripts; every piece of data they show
is fetched by the browser from the authenticated ``/v1`` API with the admin
token the operator signed in with (``docs/console.md``).
"""

from __future__ import annotations

from .pages import CONSOLE_PATH, CONTENT_SECURITY_POLICY, console_routes, front_end_library

__all__ = ["CONSOLE_PATH", "CONTENT_SECURITY_POLICY", "console_routes", "front_end_library"]
