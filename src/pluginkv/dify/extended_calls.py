"""pluginkv's storage calls on the plugin channel: each call's arguments and answer.

A plugin using ``pluginkv.dify.storage(session)`` sends
``{"opt": "pluginkv", "call": NAME, "args": {...}}`` as a storage request.
The answer is a ``response`` either way, so the plugin rebuilds the engine's
own exception: ``{"data": "ok", "result": ...}`` or
``{"data": "error", "error": {"code", "message", ...fields}}`` (the HTTP
API's error body).  Values travel as hex, as in Dify's four verbs; an
entry's ``metadata`` (a JSON object) and ``content_type`` travel as they are.
Keys are cleaned as in Dify's four verbs (``key_paths.py``), prefixes are not.
Commits and the change feed are ``change_calls.py``'s.

Both sides of the channel read this table: the host runs each call on its
reader threads or write groups (``host/extended_storage.py``), and
``pluginkv.testing.FakeSession`` answers it in process (``answer``).
"""

from __future__ import annotations

import binascii
from collections.abc import Callable
from typing import Any

from ..error_registry import error_fields
from ..errors import InvalidArgument, PluginKVError
from ..models import Entry, EntryMeta, shown_expiry
from ..storage import Storage
from .change_calls import run_atomic, run_changes, run_last_seq, wait_here
from .key_paths import clean_key

__all__ = ["CALLS", "answer", "checked_call", "error_answer", "run_call", "unhex"]

# call -> (writes?, how to run it); the args are the Storage method's keywords.
_Call = Callable[[Storage, dict[str, Any]], Any]


def _entry(entry: Entry | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {
        "key": entry.key,
        "value": entry.value.hex(),
        "size": entry.size,
        "version": entry.version,
        "created_at": entry.created_at,
        "updated_at": entry.updated_at,
        "expires_at": shown_expiry(entry.expires_at),
        "metadata": entry.metadata,
        "content_type": entry.content_type,
    }


def _meta(meta: EntryMeta | None) -> dict[str, Any] | None:
    if meta is None:
        return None
    return {**meta.as_dict(), "metadata": meta.metadata, "content_type": meta.content_type}


def unhex(text: object) -> bytes:
    """A value as it travels on the plugin channel (hex), decoded; ``InvalidArgument`` if not."""
    if not isinstance(text, str):
        raise InvalidArgument("value must be a hex string")
    try:
        return binascii.unhexlify(text)
    except (binascii.Error, ValueError):
        raise InvalidArgument("value is not valid hex") from None


def _get(s: Storage, a: dict[str, Any]) -> Any:
    value = s.get(a["key"])
    return None if value is None else value.hex()


def _set(s: Storage, a: dict[str, Any]) -> int:
    return s.set(
        a["key"],
        unhex(a["value"]),
        ttl=a.get("ttl"),
        if_version=a.get("if_version"),
        if_absent=bool(a.get("if_absent", False)),
        if_exists=bool(a.get("if_exists", False)),
        metadata=a.get("metadata"),
        content_type=a.get("content_type"),
    )


def _keys(s: Storage, a: dict[str, Any]) -> Any:
    page = s.keys(a.get("prefix", ""), limit=a.get("limit"), cursor=a.get("cursor"))
    return {"entries": [_meta(e) for e in page.entries], "next_cursor": page.next_cursor}


def _set_many(s: Storage, a: dict[str, Any]) -> dict[str, int]:
    items = a["items"]
    if not isinstance(items, dict):
        raise InvalidArgument("set_many takes an object of key to hex value")
    return s.set_many({key: unhex(value) for key, value in items.items()}, ttl=a.get("ttl"))


def _usage(s: Storage, a: dict[str, Any]) -> Any:
    used = s.usage()
    return {"bytes_used": used.bytes_used, "keys": used.keys, "quota_bytes": used.quota_bytes}


CALLS: dict[str, tuple[bool, _Call]] = {
    "get": (False, _get),
    "exist": (False, lambda s, a: s.exist(a["key"])),
    "get_entry": (False, lambda s, a: _entry(s.get_entry(a["key"]))),
    "get_meta": (False, lambda s, a: _meta(s.get_meta(a["key"]))),
    "keys": (False, _keys),
    "get_many": (False, lambda s, a: {k: v.hex() for k, v in s.get_many(a["keys"]).items()}),
    "usage": (False, _usage),
    "set": (True, _set),
    "delete": (
        True,
        lambda s, a: s.delete(
            a["key"], if_version=a.get("if_version"), if_exists=bool(a.get("if_exists", False))
        ),
    ),
    "set_many": (True, _set_many),
    "delete_many": (True, lambda s, a: s.delete_many(a["keys"])),
    "delete_prefix": (True, lambda s, a: s.delete_prefix(a["prefix"], all=a.get("all", False))),
    "incr": (True, lambda s, a: s.incr(a["key"], a.get("delta", 1))),
    "atomic": (True, lambda s, a: run_atomic(s, a, unhex)),
    # The page as it is now; a wait is the server's (host/extended_storage.py).
    "changes": (False, run_changes),
    "last_seq": (False, run_last_seq),
    # Diagnostics: a round trip that touches no storage, carrying a payload up
    # (noop ignores its args) or down (zeros); benchmarks/bench_host.py's baseline.
    "noop": (False, lambda s, a: None),
    "zeros": (False, lambda s, a: "00" * int(a.get("size", 0))),
}


def checked_call(request: dict[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    """Whether the call writes, its name and its cleaned arguments; ``InvalidArgument`` if bad."""
    name, args = request.get("call"), request.get("args") or {}
    if not isinstance(name, str) or name not in CALLS:
        raise InvalidArgument(f"unknown pluginkv storage call {name!r}")
    if not isinstance(args, dict):
        raise InvalidArgument("args must be an object")
    return CALLS[name][0], name, _cleaned(args)


def run_call(name: str, storage: Storage, args: dict[str, Any]) -> Any:
    """The result of one checked call on ``storage``; a missing or bad argument is refused."""
    try:
        return CALLS[name][1](storage, args)
    except KeyError as exc:
        raise InvalidArgument(f"{name} needs the argument {exc.args[0]!r}") from None
    except TypeError as exc:  # e.g. keys that are not a list
        raise InvalidArgument(f"bad arguments to {name}: {exc}") from None


def answer(request: dict[str, Any], storage: Storage) -> dict[str, Any]:
    """The ``response`` data of one call run here and now on ``storage`` (a ``changes``
    call waits on this thread)."""
    try:
        _, name, args = checked_call(request)
        if name == "changes":
            result = wait_here(storage, args, storage._settings.max_changes_wait_seconds)
        else:
            result = run_call(name, storage, args)
    except PluginKVError as exc:
        return error_answer(exc)
    return {"data": "ok", "result": result}


def error_answer(exc: PluginKVError) -> dict[str, Any]:
    """The ``response`` data of a call the engine refused: the error's code, message and fields."""
    return {"data": "error", "error": {"code": exc.code, "message": str(exc), **error_fields(exc)}}


def _cleaned(args: dict[str, Any]) -> dict[str, Any]:
    """``args`` with its keys cleaned as Dify's four verbs clean them; prefixes stay as given."""
    cleaned = dict(args)
    if isinstance(args.get("key"), str):
        cleaned["key"] = clean_key(args["key"])
    keys = args.get("keys")
    if isinstance(keys, list) and all(isinstance(key, str) for key in keys):
        cleaned["keys"] = [clean_key(key) for key in keys]
    items = args.get("items")
    if isinstance(items, dict):
        # A key that is no string stays as it is, for the engine to refuse.
        cleaned["items"] = {
            clean_key(key) if isinstance(key, str) else key: value for key, value in items.items()
        }
    return cleaned
