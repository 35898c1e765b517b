"""What ``ChannelStorage.atomic()`` returns: the engine's ``Commit``, sent as one call.

The checks and writes are checked as they are given, as far as this process
can (a key as the channel cleans it, a value's type, a TTL, metadata, a
delta), and raise the engine's exceptions there, as ``Storage.atomic()``
does.  What depends on the host's settings (sizes, the quota, the commit's
own limits) is the host's to refuse, from ``commit()``.  ``commit()`` sends
the whole commit as one ``atomic`` call (``change_calls.py``), once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..commit_operations import CommitOperations
from ..keys import check_key
from ..models import CommitResult
from .key_paths import clean_key

__all__ = ["ChannelCommit"]


class ChannelCommit(CommitOperations):
    """Checks and writes on the plugin's scope, applied together by ``commit()`` on the
    host; each method returns the commit, so calls chain."""

    def __init__(self, send: Callable[[dict[str, Any]], CommitResult]) -> None:
        super().__init__(_check_key, bytes.hex)
        self._send = send

    def commit(self) -> CommitResult:
        """Run the checks, then, if all hold, every write, in one transaction on the host.

        A failed check is ``CommitResult(ok=False, failed=[keys])``, having
        changed nothing; the host's refusals (``QuotaExceeded``,
        ``ValueTooLarge``, ...) raise as the engine's exceptions.
        """
        payload = self._take()
        return CommitResult(True, {}, []) if payload is None else self._send(payload)


def _check_key(key: object) -> None:
    """Refuse a key as the host would: as Dify's daemon cleans it, then by the engine's rules."""
    if not isinstance(key, str):
        check_key(key)  # raises InvalidKey naming the type
        return
    check_key(clean_key(key))
