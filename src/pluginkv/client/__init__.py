"""``Storage`` over HTTP: the same methods and exceptions as in process.

``RemoteStorage(url, token)`` talks to a ``pluginkv serve`` service with the
standard library's ``http.client`` — chosen by measurement (see
``docs/benchmarks.md``): it needs no extra dependency and costs less than half
the CPU per request of httpx.
"""

from __future__ import annotations

from .sync import RemoteStorage

__all__ = ["RemoteStorage"]
