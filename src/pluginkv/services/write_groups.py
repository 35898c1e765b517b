"""The writer: every write of the service runs here; on SQLite concurrent ones share a commit.

A durable commit costs one fsync (hundreds of microseconds on a real disk),
far more than the write itself.  So the writer takes every write that queued
up while it was busy and runs them in one ``Backend.group()``: one
transaction, one fsync.  Each write still succeeds or fails on its own (its
errors are its own; ``group()`` nests each transaction as a savepoint), and
no request hears "done" before the commit that made its write durable.

While the previous group carried several writes, the writer waits briefly
(a quarter of that group's time, at most 1 ms) for as many to arrive: their
clients answer and write again at about the same time, and without the wait
groups alternate small and large.  Measured with wrk, 16 connections, FULL:
9.5 writes per group instead of 7.3, and 10-15% more writes per second.

When a group as a whole fails after it started (the commit fails, or the
database rolled the transaction back), none of its writes remain, so each is
run again alone and answers for itself, as if there had been no group.  When
it fails to start (the database is locked past its timeout, or down), every
write of the group gets that error: running them one by one would only wait
the same timeout again for each.

Writes and nothing else come here; reads run where ``readers.py`` puts
them, inline on the event loop for SQLite and the memory backend, on reader
threads for PostgreSQL.  With one writer a single process never waits on
SQLite's busy handler, which sleeps in whole milliseconds.  PostgreSQL orders
concurrent writes with its own row locks, so its writes skip the group and
run on several threads at once (``WriteQueue``).

A quick write (one small entry: the single-key PUT and DELETE) that finds
the writer idle and no other request in the process (``alone``, which the
listener answers) runs on the calling thread, the event loop, and commits
there: for a lone client the hop to the writer
thread and the answer's hop back cost about as much as the write itself.
It blocks the loop for its commit, but only while nothing else was waiting
on it; a request that arrives meanwhile waits for that one commit.  So it
does so only while commits are quick (their running average at most
``on_loop_max`` seconds): on a disk whose flush takes milliseconds the hops
are a small part of a write and the wait would be a large one for others.
Under concurrent load the writer thread and its groups serve as before.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..backends.base import Backend

__all__ = ["WriteQueue"]

T = TypeVar("T")
logger = logging.getLogger(__name__)

_GATHER_MAX = 0.001  # seconds a group may wait for more writes
_Outcome = tuple[bool, Any]  # (succeeded, result or exception)


class _Job:
    __slots__ = ("backend", "call", "future", "loop")

    def __init__(
        self,
        backend: Backend,
        call: Callable[[], Any],
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
    ) -> None:
        self.backend = backend
        self.call = call
        self.loop = loop
        self.future = future


class WriteQueue:
    """One thread that runs the calls given to ``run``, many per commit.

    ``max_group`` bounds how many calls share one transaction (setting
    ``PLUGINKV_WRITE_GROUP_MAX``); 1 commits each call by itself.  While
    ``alone`` (set by the listener) says the caller's request is the only one
    in flight, the writer is idle and commits take ``on_loop_max`` seconds or
    less on average (``PLUGINKV_WRITE_ON_LOOP_MAX_SECONDS``), a call runs on the
    caller's thread instead.  Calls on
    different backends never share a group.  ``on_group`` hears the size of
    every group, for metrics.  The thread starts with the first call.

    A backend with ``concurrent_writes`` (a database server, which orders
    concurrent writes with its own locks) skips the queue: its writes run on
    up to ``threads`` threads at once, each committed alone.
    """

    def __init__(
        self,
        *,
        max_group: int,
        threads: int = 1,
        on_group: Callable[[int], None] | None = None,
        on_loop_max: float = 0.0,
    ) -> None:
        if max_group < 1:
            raise ValueError(f"max_group must be at least 1, got {max_group}")
        self._max_group = max_group
        self._on_group = on_group
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pluginkv-write")
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        # Held while a group or a write on the caller's thread runs: one at a time.
        self._committing = threading.Lock()
        self._queued = 0  # writes given to the thread and not yet answered
        # Whether the caller's request is the only one in flight (set by the
        # listener; None: never run a write on the caller's thread).
        self.alone: Callable[[], bool] | None = None
        self._on_loop_max = on_loop_max
        self._commit_average = 0.0  # seconds a write or group took, running average

    async def run(self, backend: Backend, call: Callable[[], T], *, quick: bool = False) -> T:
        """Run ``call`` (a write on ``backend``) on the writer thread, or on one of the
        pool's threads for a backend with ``concurrent_writes``.

        ``quick``: the call writes one small entry, so it may run on the caller's
        thread (see the module's text); a large or many-key write never does, for
        it would hold the event loop for its whole time.

        Returns its result, or raises its exception, once the commit that
        holds its write is done.
        """
        loop = asyncio.get_running_loop()
        if backend.concurrent_writes:
            return await self._run_alone(loop, call)
        alone = self.alone
        if (
            quick
            and alone is not None
            and 0 < self._on_loop_max
            and self._commit_average <= self._on_loop_max
            and alone()
        ):
            ran, outcome = self._try_here(call)
            if ran:
                succeeded, value = outcome
                if succeeded:
                    return value  # type: ignore[no-any-return]
                raise value
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the writer has shut down")
            self._queued += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="pluginkv-writer", daemon=True
                )
                self._thread.start()
            self._jobs.put(_Job(backend, call, loop, future))
        return await future

    def _try_here(self, call: Callable[[], Any]) -> tuple[bool, _Outcome]:
        """Run ``call`` on this thread if the writer is idle: (whether it ran, its outcome)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the writer has shut down")
            if self._queued or not self._committing.acquire(blocking=False):
                return False, (False, None)
        try:
            started = time.monotonic()
            outcome = _attempt(call)
            self._took(time.monotonic() - started)
        finally:
            self._committing.release()
        if self._on_group is not None:
            self._on_group(1)
        return True, outcome

    async def _run_alone(self, loop: asyncio.AbstractEventLoop, call: Callable[[], T]) -> T:
        with self._lock:
            if self._closed:
                raise RuntimeError("the writer has shut down")
            done = loop.run_in_executor(self._pool, call)
        try:
            return await done
        finally:
            if self._on_group is not None:
                self._on_group(1)

    def shutdown(self) -> None:
        """Finish every queued and running write, then stop the threads (idempotent)."""
        with self._lock:
            self._closed = True
            thread = self._thread
            if thread is not None:
                self._jobs.put(None)
        if thread is not None:
            thread.join()
        with self._committing:  # a write on another thread's loop finishes first
            pass
        self._pool.shutdown(wait=True)

    # -- the thread ----------------------------------------------------------------------------
    def _work(self) -> None:
        held: _Job | None = None  # the first job of the next group
        stopping = False  # shutdown() was seen: run what is held, then end
        expected = 1  # writes the last group carried: their clients are likely to write again
        commit_time = 0.0  # seconds the last group took
        while True:
            job = held if held is not None else (None if stopping else self._jobs.get())
            held = None
            if job is None:
                return
            jobs = [job]
            # Wait a little for the rest of a busy workload's next group: up to a
            # quarter of the last group's time (at most _GATHER_MAX), and only
            # while fewer writes have come than the last group held.  Without it
            # groups alternate small and large; one client alone never waits.
            deadline = time.monotonic() + min(commit_time / 4, _GATHER_MAX)
            while len(jobs) < self._max_group:
                try:
                    if len(jobs) < expected:
                        more = self._jobs.get(timeout=max(0.0, deadline - time.monotonic()))
                    else:
                        more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                if more.backend is not job.backend:
                    held = more
                    break
                jobs.append(more)
            started = time.monotonic()
            with self._committing:
                outcomes = self._run_group(job.backend, [each.call for each in jobs])
            commit_time = time.monotonic() - started
            self._took(commit_time)
            with self._lock:
                self._queued -= len(jobs)
            expected = len(jobs)
            if self._on_group is not None:
                self._on_group(len(jobs))
            _deliver(jobs, outcomes)

    def _took(self, seconds: float) -> None:
        """Count one write's or group's time into the running average (weight 1/8)."""
        self._commit_average += (seconds - self._commit_average) / 8

    def _run_group(self, backend: Backend, calls: list[Callable[[], Any]]) -> list[_Outcome]:
        if len(calls) == 1:
            return [_attempt(calls[0])]
        started = False
        try:
            with backend.group():
                started = True
                outcomes = [_attempt(call) for call in calls]
        except Exception as exc:
            if not started:
                return [(False, exc)] * len(calls)
            logger.warning("a group of %d writes failed (%s); running each alone", len(calls), exc)
            return [_attempt(call) for call in calls]
        return outcomes


def _attempt(call: Callable[[], Any]) -> _Outcome:
    try:
        return True, call()
    except Exception as exc:
        return False, exc


def _deliver(jobs: list[_Job], outcomes: list[_Outcome]) -> None:
    """Hand the outcomes to their event loops, one wake-up per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], _Outcome]]] = {}
    for job, outcome in zip(jobs, outcomes, strict=True):
        by_loop.setdefault(job.loop, []).append((job.future, outcome))
    for loop, results in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, results)
        except RuntimeError:
            pass  # that loop has closed: nobody is waiting any more


def _settle(results: list[tuple[asyncio.Future[Any], _Outcome]]) -> None:
    for future, (succeeded, value) in results:
        if future.cancelled():
            continue  # the client went away; the write stands
        if succeeded:
            future.set_result(value)
        else:
            future.set_exception(value)
