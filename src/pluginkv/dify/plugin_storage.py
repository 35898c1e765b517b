"""The full ``Storage`` API for plugin code, over the ``dify_plugin`` session's storage channel.

Runs inside the plugin's process.  Every call is a storage backwards
invocation; on pluginkv's host the operations beyond Dify's four arrive as
``opt: "pluginkv"`` (``extended_storage.py``) and errors come back as the
engine's own exceptions.  On a host without them (Dify's daemon), the four
documented verbs still work through Dify's own operations and the rest raise
``NotSupported``.  Imports nothing of the SDK at module level: the SDK is
only where the plugin runs.

``watch()`` long-polls: each ``changes`` call asks the host to wait up to
``WATCH_WAIT`` seconds for a change (less when the SDK's own wait for an
answer, ``MAX_INVOCATION_TIMEOUT``, is short), so a quiet scope costs one
call per wait, not a loop of empty answers.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..entry_metadata import check_content_type, check_metadata
from ..error_registry import error_from_code
from ..errors import (
    Forbidden,
    InvalidArgument,
    NotSupported,
    PluginKVError,
)
from ..keys import check_value, key_list
from ..models import (
    Change,
    ChangePage,
    CommitResult,
    Entry,
    EntryMeta,
    JSONHelpers,
    KeyPages,
    Page,
    Usage,
)
from .change_calls import WAIT_SETTING, change_page, changes_args, commit_result
from .channel_commit import ChannelCommit
from .messages import LOAD_FAILED, PERMISSION_DENIED

__all__ = ["WATCH_WAIT", "ChannelStorage"]

_NO_LIMIT = 2**63  # the host enforces the value limit; it may differ from this process's

WATCH_WAIT = 20.0
"""Seconds one ``changes`` call of ``watch()`` asks the host to wait for a change: under
the host's bound (``PLUGINKV_MAX_CHANGES_WAIT_SECONDS``, 60 by default) and far under
the SDK's wait for an answer (``MAX_INVOCATION_TIMEOUT``, 250 by default)."""


class ChannelStorage(JSONHelpers, KeyPages):
    """``Storage``'s methods for a plugin, over ``session.storage``'s channel.

    Get one with ``pluginkv.dify.storage(self.session)``.
    """

    def __init__(self, invocation: Any) -> None:
        self._invocation = invocation  # the SDK's StorageInvocation (session.storage)
        self._extended: bool | None = None  # unknown until the first call

    def __repr__(self) -> str:
        return "<ChannelStorage over the plugin session's storage>"

    # -- the documented four, on any host ----------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        """The value of ``key``, or ``None`` when it is absent."""
        if self._has_extended():
            found = self._call("get", key=key)
            return None if found is None else binascii.unhexlify(found)
        try:
            value: bytes = self._invocation.get(key)
        except Exception as exc:
            if str(exc) == LOAD_FAILED:
                return None
            raise _dify_error(exc) from None
        return value

    def set(
        self,
        key: str,
        val: bytes,
        *,
        ttl: float | None = None,
        if_version: int | None = None,
        if_absent: bool = False,
        if_exists: bool = False,
        metadata: dict[str, Any] | None = None,
        content_type: str | None = None,
    ) -> int | None:
        """Store ``val`` under ``key``; the new version, ``None`` on a host that has none.

        ``ttl``, ``if_version``, ``if_absent``, ``if_exists``, ``metadata`` (a
        JSON object kept with the value) and ``content_type`` need pluginkv's
        host; on Dify's daemon the value is stored and no version is known.
        """
        val = check_value(val, _NO_LIMIT)
        check_metadata(metadata, _NO_LIMIT)  # JSON it can carry; the host checks the size
        check_content_type(content_type, _NO_LIMIT)
        extra = ttl is not None or if_version is not None or if_absent or if_exists
        extra = extra or metadata is not None or content_type is not None
        if extra or self._has_extended():
            args: dict[str, Any] = {"if_exists": True} if if_exists else {}
            if metadata is not None or content_type is not None:
                args |= {"metadata": metadata, "content_type": content_type}
            version = self._call(
                "set",
                key=key,
                value=val.hex(),
                ttl=ttl,
                if_version=if_version,
                if_absent=if_absent,
                **args,
            )
            return None if version is None else int(version)
        try:
            self._invocation.set(key, val)
        except Exception as exc:
            raise _dify_error(exc) from None
        return None

    def delete(self, key: str, *, if_version: int | None = None, if_exists: bool = False) -> None:
        """Remove ``key``; removing an absent key is not an error (unless ``if_exists``)."""
        if if_version is not None or if_exists or self._has_extended():
            args: dict[str, Any] = {"if_exists": True} if if_exists else {}
            self._call("delete", key=key, if_version=if_version, **args)
            return
        try:
            self._invocation.delete(key)
        except Exception as exc:
            raise _dify_error(exc) from None

    def exist(self, key: str) -> bool:
        if self._has_extended():
            return bool(self._call("exist", key=key))
        try:
            return bool(self._invocation.exist(key))
        except Exception as exc:
            raise _dify_error(exc) from None

    # -- beyond Dify --------------------------------------------------------------------------
    def get_entry(self, key: str) -> Entry | None:
        found = self._call("get_entry", key=key)
        if found is None:
            return None
        return Entry(
            key=found["key"],
            value=binascii.unhexlify(found["value"]),
            version=found["version"],
            size=found["size"],
            created_at=found["created_at"],
            updated_at=found["updated_at"],
            expires_at=found["expires_at"],
            # A host from before metadata sends neither.
            metadata=found.get("metadata"),
            content_type=found.get("content_type"),
        )

    def get_meta(self, key: str) -> EntryMeta | None:
        found = self._call("get_meta", key=key)
        return None if found is None else EntryMeta(**found)

    def keys(
        self, prefix: str = "", *, limit: int | None = None, cursor: str | None = None
    ) -> Page:
        """One page of entries, each with its metadata and content type (see ``Storage.keys``)."""
        page = self._call("keys", prefix=prefix, limit=limit, cursor=cursor)
        return Page([EntryMeta(**meta) for meta in page["entries"]], page["next_cursor"])

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        found = self._call("get_many", keys=key_list(keys))
        return {key: binascii.unhexlify(value) for key, value in found.items()}

    def set_many(self, mapping: Mapping[str, bytes], *, ttl: float | None = None) -> dict[str, int]:
        if not isinstance(mapping, Mapping):
            raise InvalidArgument(
                f"set_many takes a mapping of key to bytes, not {type(mapping).__name__}"
            )
        items = {key: check_value(value, _NO_LIMIT).hex() for key, value in mapping.items()}
        versions = self._call("set_many", items=items, ttl=ttl)
        return {} if versions is None else {key: int(v) for key, v in versions.items()}

    def delete_many(self, keys: Iterable[str]) -> int:
        return int(self._call("delete_many", keys=key_list(keys)))

    def delete_prefix(self, prefix: str, *, all: bool = False) -> int:
        return int(self._call("delete_prefix", prefix=prefix, all=all))

    def incr(self, key: str, delta: int = 1) -> int:
        return int(self._call("incr", key=key, delta=delta))

    def usage(self) -> Usage:
        used = self._call("usage")
        return Usage(used["bytes_used"], used["keys"], used["quota_bytes"])

    # -- atomic commits and the change feed ---------------------------------------------------
    def atomic(self) -> ChannelCommit:
        """A commit of many operations, all or nothing, as ``Storage.atomic()``: chain
        ``check``/``set``/``delete``/``incr``, then ``commit()`` -> ``CommitResult``."""
        return ChannelCommit(self._commit)

    def _commit(self, args: dict[str, Any]) -> CommitResult:
        return commit_result(self._call("atomic", **args))

    def changes(
        self,
        prefix: str = "",
        *,
        since: int | None = None,
        limit: int | None = None,
        wait: float | None = None,
    ) -> ChangePage:
        """One page of the scope's changes after ``since``, as ``Storage.changes()``; with
        ``wait`` seconds (at most the host's ``PLUGINKV_MAX_CHANGES_WAIT_SECONDS``), the
        host waits that long for one when none is there yet.

        Raises ``ChangesExpired`` when the changes after ``since`` are no longer kept.
        """
        return change_page(self._call("changes", **changes_args(prefix, since, limit, wait)))

    def watch(
        self, prefix: str = "", *, since: int | None = None, page_size: int | None = None
    ) -> Iterator[Change]:
        """Every change whose key starts with ``prefix``, as it is committed; blocks between.

        As ``Storage.watch()``: ``since=None`` follows from now on, else from the
        change after ``since``; raises ``ChangesExpired`` if it falls behind the
        host's retention window.  A bad argument or an expired ``since`` raises
        here, before the first change.
        """
        changes_args(prefix, since, page_size, None)
        if since is None:
            since = int(self._call("last_seq"))
        first = self.changes(prefix, since=since, limit=page_size)
        return self._follow(prefix, first, page_size)

    def _follow(self, prefix: str, page: ChangePage, page_size: int | None) -> Iterator[Change]:
        wait = self._watch_wait()
        while True:
            yield from page.changes
            since = page.next
            while True:
                try:
                    page = self.changes(prefix, since=since, limit=page_size, wait=wait)
                    break
                except InvalidArgument as refusal:
                    # The host allows less: half as long, until it takes it (its bound is > 0).
                    if WAIT_SETTING not in str(refusal) or wait < 0.001:
                        raise
                    wait /= 2

    def _watch_wait(self) -> float:
        """``WATCH_WAIT``, or a quarter of the SDK's wait for an answer if that is shorter."""
        session = getattr(self._invocation, "session", None)
        patience = getattr(session, "max_invocation_timeout", None)
        if isinstance(patience, int | float) and patience > 0:
            return min(WATCH_WAIT, patience / 4)
        return WATCH_WAIT

    # -- the channel --------------------------------------------------------------------------
    def _has_extended(self) -> bool:
        if self._extended is None:
            try:
                self._call("usage")
            except NotSupported:
                pass
        return bool(self._extended)

    def _call(self, name: str, **args: Any) -> Any:
        if self._extended is False:
            raise _not_supported(name)
        request = {"opt": "pluginkv", "call": name, "args": args}
        try:
            answers = list(self._invocation._backwards_invoke(_storage_type(), dict, request))
        except Exception as exc:
            if str(exc) == PERMISSION_DENIED:
                raise Forbidden(PERMISSION_DENIED) from None
            if self._extended:
                # A host that answered these calls before: this one failed (its session
                # ended while a watch waited, say); the host still has them.
                raise PluginKVError(f"{name} failed: {exc}") from None
            # Dify's daemon: an error event for an operation it does not know.
            self._extended = False
            raise _not_supported(name, str(exc)) from None
        self._extended = True
        if not answers or not isinstance(answers[0], dict):
            raise PluginKVError(f"the host sent no answer to {name}")
        answer = answers[0]
        if answer.get("data") == "error":
            raise _error(answer.get("error") or {})
        return answer.get("result")


def _storage_type() -> Any:
    try:
        from dify_plugin.core.entities.invocation import (  # type: ignore[import-not-found]
            InvokeType,
        )
    except ImportError:  # a stand-in invocation in tests, say
        return "storage"
    return InvokeType.Storage


def _not_supported(name: str, detail: str = "") -> NotSupported:
    why = f" ({detail})" if detail else ""
    return NotSupported(
        f"{name} is not supported by this host: it serves only Dify's set, get, exist and "
        f"delete{why}"
    )


def _error(body: dict[str, Any]) -> PluginKVError:
    code, message = str(body.get("code")), str(body.get("message"))
    rebuilt = error_from_code(code, message, body)
    return rebuilt if rebuilt is not None else PluginKVError(message)


def _dify_error(exc: Exception) -> PluginKVError:
    """An error of Dify's own verbs: the text is all there is."""
    if str(exc) == PERMISSION_DENIED:
        return Forbidden(PERMISSION_DENIED)
    return PluginKVError(str(exc))


if TYPE_CHECKING:  # mypy holds the class to the Protocol of the API (api.py)
    from ..api import ChangesAPI, StorageAPI

    def _meets_the_protocol(storage: ChannelStorage) -> StorageAPI:
        return storage

    def _meets_the_changes_protocol(storage: ChannelStorage) -> ChangesAPI:
        return storage
