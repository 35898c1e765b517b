"""The OpenAPI 3.1 description of the HTTP API, served at ``GET /openapi.json``.

Built from the code: the paths and methods are the app's routes (``ApiRoute``), each
operation's words sit beside its handler (``describe.Operation``), the request and
response bodies are pydantic models (``bodies.py``, ``answers.py``), and key and name
patterns are those ``keys.py`` checks.  What is shared (error bodies and responses,
common parameters, headers) is here.  ``tests/server/test_openapi.py`` keeps it honest:
the set of (path, method) pairs must equal the app's routes, and schemathesis fuzzes the
live app against it.

Limits that come from the settings (page size, batch size, byte limits) are
filled in from the ``Settings`` the app runs with.
"""

from __future__ import annotations

from .document import OPENAPI_PATH, api_routes, openapi_document, openapi_route

__all__ = ["OPENAPI_PATH", "api_routes", "openapi_document", "openapi_route"]
