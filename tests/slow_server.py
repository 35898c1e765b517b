"""``SlowServer``: a backend whose point reads hang, as an unreachable database server's do."""

from __future__ import annotations

import threading

from pluginkv.backends.memory import MemoryBackend
from pluginkv.keys import Scope
from pluginkv.models import Entry


class SlowServer(MemoryBackend):
    """A memory backend whose point reads wait until the test sets ``release``.

    ``reads_block`` makes the service treat it as a database server, so its
    reads must run off the event loop; ``waiting`` is set once a read waits.
    """

    reads_block = True

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.waiting = threading.Event()

    def _hang(self) -> None:
        self.waiting.set()
        assert self.release.wait(10), "the test never released the read"

    def get(self, scope: Scope, key: str, now: float) -> Entry | None:
        self._hang()
        return super().get(scope, key, now)

    def get_value(self, scope: Scope, key: str, now: float) -> bytes | None:
        self._hang()
        return super().get_value(scope, key, now)

    def exists(self, scope: Scope, key: str, now: float) -> bool:
        self._hang()
        return super().exists(scope, key, now)
