"""Metadata and content type kept with a value, on every backend of the engine, through
both HTTP clients (the ``Pluginkv-Metadata`` header) and through the plugin channel
(``ChannelStorage``, as plugin code reaches it)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from pluginkv import InvalidArgument, QuotaExceeded, Storage, Store, ValueTooLarge

from .conftest import CLIENT_BACKENDS, ENGINE_BACKENDS


@pytest.fixture(name="backend", params=[*ENGINE_BACKENDS, *CLIENT_BACKENDS, "channel"])
def _backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_metadata_and_content_type_come_back_with_the_entry(storage: Storage) -> None:
    storage.set("k", b"{}", metadata={"owner": "u1", "n": [1, 2]}, content_type="application/json")
    entry = storage.get_entry("k")
    assert entry is not None
    assert entry.metadata == {"owner": "u1", "n": [1, 2]}
    assert entry.content_type == "application/json"


def test_an_entry_without_metadata_has_none(storage: Storage) -> None:
    storage.set("k", b"v")
    entry = storage.get_entry("k")
    assert entry is not None and entry.metadata is None and entry.content_type is None


def test_listing_and_get_meta_carry_the_metadata(storage: Storage) -> None:
    storage.set("a", b"1", metadata={"x": "é"}, content_type="text/plain; charset=utf-8")
    storage.set("b", b"2")
    listed = {meta.key: meta for meta in storage.keys().entries}
    assert listed["a"].metadata == {"x": "é"}
    assert listed["a"].content_type == "text/plain; charset=utf-8"
    assert listed["b"].metadata is None
    meta = storage.get_meta("a")
    assert meta is not None and meta.metadata == {"x": "é"}


def test_a_set_without_metadata_clears_it(storage: Storage) -> None:
    storage.set("k", b"v", metadata={"owner": "u1"}, content_type="text/plain")
    storage.set("k", b"w")
    entry = storage.get_entry("k")
    assert entry is not None and entry.metadata is None and entry.content_type is None


def test_a_conditional_set_keeps_what_it_gives(storage: Storage) -> None:
    version = storage.set("k", b"v")
    storage.set("k", b"w", if_version=version, metadata={"by": "cas"})
    entry = storage.get_entry("k")
    assert entry is not None and entry.metadata == {"by": "cas"}


def test_incr_keeps_the_metadata(storage: Storage) -> None:
    storage.set("n", b"1", metadata={"unit": "hits"}, content_type="text/plain")
    assert storage.incr("n", 2) == 3
    entry = storage.get_entry("n")
    assert entry is not None
    assert (entry.metadata, entry.content_type) == ({"unit": "hits"}, "text/plain")
    assert entry.size == len("n") + len("3") + len('{"unit":"hits"}') + len("text/plain")


def test_metadata_and_content_type_count_in_usage(storage: Storage) -> None:
    storage.set("k", b"vv", metadata={"a": 1}, content_type="text/plain")
    expected = len("k") + 2 + len('{"a":1}') + len("text/plain")
    assert storage.usage().bytes_used == expected
    entry = storage.get_entry("k")
    assert entry is not None and entry.size == expected


def test_metadata_past_the_quota_is_refused(open_store: Callable[..., Store], backend: str) -> None:
    storage = open_store(backend, default_quota_bytes=20).storage(workspace="w", plugin="a/b")
    storage.set("k", b"v" * 10)
    with pytest.raises(QuotaExceeded):
        storage.set("k", b"v" * 10, metadata={"owner": "someone"})
    entry = storage.get_entry("k")
    assert entry is not None and entry.metadata is None


def test_metadata_over_the_limit_is_refused_and_names_the_setting(
    open_store: Callable[..., Store], backend: str
) -> None:
    storage = open_store(backend, max_metadata_bytes=16).storage(workspace="w", plugin="a/b")
    storage.set("k", b"v", metadata={"a": "x" * 8})  # {"a":"xxxxxxxx"} is 16 bytes
    with pytest.raises(ValueTooLarge, match="PLUGINKV_MAX_METADATA_BYTES") as info:
        storage.set("k", b"w", metadata={"a": "x" * 9})
    assert (info.value.size, info.value.limit) == (17, 16)
    assert storage.get("k") == b"v"


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param(["a"], id="list"),
        pytest.param("text", id="str"),
        pytest.param({1: "a"}, id="int-key"),
        pytest.param({"a": math.nan}, id="nan"),
        pytest.param({"a": object()}, id="not-json"),
    ],
)
def test_metadata_that_is_no_json_object_is_refused(storage: Storage, metadata: object) -> None:
    with pytest.raises(InvalidArgument, match="metadata"):
        storage.set("k", b"v", metadata=metadata)  # type: ignore[arg-type]
    assert storage.get("k") is None


@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param("json", id="no-subtype"),
        pytest.param("text/plain\r\nX-Evil: 1", id="header-injection"),
        pytest.param("", id="empty"),
        pytest.param("téxt/plain", id="non-ascii"),
        pytest.param(42, id="int"),
    ],
)
def test_a_malformed_content_type_is_refused(storage: Storage, content_type: object) -> None:
    with pytest.raises(InvalidArgument, match="content_type"):
        storage.set("k", b"v", content_type=content_type)  # type: ignore[arg-type]
    assert storage.get("k") is None


def test_a_content_type_over_the_limit_names_the_setting(storage: Storage) -> None:
    with pytest.raises(InvalidArgument, match="PLUGINKV_MAX_CONTENT_TYPE_BYTES"):
        storage.set("k", b"v", content_type="text/" + "x" * 251)
    storage.set("k", b"v", content_type="text/" + "x" * 250)


def test_metadata_survives_reopening(open_store: Callable[..., Store], backend: str) -> None:
    if backend in ("memory", "remote", "remote-async", "channel"):
        pytest.skip("a memory store ends with its process")
    # Over HTTP, application/octet-stream is what "no content type" reads as (docs/client.md).
    kind = "text/plain" if backend.startswith("remote") else "application/octet-stream"
    open_store(backend).storage(workspace="w", plugin="a/b").set(
        "k", b"v", metadata={"kept": True}, content_type=kind
    )
    entry = open_store(backend).storage(workspace="w", plugin="a/b").get_entry("k")
    assert entry is not None
    assert (entry.metadata, entry.content_type) == ({"kept": True}, kind)


def test_a_callers_copy_of_the_metadata_is_its_own(storage: Storage) -> None:
    given = {"tags": ["a"]}
    storage.set("k", b"v", metadata=given)
    given["tags"].append("b")
    first = storage.get_entry("k")
    assert first is not None and first.metadata == {"tags": ["a"]}
    first.metadata["tags"].append("c")  # type: ignore[index]
    again = storage.get_entry("k")
    assert again is not None and again.metadata == {"tags": ["a"]}
