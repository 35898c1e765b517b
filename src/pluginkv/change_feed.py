"""Reading a scope's change log: one page of ``changes()``, and the loop of ``watch()``.

The backends keep the log (``backends/base.py``): every change of a row, in
the transaction that made it, numbered by the scope's ``last_seq``.  Here is
what a reader may ask of it:

* ``since`` must not be past the scope's last change (``InvalidArgument``),
  and changes after it must still be kept: the oldest kept, or the next one
  to come when none is, must be at most ``since + 1``, else ``ChangesExpired``
  names where the log starts now.  Trimming only ever moves that start
  forward, so checking it after the page was read proves the page has no hole.
* ``next`` is the last sequence number the page accounts for: that of its
  last change when the page is full (more may follow), else the scope's last
  change, read before the page, so the changes outside the prefix in between
  are skipped, and one committed meanwhile comes on the next page.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from .backends.base import Backend, ReadTx
from .errors import ChangesExpired, InvalidArgument
from .keys import Scope
from .models import Change, ChangePage

if TYPE_CHECKING:
    from .storage import Storage

__all__ = ["read_changes", "wait_for_changes"]


def read_changes(
    backend: Backend, scope: Scope, prefix: str, since: int | None, limit: int
) -> ChangePage:
    """One page of the scope's changes after ``since`` (``None``: from the oldest kept)."""
    with backend.read() as tx:
        last = tx.scope_state(scope).last_seq
        if since is None:
            since = _first(tx, scope, last) - 1
        elif since > last:
            raise InvalidArgument(
                f"since {since} is past the last change of {scope} ({last}): "
                "a sequence number from another store?"
            )
        found = tx.changes(scope, prefix, since, last, limit)
        first = _first(tx, scope, last)
    if since < first - 1:
        raise ChangesExpired(
            f"the changes of {scope} after {since} are no longer kept: the oldest kept is "
            f"{first} (settings PLUGINKV_CHANGES_RETENTION_SECONDS and "
            "PLUGINKV_CHANGES_RETENTION_COUNT); read the keys again, then follow from there",
            oldest=first,
        )
    return ChangePage(found, found[-1].seq if len(found) == limit else last)


def _first(tx: ReadTx, scope: Scope, last: int) -> int:
    """The oldest change a reader can still get: the oldest kept, or the next to come."""
    oldest = tx.oldest_change(scope)
    return last + 1 if oldest is None else oldest


def wait_for_changes(storage: Storage, prefix: str, since: int, page_size: int) -> Iterator[Change]:
    """``watch()``: pages of changes after ``since``, waiting for commits between them."""
    while True:
        # Registered before the read: a commit after the read wakes the wait.
        with storage.change_waiter() as waiter:
            page = storage.changes(prefix, since=since, limit=page_size)
            since = page.next
            if not page.changes:
                waiter.wait()
                continue
        yield from page.changes
