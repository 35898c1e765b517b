"""The OpenAPI 3.1 description of the HTTP API, served at ``GET /openapi.json``.

Written by hand as data, beside the routes it describes, so it says exactly
what the handlers do (statuses, headers, error bodies) rather than what a
framework infers.  ``tests/server/test_openapi.py`` keeps it honest: the set of
(path, method) pairs must equal the app's routes, and schemathesis fuzzes the
live app against it.

Limits that come from the settings (page size, batch size, byte limits) are
filled in from the ``Settings`` the app runs with.
"""

from __future__ import annotations

from .common import OPENAPI_PATH
from .document import openapi_document, openapi_route

__all__ = ["OPENAPI_PATH", "openapi_document", "openapi_route"]
