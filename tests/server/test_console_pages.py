"""The console's pages as HTTP answers: guarded by a strict policy, with no inline script."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from pluginkv.server.console import CONTENT_SECURITY_POLICY, front_end_library

PAGES = ["/ui/", "/ui/signin", "/ui/scopes", "/ui/keys", "/ui/plugins"]


class _Inline(HTMLParser):
    """Collects what a strict Content-Security-Policy would block: inline script and style."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self.found.append("an inline <script>")
        if tag == "style":
            self.found.append("a <style> element")
        self.found += [f"the attribute {name} on <{tag}>" for name in names if name == "style"]
        self.found += [f"the handler {name} on <{tag}>" for name in names if name.startswith("on")]


@pytest.fixture(name="backend")
def _backend() -> str:
    return "memory"


@pytest.mark.parametrize("path", PAGES)
def test_every_page_is_served_under_a_strict_policy_with_no_inline_script(
    client: TestClient, path: str
) -> None:
    page = client.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert policy == CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in policy and "unsafe" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "set-cookie" not in page.headers
    parser = _Inline()
    parser.feed(page.text)
    assert parser.found == []


def test_the_console_lives_under_one_path_and_leads_there(client: TestClient) -> None:
    to_console = client.get("/ui", follow_redirects=False)
    assert to_console.status_code == 308
    assert to_console.headers["location"] == "ui/"
    assert client.get("/ui/nothing-here").status_code == 404


def test_the_scripts_come_from_the_service_itself(client: TestClient) -> None:
    assert front_end_library().is_file(), "make install puts the front-end library there"
    library = client.get("/ui/static/vendor/alpine.js")
    assert library.status_code == 200
    assert library.headers["content-type"].startswith("text/javascript")
    assert library.content == front_end_library().read_bytes()
    own = client.get("/ui/static/console.js")
    assert own.status_code == 200
    assert "sessionStorage" in own.text and "document.cookie" not in own.text


ROOT = Path(__file__).resolve().parents[2]


def test_every_picture_of_the_console_in_the_docs_is_one_the_browser_tests_take() -> None:
    shown = set(
        re.findall(r"images/(console-[a-z-]+)\.png", (ROOT / "docs/console.md").read_text())
    )
    shown |= set(
        re.findall(r"docs/images/(console-[a-z-]+)\.png", (ROOT / "README.md").read_text())
    )
    taken = {
        f"console-{name}"
        for test in (ROOT / "tests/console").glob("test_*.py")
        for name in re.findall(r'screenshot\(page, "([a-z-]+)"\)', test.read_text())
    }
    assert shown, "docs/console.md shows the console's pages"
    assert shown <= taken, f"pictures no test takes: {sorted(shown - taken)}"
    assert taken <= shown, f"pictures the docs do not show: {sorted(taken - shown)}"


def test_without_its_library_the_console_says_how_to_install_it(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pluginkv.server.console import pages

    monkeypatch.setattr(pages, "_LIBRARY", Path("node_modules", "absent", "library.js"))
    for path in ("/ui/", "/ui/static/vendor/alpine.js"):
        answer = client.get(path)
        assert answer.status_code == 503
        assert "make install" in answer.text
