"""``AsyncRemoteStorage`` behind a synchronous face, so the contract suite can run on it.

Every method call runs the async client's own coroutine on one event loop in a
background thread and waits for its result (or exception): the suite exercises
the async client itself, ``set_json``/``get_json`` and validation included.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

from pluginkv.client import AsyncRemoteStorage

T = TypeVar("T")


class LoopThread:
    """An event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


class SyncAsyncStorage:
    """The ``Storage`` methods of an ``AsyncRemoteStorage``, called synchronously."""

    def __init__(self, client: AsyncRemoteStorage, runner: LoopThread) -> None:
        self.client = client
        self._runner = runner

    def __repr__(self) -> str:
        return f"<SyncAsyncStorage {self.client!r}>"

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.client, name)
        if inspect.isasyncgenfunction(method):

            def iterate(*args: Any, **kwargs: Any) -> Any:
                async def collect() -> list[Any]:
                    return [item async for item in method(*args, **kwargs)]

                return iter(self._runner.run(collect()))

            return iterate
        if not inspect.iscoroutinefunction(method):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._runner.run(method(*args, **kwargs))

        call.__name__ = name
        return call

    def atomic(self) -> SyncCommit:
        return SyncCommit(self.client.atomic(), self._runner)

    def watch(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """The async iterator of ``watch``, stepped one change at a time (it never ends)."""
        changes = self.client.watch(*args, **kwargs)  # bad arguments raise here, as in sync

        def follow() -> Iterator[Any]:
            while True:
                try:
                    yield self._runner.run(anext(changes))
                except StopAsyncIteration:
                    return

        return follow()

    def close(self) -> None:
        self._runner.run(self.client.aclose())


class SyncCommit:
    """An ``AsyncRemoteCommit`` whose ``commit()`` is waited for."""

    def __init__(self, commit: Any, runner: LoopThread) -> None:
        self._commit = commit
        self._runner = runner

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._commit, name)
        if name == "commit":
            return lambda: self._runner.run(method())

        def chain(*args: Any, **kwargs: Any) -> SyncCommit:
            method(*args, **kwargs)
            return self

        return chain
