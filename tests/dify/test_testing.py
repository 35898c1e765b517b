"""``pluginkv.testing``: the fake session, and the example's unit tests that use it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pluginkv.testing import FakeSession

from .conftest import ROOT, STORAGE_TOOL

EXAMPLE_TESTS = STORAGE_TOOL / "tests" / "test_kv_tool.py"


class TestFakeSession:
    def test_storage_answers_as_the_host_does(self) -> None:
        """The four verbs with Dify's semantics; the full Storage beside them."""
        session = FakeSession(workspace="ws-1", plugin="acme/weather")
        session.storage.set("k", b"v")
        assert session.storage.get("k") == b"v"
        assert session.storage.exist("k") is True
        session.storage.delete("k")
        session.storage.delete("k")  # a missing key is fine
        with pytest.raises(Exception, match=r"^load data failed, please check"):
            session.storage.get("k")
        assert session.kv.get("k") is None

    def test_engine_errors_arrive_as_plain_exceptions_naming_the_limit(self) -> None:
        session = FakeSession(quota_bytes=1024)
        with pytest.raises(Exception, match=r"save data failed: quota exceeded.*1024") as caught:
            session.storage.set("big", b"x" * 2000)
        assert type(caught.value) is Exception
        with pytest.raises(Exception, match=r"'\.\.'"):
            session.storage.set("a..b", b"x")

    def test_keys_are_cleaned_as_on_the_host(self) -> None:
        session = FakeSession()
        session.storage.set("notes//a/", b"v")
        assert session.storage.get("/notes/./a") == b"v"
        assert session.kv.get("notes/a") == b"v"
        with pytest.raises(Exception, match=r"^save data failed: key '\.' names no file"):
            session.storage.set(".", b"x")

    def test_storage_disabled_is_permission_denied(self) -> None:
        with pytest.raises(Exception, match=r"^permission denied"):
            FakeSession(storage_enabled=False).storage.exist("k")

    def test_sessions_on_one_store_keep_workspaces_apart(self) -> None:
        first = FakeSession(workspace="ws-1")
        second = FakeSession(workspace="ws-2", store=first.store)
        first.storage.set("k", b"1")
        assert not second.storage.exist("k")


def test_plugin_side_modules_need_none_of_the_servers_dependencies() -> None:
    """What a plugin imports (pluginkv.dify.storage, pluginkv.testing) pulls in no server code."""
    code = (
        "import sys, pluginkv.dify, pluginkv.dify.plugin_storage, pluginkv.testing\n"
        "server = ('starlette', 'uvicorn', 'jwt', 'yaml', 'prometheus_client', 'aiohttp')\n"
        "print(sorted(m for m in server if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def test_the_examples_unit_tests_pass_on_the_real_sdk(sdk_python: Path) -> None:
    """examples/storage_tool/tests runs the tool and an endpoint on FakeSession, no host."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [str(sdk_python), str(EXAMPLE_TESTS)],
        cwd=STORAGE_TOOL,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("\nok ") + done.stdout.startswith("ok ") == 5, done.stdout


def test_the_docs_show_the_example_that_runs() -> None:
    """The example in docs/dify-host.md is the file the test above runs."""
    docs = (ROOT / "docs" / "dify-host.md").read_text(encoding="utf-8")
    assert EXAMPLE_TESTS.read_text(encoding="utf-8") in docs
