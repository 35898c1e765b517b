"""Export and import (``pluginkv.transfer``): a store to JSON Lines and back, on every engine."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import pluginkv
from pluginkv import QuotaExceeded, Store, ValueTooLarge, VersionConflict
from pluginkv.backends import memory
from pluginkv.backends.base import ScopeState
from pluginkv.errors import InvalidArgument, InvalidExportFile
from pluginkv.keys import Scope
from pluginkv.transfer import ImportReport, export_store, import_lines

from .conftest import FakeClock

OpenStore = Callable[..., Store]
ENGINES = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
MIB = 1024 * 1024


def dump(store: Store, **options: Any) -> bytes:
    out = io.BytesIO()
    export_store(store, out, **options)
    return out.getvalue()


def load(store: Store, data: bytes, **options: Any) -> ImportReport:
    return import_lines(store, io.BytesIO(data), **options)


def records(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines()]


def lines(*items: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


def entries_of(store: Store, workspace: str, plugin: str) -> list[Any]:
    """Every live entry of a scope, values and metadata, in key order."""
    storage = store.storage(workspace=workspace, plugin=plugin)
    keys = [meta.key for meta in storage.keys(limit=1000)]
    return [storage.get_entry(key) for key in keys]


def states(store: Store) -> list[tuple[Scope, ScopeState]]:
    """Every scope's counters, but where its change log stands: the log is the store's
    own (an import logs the sets it makes), not part of an export."""
    with store.backend.read() as tx:
        return [(scope, dataclasses.replace(state, last_seq=0)) for scope, state in tx.scopes()]


HEADER = {"type": "header", "format": "pluginkv-export", "format_version": 1}


def scope_line(workspace: str = "ws-1", plugin: str = "acme/weather", **extra: Any) -> Any:
    fields = {"quota_override": None, "last_version": 0, **extra}
    return {"type": "scope", "workspace": workspace, "plugin": plugin, **fields}


def entry_line(key: str, value: bytes = b"v", version: int = 1, **extra: Any) -> Any:
    encoded = base64.b64encode(value).decode()
    times = {"created_at": 1.5, "updated_at": 2.5, "expires_at": None, **extra}
    return {"type": "entry", "key": key, "value": encoded, "version": version, **times}


def end_line(scopes: int, entries: int) -> Any:
    return {"type": "end", "scopes": scopes, "entries": entries}


def fill(store: Store, clock: FakeClock) -> None:
    """A store with what an export must carry: binary, empty and 1 MiB values, a TTL,
    a version counter past its highest live version, a quota override, two workspaces."""
    weather = store.storage(workspace="ws-1", plugin="acme/weather")
    weather.set("binary", bytes(range(256)) * 3)
    clock.advance(1.25)
    weather.set("empty", b"")
    weather.set("large", b"\xab" * MIB)
    weather.set("session", b"token", ttl=3600)
    weather.set("gone", b"x")
    weather.delete("gone")  # its version stays given out
    clock.advance(2)
    weather.set("binary", b"\x00\xff" * 10)  # a later update: updated_at != created_at
    store.set_quota(workspace="ws-1", plugin="acme/weather", quota_bytes=5 * MIB)
    store.storage(workspace="ws-2", plugin="acme/news").set("ünïcode/ключ", b"text")


@pytest.mark.postgres
def test_round_trip_sqlite_postgres_sqlite_keeps_everything(
    open_store: OpenStore, tmp_path: Path, clock: FakeClock
) -> None:
    source = open_store("sqlite")
    fill(source, clock)
    postgres = open_store("postgres")
    back = pluginkv.open_store(f"sqlite:///{tmp_path / 'back.db'}", clock=clock)

    first = load(postgres, dump(source))
    second = load(back, dump(postgres))
    try:
        for target in (postgres, back):
            for scope, _ in states(source):
                assert entries_of(target, scope.workspace, scope.plugin) == entries_of(
                    source, scope.workspace, scope.plugin
                )
            assert states(target) == states(source)  # counters, versions, quota overrides
            assert target.scopes() == source.scopes()  # usage as users see it
        assert (first.scopes, first.entries, first.expired, first.refused) == (2, 5, 0, [])
        assert second == first
        assert first.bytes == sum(usage.bytes_used for _, usage in source.scopes())
    finally:
        back.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_a_set_after_import_gets_a_version_above_every_imported_one(
    open_store: OpenStore, engine: str
) -> None:
    source = open_store("memory")
    storage = source.storage(workspace="ws-1", plugin="acme/weather")
    for key in ["a", "b", "c", "d"]:
        storage.set(key, b"1")
    storage.delete("d")  # version 4 was given out; the highest live one is 3
    target = open_store(engine)

    load(target, dump(source))
    imported = target.storage(workspace="ws-1", plugin="acme/weather")
    imported.set("d", b"again")
    imported.set("a", b"2")

    assert [entry.version for entry in entries_of(target, "ws-1", "acme/weather")] == [6, 2, 3, 5]


def test_expired_entries_are_not_exported(open_store: OpenStore, clock: FakeClock) -> None:
    store = open_store("memory")
    storage = store.storage(workspace="ws-1", plugin="acme/weather")
    storage.set("short", b"x", ttl=10)
    storage.set("long", b"y", ttl=100)
    clock.advance(50)

    keys = [item["key"] for item in records(dump(store)) if item["type"] == "entry"]

    assert keys == ["long"]


def test_entries_expired_by_import_time_are_skipped(
    open_store: OpenStore, clock: FakeClock
) -> None:
    source = open_store("memory")
    storage = source.storage(workspace="ws-1", plugin="acme/weather")
    storage.set("short", b"x", ttl=10)
    storage.set("long", b"y", ttl=100)
    data = dump(source)
    clock.advance(50)
    target = open_store("sqlite")

    report = load(target, data)

    assert (report.entries, report.expired) == (1, 1)
    assert [entry.key for entry in entries_of(target, "ws-1", "acme/weather")] == ["long"]
    assert target.storage(workspace="ws-1", plugin="acme/weather").usage().keys == 1


def test_export_takes_a_workspace_or_one_plugin_of_it(open_store: OpenStore) -> None:
    store = open_store("memory")
    for workspace, plugin in [("ws-1", "acme/a"), ("ws-1", "acme/b"), ("ws-2", "acme/a")]:
        store.storage(workspace=workspace, plugin=plugin).set("k", b"v")

    def scopes(**options: str) -> list[tuple[str, str]]:
        found = records(dump(store, **options))
        return [(item["workspace"], item["plugin"]) for item in found if item["type"] == "scope"]

    assert scopes() == [("ws-1", "acme/a"), ("ws-1", "acme/b"), ("ws-2", "acme/a")]
    assert scopes(workspace="ws-1") == [("ws-1", "acme/a"), ("ws-1", "acme/b")]
    assert scopes(workspace="ws-2", plugin="acme/a") == [("ws-2", "acme/a")]
    assert scopes(workspace="ws-3") == []
    with pytest.raises(InvalidArgument, match="one workspace"):
        dump(store, plugin="acme/a")


def test_file_starts_with_a_header_and_ends_with_the_counts(
    open_store: OpenStore, clock: FakeClock
) -> None:
    store = open_store("memory")
    store.storage(workspace="ws-1", plugin="acme/weather").set("k", b"\x00v", ttl=60)

    header, scope, entry, end = records(dump(store))

    assert header == {
        "type": "header",
        "format": "pluginkv-export",
        "format_version": 1,
        "pluginkv_version": pluginkv.__version__,
        "exported_at": "2027-01-15T08:00:00Z",
    }
    assert scope == scope_line(last_version=1)
    assert entry == entry_line(
        "k", b"\x00v", created_at=clock.now, updated_at=clock.now, expires_at=clock.now + 60
    )
    assert end == end_line(1, 1)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_scope_with_an_existing_key_is_refused_and_unchanged(
    open_store: OpenStore, engine: str
) -> None:
    store = open_store(engine)
    storage = store.storage(workspace="ws-1", plugin="acme/weather")
    storage.set("a", b"mine")
    before = (entries_of(store, "ws-1", "acme/weather"), states(store))
    data = lines(
        HEADER,
        scope_line(quota_override=10_000, last_version=50),
        entry_line("0-new", version=1),
        entry_line("a", b"theirs", version=2),
        scope_line("ws-2"),
        entry_line("b"),
        end_line(2, 3),
    )

    report = load(store, data)

    assert [(scope, type(error)) for scope, error in report.refused] == [
        (Scope("ws-1", "acme/weather"), VersionConflict)
    ]
    message = str(report.refused[0][1])
    assert "key 'a' (line 4) already exists in acme/weather in workspace ws-1" in message
    assert entries_of(store, "ws-1", "acme/weather") == before[0]
    assert states(store)[0] == before[1][0]
    assert (report.scopes, report.entries) == (1, 1)  # the other scope went in
    assert store.storage(workspace="ws-2", plugin="acme/weather").get("b") == b"v"


@pytest.mark.parametrize("engine", ENGINES)
def test_replace_overwrites_existing_keys_keeps_the_rest_and_never_reuses_a_version(
    open_store: OpenStore, engine: str
) -> None:
    store = open_store(engine)
    storage = store.storage(workspace="ws-1", plugin="acme/weather")
    storage.set("a", b"mine, and long")
    storage.set("kept", b"mine")
    data = lines(
        HEADER,
        scope_line(),
        entry_line("a", b"theirs", version=7),
        entry_line("b", b"new", version=8),
        end_line(1, 2),
    )

    report = load(store, data, replace=True)

    assert (report.scopes, report.entries, report.refused) == (1, 2, [])
    assert storage.get_many(["a", "b", "kept"]) == {"a": b"theirs", "b": b"new", "kept": b"mine"}
    # The scope had given out versions 1 and 2: the file's come above them.
    assert storage.get_entry("a").version == 7 + 2  # type: ignore[union-attr]
    assert storage.get_entry("b").version == 8 + 2  # type: ignore[union-attr]
    usage = storage.usage()
    assert (usage.keys, usage.bytes_used) == (3, len("atheirsbnewkeptmine"))
    storage.set("c", b"")
    assert storage.get_entry("c").version == 11  # type: ignore[union-attr]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_scope_past_the_quota_is_refused_naming_the_limit(
    open_store: OpenStore, engine: str
) -> None:
    store = open_store(engine, default_quota_bytes=100)
    data = lines(
        HEADER,
        scope_line(),
        entry_line("a", b"x" * 60),
        entry_line("b", b"x" * 60, version=2),
        scope_line("ws-1", "zeta/roomy", quota_override=1000),
        entry_line("a", b"x" * 60),
        entry_line("b", b"x" * 60, version=2),
        end_line(2, 4),
    )

    report = load(store, data)

    [(scope, error)] = report.refused
    assert scope == Scope("ws-1", "acme/weather")
    assert isinstance(error, QuotaExceeded)
    assert (error.used, error.limit, error.needed) == (0, 100, 122)
    assert "PLUGINKV_DEFAULT_QUOTA_BYTES" in str(error)
    assert store.storage(workspace="ws-1", plugin="acme/weather").usage().keys == 0
    roomy = store.storage(workspace="ws-1", plugin="zeta/roomy").usage()  # its override came too
    assert (roomy.keys, roomy.bytes_used, roomy.quota_bytes) == (2, 122, 1000)


def test_a_value_over_the_targets_limit_refuses_its_scope(open_store: OpenStore) -> None:
    store = open_store("memory", max_value_bytes=10)
    data = lines(HEADER, scope_line(), entry_line("a", b"x" * 11), end_line(1, 1))

    [(_, error)] = load(store, data).refused

    assert isinstance(error, ValueTooLarge)
    assert "key 'a' (line 3)" in str(error) and "PLUGINKV_MAX_VALUE_BYTES" in str(error)


GOOD_SCOPE = scope_line("ws-0", quota_override=1000)  # a scope that leaves a trace
MALFORMED = [
    pytest.param([b"not json"], 1, "not JSON", id="not-json"),
    pytest.param(
        [{"format": "other", "format_version": 1}], 1, "not a pluginkv-export", id="format"
    ),
    pytest.param([{**HEADER, "format_version": 2}], 1, "format version 2", id="version"),
    pytest.param([HEADER, entry_line("a")], 2, "an entry before any scope line", id="no-scope"),
    pytest.param([HEADER, {"type": "what"}], 2, "unknown line type 'what'", id="type"),
    pytest.param(
        [HEADER, GOOD_SCOPE, scope_line(), {**entry_line("a"), "version": None}],
        4,
        "version must be a int",
        id="field-type",
    ),
    pytest.param(
        [HEADER, GOOD_SCOPE, scope_line(), {"type": "entry", "key": "a"}],
        4,
        "the field 'value' is missing",
        id="missing-field",
    ),
    pytest.param(
        [HEADER, GOOD_SCOPE, scope_line(), {**entry_line("a"), "value": "%%"}],
        4,
        "not valid base64",
        id="base64",
    ),
    pytest.param([HEADER, GOOD_SCOPE, scope_line(), entry_line("a..b")], 4, "'..'", id="key"),
    pytest.param(
        [HEADER, GOOD_SCOPE, scope_line(), entry_line("b"), entry_line("a")],
        5,
        "does not come after 'b'",
        id="key-order",
    ),
    pytest.param([HEADER, scope_line("bad ws")], 2, "workspace 'bad ws'", id="scope"),
    pytest.param(
        [HEADER, GOOD_SCOPE, scope_line(), entry_line("a")],
        4,
        "ends without its end line",
        id="truncated",
    ),
    pytest.param(
        [HEADER, GOOD_SCOPE, scope_line(), entry_line("a"), end_line(2, 2)],
        5,
        "counts 2 scopes and 2 entries, the file holds 2 and 1",
        id="counts",
    ),
]


@pytest.mark.parametrize(("content", "line", "message"), MALFORMED)
def test_a_malformed_file_is_refused_with_its_line_number(
    open_store: OpenStore, content: list[Any], line: int, message: str
) -> None:
    store = open_store("sqlite")
    data = b"".join(
        item if isinstance(item, bytes) else json.dumps(item).encode() + b"\n" for item in content
    )
    report = ImportReport()

    with pytest.raises(InvalidExportFile, match=f"^line {line}: .*{message}") as caught:
        import_lines(store, io.BytesIO(data), report=report)

    assert caught.value.line == line
    # The scope being read when the bad line came is not imported; the one before it is.
    stored = [scope for scope, _ in states(store)]
    assert Scope("ws-1", "acme/weather") not in stored
    before = GOOD_SCOPE in content
    assert (Scope("ws-0", "acme/weather") in stored, report.scopes) == (before, int(before))


def test_export_pages_keys_and_fetches_values_in_bounded_batches(
    open_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store("memory")
    storage = store.storage(workspace="ws-1", plugin="acme/weather")
    for start in range(0, 600, 100):
        storage.set_many({f"k{i:04}": b"x" * 1000 for i in range(start, start + 100)})
    scans: list[int] = []
    fetched: list[int] = []  # bytes of values per get_many
    scan, get_many = memory._MemoryTx.scan, memory._MemoryTx.get_many

    def counting_scan(self: Any, *args: Any) -> Any:
        page = scan(self, *args)
        scans.append(len(page))
        return page

    def counting_get_many(self: Any, *args: Any) -> Any:
        found = get_many(self, *args)
        fetched.append(sum(len(entry.value) for entry in found))
        return found

    monkeypatch.setattr(memory._MemoryTx, "scan", counting_scan)
    monkeypatch.setattr(memory._MemoryTx, "get_many", counting_get_many)

    class Sink(io.BytesIO):
        """Notes how many bytes of values had been fetched when each line came out."""

        def __init__(self) -> None:
            super().__init__()
            self.fetched_at_write: list[int] = []

        def write(self, data: Any) -> int:
            self.fetched_at_write.append(sum(fetched))
            return super().write(data)

    sink = Sink()
    report = export_store(store, sink, page_keys=100, batch_bytes=16_000)

    assert report.entries == 600
    assert scans == [100] * 6 + [0]
    assert max(fetched) <= 16_000 and sum(fetched) == 600_000
    # Bytes fetched but not yet written never exceed one batch: nothing piles up.
    entry_writes = sink.fetched_at_write[2:602]
    assert max(seen - 1000 * written for written, seen in enumerate(entry_writes)) <= 16_000


@pytest.mark.parametrize("engine", ENGINES)
def test_importing_the_same_export_again_changes_nothing(
    open_store: OpenStore, engine: str
) -> None:
    store = open_store(engine)
    data = lines(
        HEADER,
        scope_line(last_version=5),
        entry_line("a", b"1", version=4),
        entry_line("b", b"2", version=5),
        end_line(1, 2),
    )
    load(store, data)
    before = entries_of(store, "ws-1", "acme/weather")

    again = load(store, data)

    assert (again.scopes, again.entries, again.unchanged, again.refused) == (1, 0, 2, [])
    assert entries_of(store, "ws-1", "acme/weather") == before
    storage = store.storage(workspace="ws-1", plugin="acme/weather")
    storage.set("c", b"")
    assert storage.get_entry("c").version == 6  # type: ignore[union-attr]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_scope_with_history_gets_the_files_versions_above_its_own(
    open_store: OpenStore, engine: str
) -> None:
    store = open_store(engine)
    storage = store.storage(workspace="ws-1", plugin="acme/weather")
    storage.set("a", b"old")  # version 1, given out to some client ...
    storage.delete("a")  # ... and gone: the file's "a" must not come back as version 1
    data = lines(
        HEADER, scope_line(last_version=1), entry_line("a", b"new", version=1), end_line(1, 1)
    )

    report = load(store, data)

    assert (report.entries, report.refused) == (1, [])
    assert storage.get_entry("a").version == 2  # type: ignore[union-attr]
    storage.set("b", b"")
    assert storage.get_entry("b").version == 3  # type: ignore[union-attr]
