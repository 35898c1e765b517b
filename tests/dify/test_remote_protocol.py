"""The remote listener's edge cases, with a hand-written plugin (``fake_plugin.py``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import HostService
from .fake_plugin import FakePlugin


def test_a_bad_key_gets_the_daemons_plain_text_line_and_the_connection_closes(
    service: HostService,
) -> None:
    with FakePlugin(service.debug_port) as plugin:
        plugin.send({"type": "handshake", "data": {"key": "bogus"}})
        assert plugin.read_line() == b"handshake failed, invalid key\n"
        assert plugin.closed_by_host()


def test_a_scope_token_is_no_debug_key(service: HostService) -> None:
    token = service.tokens.issue(workspace="ws-1", plugin="fake/plugin")
    with FakePlugin(service.debug_port) as plugin:
        plugin.send({"type": "handshake", "data": {"key": token}})
        assert plugin.read_line() == b"handshake failed, invalid key\n"


def test_a_first_message_other_than_the_handshake_is_refused(service: HostService) -> None:
    with FakePlugin(service.debug_port) as plugin:
        plugin.send({"type": "end", "data": {}})
        assert plugin.read_line().startswith(b"handshake failed")


def test_a_registration_that_declares_nothing_is_refused(service: HostService) -> None:
    key = service.tokens.issue_debug_key(workspace="ws-fake")
    with FakePlugin(service.debug_port) as plugin:
        plugin.send({"type": "handshake", "data": {"key": key}})
        plugin.send({"type": "end", "data": {}})
        assert plugin.read_line() == b"register failed, no manifest declaration\n"


def test_a_reconnecting_plugin_replaces_its_old_registration(service: HostService) -> None:
    key = service.tokens.issue_debug_key(workspace="ws-fake")
    with FakePlugin(service.debug_port) as first:
        first.register(key)
        service.wait_for(lambda: service.registered("fake/plugin", "ws-fake"), "first")
        since = _entry(service)["since"]
        with FakePlugin(service.debug_port) as second:
            second.register(key)
            service.wait_for(lambda: _entry(service)["since"] > since, "the second")
            assert first.closed_by_host()
            assert [p["workspaces"] for p in service.plugins()].count(["ws-fake"]) == 1
        service.wait_for(lambda: not service.registered("fake/plugin", "ws-fake"), "drop")


def test_non_json_lines_are_logged_and_the_plugin_stays(
    service: HostService, caplog: pytest.LogCaptureFixture
) -> None:
    key = service.tokens.issue_debug_key(workspace="ws-fake")
    caplog.set_level(logging.WARNING, logger="pluginkv.dify")
    with FakePlugin(service.debug_port) as plugin:
        plugin.register(key)
        plugin.send(b"this is not json\n[1, 2]\n\n")
        plugin.heartbeat()
        service.wait_for(lambda: "not JSON" in caplog.text, "the log line")
        time.sleep(0.1)
        assert service.registered("fake/plugin", "ws-fake")
    assert "this is not json" in caplog.text


def _entry(service: HostService) -> dict[str, float]:
    (entry,) = [p for p in service.plugins() if p["workspaces"] == ["ws-fake"]]
    return entry


@pytest.fixture(name="impatient_service")
def _impatient_service(tmp_path: Path) -> Iterator[HostService]:
    """A service of its own that drops plugins silent for half a second."""
    service = HostService(tmp_path / "data", heartbeat_timeout_seconds=0.5)
    yield service
    service.stop()


def test_a_plugin_that_stops_sending_heartbeats_is_dropped(
    impatient_service: HostService,
) -> None:
    service = impatient_service
    key = service.tokens.issue_debug_key(workspace="ws-fake")
    with FakePlugin(service.debug_port) as plugin:
        plugin.register(key)
        service.wait_for(lambda: service.registered("fake/plugin", "ws-fake"), "registration")
        service.wait_for(lambda: not service.registered("fake/plugin", "ws-fake"), "the drop", 5)
        assert plugin.closed_by_host()
