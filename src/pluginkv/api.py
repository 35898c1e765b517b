"""The Storage API as a type: what every implementation offers, in process or over a wire.

``StorageAPI`` is met by ``Storage`` (in process), ``RemoteStorage`` (HTTP)
and ``ChannelStorage`` (a plugin's session channel); ``AsyncStorageAPI`` is
the same API awaited, met by ``AsyncRemoteStorage``.  Code that takes one
of these works on any of them.  Each implementation's module asserts, for
mypy, that its class satisfies the Protocol, so a signature that drifts
fails the type check rather than a caller.

``set`` returns ``int | None``: the new version, ``None`` only from
``ChannelStorage`` on Dify's own daemon, which keeps no versions.

``ChangesAPI`` is what follows changes and commits many keys at once
(``atomic``, ``changes``, ``watch``), met by ``Storage``, ``RemoteStorage``
and ``ChannelStorage``; ``AsyncChangesAPI`` is the same awaited (``watch`` an
async iterator), met by ``AsyncRemoteStorage``.  It is a Protocol of its own:
on Dify's daemon ``ChannelStorage``'s ``atomic``, ``changes`` and ``watch``
raise ``NotSupported``, as its other calls beyond the four verbs do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Any, Protocol, Self, runtime_checkable

from .models import Change, ChangePage, CommitResult, Entry, EntryMeta, Page, Usage

__all__ = [
    "AsyncChangesAPI",
    "AsyncCommitBuilder",
    "AsyncStorageAPI",
    "ChangesAPI",
    "CommitBuilder",
    "StorageAPI",
]


@runtime_checkable
class StorageAPI(Protocol):
    """One scope's keys and values: the methods of ``pluginkv.Storage`` that every client has."""

    def get(self, key: str) -> bytes | None: ...

    def exist(self, key: str) -> bool: ...

    def set(
        self,
        key: str,
        val: bytes,
        *,
        ttl: float | None = None,
        if_version: int | None = None,
        if_absent: bool = False,
        if_exists: bool = False,
    ) -> int | None: ...

    def delete(
        self, key: str, *, if_version: int | None = None, if_exists: bool = False
    ) -> None: ...

    def get_entry(self, key: str) -> Entry | None: ...

    def get_meta(self, key: str) -> EntryMeta | None: ...

    def keys(
        self, prefix: str = "", *, limit: int | None = None, cursor: str | None = None
    ) -> Page: ...

    def iter_keys(
        self, prefix: str = "", *, page_size: int | None = None
    ) -> Iterator[EntryMeta]: ...

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]: ...

    def set_many(
        self, mapping: Mapping[str, bytes], *, ttl: float | None = None
    ) -> dict[str, int]: ...

    def delete_many(self, keys: Iterable[str]) -> int: ...

    def delete_prefix(self, prefix: str, *, all: bool = False) -> int: ...

    def incr(self, key: str, delta: int = 1) -> int: ...

    def set_json(self, key: str, obj: Any, *, ttl: float | None = None) -> int | None: ...

    def get_json(self, key: str, default: Any = None) -> Any: ...

    def usage(self) -> Usage: ...


@runtime_checkable
class AsyncStorageAPI(Protocol):
    """``StorageAPI`` with every method awaited and ``iter_keys`` an async iterator."""

    async def get(self, key: str) -> bytes | None: ...

    async def exist(self, key: str) -> bool: ...

    async def set(
        self,
        key: str,
        val: bytes,
        *,
        ttl: float | None = None,
        if_version: int | None = None,
        if_absent: bool = False,
        if_exists: bool = False,
    ) -> int | None: ...

    async def delete(
        self, key: str, *, if_version: int | None = None, if_exists: bool = False
    ) -> None: ...

    async def get_entry(self, key: str) -> Entry | None: ...

    async def get_meta(self, key: str) -> EntryMeta | None: ...

    async def keys(
        self, prefix: str = "", *, limit: int | None = None, cursor: str | None = None
    ) -> Page: ...

    def iter_keys(
        self, prefix: str = "", *, page_size: int | None = None
    ) -> AsyncIterator[EntryMeta]: ...

    async def get_many(self, keys: Iterable[str]) -> dict[str, bytes]: ...

    async def set_many(
        self, mapping: Mapping[str, bytes], *, ttl: float | None = None
    ) -> dict[str, int]: ...

    async def delete_many(self, keys: Iterable[str]) -> int: ...

    async def delete_prefix(self, prefix: str, *, all: bool = False) -> int: ...

    async def incr(self, key: str, delta: int = 1) -> int: ...

    async def set_json(self, key: str, obj: Any, *, ttl: float | None = None) -> int | None: ...

    async def get_json(self, key: str, default: Any = None) -> Any: ...

    async def usage(self) -> Usage: ...


class CommitBuilder(Protocol):
    """What ``atomic()`` returns: checks and writes, chained, then ``commit()``."""

    def check(self, key: str, *, version: int | None) -> Self: ...

    def set(
        self,
        key: str,
        val: bytes,
        *,
        ttl: float | None = None,
        metadata: dict[str, Any] | None = None,
        content_type: str | None = None,
    ) -> Self: ...

    def delete(self, key: str) -> Self: ...

    def incr(self, key: str, delta: int = 1) -> Self: ...

    def commit(self) -> CommitResult: ...


@runtime_checkable
class ChangesAPI(Protocol):
    """Atomic commits and the change feed of one scope (``Storage``, ``RemoteStorage``,
    ``ChannelStorage``)."""

    def atomic(self) -> CommitBuilder: ...

    def changes(
        self, prefix: str = "", *, since: int | None = None, limit: int | None = None
    ) -> ChangePage: ...

    def watch(
        self, prefix: str = "", *, since: int | None = None, page_size: int | None = None
    ) -> Iterator[Change]: ...


class AsyncCommitBuilder(Protocol):
    """``CommitBuilder`` with ``commit()`` awaited: what ``AsyncRemoteStorage.atomic()`` returns."""

    def check(self, key: str, *, version: int | None) -> Self: ...

    def set(
        self,
        key: str,
        val: bytes,
        *,
        ttl: float | None = None,
        metadata: dict[str, Any] | None = None,
        content_type: str | None = None,
    ) -> Self: ...

    def delete(self, key: str) -> Self: ...

    def incr(self, key: str, delta: int = 1) -> Self: ...

    async def commit(self) -> CommitResult: ...


@runtime_checkable
class AsyncChangesAPI(Protocol):
    """``ChangesAPI`` awaited, ``watch`` an async iterator (``AsyncRemoteStorage``)."""

    def atomic(self) -> AsyncCommitBuilder: ...

    async def changes(
        self, prefix: str = "", *, since: int | None = None, limit: int | None = None
    ) -> ChangePage: ...

    def watch(
        self, prefix: str = "", *, since: int | None = None, page_size: int | None = None
    ) -> AsyncIterator[Change]: ...
