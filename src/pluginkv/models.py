"""The values the API hands back: entries, key pages, usage."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import InvalidValueType, WrongValueType

__all__ = [
    "Change",
    "ChangeKind",
    "ChangePage",
    "CommitResult",
    "Entry",
    "EntryMeta",
    "JSONHelpers",
    "KeyPages",
    "Page",
    "Usage",
    "shown_expiry",
]

ChangeKind = Literal["set", "delete", "expire"]


def shown_expiry(expires_at: float | None) -> float | None:
    """``expires_at`` as the API shows it: an expiry that is no finite number is ``None``.

    Such a row can only come from outside the API (a hand edit, a database
    that stores ``Infinity``); it never expires, which is what ``None`` says,
    and JSON has no number for it.
    """
    if expires_at is None or math.isfinite(expires_at):
        return expires_at
    return None


@dataclass(frozen=True, slots=True)
class EntryMeta:
    """An entry without its value, as ``keys()`` lists it.

    Times are Unix timestamps in seconds; ``expires_at`` is ``None`` without a TTL.
    ``size`` counts the key's UTF-8 bytes plus the value's bytes, plus the
    metadata's and the content type's, as the quota does.  ``metadata`` (a JSON
    object) and ``content_type`` are ``None`` when the write gave none.
    """

    key: str
    size: int
    version: int
    created_at: float
    updated_at: float
    expires_at: float | None
    metadata: dict[str, Any] | None = None
    content_type: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The fields by name, as the HTTP API and the plugin channel list them."""
        return {
            "key": self.key,
            "size": self.size,
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "expires_at": shown_expiry(self.expires_at),
        }


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
    metadata: dict[str, Any] | None = None
    content_type: str | None = None


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
class Change:
    """One change of one key, as ``changes()`` and ``watch()`` report it.

    ``seq`` numbers the changes of a scope from 1, without gaps, in commit
    order.  ``kind`` is ``"set"`` (``version`` is the entry's new version),
    ``"delete"`` or ``"expire"`` (the entry expired and was reclaimed;
    ``version`` is the one the entry had).  ``at`` is when it was committed.
    """

    seq: int
    key: str
    kind: ChangeKind
    version: int
    at: float

    def as_dict(self) -> dict[str, Any]:
        """The fields by name, as a wire would send them."""
        return {
            "seq": self.seq,
            "key": self.key,
            "kind": self.kind,
            "version": self.version,
            "at": self.at,
        }


@dataclass(frozen=True, slots=True)
class ChangePage:
    """One page of ``changes()``: changes in ``seq`` order, and the ``since`` of the next page.

    ``next`` is the last sequence number this page accounts for: pass it as
    ``since`` to continue.  It can pass the last change listed, when later
    changes fell outside the prefix.
    """

    changes: list[Change]
    next: int

    def __iter__(self) -> Iterator[Change]:
        return iter(self.changes)

    def __len__(self) -> int:
        return len(self.changes)


@dataclass(frozen=True, slots=True)
class CommitResult:
    """What ``atomic().commit()`` did.

    ``ok`` is ``False`` when a check failed: then nothing changed, ``failed``
    names the keys whose checks failed (in the order checked), and
    ``versions`` is empty.  Otherwise ``versions`` holds the new version of
    every key the commit stored, and ``counters`` the sum of every key it
    incremented.
    """

    ok: bool
    versions: dict[str, int]
    failed: list[str]
    counters: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Usage:
    """What one scope stores: bytes (keys plus values), live keys, and its quota."""

    bytes_used: int
    keys: int
    quota_bytes: int


class JSONHelpers:
    """``set_json``/``get_json`` for any class with ``set`` and ``get``: one encoding everywhere."""

    def set(self, key: str, val: bytes, *, ttl: float | None = None) -> int | None:
        raise NotImplementedError

    def get(self, key: str) -> bytes | None:
        raise NotImplementedError

    def set_json(self, key: str, obj: Any, *, ttl: float | None = None) -> int | None:
        """Store ``obj`` as compact UTF-8 JSON; returns what ``set`` does (the new version)."""
        try:
            data = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidValueType(f"set_json cannot encode the value of {key!r}: {exc}") from None
        return self.set(key, data.encode("utf-8"), ttl=ttl)

    def get_json(self, key: str, default: Any = None) -> Any:
        """The decoded JSON stored at ``key``, or ``default`` when absent."""
        data = self.get(key)
        if data is None:
            return default
        try:
            return json.loads(data)
        except ValueError as exc:
            raise WrongValueType(f"the value of key {key!r} is not JSON: {exc}") from None


class KeyPages:
    """``iter_keys`` for any class with ``keys``: one loop over every page, cursors followed."""

    def keys(
        self, prefix: str = "", *, limit: int | None = None, cursor: str | None = None
    ) -> Page:
        raise NotImplementedError

    def iter_keys(self, prefix: str = "", *, page_size: int | None = None) -> Iterator[EntryMeta]:
        """Every entry (metadata only) whose key starts with ``prefix``, in key order.

        Reads one page of ``page_size`` entries at a time (``keys()``'s ``limit``)
        and asks for the next when this one is used up: keys written meanwhile
        may or may not appear, none appears twice.
        """
        cursor: str | None = None
        while True:
            page = self.keys(prefix, limit=page_size, cursor=cursor)
            yield from page.entries
            if page.next_cursor is None:
                return
            cursor = page.next_cursor
