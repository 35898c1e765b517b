"""How a PostgreSQL store learns of commits made by other processes and replicas.

Every transaction that logs a change also sends ``NOTIFY pluginkv_changes``
with its scope (the entries' trigger for a write, the backend for a delete);
PostgreSQL delivers the notices at commit, once per scope and transaction, to
every session that listens.  Each store listens on one connection of its own,
on one thread that sleeps in the socket until a notice comes: no query runs
while nothing changes, whatever the number of waiters.

Notices cost every writer: PostgreSQL takes a lock for the whole database
from before each commit that notifies until after its WAL flush, so such
commits run one at a time (migration 0006).  So writes notify only while
some store listens: each listener keeps a row in ``pluginkv_listeners``,
refreshed every ``_REFRESH_SECONDS`` and taken to be gone 90 s after its
last refresh (a replica killed without closing), and deletes it on close.  A
write whose statement began before the row was visible sends no notice; one
``wake(None)`` a second after registering catches what such a write changed.

A notice names the scope, and only its waiters are woken.  When the
connection is lost (a restart, a failover), notices sent meanwhile are lost
too: once listening again, the thread wakes every waiter with ``wake(None)``,
and the store reads the ``last_seq`` of the scopes it watches to find what
moved.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from typing import Any

import psycopg

from ..keys import Scope
from .base import WakeScopes

__all__ = ["CHANNEL", "NotifyListener", "notify_payload"]

logger = logging.getLogger(__name__)

CHANNEL = "pluginkv_changes"
_IDLE_CHECK_SECONDS = 1.0  # how soon close() is noticed; the socket wait, not a query
_RETRY_SECONDS = 1.0
_REFRESH_SECONDS = 30.0  # well inside the 90 s after which writers stop notifying
_SETTLE_SECONDS = 1.0  # after registering: longer than a write statement takes
_REGISTER = (
    "INSERT INTO pluginkv_listeners (id, seen_at) VALUES (%s, extract(epoch FROM now())) "
    "ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at"
)
_UNREGISTER = "DELETE FROM pluginkv_listeners WHERE id = %s"


def notify_payload(scope: Scope) -> str:
    """The notice of a change to ``scope``, as the entries' trigger sends it."""
    return json.dumps([scope.workspace, scope.plugin], separators=(", ", ": "))


class NotifyListener:
    """A thread that ``LISTEN``s on its own connection and wakes the scopes notified."""

    def __init__(self, url: str, connect_kwargs: dict[str, Any], wake: WakeScopes) -> None:
        self._url = url
        self._kwargs = {**connect_kwargs, "autocommit": True}
        self._wake = wake
        self._stop = threading.Event()
        self._id = uuid.uuid4().hex
        self._refreshed = self._settle_at = 0.0
        # Listening before the caller reads any change: a commit after this
        # line sends a notice this connection receives.
        self._conn: psycopg.Connection[Any] | None = self._connect()
        self._thread = threading.Thread(target=self._run, name="pluginkv-listen", daemon=True)
        self._thread.start()

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self._url, **self._kwargs)
        try:
            conn.execute(f"LISTEN {CHANNEL}")
            self._register(conn)
        except BaseException:
            conn.close()
            raise
        self._settle_at = time.monotonic() + _SETTLE_SECONDS
        return conn

    def _register(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(_REGISTER, (self._id,))
        self._refreshed = time.monotonic()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._conn is None:
                    self._conn = self._connect()
                    self._wake(None)  # what was sent while no one listened
                for notice in self._conn.notifies(timeout=_IDLE_CHECK_SECONDS):
                    self._wake([_scope(notice.payload)])
                now = time.monotonic()
                if self._settle_at and now >= self._settle_at:
                    self._settle_at = 0.0
                    self._wake(None)
                if now - self._refreshed >= _REFRESH_SECONDS:
                    self._register(self._conn)
            except psycopg.Error as exc:
                if self._stop.is_set():
                    return
                logger.warning("listening for changes on PostgreSQL failed: %s", exc)
                self._drop()
                self._stop.wait(_RETRY_SECONDS)
            except Exception:  # the thread must outlive one failed wake
                logger.exception("waking the watchers failed")

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    def close(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        if self._conn is not None:
            try:
                self._conn.execute(_UNREGISTER, (self._id,))
            except psycopg.Error:
                pass  # past 90 s writers stop notifying anyway
        self._drop()


def _scope(payload: str) -> Scope:
    workspace, plugin = json.loads(payload)
    return Scope(workspace, plugin)
