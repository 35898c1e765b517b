"""Export and import keep each entry's metadata and content type, on every engine."""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import pytest

from pluginkv import Store, ValueTooLarge
from pluginkv.errors import InvalidExportFile
from pluginkv.transfer import export_store, import_lines

from .test_transfer import HEADER, end_line, entry_line, lines, scope_line

OpenStore = Callable[..., Store]
ENGINES = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _dump(store: Store) -> bytes:
    out = io.BytesIO()
    export_store(store, out)
    return out.getvalue()


@pytest.mark.parametrize("engine", ENGINES)
def test_metadata_and_content_type_survive_export_and_import(
    open_store: OpenStore, engine: str
) -> None:
    source = open_store("sqlite" if engine == "memory" else "memory")
    storage = source.storage(workspace="w", plugin="a/b")
    storage.set("doc", b"{}", metadata={"owner": "u1", "ñ": [1]}, content_type="application/json")
    storage.set("plain", b"v")
    target = open_store(engine)

    report = import_lines(target, io.BytesIO(_dump(source)))

    assert report.refused == [] and report.entries == 2
    imported = target.storage(workspace="w", plugin="a/b")
    for key in ["doc", "plain"]:
        assert imported.get_entry(key) == storage.get_entry(key)
    assert imported.usage() == storage.usage()


def test_an_entry_without_them_exports_as_before(open_store: OpenStore) -> None:
    store = open_store("memory")
    store.storage(workspace="w", plugin="a/b").set("plain", b"v")
    [entry] = [r for r in map(json.loads, _dump(store).splitlines()) if r["type"] == "entry"]
    assert "metadata" not in entry and "content_type" not in entry


def test_metadata_over_the_targets_limit_refuses_its_scope(open_store: OpenStore) -> None:
    store = open_store("memory", max_metadata_bytes=8)
    data = lines(HEADER, scope_line(), entry_line("a", metadata={"long": "enough"}), end_line(1, 1))

    [(_, error)] = import_lines(store, io.BytesIO(data)).refused

    assert isinstance(error, ValueTooLarge)
    assert "key 'a' (line 3)" in str(error) and "PLUGINKV_MAX_METADATA_BYTES" in str(error)
    assert store.storage(workspace="ws-1", plugin="acme/weather").get("a") is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param({"metadata": [1]}, "metadata must be an object", id="metadata"),
        pytest.param({"content_type": "nope"}, "content_type must be type/subtype", id="type"),
    ],
)
def test_malformed_metadata_is_a_malformed_line(
    open_store: OpenStore, extra: dict[str, object], message: str
) -> None:
    store = open_store("memory")
    data = lines(HEADER, scope_line(), entry_line("a", **extra), end_line(1, 1))
    with pytest.raises(InvalidExportFile, match=f"^line 3: .*{message}"):
        import_lines(store, io.BytesIO(data))
