"""Each error declares its code, status and fields once, and every wire carries them intact."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pluginkv
from pluginkv import errors
from pluginkv.client import AsyncRemoteStorage, RemoteStorage
from pluginkv.dify.extended_calls import error_answer
from pluginkv.dify.plugin_storage import ChannelStorage
from pluginkv.error_registry import ERRORS, error_class, error_fields, error_from_code

from .conftest import LiveService

HTTP_API_DOC = Path(__file__).parent.parent / "docs" / "http-api.md"

# Codes that name no exception, and who answers them (errors.py says why).
NOT_EXCEPTIONS = {
    ("not_found", 404),  # an absent key: an answer
    ("check_failed", 412),  # a failed check of POST /v1/atomic: an answer
    ("no_such_route", 404),  # the router
    ("method_not_allowed", 405),  # the router
    ("request_timeout", 408),  # the listener
    ("headers_too_large", 431),  # the listener
    ("too_many_connections", 503),  # the listener
}

FIELD_VALUES: dict[str, Any] = {
    "line": 7,
    "size": 2048,
    "limit": 1024,
    "used": 900,
    "needed": 300,
    "key": "a/b",
    "expected": 3,
    "actual": 4,
    "error_type": "ValueError",
    "oldest": 12,
}


def _example(cls: type[pluginkv.PluginKVError]) -> pluginkv.PluginKVError:
    return cls(f"an example {cls.code}", **{name: FIELD_VALUES[name] for name in cls.fields})


def _public_errors() -> list[type[pluginkv.PluginKVError]]:
    return [
        obj
        for name in pluginkv.__all__
        if isinstance(obj := getattr(pluginkv, name), type)
        and issubclass(obj, pluginkv.PluginKVError)
        and obj is not pluginkv.PluginKVError
    ]


def test_every_error_class_is_in_the_registry_with_its_own_code() -> None:
    classes = {getattr(errors, name) for name in errors.__all__} - {errors.PluginKVError}
    assert set(ERRORS) == classes
    assert len({cls.code for cls in ERRORS}) == len(ERRORS)
    for cls in ERRORS:
        assert error_class(cls.code) is cls


def test_every_public_error_is_exported_and_maps_to_a_status_other_than_500() -> None:
    assert set(_public_errors()) == set(ERRORS)
    for cls in ERRORS:
        assert 400 <= cls.http_status < 600 and cls.http_status != 500, cls


def test_a_subclass_has_its_parents_status_unless_it_declares_its_own() -> None:
    assert errors.InvalidExportFile.http_status == errors.InvalidArgument.http_status == 400

    class Narrower(errors.QuotaExceeded):
        pass

    assert Narrower.http_status == 507
    assert error_fields(Narrower("x", used=1, limit=2, needed=3)) == {
        "used": 1,
        "limit": 2,
        "needed": 3,
    }


def test_fields_are_the_constructors_keywords() -> None:
    for cls in ERRORS:
        exc = _example(cls)
        assert error_fields(exc) == {name: FIELD_VALUES[name] for name in cls.fields}


def test_a_code_with_a_required_field_missing_is_not_rebuilt() -> None:
    assert error_from_code("quota_exceeded", "full", {"used": 1}) is None
    assert error_from_code("no_such_code", "?", {}) is None
    rebuilt = error_from_code("plugin_error", "boom", {})  # error_type has a default
    assert isinstance(rebuilt, errors.PluginFailed) and rebuilt.error_type is None


def test_the_http_api_error_table_is_the_registry_and_the_codes_of_no_exception() -> None:
    table = {
        (code, int(status))
        for code, status in re.findall(
            r"^\| `(\w+)` \| (\d{3})", HTTP_API_DOC.read_text(), re.MULTILINE
        )
    }
    assert table == {(cls.code, cls.http_status) for cls in ERRORS} | NOT_EXCEPTIONS


def test_the_cli_exits_with_the_code_each_error_declares() -> None:
    from pluginkv.cli.common import PluginKVFailure, engine_errors

    for cls in ERRORS:
        with pytest.raises(PluginKVFailure) as caught, engine_errors():
            raise _example(cls)
        assert caught.value.exit_code == cls.exit_code
    assert errors.VersionConflict.exit_code == 4 and errors.InvalidKey.exit_code == 3


# -- over HTTP: the service's own error path, both clients ----------------------------------
@pytest.fixture(name="raising_service")
def _raising_service(
    live_service: LiveService, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, str]]:
    """The live service (URL, token) on a store whose every read of a key raises the error
    whose code the key is, as the engine would raise it."""

    def get_entry(storage: pluginkv.Storage, key: str) -> None:
        cls = error_class(key)
        assert cls is not None
        raise _example(cls)

    monkeypatch.setattr(pluginkv.Storage, "get_entry", get_entry)
    with pluginkv.open_store("memory://") as store:
        live_service.app.state.store = store
        yield live_service.url, live_service.tokens.issue(workspace="ws-1", plugin="acme/errors")


def _same(got: BaseException, sent: pluginkv.PluginKVError) -> None:
    assert type(got) is type(sent)
    assert str(got) == str(sent)
    assert isinstance(got, pluginkv.PluginKVError)
    assert error_fields(got) == error_fields(sent)


@pytest.mark.parametrize("cls", ERRORS, ids=lambda cls: cls.code)
def test_every_error_comes_back_through_the_sync_client_as_itself(
    raising_service: tuple[str, str], cls: type[pluginkv.PluginKVError]
) -> None:
    with RemoteStorage(*raising_service, retries=0) as client:
        with pytest.raises(pluginkv.PluginKVError) as caught:
            client.get(cls.code)
    _same(caught.value, _example(cls))


@pytest.mark.parametrize("cls", ERRORS, ids=lambda cls: cls.code)
def test_every_error_comes_back_through_the_async_client_as_itself(
    raising_service: tuple[str, str], cls: type[pluginkv.PluginKVError]
) -> None:
    async def get() -> None:
        async with AsyncRemoteStorage(*raising_service, retries=0) as client:
            await client.get(cls.code)

    with pytest.raises(pluginkv.PluginKVError) as caught:
        asyncio.run(get())
    _same(caught.value, _example(cls))


# -- over the plugin channel: the host's error answer, ChannelStorage --------------------------
class _RefusingHost:
    """A storage channel whose host refuses every pluginkv call with one error."""

    def __init__(self, error: pluginkv.PluginKVError) -> None:
        self.error = error

    def _backwards_invoke(
        self, invoke_type: Any, data_type: Any, request: dict[str, Any]
    ) -> Iterator[dict[str, Any]]:
        yield error_answer(self.error)


@pytest.mark.parametrize("cls", ERRORS, ids=lambda cls: cls.code)
def test_every_error_comes_back_through_the_plugin_channel_as_itself(
    cls: type[pluginkv.PluginKVError],
) -> None:
    channel = ChannelStorage(_RefusingHost(_example(cls)))
    with pytest.raises(pluginkv.PluginKVError) as caught:
        channel.get_entry("k")
    _same(caught.value, _example(cls))


def test_the_openapi_error_bodies_carry_each_errors_fields() -> None:
    from pluginkv.server.openapi import openapi_document

    schemas = openapi_document(pluginkv.Settings())["components"]["schemas"]
    bodies: dict[str, type[pluginkv.PluginKVError]] = {
        "VersionConflictError": errors.VersionConflict,
        "ValueTooLargeError": errors.ValueTooLarge,
        "InsufficientStorageError": errors.QuotaExceeded,
        "PluginError": errors.PluginFailed,
    }
    for name, cls in bodies.items():
        properties = schemas[name]["properties"]["error"]["properties"]
        assert set(properties) - {"code", "message"} == set(cls.fields), name
