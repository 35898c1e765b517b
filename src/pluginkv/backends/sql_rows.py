"""Rows of the SQL backends as the API's values: metadata stored as JSON text comes back a dict.

The columns come in the order of ``sql_templates.META_COLUMNS``: size, version,
created_at, updated_at, expires_at, metadata, content_type.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..entry_metadata import load_metadata
from ..models import Entry, EntryMeta

__all__ = ["entry", "entry_meta"]


def entry_meta(key: str, row: Sequence[Any]) -> EntryMeta:
    """``EntryMeta`` of ``key`` from the ``META_COLUMNS`` of its row."""
    size, version, created_at, updated_at, expires_at, metadata, content_type = row
    return EntryMeta(
        key,
        size,
        version,
        created_at,
        updated_at,
        expires_at,
        load_metadata(metadata),
        content_type,
    )


def entry(key: str, value: bytes, row: Sequence[Any]) -> Entry:
    """``Entry`` of ``key`` and ``value`` from the ``META_COLUMNS`` of its row."""
    size, version, created_at, updated_at, expires_at, metadata, content_type = row
    return Entry(
        key,
        value,
        version,
        size,
        created_at,
        updated_at,
        expires_at,
        load_metadata(metadata),
        content_type,
    )
