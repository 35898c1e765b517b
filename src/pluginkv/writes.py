"""What a write stores: one ``Put`` per key, and the sums ``incr`` computes.

Shared by ``Storage``'s verbs and by atomic commits (``commits.py``).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .backends.base import Stored
from .errors import InvalidArgument, WrongValueType

__all__ = ["Put", "check_delta", "incremented"]

_INTEGER = re.compile(rb"-?[0-9]{1,19}")
_INT64 = (-(2**63), 2**63 - 1)


class Put(NamedTuple):
    """One entry a write stores: its value, size (as the quota counts it) and the rest."""

    value: bytes
    size: int
    expires_at: float | None
    metadata: str | None = None
    content_type: str | None = None


def check_delta(delta: object) -> None:
    """Refuse an ``incr`` delta that is no int of the signed 64-bit range."""
    if type(delta) is not int:
        raise InvalidArgument(f"incr delta must be an int, not {type(delta).__name__}")
    if not _INT64[0] <= delta <= _INT64[1]:
        raise InvalidArgument(f"incr delta {delta} is outside the signed 64-bit range")


def incremented(
    key: str, key_size: int, old: Stored | None, delta: int, now: float
) -> tuple[int, Put]:
    """The sum ``incr`` stores over ``old`` (read with its value), and the entry to store.

    The entry keeps the live one's expiry, metadata and content type.
    """
    if old is None or not old.live(now):
        result = delta
        value = str(result).encode("ascii")
        return result, Put(value, key_size + len(value), None)
    assert old.value is not None
    if _INTEGER.fullmatch(old.value) is None:
        raise WrongValueType(
            f"cannot increment key {key!r}: its value is not a decimal integer "
            f"(starts with {old.value[:20]!r})"
        )
    result = int(old.value) + delta
    if not _INT64[0] <= result <= _INT64[1]:
        raise InvalidArgument(f"incr of key {key!r} would leave the signed 64-bit range")
    value = str(result).encode("ascii")
    size = old.size - len(old.value) + len(value)
    return result, Put(value, size, old.expires_at, old.metadata, old.content_type)
