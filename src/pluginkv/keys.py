"""Validation of keys, values and scopes: one function each, used by every entry point.

Keys follow the rules that let a plugin written here run unchanged on Dify's
daemon, which maps keys to file paths: 1-256 bytes of UTF-8, no control
characters, no backslash, no ``..``.  Keys are opaque: nothing is normalised,
so ``a//b`` and ``a/b`` are two keys.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .errors import InvalidArgument, InvalidKey, InvalidValueType, ValueTooLarge

__all__ = [
    "FORBIDDEN_CHARACTERS",
    "MAX_KEY_BYTES",
    "PLUGIN_PATTERN",
    "WORKSPACE_PATTERN",
    "Scope",
    "check_conditions",
    "check_key",
    "check_keys",
    "check_prefix",
    "check_prefix_delete",
    "check_scope",
    "check_ttl",
    "check_value",
    "check_workspace",
    "key_list",
]

MAX_KEY_BYTES = 256

# The characters no key, prefix or scope name may hold, as a regex character class's
# contents: C0 controls, DEL and the C1 controls (Unicode category Cc), and the backslash.
# Public, with the two name patterns, for the API description (server/openapi).
FORBIDDEN_CHARACTERS = r"\x00-\x1f\x7f-\x9f\\"
WORKSPACE_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}"
_PLUGIN_PART = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}"
PLUGIN_PATTERN = rf"{_PLUGIN_PART}/{_PLUGIN_PART}"
_FORBIDDEN = re.compile(f"[{FORBIDDEN_CHARACTERS}]")
_WORKSPACE = re.compile(WORKSPACE_PATTERN)
_PLUGIN = re.compile(PLUGIN_PATTERN)


@dataclass(frozen=True, slots=True)
class Scope:
    """The unit of isolation and quota: one plugin in one workspace."""

    workspace: str
    plugin: str

    def __str__(self) -> str:
        return f"{self.plugin} in workspace {self.workspace}"


def check_key(key: object) -> int:
    """Raise ``InvalidKey`` unless ``key`` is a valid key; return its UTF-8 size."""
    # Fast path for the common printable-ASCII key: every test here is one C call.
    if (
        type(key) is str
        and key.isascii()
        and 0 < len(key) <= MAX_KEY_BYTES
        and key.isprintable()
        and "\\" not in key
        and ".." not in key
    ):
        return len(key)
    if type(key) is not str:
        raise InvalidKey(f"key must be a str, not {type(key).__name__}")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidKey(f"key {key!r} is not valid UTF-8 (lone surrogate)") from None
    if not 0 < size <= MAX_KEY_BYTES:
        raise InvalidKey(f"key must be 1 to {MAX_KEY_BYTES} bytes of UTF-8, got {size} bytes")
    _check_characters(key, "key")
    return size


def key_list(keys: object) -> list[object]:
    """The items of a collection of keys, unchecked; ``InvalidArgument`` for one string."""
    if isinstance(keys, (str, bytes)) or not isinstance(keys, Iterable):
        raise InvalidArgument(f"expected a collection of keys, not {type(keys).__name__}")
    return list(keys)


def check_keys(keys: object) -> list[str]:
    """The distinct keys of a collection, in order; ``InvalidKey``/``InvalidArgument`` if bad."""
    wanted: list[Any] = list(dict.fromkeys(key_list(keys)))
    for key in wanted:
        check_key(key)
    return wanted


def check_prefix(prefix: object) -> str:
    """Raise ``InvalidKey`` unless ``prefix`` could start a valid key (``""`` matches all)."""
    if type(prefix) is not str:
        raise InvalidKey(f"prefix must be a str, not {type(prefix).__name__}")
    if prefix:
        try:
            size = len(prefix.encode("utf-8"))
        except UnicodeEncodeError:
            raise InvalidKey(f"prefix {prefix!r} is not valid UTF-8") from None
        if size > MAX_KEY_BYTES:
            raise InvalidKey(f"prefix must be at most {MAX_KEY_BYTES} bytes, got {size}")
        _check_characters(prefix, "prefix")
    return prefix


def check_prefix_delete(prefix: object, all: bool) -> str:
    """The prefix of a prefix delete; the empty one (every key) only with ``all=True``.

    One unset variable turns a prefix into ``""``: wiping a whole scope must be said.
    """
    if type(all) is not bool:
        raise InvalidArgument(f"all must be a bool, got {all!r}")
    text = check_prefix(prefix)
    if text == "" and not all:
        raise InvalidArgument(
            "an empty prefix deletes every key of the scope: say so with all=True "
            "(HTTP: ?prefix=&all=true, CLI: --all)"
        )
    if text != "" and all:
        raise InvalidArgument(f"all=True deletes every key and takes the prefix '', not {text!r}")
    return text


def _check_characters(text: str, what: str) -> None:
    bad = _FORBIDDEN.search(text)
    if bad is not None:
        raise InvalidKey(
            f"{what} {text!r} contains the forbidden character {bad.group()!r} "
            f"at index {bad.start()} (no control characters or backslash)"
        )
    if ".." in text:
        raise InvalidKey(f"{what} {text!r} contains '..', which keys may not")


def check_value(value: object, limit: int) -> bytes:
    """Return ``value`` as ``bytes``; raise unless it is bytes-like and within ``limit``."""
    if type(value) is bytes:
        data = value
    elif isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
    elif isinstance(value, str):
        raise InvalidValueType(
            "value must be bytes, not str: encode it first, e.g. value.encode('utf-8'), "
            "or use set_json()"
        )
    else:
        raise InvalidValueType(
            f"value must be bytes, bytearray or memoryview, not {type(value).__name__}"
        )
    if len(data) > limit:
        raise ValueTooLarge(
            f"value is {len(data)} bytes, over the limit of {limit} bytes "
            "(setting PLUGINKV_MAX_VALUE_BYTES)",
            size=len(data),
            limit=limit,
        )
    return data


def check_workspace(workspace: object) -> str:
    """Return the workspace id, or raise ``InvalidArgument`` for a malformed one."""
    if not isinstance(workspace, str) or _WORKSPACE.fullmatch(workspace) is None:
        raise InvalidArgument(
            f"workspace {workspace!r} must be 1-128 characters of letters, digits, "
            "'_', '.', ':' or '-', starting with a letter or digit"
        )
    return workspace


def check_scope(workspace: object, plugin: object) -> Scope:
    """Return the scope, or raise ``InvalidArgument`` for a malformed workspace or plugin id."""
    workspace = check_workspace(workspace)
    if not isinstance(plugin, str) or _PLUGIN.fullmatch(plugin) is None:
        hint = (
            " (the plugin id has no version)"
            if isinstance(plugin, str) and (":" in plugin or "@" in plugin)
            else ""
        )
        raise InvalidArgument(
            f"plugin {plugin!r} must be 'author/name' of letters, digits, '_', '.' or '-'{hint}"
        )
    return Scope(workspace, plugin)


def check_conditions(if_version: int | None, if_absent: bool, if_exists: bool = False) -> None:
    """Raise ``InvalidArgument`` for malformed or contradictory write conditions."""
    if type(if_absent) is not bool:
        raise InvalidArgument(f"if_absent must be a bool, got {if_absent!r}")
    if type(if_exists) is not bool:
        raise InvalidArgument(f"if_exists must be a bool, got {if_exists!r}")
    if if_version is not None and (type(if_version) is not int or if_version < 1):
        raise InvalidArgument(f"if_version must be a positive int, got {if_version!r}")
    if (if_version is not None) + if_absent + if_exists > 1:
        raise InvalidArgument("if_version, if_absent and if_exists cannot be combined")


def check_ttl(ttl: float | None, maximum: float | None = None) -> float | None:
    """``ttl`` as float seconds (or ``None``); ``InvalidArgument`` unless positive and finite.

    With ``maximum`` (the setting ``PLUGINKV_MAX_TTL_SECONDS``), longer TTLs are refused too.
    """
    if ttl is None:
        return None
    number = isinstance(ttl, (int, float)) and not isinstance(ttl, bool)
    try:
        seconds = float(ttl) if number else math.nan
    except OverflowError:  # an int too large for a float
        seconds = math.inf
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidArgument(f"ttl must be a positive number of seconds, got {ttl!r}")
    if maximum is not None and seconds > maximum:
        raise InvalidArgument(
            f"ttl must be at most {maximum:.0f} seconds (setting PLUGINKV_MAX_TTL_SECONDS), "
            f"got {ttl!r}"
        )
    return seconds
