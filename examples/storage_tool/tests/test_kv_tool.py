"""Unit tests of the kv tool and the visits endpoint, with no host: pluginkv.testing.

Run from the plugin's folder with an interpreter that has dify_plugin and
pluginkv installed: ``python -m pytest tests`` or ``python tests/test_kv_tool.py``.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the plugin's folder

from dify_plugin.entities.tool import ToolRuntime
from endpoints.visits import VisitsEndpoint
from tools.kv import KvTool
from werkzeug import Request
from werkzeug.test import EnvironBuilder

from pluginkv.testing import FakeSession


def run_tool(session: FakeSession, **parameters: str) -> dict:
    runtime = ToolRuntime(credentials={}, user_id="user-1", session_id=session.session_id)
    (message,) = KvTool(runtime=runtime, session=session).invoke(parameters)
    return message.message.json_object


def test_set_then_get_round_trips_through_real_storage() -> None:
    session = FakeSession(workspace="ws-1", plugin="pluginkv/storage_tool")
    run_tool(session, op="set", key="city", value="Berlin")
    assert session.kv.get("city") == b"Berlin"  # the full Storage API, for the test
    assert run_tool(session, op="get", key="city")["value"] == "Berlin"


def test_a_missing_key_fails_as_on_the_host() -> None:
    answer = run_tool(FakeSession(), op="get", key="nope")
    assert answer["error"].startswith("load data failed")


def test_the_manifest_quota_and_permission() -> None:
    full = run_tool(FakeSession(quota_bytes=1024), op="set", key="big", value="x" * 2000)
    assert "1024" in full["error"]
    denied = run_tool(FakeSession(storage_enabled=False), op="exist", key="k")
    assert denied["error"].startswith("permission denied")


def test_a_commit_takes_the_lock_once() -> None:
    session = FakeSession()
    first, second = run_tool(session, op="atomic", key="job")["commits"]
    assert first["ok"] and (second["ok"], second["failed"]) == (False, ["job/lock"])
    assert session.kv.get("job/takes") == b"1"


def test_the_endpoint_counts_visits() -> None:
    session = FakeSession(endpoint_id="hook-1")
    request = Request(EnvironBuilder(path="/visits", query_string="a=1").get_environ())
    endpoint = VisitsEndpoint(session)
    endpoint.invoke(request, {}, {"greeting": "hi"})
    response = endpoint.invoke(request, {}, {"greeting": "hi"})
    assert json.loads(response.get_data())["visits"] == 2
    assert session.kv.get("visits") == b"2"


if __name__ == "__main__":
    for name, test in list(globals().items()):
        if name.startswith("test_"):
            test()
            print(f"ok {name}")
