"""The exceptions pluginkv raises, all under one root.

::

    PluginKVError
    ├── InvalidKey            (also ValueError)  a key breaks the key rules
    ├── InvalidArgument       (also ValueError)  a bad TTL, limit, cursor, batch size, ...
    │   └── InvalidExportFile                    a line of a file to import is malformed
    ├── InvalidValueType      (also TypeError)   a value that is not bytes-like
    ├── WrongValueType        (also ValueError)  incr on a non-integer, get_json on non-JSON
    ├── ValueTooLarge                            a value over the per-value limit
    ├── QuotaExceeded                            a write that would pass the scope's quota
    ├── DiskFull                                 the database's disk is full: writes refused
    ├── VersionConflict                          a compare-and-set or set-if-absent that failed
    ├── ChangesExpired                           changes asked for are past the retention window
    ├── BackendUnavailable                       the database cannot be reached or used
    ├── ReadOnly                                 a write to a store opened read-only
    ├── Unauthorized                             no token, or a bad, expired or foreign one
    ├── Forbidden                                a valid token that does not allow this call
    ├── PluginNotFound                           no running plugin serves it for the workspace
    ├── PluginFailed                             a plugin answered a request with an error
    ├── PluginTimeout                            a plugin did not finish a request in time
    └── NotSupported                             the plugin host does not offer this operation

Driver errors (sqlite3, psycopg, HTTP) are translated into these at the backend
boundary, once.  An absent key is never an error on ``get``: it returns
``None``; an outage is never reported as an absent key.

This module is also the registry every wire reads: each class declares its
``code``, its ``http_status``, the ``fields`` it carries beyond the message,
and the CLI's ``exit_code``, once.  The HTTP service, both HTTP clients, the
plugin channel, the CLI, the OpenAPI document and docs/http-api.md take them
from here, through ``error_registry.py``.  A class without its own value
inherits its parent's, so a subclass never falls back to 500.  Codes that
name no exception stay with what answers them: ``not_found`` (an absent key
is an answer, not an error), the router's ``no_such_route`` and
``method_not_allowed``, and the listener's ``request_timeout``,
``headers_too_large`` and ``too_many_connections``.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "BackendUnavailable",
    "ChangesExpired",
    "DiskFull",
    "Forbidden",
    "InvalidArgument",
    "InvalidExportFile",
    "InvalidKey",
    "InvalidValueType",
    "NotSupported",
    "PluginFailed",
    "PluginKVError",
    "PluginNotFound",
    "PluginTimeout",
    "QuotaExceeded",
    "ReadOnly",
    "Unauthorized",
    "ValueTooLarge",
    "VersionConflict",
    "WrongValueType",
]


class PluginKVError(Exception):
    """Root of every error pluginkv raises on purpose."""

    code: ClassVar[str] = "pluginkv_error"
    # 500 only for the root itself: every class below declares its own or its parent's.
    http_status: ClassVar[int] = 500
    # The attributes the constructor takes by keyword, sent beside the message.
    fields: ClassVar[tuple[str, ...]] = ()
    exit_code: ClassVar[int] = 3  # the CLI's "pluginkv refused or failed"


class InvalidKey(PluginKVError, ValueError):
    """The key is not 1-256 bytes of UTF-8 without control characters, ``\\`` or ``..``."""

    code = "invalid_key"
    http_status = 400


class InvalidArgument(PluginKVError, ValueError):
    """An argument other than the key or value is out of range or malformed."""

    code = "invalid_argument"
    http_status = 400


class InvalidExportFile(InvalidArgument):
    """A file given to import is not a valid export; ``line`` is the number of the bad line."""

    code = "invalid_export_file"
    fields = ("line",)

    def __init__(self, message: str, *, line: int) -> None:
        super().__init__(message)
        self.line = line


class InvalidValueType(PluginKVError, TypeError):
    """A value is not ``bytes``, ``bytearray`` or ``memoryview``."""

    code = "invalid_value_type"
    http_status = 400


class WrongValueType(PluginKVError, ValueError):
    """The stored value cannot be read the way the call asks (integer, JSON)."""

    code = "wrong_value_type"
    http_status = 400


class ValueTooLarge(PluginKVError):
    """A value is larger than the per-value limit."""

    code = "value_too_large"
    http_status = 413
    fields = ("size", "limit")

    def __init__(self, message: str, *, size: int, limit: int) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit


class QuotaExceeded(PluginKVError):
    """A write would take the scope's usage past its quota; nothing was stored.

    ``used`` is what the scope holds now, ``limit`` its quota and ``needed`` the
    bytes the refused write would have added (all in bytes, keys included).
    """

    code = "quota_exceeded"
    http_status = 507
    fields = ("used", "limit", "needed")

    def __init__(self, message: str, *, used: int, limit: int, needed: int) -> None:
        super().__init__(message)
        self.used = used
        self.limit = limit
        self.needed = needed


class DiskFull(PluginKVError):
    """The filesystem under the database is full: writes are refused, deletes still run.

    Not a quota: the scope may be far below its own.  Writes succeed again once
    the disk has room (deletes through pluginkv make some; see docs/security.md).
    """

    code = "disk_full"
    # 507 like a quota, with its own code: the request is valid, the scope may
    # be far below its quota, and deletes still succeed (docs/security.md).
    http_status = 507


class VersionConflict(PluginKVError):
    """A conditional write found the entry in another state than required.

    ``expected`` is the version the caller named (``None`` for set-if-absent),
    ``actual`` the entry's current version (``None`` when it is absent).
    """

    code = "version_conflict"
    # 412, HTTP's "Precondition Failed": every conflict is a failed If-Match or
    # If-None-Match (or its Python twin), and the answer carries the current ETag.
    http_status = 412
    fields = ("key", "expected", "actual")
    exit_code = 4  # the CLI's "a --if-version / --if-absent condition failed"

    def __init__(self, message: str, *, key: str, expected: int | None, actual: int | None) -> None:
        super().__init__(message)
        self.key = key
        self.expected = expected
        self.actual = actual


class ChangesExpired(PluginKVError):
    """``changes(since=...)`` asked for changes the store no longer keeps.

    The change log keeps changes for a retention window (settings
    ``PLUGINKV_CHANGES_RETENTION_SECONDS`` and ``PLUGINKV_CHANGES_RETENTION_COUNT``);
    ``oldest`` is the sequence number of the oldest change still kept (one past
    the last change when none is kept).  A client re-reads what it follows,
    then continues from ``changes()``'s ``next``, as after an etcd compaction.
    """

    code = "changes_expired"
    # 410, "Gone": the changes existed and were dropped; asking again will not bring them.
    http_status = 410
    fields = ("oldest",)

    def __init__(self, message: str, *, oldest: int) -> None:
        super().__init__(message)
        self.oldest = oldest


class BackendUnavailable(PluginKVError):
    """The database could not answer: locked past the timeout, unreachable, broken."""

    code = "backend_unavailable"
    http_status = 503


class ReadOnly(PluginKVError):
    """The store is read-only (setting ``PLUGINKV_READ_ONLY``): a write was refused.

    Also what opening a read-only store raises when it would have to write to
    open: a database that does not exist yet, or a schema behind this version.
    """

    code = "read_only"
    # 503, not a 4xx: the request is valid and will succeed once the operator
    # ends the read-only spell (an export, a backup), which is what "unavailable
    # for maintenance" means; 403 would blame the token.  Clients tell it from
    # an outage by its code and do not retry it (client/_wire.py).
    http_status = 503


class Unauthorized(PluginKVError):
    """The request carries no valid token: missing, malformed, tampered, expired."""

    code = "unauthorized"
    http_status = 401


class Forbidden(PluginKVError):
    """The token is valid but does not allow this call (read-only, not admin)."""

    code = "forbidden"
    http_status = 403


class PluginNotFound(PluginKVError):
    """No running plugin serves this ``author/name`` for this workspace."""

    code = "plugin_not_found"
    http_status = 404


class PluginFailed(PluginKVError):
    """The plugin answered the request with an error (its type and message are in the text).

    ``error_type`` names the exception the plugin's code raised; ``None`` when
    the plugin failed otherwise (its channel closed, say).
    """

    code = "plugin_error"
    http_status = 502
    fields = ("error_type",)

    def __init__(self, message: str, *, error_type: str | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type


class PluginTimeout(PluginKVError):
    """The plugin did not finish the request within the session timeout."""

    code = "plugin_timeout"
    http_status = 504


class NotSupported(PluginKVError):
    """The plugin host answers only Dify's four storage verbs, not this operation."""

    code = "not_supported"
    # 501, "Not Implemented": the host lacks the operation, the request is fine.
    http_status = 501
