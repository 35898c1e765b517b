"""``Storage`` over HTTP: the same methods and exceptions as in process.

``RemoteStorage(url, token)`` talks to a ``pluginkv serve`` service with the
standard library's ``http.client`` — chosen by measurement (see
``docs/benchmarks.md``): it needs no extra dependency and costs less than half
the CPU per request of httpx.

``AsyncRemoteStorage(url, token)`` is its asyncio twin, on aiohttp: install
the ``async`` extra (``pip install 'pluginkv[async]'``).  It is imported on
first access, so ``import pluginkv.client`` never needs aiohttp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .sync import RemoteStorage

if TYPE_CHECKING:
    from .aio import AsyncRemoteStorage

__all__ = ["AsyncRemoteStorage", "RemoteStorage"]


def __getattr__(name: str) -> Any:
    if name != "AsyncRemoteStorage":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from .aio import AsyncRemoteStorage
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] == "pluginkv":
            raise
        raise ImportError(
            f"AsyncRemoteStorage needs aiohttp, which is not installed ({exc}): "
            "install the 'async' extra, e.g. pip install 'pluginkv[async]'"
        ) from exc
    globals()[name] = AsyncRemoteStorage
    return AsyncRemoteStorage
