"""Reading a plugin's manifest declaration."""

from __future__ import annotations

import pytest

from pluginkv import InvalidArgument
from pluginkv.host.manifest import DEFAULT_STORAGE_BYTES, parse_manifest

from .fake_plugin import manifest


def test_the_plugin_id_is_author_slash_name_without_version() -> None:
    parsed = parse_manifest(manifest(author="acme", name="weather"))
    assert (parsed.plugin_id, parsed.version) == ("acme/weather", "0.0.1")


def test_storage_permission_and_size() -> None:
    parsed = parse_manifest(manifest())
    assert (parsed.storage_enabled, parsed.storage_bytes) == (True, 4096)
    assert not parse_manifest(manifest(storage=False)).storage_enabled


def test_the_endpoint_permission() -> None:
    data = manifest()
    assert not parse_manifest(data).endpoint_enabled
    data["resource"]["permission"]["endpoint"] = {"enabled": True}
    assert parse_manifest(data).endpoint_enabled


def test_no_storage_permission_means_denied_with_the_sdk_default_size() -> None:
    data = manifest()
    del data["resource"]["permission"]
    parsed = parse_manifest(data)
    assert (parsed.storage_enabled, parsed.storage_bytes) == (False, DEFAULT_STORAGE_BYTES)


@pytest.mark.parametrize("author", ["Acme", "a/b", "", "x" * 65])
def test_an_author_the_daemon_refuses_is_refused(author: str) -> None:
    with pytest.raises(InvalidArgument, match="author"):
        parse_manifest(manifest(author=author))


@pytest.mark.parametrize(
    ("runner", "expected"),
    [
        pytest.param({"version": "3.12"}, "3.12", id="quoted"),
        pytest.param({"version": 3.12}, "3.12", id="a-yaml-number"),
        pytest.param({"version": " "}, None, id="blank"),
        pytest.param({}, None, id="absent"),
    ],
)
def test_the_runner_version_is_the_python_the_manifest_asks_for(
    runner: dict[str, object], expected: str | None
) -> None:
    data = manifest()
    data["meta"] = {"runner": {"language": "python", "entrypoint": "main", **runner}}
    assert parse_manifest(data).runner_version == expected
