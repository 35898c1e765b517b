"""A read-only store (setting ``PLUGINKV_READ_ONLY``): any backend with its writes refused.

Every write of the engine — ``Storage``'s verbs, the store's administration
(quotas, purges, the sweeper) and imports — opens ``write()`` or takes one of
the ``*_now`` fast paths, so refusing those three here refuses them all, on
every backend, before anything reaches the database; reads pass straight
through.  SQLite also opens its file read-only, a second guarantee; neither
SQL backend migrates a read-only store (``check_schema``).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from ..config import env_name
from ..errors import ReadOnly
from ..keys import Scope
from ..models import Entry, EntryMeta
from .base import Backend, ChangeListener, ReadTx, WakeScopes, WriteTx
from .migrations import MIGRATIONS

__all__ = ["ReadOnlyBackend", "check_schema", "read_only_error"]

SETTING = env_name("read_only")


def read_only_error() -> ReadOnly:
    return ReadOnly(
        f"the store is read-only (setting {SETTING}=true): writes are refused, reads are "
        f"served; restart without {SETTING} to write again"
    )


def check_schema(database: str, applied: Sequence[str]) -> None:
    """Raise ``ReadOnly`` unless ``database`` has every migration: a read-only store runs none."""
    missing = [migration.name for migration in MIGRATIONS if migration.name not in applied]
    if missing:
        raise ReadOnly(
            f"{database} lacks the migrations {', '.join(missing)}, which a read-only store "
            f"cannot apply: start pluginkv on it once without {SETTING} to migrate it"
        )


class ReadOnlyBackend(Backend):
    """``backend`` for reads; every write raises ``ReadOnly`` without touching it."""

    def __init__(self, backend: Backend) -> None:
        self.inner = backend
        self.name = backend.name
        self.reads_block = backend.reads_block
        self.concurrent_writes = backend.concurrent_writes

    def __repr__(self) -> str:
        return f"<ReadOnlyBackend {self.inner!r}>"

    def __getattr__(self, name: str) -> Any:
        # What a backend offers beyond the contract (a SQLite file's path, say)
        # stays within reach of tools and tests.
        return getattr(self.inner, name)

    def get(self, scope: Scope, key: str, now: float) -> Entry | None:
        return self.inner.get(scope, key, now)

    def get_value(self, scope: Scope, key: str, now: float) -> bytes | None:
        return self.inner.get_value(scope, key, now)

    def get_meta(self, scope: Scope, key: str, now: float) -> EntryMeta | None:
        return self.inner.get_meta(scope, key, now)

    def exists(self, scope: Scope, key: str, now: float) -> bool:
        return self.inner.exists(scope, key, now)

    def read(self) -> AbstractContextManager[ReadTx]:
        return self.inner.read()

    def put_now(
        self,
        scope: Scope,
        key: str,
        value: bytes,
        size: int,
        now: float,
        expires_at: float | None,
        quota: int,
    ) -> int | None:
        raise read_only_error()

    def delete_now(self, scope: Scope, key: str, now: float) -> None:
        raise read_only_error()

    def write(self) -> AbstractContextManager[WriteTx]:
        raise read_only_error()

    def group(self) -> AbstractContextManager[None]:
        # No transaction to open: each write of the group is refused on its own,
        # with the same error it gets alone.
        return nullcontext()

    def listen_for_changes(self, wake: WakeScopes) -> ChangeListener | None:
        # Another process may write to the database this store only reads.
        return self.inner.listen_for_changes(wake)

    def applied_migrations(self) -> list[str]:
        return self.inner.applied_migrations()

    def close(self) -> None:
        self.inner.close()
