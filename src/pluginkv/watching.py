"""Waking the watchers of a scope when it changes, without a thread or a query per watcher.

A ``ChangeNotifier`` belongs to one ``Store``.  A watcher registers a
``ChangeWaiter`` for its scope, reads the changes it has not seen, and waits;
any commit to the scope after the registration wakes it, so a commit between
the read and the wait is never missed.  A wake may be spurious (a change
outside the watcher's prefix, a commit elsewhere in the database): the
watcher reads again and finds nothing new.

Who wakes the waiters:

* this process's own writes, through ``changed(scope)`` right after they
  return (``Storage`` calls it);
* writes of other processes, through the backend's one listener per store
  (``Backend.listen_for_changes``): a poller thread on SQLite, ``LISTEN`` on
  PostgreSQL.  It names the scopes that changed, or says "something
  changed", and then the notifier reads the ``last_seq`` of the watched
  scopes in one read and wakes those that moved.

A waiting thread sleeps on its scope's condition; an ``asyncio`` waiter is a
future of its own event loop, woken with ``call_soon_threadsafe``: a thousand
idle watchers hold a thousand small objects and use no CPU.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Collection
from types import TracebackType

from .backends.base import Backend, ChangeListener
from .errors import PluginKVError
from .keys import Scope

__all__ = ["ChangeNotifier", "ChangeWaiter"]

logger = logging.getLogger(__name__)


class _Watched:
    """The waiters of one scope: a condition for threads, futures for event loops."""

    __slots__ = ("cond", "futures", "generation", "registered", "seen")

    def __init__(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.generation = 0  # moves on every wake
        self.registered = 0
        self.futures: set[asyncio.Future[None]] = set()
        self.seen: int | None = None  # the scope's last_seq when last read by a refresh


class ChangeNotifier:
    """The wake-ups of one store's watchers."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._lock = threading.Lock()
        self._scopes: dict[Scope, _Watched] = {}
        self._listener: ChangeListener | None = None
        self._listening = False
        self._closed = False
        # Starting the listener may wait for a connection: never under _lock, which
        # every write's notice takes.
        self._start_lock = threading.Lock()

    def waiter(self, scope: Scope) -> ChangeWaiter:
        """Register a waiter for ``scope``; every commit to it from now on wakes it."""
        self._listen()
        with self._lock:
            watched = self._scopes.get(scope)
            if watched is None:
                watched = self._scopes[scope] = _Watched()
            watched.registered += 1
        return ChangeWaiter(self, scope, watched)

    def waiting(self) -> int:
        """How many waiters are registered now, over every scope."""
        with self._lock:
            return sum(watched.registered for watched in self._scopes.values())

    def _release(self, scope: Scope, watched: _Watched) -> None:
        with self._lock:
            watched.registered -= 1
            if watched.registered == 0 and self._scopes.get(scope) is watched:
                del self._scopes[scope]

    def _listen(self) -> None:
        """Start the backend's listener for other processes' commits, once."""
        if self._listening:
            return
        with self._start_lock:
            if self._listening or self._closed:
                return
            self._listener = self._backend.listen_for_changes(self.changed)
            self._listening = True

    def changed(self, scopes: Collection[Scope] | None) -> None:
        """Wake the waiters of ``scopes``; with ``None``, of every watched scope that moved."""
        if scopes is None:
            self._refresh()
            return
        with self._lock:
            woken = [self._scopes[scope] for scope in scopes if scope in self._scopes]
        for watched in woken:
            _wake(watched)

    def _refresh(self) -> None:
        with self._lock:
            watched = list(self._scopes.items())
        if not watched:
            return
        try:
            with self._backend.read() as tx:
                seqs = [(w, tx.scope_state(scope).last_seq) for scope, w in watched]
        except PluginKVError as exc:
            # The database is out of reach: wake everyone, whose read then says so.
            logger.warning("reading the watched scopes failed: %s", exc)
            seqs = [(w, -1) for _, w in watched]
        for w, seq in seqs:
            if w.seen != seq:
                w.seen = seq
                _wake(w)

    def close(self) -> None:
        """Stop the listener; waiters still registered are woken and find the store closed."""
        with self._start_lock, self._lock:
            self._closed = True
            listener, self._listener = self._listener, None
            watched = list(self._scopes.values())
        if listener is not None:
            listener.close()
        for w in watched:
            _wake(w)


def _wake(watched: _Watched) -> None:
    with watched.cond:
        watched.generation += 1
        watched.cond.notify_all()
        futures = list(watched.futures)
    for future in futures:
        try:
            future.get_loop().call_soon_threadsafe(_resolve, future)
        except RuntimeError:  # its event loop is closed: nobody waits on it any more
            pass


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class ChangeWaiter:
    """A registration for the commits to one scope; use it as a context manager.

    Read the changes after registering, then ``wait`` (a thread) or
    ``await wait_async`` (an event loop): each returns ``True`` once some
    commit to the scope followed the registration or the previous wait,
    ``False`` when ``timeout`` passed first.
    """

    __slots__ = ("_closed", "_generation", "_notifier", "_scope", "_watched")

    def __init__(self, notifier: ChangeNotifier, scope: Scope, watched: _Watched) -> None:
        self._notifier = notifier
        self._scope = scope
        self._watched = watched
        self._generation = watched.generation
        self._closed = False

    def __enter__(self) -> ChangeWaiter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a commit to the scope, or ``timeout`` seconds; whether one came."""
        watched = self._watched
        with watched.cond:
            woken = watched.cond.wait_for(lambda: watched.generation != self._generation, timeout)
            self._generation = watched.generation
        return woken

    async def wait_async(self, timeout: float | None = None) -> bool:
        """``wait`` for an event loop: no thread waits, the loop is woken."""
        watched = self._watched
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with watched.cond:
            if watched.generation != self._generation:
                self._generation = watched.generation
                return True
            watched.futures.add(future)
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            pass
        finally:
            with watched.cond:
                watched.futures.discard(future)
                woken = watched.generation != self._generation
                self._generation = watched.generation
        return woken

    def close(self) -> None:
        """End the registration (idempotent)."""
        if not self._closed:
            self._closed = True
            self._notifier._release(self._scope, self._watched)
