"""One service and one Chromium per test module, driven by Playwright for Python.

The browser is Debian's ``chromium`` (``make chromium``), never one Playwright
downloads.  Without it the tests skip, except under ``CI=true``, where they fail.
Screenshots go to ``docs/images/``, so the docs always show the console as it is.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import pluginkv
from pluginkv import Store
from pluginkv.client import RemoteStorage
from pluginkv.services.tokens import Tokens

SECRET = "console-secret-" + "x" * 40
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
IMAGES = Path(__file__).parents[2] / "docs" / "images"


def need_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    message = "Debian's chromium is not installed (make chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(message + "; under CI=true the console's browser tests never skip")
    pytest.skip(message)


@dataclass
class Console:
    """The live service: its URL, store, tokens, and the admin token to sign in with."""

    url: str
    store: Store
    tokens: Tokens
    app: Any
    admin: str = ""
    clients: list[RemoteStorage] = field(default_factory=list)

    def client(self, workspace: str, plugin: str) -> RemoteStorage:
        """The client SDK on one scope, writing through the same API as any plugin."""
        client = RemoteStorage(self.url, self.tokens.issue(workspace=workspace, plugin=plugin))
        self.clients.append(client)
        return client

    def close_clients(self) -> None:
        while self.clients:
            self.clients.pop().close()


@contextmanager
def serve_console(directory: Path, **settings: Any) -> Iterator[Console]:
    """The service on a free port, as `pluginkv serve` runs it, with these settings."""
    import uvicorn

    from pluginkv.server.app import create_app

    settings = pluginkv.store.load_settings(
        data_dir=str(directory),
        database_url=f"sqlite:///{directory / 'pluginkv.db'}",
        default_quota_bytes=64 * 1024,
        debug_port=0,  # remote-debug plugins connect here; any free port
        **settings,
    )
    tokens = Tokens(SECRET, default_ttl=3600)
    # As `pluginkv serve` runs it: the app opens the store and listens for plugins.
    app = create_app(settings, tokens=tokens, listen_for_plugins=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the console's service did not start"
        time.sleep(0.01)
    try:
        yield Console(
            f"http://127.0.0.1:{port}", app.state.store, tokens, app, tokens.issue(admin=True)
        )
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module", name="console")
def _console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    need_chromium()
    with serve_console(tmp_path_factory.mktemp("console")) as console:
        yield console


@pytest.fixture(scope="module", name="browser")
def _browser() -> Iterator[Any]:
    need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(name="page")
def _page(browser: Any, console: Console) -> Iterator[Any]:
    """A fresh tab (its own session storage) that records script errors and CSP reports."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(10_000)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(f"console {message.type}: {message.text}")
            if message.type == "error" and "status of 4" not in message.text
            else None
        ),
    )
    page.on("dialog", lambda dialog: problems.append(f"a dialog opened: {dialog.message}"))
    try:
        yield page
    finally:
        context.close()
        console.close_clients()
    assert problems == [], problems


def sign_in(page: Any, console: Console) -> None:
    page.goto(console.url + "/ui/signin")
    page.get_by_test_id("token").fill(console.admin)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(console.url + "/ui/")


def screenshot(page: Any, name: str) -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMAGES / f"console-{name}.png"), full_page=True)
