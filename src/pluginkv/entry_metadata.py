"""An entry's metadata and content type: what a write may give, and how it is kept.

Metadata is a JSON object a plugin keeps beside a value (who owns it, where it
came from); it is stored as compact UTF-8 JSON, and those bytes count towards
the entry's size, so towards the quota.  The content type says how to read the
value (``application/json``); it is sent as an HTTP header, so it is printable
ASCII, and its bytes count too.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .errors import InvalidArgument, ValueTooLarge

__all__ = [
    "check_content_type",
    "check_metadata",
    "extra_size",
    "load_metadata",
    "metadata_text",
    "stored_extra_size",
]

# type "/" subtype, then parameters: printable ASCII, as an HTTP header value may hold.
_CONTENT_TYPE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+[\x20-\x7e]*")


def check_metadata(metadata: object, limit: int) -> str | None:
    """``metadata`` (a JSON object, or ``None``) as the compact JSON text that is stored.

    Raises ``InvalidArgument`` for anything but a dict with string keys that
    JSON can encode, ``ValueTooLarge`` past ``limit`` bytes (setting
    ``PLUGINKV_MAX_METADATA_BYTES``).
    """
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise InvalidArgument(
            f"metadata must be a dict (a JSON object), not {type(metadata).__name__}"
        )
    try:
        text = metadata_text(metadata)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"metadata is not a JSON object: {exc}") from None
    if not all(isinstance(name, str) for name in metadata):
        # json.dumps turns int keys into strings: what comes back would differ.
        raise InvalidArgument("metadata keys must be strings")
    size = len(text.encode("utf-8"))
    if size > limit:
        raise ValueTooLarge(
            f"metadata is {size} bytes as JSON, over the limit of {limit} bytes "
            "(setting PLUGINKV_MAX_METADATA_BYTES)",
            size=size,
            limit=limit,
        )
    return text


def check_content_type(content_type: object, limit: int) -> str | None:
    """``content_type`` (``type/subtype``, parameters allowed), or ``None``.

    Raises ``InvalidArgument`` for a malformed one or one over ``limit`` bytes
    (setting ``PLUGINKV_MAX_CONTENT_TYPE_BYTES``).
    """
    if content_type is None:
        return None
    if not isinstance(content_type, str):
        raise InvalidArgument(f"content_type must be a str, not {type(content_type).__name__}")
    if len(content_type) > limit:
        raise InvalidArgument(
            f"content_type is {len(content_type)} bytes, over the limit of {limit} "
            "(setting PLUGINKV_MAX_CONTENT_TYPE_BYTES)"
        )
    if _CONTENT_TYPE.fullmatch(content_type) is None:
        raise InvalidArgument(
            f"content_type must be type/subtype in printable ASCII, e.g. application/json, "
            f"got {content_type!r}"
        )
    return content_type


def metadata_text(metadata: dict[str, Any]) -> str:
    """The compact JSON text metadata is stored (and counted) as."""
    return json.dumps(metadata, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def stored_extra_size(metadata: dict[str, Any] | None, content_type: str | None) -> int:
    """``extra_size`` of an entry's metadata as read back (a dict)."""
    return extra_size(None if metadata is None else metadata_text(metadata), content_type)


def extra_size(metadata: str | None, content_type: str | None) -> int:
    """The bytes metadata and content type add to an entry's size (and to the quota)."""
    size = 0 if metadata is None else len(metadata.encode("utf-8"))
    return size + (0 if content_type is None else len(content_type))


def load_metadata(text: str | None) -> dict[str, Any] | None:
    """Stored metadata text back as the dict it was."""
    loaded: dict[str, Any] | None = None if text is None else json.loads(text)
    return loaded
