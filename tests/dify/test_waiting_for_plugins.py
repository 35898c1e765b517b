"""A call for an installed plugin that is starting waits for it, up to a setting.

The plugin under test waits at start-up, before it runs the SDK, until the
test opens its gate; a call is seen waiting in the host's log before the
gate opens, so nothing depends on timing.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from .conftest import PLUGIN_ENVS, PLUGIN_ID, HostService
from .plugin_copies import GATED_MAIN, example_copy

pytestmark = pytest.mark.usefixtures("sdk_python")

WAITING = f"a call for {PLUGIN_ID} in ws-w waits for it (starting)"


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=120) as response:
        return response.status, response.read()


def _state(service: HostService) -> str | None:
    states = [p["state"] for p in service.plugins() if p["plugin"] == PLUGIN_ID]
    return states[0] if states else None


CALL = {"workspace": "ws-w", "plugin": PLUGIN_ID, "provider": "storage_tool", "tool": "kv"}


def test_after_a_service_restart_calls_and_endpoint_requests_wait_for_the_plugin(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pluginkv.dify")
    gated = example_copy(tmp_path / "gated", main=GATED_MAIN)
    (gated / "gate").touch()
    first = HostService(tmp_path / "data", plugin_envs_dir=str(PLUGIN_ENVS))
    try:
        first.install("ws-w", gated)
        first.kv("ws-w", "set", "kept", "yes")
        body = {"workspace": "ws-w", "plugin": PLUGIN_ID, "settings": {"greeting": "hi"}}
        hook_id = json.loads(first.call("POST", "/v1/admin/endpoints", body)[1])["hook_id"]
    finally:
        first.stop()
    (gated / "gate").unlink()
    second = HostService(tmp_path / "data", plugin_envs_dir=str(PLUGIN_ENVS))
    try:
        second.wait_for(lambda: _state(second) == "starting", "the start")
        answers: list[dict[str, Any]] = []
        visits: list[tuple[int, bytes]] = []
        calls = [
            threading.Thread(target=lambda: answers.append(second.kv("ws-w", "get", "kept"))),
            threading.Thread(
                target=lambda: visits.append(_get(f"{second.url}/e/{hook_id}/visits"))
            ),
        ]
        for call in calls:
            call.start()
        second.wait_for(lambda: caplog.text.count(WAITING) == 2, "both calls to wait")
        (gated / "gate").touch()
        for call in calls:
            call.join(timeout=120)
        assert [answer["value"] for answer in answers] == ["yes"]
        assert [(status, json.loads(body)["visits"]) for status, body in visits] == [(200, 1)]
    finally:
        second.stop()


def test_a_call_that_waited_out_the_setting_fails_with_the_state(tmp_path: Path) -> None:
    gated = example_copy(tmp_path / "gated", main=GATED_MAIN)
    service = HostService(
        tmp_path / "data", plugin_envs_dir=str(PLUGIN_ENVS), plugin_start_wait_seconds=0.2
    )
    installing = threading.Thread(target=service.install, args=("ws-w", gated), daemon=True)
    try:
        installing.start()
        service.wait_for(lambda: _state(service) == "starting", "the start")
        status, answer = service.call("POST", "/v1/admin/tools/invoke", CALL)
        assert status == 404
        assert json.loads(answer)["error"]["message"] == (
            f"{PLUGIN_ID} is installed for workspace ws-w but not running (starting); "
            "waited 0.2 s for it (setting PLUGINKV_PLUGIN_START_WAIT_SECONDS)"
        )
        (gated / "gate").touch()
        installing.join(timeout=120)
    finally:
        service.stop()


def test_a_call_for_a_plugin_that_failed_fails_at_once_with_why(tmp_path: Path) -> None:
    """A failed plugin starts again only at an install or a service start: nothing to wait for."""
    gone = tmp_path / "gone"
    data = tmp_path / "data"
    data.mkdir()
    listed = {"plugin": PLUGIN_ID, "directory": str(gone), "workspaces": ["ws-w"]}
    (data / "dify-plugins.json").write_text(json.dumps({"plugins": [listed]}))
    # A wait longer than any test: the answer must not come from waiting it out.
    service = HostService(data, plugin_envs_dir=str(PLUGIN_ENVS), plugin_start_wait_seconds=3600)
    try:
        service.wait_for(lambda: _state(service) == "failed", "the failure")
        status, answer = service.call("POST", "/v1/admin/tools/invoke", CALL)
        assert status == 404
        message = json.loads(answer)["error"]["message"]
        assert message.startswith(f"{PLUGIN_ID} is installed for workspace ws-w but not running")
        assert "(failed: " in message and "no manifest.yaml" in message
    finally:
        service.stop()
