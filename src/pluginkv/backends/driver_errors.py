"""The one way a backend turns its driver's errors into pluginkv's.

Every backend method runs its driver calls inside ``with self._errors:``, a
``Translated`` holding the driver's error class and the backend's translation
(its table of what a locked, full, broken or closed database becomes): no
driver exception leaves a backend, and the messages are decided in one place
per driver.  SQLite's point reads call the same translation from a ``try``
instead (see ``SQLiteBackend.get``): the ``with`` cost them 5%.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Generic, TypeVar

from ..errors import PluginKVError

__all__ = ["Translated"]

E = TypeVar("E", bound=Exception)


class Translated(Generic[E]):
    """Within the block, an ``E`` leaves as ``translate(error)``, raised from it.

    Reusable and re-entrant (it keeps no state), and a class rather than a
    generator context manager: it is on every read's and write's path.
    """

    __slots__ = ("_driver_error", "_translate")

    def __init__(self, driver_error: type[E], translate: Callable[[E], PluginKVError]) -> None:
        self._driver_error = driver_error
        self._translate = translate

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, self._driver_error):
            raise self._translate(exc) from exc

    def raise_translated(self, exc: BaseException | None) -> None:
        """Raise ``exc`` translated when it is the driver's; else do nothing.

        For an ``__exit__`` that first rolls back and then lets the error out.
        """
        if isinstance(exc, self._driver_error):
            raise self._translate(exc) from exc
