"""pluginkv's storage operations beyond Dify's four, over the same backwards-invocation channel.

A plugin using ``pluginkv.dify.storage(session)`` sends
``{"opt": "pluginkv", "call": NAME, "args": {...}}`` as a storage request.
The answer is a ``response`` either way, so the plugin rebuilds the engine's
own exception: ``{"data": "ok", "result": ...}`` or
``{"data": "error", "error": {"code", "message", ...details}}`` (the HTTP
API's error body).  Values travel as hex, as in Dify's four verbs.  A host
that does not know the operation (Dify's daemon) answers with an ``error``
event, which the plugin side turns into ``NotSupported``.  Keys are cleaned
as in Dify's four verbs (``key_paths.py``), prefixes are not.
"""

from __future__ import annotations

import binascii
import functools
from collections.abc import Callable
from typing import Any

from ..dify.key_paths import clean_key
from ..error_registry import error_fields
from ..errors import (
    InvalidArgument,
    PluginKVError,
)
from ..models import Entry, EntryMeta, shown_expiry
from ..services.readers import Readers
from ..services.write_groups import WriteQueue
from ..storage import Storage
from ..store import Store

__all__ = ["CALLS", "serve_extended", "unhex"]

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
    }


def _meta(meta: EntryMeta | None) -> dict[str, Any] | None:
    return None if meta is None else meta.as_dict()


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
    )


def _keys(s: Storage, a: dict[str, Any]) -> Any:
    page = s.keys(a.get("prefix", ""), limit=a.get("limit"), cursor=a.get("cursor"))
    return {"entries": [e.as_dict() for e in page.entries], "next_cursor": page.next_cursor}


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
    # Diagnostics: a round trip that touches no storage, carrying a payload up
    # (noop ignores its args) or down (zeros); benchmarks/bench_host.py's baseline.
    "noop": (False, lambda s, a: None),
    "zeros": (False, lambda s, a: "00" * int(a.get("size", 0))),
}


async def serve_extended(
    request: dict[str, Any],
    *,
    storage: Storage,
    store: Store,
    writer: WriteQueue,
    readers: Readers,
) -> dict[str, Any]:
    """The ``response`` data of one extended call; engine errors are part of it."""
    name, args = request.get("call"), request.get("args") or {}
    try:
        if not isinstance(name, str) or name not in CALLS:
            raise InvalidArgument(f"unknown pluginkv storage call {name!r}")
        if not isinstance(args, dict):
            raise InvalidArgument("args must be an object")
        args = _cleaned(args)
        writes, call = CALLS[name]
        try:
            if writes:
                result = await writer.run(store.backend, functools.partial(call, storage, args))
            else:
                result = await readers.run(store.backend, call, storage, args)
        except KeyError as exc:
            raise InvalidArgument(f"{name} needs the argument {exc.args[0]!r}") from None
        except TypeError as exc:  # e.g. keys that are not a list
            raise InvalidArgument(f"bad arguments to {name}: {exc}") from None
    except PluginKVError as exc:
        return {"data": "error", "error": _error(exc)}
    return {"data": "ok", "result": result}


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
        cleaned["items"] = {clean_key(key): value for key, value in items.items()}
    return cleaned


def _error(exc: PluginKVError) -> dict[str, Any]:
    return {"code": exc.code, "message": str(exc), **error_fields(exc)}
