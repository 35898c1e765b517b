"""The values the API hands back: entries, key pages, usage."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Entry", "EntryMeta", "Page", "Usage"]


@dataclass(frozen=True, slots=True)
class EntryMeta:
    """An entry without its value, as ``keys()`` lists it.

    Times are Unix timestamps in seconds; ``expires_at`` is ``None`` without a TTL.
    ``size`` counts the key's UTF-8 bytes plus the value's bytes, as the quota does.
    """

    key: str
    size: int
    version: int
    created_at: float
    updated_at: float
    expires_at: float | None


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored entry with its value, as ``get_entry()`` returns it."""

    key: str
    value: bytes
    version: int
    size: int
    created_at: float
    updated_at: float
    expires_at: float | None


@dataclass(frozen=True, slots=True)
class Page:
    """One page of ``keys()``: entries in key order and the cursor of the next page."""

    entries: list[EntryMeta]
    next_cursor: str | None

    def __iter__(self) -> Iterator[EntryMeta]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


@dataclass(frozen=True, slots=True)
class Usage:
    """What one scope stores: bytes (keys plus values), live keys, and its quota."""

    bytes_used: int
    keys: int
    quota_bytes: int
