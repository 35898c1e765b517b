"""The operator console in Chromium: sign-in, overview, scopes, keys, plugins."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from .conftest import Console, screenshot, sign_in


def test_signing_in_keeps_the_admin_token_in_the_tab_session_only(
    page: Any, console: Console
) -> None:
    page.goto(console.url + "/ui/")
    page.wait_for_url(console.url + "/ui/signin")  # no token yet: the sign-in page
    screenshot(page, "signin")
    page.get_by_test_id("token").fill(console.tokens.issue(workspace="ws-1", plugin="a/b"))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("signin-error")).to_contain_text("not an admin token")

    sign_in(page, console)
    expect(page.get_by_test_id("backend")).to_have_text("sqlite")
    assert console.admin not in page.url
    assert page.evaluate("sessionStorage.getItem('pluginkv.admin-token')") == console.admin
    assert page.evaluate("document.cookie") == ""
    page.get_by_test_id("sign-out").click()
    page.wait_for_url(console.url + "/ui/signin")
    assert page.evaluate("sessionStorage.length") == 0
