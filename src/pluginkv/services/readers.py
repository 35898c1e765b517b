"""Where the service's reads run: inline on the event loop, or on worker threads.

An embedded database (SQLite, memory) answers a point read in microseconds,
less than a hop to a thread costs, so its reads run inline.  A database
server answers over the network: a read there takes a round trip, and while
the server is unreachable a read waits up to the pool timeout.  Inline, that
would stall every request of the process, ``/healthz`` included; so for a
backend whose ``reads_block``, reads run on a pool of threads as large as its
connection pool.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..backends.base import Backend

__all__ = ["Readers"]

T = TypeVar("T")


class Readers:
    """Runs read calls where their backend wants them; threads start on first use."""

    def __init__(self, threads: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pluginkv-reader")

    async def run(self, backend: Backend, call: Callable[..., T], *args: Any) -> T:
        if not backend.reads_block:
            return call(*args)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(call, *args))

    def shutdown(self) -> None:
        """Wait for the reads in flight, then stop the threads."""
        self._pool.shutdown(wait=True)
