"""Export and import: a store's live entries as JSON Lines, to back it up or move it.

The format (``pluginkv-export``, version 1) is documented in ``docs/cli.md``:
a header line, then per scope a scope line followed by its entries in key
order, then an end line with the counts.

Export reads each scope in one read transaction, so a scope comes out as one
consistent snapshot (its entries, its version counter and its quota override
agree), while the store as a whole is never held in one: a transaction per
scope is short because a scope is bounded by its quota (100 MiB by default),
whereas one over the whole store would pin SQLite's WAL or PostgreSQL's
vacuum horizon for as long as the export runs.  Inside the transaction the
keys are paged with ``scan`` and the values fetched in batches of bounded
bytes, so memory stays bounded whatever the store's size.

Import writes each scope in one write transaction, fed line by line as it is
read: a refusal (an existing key, the quota, a value over the limit) or a
malformed line rolls the scope back, so a scope is imported whole or not at
all.  The transaction commits when the next scope line or the end line
arrives; a file that ends before its end line (a truncated copy) leaves its
last scope out.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any, NamedTuple

from . import __version__
from .backends.base import ScopeState, Stored, WriteTx
from .entry_metadata import check_content_type, check_metadata, extra_size
from .errors import (
    InvalidArgument,
    InvalidExportFile,
    InvalidKey,
    PluginKVError,
    QuotaExceeded,
    ValueTooLarge,
    VersionConflict,
)
from .keys import Scope, check_key, check_scope, check_workspace
from .models import EntryMeta, shown_expiry
from .store import Store

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "ExportReport",
    "ImportReport",
    "export_store",
    "import_lines",
]

FORMAT = "pluginkv-export"
FORMAT_VERSION = 1
PAGE_KEYS = 256  # keys per scan page and per import batch
BATCH_BYTES = 4 * 1024 * 1024  # values fetched, or held before writing, at once
_MAX_INT64 = 2**63 - 1


@dataclass
class ExportReport:
    """What ``export_store`` wrote: scopes, entries and their bytes (keys plus values)."""

    scopes: int = 0
    entries: int = 0
    bytes: int = 0


@dataclass
class ImportReport:
    """What ``import_lines`` stored, and what it left out and why.

    ``expired`` counts entries already expired at import time; ``unchanged``
    those the target already held exactly (same value, version and times);
    ``refused`` holds each scope that was not imported, with the error that
    refused it.
    """

    scopes: int = 0
    entries: int = 0
    bytes: int = 0
    expired: int = 0
    unchanged: int = 0
    refused: list[tuple[Scope, PluginKVError]] = field(default_factory=list)


# -- export ------------------------------------------------------------------------------
def export_store(
    store: Store,
    out: IO[bytes],
    *,
    workspace: str | None = None,
    plugin: str | None = None,
    page_keys: int = PAGE_KEYS,
    batch_bytes: int = BATCH_BYTES,
    on_entry: Callable[[int], None] | None = None,
) -> ExportReport:
    """Write every live entry of ``store`` (or of one workspace, or one scope) to ``out``.

    ``on_entry`` is called with the size of each entry written (for a progress bar).

    Raises:
        InvalidArgument: a malformed workspace or plugin id, or a plugin without workspace.
        BackendUnavailable: the database failed; what was written is incomplete
            (it has no end line, so an import refuses its last scope).
    """
    scopes = _scopes_to_export(store, workspace, plugin)
    report = ExportReport()
    exported_at = datetime.fromtimestamp(store.clock(), UTC).isoformat().replace("+00:00", "Z")
    _write(
        out,
        {
            "type": "header",
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "pluginkv_version": __version__,
            "exported_at": exported_at,
        },
    )
    for scope in scopes:
        _export_scope(store, scope, out, report, page_keys, batch_bytes, on_entry)
    _write(out, {"type": "end", "scopes": report.scopes, "entries": report.entries})
    return report


def _scopes_to_export(store: Store, workspace: str | None, plugin: str | None) -> list[Scope]:
    if plugin is not None:
        if workspace is None:
            raise InvalidArgument("a plugin is exported from one workspace: name the workspace too")
        return [check_scope(workspace, plugin)]
    if workspace is not None:
        check_workspace(workspace)
    with store.backend.read() as tx:
        listed = tx.scopes()
    return [scope for scope, _ in listed if workspace is None or scope.workspace == workspace]


def _export_scope(
    store: Store,
    scope: Scope,
    out: IO[bytes],
    report: ExportReport,
    page_keys: int,
    batch_bytes: int,
    on_entry: Callable[[int], None] | None,
) -> None:
    with store.backend.read() as tx:
        state = tx.scope_state(scope)
        if state == ScopeState():
            return  # never stored anything, or purged since it was listed
        _write(
            out,
            {
                "type": "scope",
                "workspace": scope.workspace,
                "plugin": scope.plugin,
                "quota_override": state.quota_override,
                "last_version": state.last_version,
            },
        )
        report.scopes += 1
        now = store.clock()
        after: str | None = None
        while True:
            page = tx.scan(scope, "", after, page_keys, now)
            for batch in _by_bytes(page, batch_bytes):
                found = {e.key: e for e in tx.get_many(scope, [m.key for m in batch], now)}
                for meta in batch:
                    entry = found[meta.key]  # the same snapshot and the same now: still there
                    record = {
                        "type": "entry",
                        "key": entry.key,
                        "value": base64.b64encode(entry.value).decode("ascii"),
                        "version": entry.version,
                        "created_at": entry.created_at,
                        "updated_at": entry.updated_at,
                        "expires_at": shown_expiry(entry.expires_at),
                    }
                    # Only when there are some: an entry without them reads as before.
                    if entry.metadata is not None:
                        record["metadata"] = entry.metadata
                    if entry.content_type is not None:
                        record["content_type"] = entry.content_type
                    _write(out, record)
                    report.entries += 1
                    report.bytes += entry.size
                    if on_entry is not None:
                        on_entry(entry.size)
            if len(page) < page_keys:
                return
            after = page[-1].key


def _by_bytes(page: Sequence[EntryMeta], limit: int) -> Iterator[Sequence[EntryMeta]]:
    """Consecutive runs of ``page`` holding at most ``limit`` bytes (or one larger entry)."""
    start, size = 0, 0
    for index, meta in enumerate(page):
        if index > start and size + meta.size > limit:
            yield page[start:index]
            start, size = index, 0
        size += meta.size
    if start < len(page):
        yield page[start:]


def _write(out: IO[bytes], record: dict[str, Any]) -> None:
    # ASCII-only JSON: the file survives any transport, and keys cannot hold newlines.
    out.write(json.dumps(record, separators=(",", ":")).encode("ascii") + b"\n")


# -- import: reading the file ------------------------------------------------------------
class _ScopeLine(NamedTuple):
    line: int
    scope: Scope
    quota_override: int | None
    last_version: int


class _EntryLine(NamedTuple):
    line: int
    key: str
    value: bytes
    size: int
    version: int
    created_at: float
    updated_at: float
    expires_at: float | None
    metadata: str | None  # as stored: compact JSON
    content_type: str | None


class _EndLine(NamedTuple):
    line: int
    scopes: int
    entries: int


class _Reader:
    """The lines of an export, parsed and checked one at a time, with their numbers."""

    def __init__(self, lines: Iterable[bytes | str]) -> None:
        self._lines = iter(lines)
        self.line = 0
        self.scopes = 0
        self.entries = 0
        self._scope: Scope | None = None
        self._key: bytes | None = None
        self._unread: _ScopeLine | _EndLine | None = None

    def _object(self) -> dict[str, Any] | None:
        """The next line as a JSON object, or ``None`` at the end of the file."""
        raw = next(self._lines, None)
        if raw is None:
            return None
        self.line += 1
        try:
            record = json.loads(raw)
        except UnicodeDecodeError:
            raise self.error("not UTF-8") from None
        except ValueError as exc:
            raise self.error(f"not JSON ({exc})") from None
        if not isinstance(record, dict):
            raise self.error(f"a JSON {type(record).__name__}, not an object")
        return record

    def error(self, message: str) -> InvalidExportFile:
        return InvalidExportFile(f"line {self.line}: {message}", line=self.line)

    def header(self) -> None:
        record = self._object()
        if record is None:
            raise self.error("the file is empty, not a pluginkv export")
        if record.get("format") != FORMAT or record.get("type") != "header":
            raise self.error(f"not a {FORMAT} header (format {record.get('format')!r})")
        version = record.get("format_version")
        if version != FORMAT_VERSION:
            raise self.error(
                f"format version {version!r} is not one pluginkv {__version__} reads "
                f"(it reads version {FORMAT_VERSION})"
            )

    def unread(self, record: _ScopeLine | _EndLine) -> None:
        """Give ``record`` back: the next ``next()`` returns it again."""
        self._unread = record

    def next(self) -> _ScopeLine | _EntryLine | _EndLine:
        if self._unread is not None:
            again, self._unread = self._unread, None
            return again
        record = self._object()
        if record is None:
            raise self.error("the file ends without its end line: it is truncated")
        kind = record.get("type")
        if kind == "entry":
            return self._entry(record)
        if kind == "scope":
            return self._scope_line(record)
        if kind == "end":
            end = _EndLine(self.line, self._count(record, "scopes"), self._count(record, "entries"))
            if (end.scopes, end.entries) != (self.scopes, self.entries):
                raise self.error(
                    f"the end line counts {end.scopes} scopes and {end.entries} entries, "
                    f"the file holds {self.scopes} and {self.entries}"
                )
            if self._object() is not None:
                raise self.error("a line after the end line")
            return end
        raise self.error(f"unknown line type {kind!r} (expected 'scope', 'entry' or 'end')")

    def _scope_line(self, record: dict[str, Any]) -> _ScopeLine:
        workspace = self._field(record, "workspace", str)
        try:
            scope = check_scope(workspace, self._field(record, "plugin", str))
        except PluginKVError as exc:
            raise self.error(str(exc)) from None
        if self._scope is not None and _order(scope) <= _order(self._scope):
            raise self.error(
                f"scope {scope} does not come after {self._scope}: "
                "scopes come once each, ordered by workspace then plugin"
            )
        quota = record.get("quota_override")
        if quota is not None:
            quota = self._count(record, "quota_override")
        self._scope, self._key = scope, None
        self.scopes += 1
        return _ScopeLine(self.line, scope, quota, self._count(record, "last_version"))

    def _entry(self, record: dict[str, Any]) -> _EntryLine:
        if self._scope is None:
            raise self.error("an entry before any scope line")
        key = self._field(record, "key", str)
        try:
            key_size = check_key(key)
        except InvalidKey as exc:
            raise self.error(str(exc)) from None
        encoded = key.encode("utf-8")
        if self._key is not None and encoded <= self._key:
            raise self.error(
                f"key {key!r} does not come after {self._key.decode('utf-8')!r}: the keys of "
                "a scope come once each, in UTF-8 byte order"
            )
        try:
            value = base64.b64decode(self._field(record, "value", str), validate=True)
        except binascii.Error as exc:
            raise self.error(f"the value of key {key!r} is not valid base64 ({exc})") from None
        version = self._count(record, "version")
        if version < 1:
            raise self.error(f"version must be at least 1, got {version}")
        expires_at = record.get("expires_at")
        metadata, content_type = self._metadata(record)
        self._key = encoded
        self.entries += 1
        return _EntryLine(
            self.line,
            key,
            value,
            key_size + len(value) + extra_size(metadata, content_type),
            version,
            self._time(record, "created_at"),
            self._time(record, "updated_at"),
            None if expires_at is None else self._time(record, "expires_at"),
            metadata,
            content_type,
        )

    def _metadata(self, record: dict[str, Any]) -> tuple[str | None, str | None]:
        """The entry's metadata (as stored) and content type, each ``None`` when absent.

        Their sizes are the target store's to judge (``_ScopeImport``).
        """
        metadata = record.get("metadata")
        content_type = record.get("content_type")
        if metadata is not None and not isinstance(metadata, dict):
            raise self.error(f"metadata must be an object, got {metadata!r}")
        try:
            text = check_metadata(metadata, _MAX_INT64)
            check_content_type(content_type, _MAX_INT64)
        except InvalidArgument as exc:
            raise self.error(str(exc)) from None
        return text, content_type

    def _field(self, record: dict[str, Any], name: str, *kinds: type) -> Any:
        if name not in record:
            raise self.error(f"the field {name!r} is missing")
        value = record[name]
        if not isinstance(value, kinds) or isinstance(value, bool):
            wanted = " or ".join(kind.__name__ for kind in kinds)
            raise self.error(f"{name} must be a {wanted}, got {value!r}")
        return value

    def _count(self, record: dict[str, Any], name: str) -> int:
        number: int = self._field(record, name, int)
        if not 0 <= number <= _MAX_INT64:
            raise self.error(f"{name} must be from 0 to 2**63 - 1, got {number}")
        return number

    def _time(self, record: dict[str, Any], name: str) -> float:
        moment = self._field(record, name, int, float)
        if not math.isfinite(moment):
            raise self.error(f"{name} must be a finite number of seconds, got {moment!r}")
        return float(moment)


def _order(scope: Scope) -> tuple[str, str]:
    return scope.workspace, scope.plugin


# -- import: writing the store -----------------------------------------------------------
def import_lines(
    store: Store,
    lines: Iterable[bytes | str],
    *,
    replace: bool = False,
    report: ImportReport | None = None,
) -> ImportReport:
    """Load an export (its lines, e.g. a file opened in binary mode) into ``store``.

    Each scope is imported in one transaction, whole or not at all.  A scope
    in which a key of the file already holds another value is refused unless
    ``replace`` (an entry the store holds exactly is left as it is); so is
    one that would pass its quota, or that holds a value over the store's
    limit: refused scopes are listed in the report and the
    import goes on with the next.  Pass ``report`` to see what was imported
    before an error stopped the import.

    Raises:
        InvalidExportFile: a malformed line; the import stops there, and the
            scope it belongs to is not imported (scopes before it are).
        BackendUnavailable: the database failed; the scope in progress is not imported.
    """
    report = report if report is not None else ImportReport()
    reader = _Reader(lines)
    reader.header()
    record = reader.next()
    while isinstance(record, _ScopeLine):
        head = record
        try:
            with store.backend.write() as tx:
                scope_import = _ScopeImport(store, tx, head, replace)
                scope_import.run(reader)
        except (VersionConflict, QuotaExceeded, ValueTooLarge) as exc:
            report.refused.append((head.scope, exc))
            record = _skip_entries(reader)
            continue
        store.notifier.changed((head.scope,))  # its watchers in this process
        report.scopes += 1
        report.entries += scope_import.entries
        report.bytes += scope_import.bytes
        report.expired += scope_import.expired
        report.unchanged += scope_import.unchanged
        record = reader.next()
    return report


def _same(old: Stored, entry: _EntryLine) -> bool:
    """Whether the target's row is the file's entry (``updated_at`` is not in ``Stored``)."""
    return (
        old.version,
        old.created_at,
        old.expires_at,
        old.value,
        old.metadata,
        old.content_type,
    ) == (
        entry.version,
        entry.created_at,
        entry.expires_at,
        entry.value,
        entry.metadata,
        entry.content_type,
    )


def _skip_entries(reader: _Reader) -> _ScopeLine | _EntryLine | _EndLine:
    """Read past the rest of a refused scope; its lines must still be well formed."""
    record = reader.next()
    while isinstance(record, _EntryLine):
        record = reader.next()
    return record


class _ScopeImport:
    """One scope's entries written in one transaction, with the target's rules checked."""

    def __init__(self, store: Store, tx: WriteTx, head: _ScopeLine, replace: bool) -> None:
        self._store, self._tx, self._head, self._replace = store, tx, head, replace
        self._scope = head.scope
        self._now = store.clock()
        # Expired rows are invisible already; reclaimed first, they neither
        # count against the quota nor pass for keys that exist.
        tx.purge_expired(self._scope, self._now)
        self._state, _ = tx.lookup(self._scope, [])
        override = head.quota_override
        if override is None:
            override = self._state.quota_override
        target = dataclasses.replace(self._state, quota_override=override)
        self._quota, self._source = store.quota_for(self._scope, target)
        if head.quota_override is not None:
            tx.set_quota_override(self._scope, head.quota_override)
        self._added = 0  # bytes of the rows written
        self._freed = 0  # bytes of the rows they replaced
        # A version is never given out twice in a scope (compare-and-set relies
        # on it).  Into a scope with no history the file's versions are kept
        # as they are; into one that has given out versions, every version the
        # file brings is shifted above them.
        self._shift = self._state.last_version
        self._highest = 0  # the counter this import needs, once it writes a row
        self.entries = self.bytes = self.expired = self.unchanged = 0

    def run(self, reader: _Reader) -> None:
        """Import the scope's entries, leaving the line that follows them to read next."""
        batch: list[_EntryLine] = []
        held = 0
        record = reader.next()
        while isinstance(record, _EntryLine):
            if record.expires_at is not None and record.expires_at <= self._now:
                self.expired += 1
            else:
                self._check_value(record)
                batch.append(record)
                held += len(record.value)
                if len(batch) >= PAGE_KEYS or held >= BATCH_BYTES:
                    self._write(batch)
                    batch, held = [], 0
            record = reader.next()
        reader.unread(record)  # read past a refusal below, it starts the next scope
        self._write(batch)
        self._check_quota(final=True)
        if self.entries or not self._shift:
            self._highest = max(self._highest, self._head.last_version + self._shift)
        if self._highest > self._state.last_version:
            self._tx.raise_last_version(self._scope, self._highest)

    def _check_value(self, entry: _EntryLine) -> None:
        settings = self._store.settings
        try:
            if entry.metadata is not None:
                check_metadata(json.loads(entry.metadata), settings.max_metadata_bytes)
            check_content_type(entry.content_type, settings.max_content_type_bytes)
        except ValueTooLarge as exc:
            raise ValueTooLarge(
                f"key {entry.key!r} (line {entry.line}) in {self._scope}: {exc}; the scope was "
                "not imported",
                size=exc.size,
                limit=exc.limit,
            ) from None
        except InvalidArgument as exc:
            limit = settings.max_content_type_bytes
            raise ValueTooLarge(
                f"key {entry.key!r} (line {entry.line}) in {self._scope}: {exc}; the scope was "
                "not imported",
                size=len(entry.content_type or ""),
                limit=limit,
            ) from None
        limit = settings.max_value_bytes
        if len(entry.value) > limit:
            raise ValueTooLarge(
                f"the value of key {entry.key!r} (line {entry.line}) in {self._scope} is "
                f"{len(entry.value)} bytes, over the limit of {limit} bytes (setting "
                "PLUGINKV_MAX_VALUE_BYTES); the scope was not imported",
                size=len(entry.value),
                limit=limit,
            )

    def _write(self, batch: list[_EntryLine]) -> None:
        if not batch:
            return
        _, rows = self._tx.lookup(self._scope, [entry.key for entry in batch], with_values=True)
        writes = []
        for entry in batch:
            old = rows.get(entry.key)
            if old is not None and _same(old, entry):
                self.unchanged += 1  # imported before: importing again changes nothing
                continue
            writes.append(entry)
            if old is not None and old.live(self._now) and not self._replace:
                raise VersionConflict(
                    f"key {entry.key!r} (line {entry.line}) already exists in {self._scope} "
                    f"(version {old.version}); the scope was not imported and is unchanged "
                    "(--replace replaces existing keys)",
                    key=entry.key,
                    expected=None,
                    actual=old.version,
                )
            self._freed += 0 if old is None else old.size
            self._added += entry.size
        self._check_quota(final=False)
        for entry in writes:
            version = entry.version + self._shift
            row = Stored(
                entry.size,
                version,
                entry.created_at,
                entry.expires_at,
                None,
                entry.metadata,
                entry.content_type,
            )
            self._tx.put(self._scope, entry.key, entry.value, row, entry.updated_at)
            self._highest = max(self._highest, version)
            self.entries += 1
            self.bytes += entry.size

    def _check_quota(self, *, final: bool) -> None:
        used = self._state.bytes_used
        growth = self._added - self._freed
        # Before the end, what later entries replace may still free bytes, but
        # never more than the scope held: the scope ends with at least the
        # bytes added, so past the quota the import can stop early.
        bound = used + growth if final or not self._replace else self._added
        if bound <= self._quota:
            return
        so_far = "" if final else " so far"
        raise QuotaExceeded(
            f"quota exceeded for {self._scope}: {used} of {self._quota} bytes used, "
            f"its entries{so_far} need {growth} more (limit from {self._source}); "
            "the scope was not imported",
            used=used,
            limit=self._quota,
            needed=growth,
        )
