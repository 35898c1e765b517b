"""The operator console in Chromium: sign-in, overview, scopes, keys, plugins."""

from __future__ import annotations

import time
from typing import Any

import pytest
from playwright.sync_api import expect

import pluginkv
from pluginkv import Unauthorized

from ..dify.fake_plugin import FakePlugin
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


def test_the_overview_shows_the_store_its_totals_and_live_charts(
    page: Any, console: Console
) -> None:
    counters = console.client("ws-2", "acme/counters")
    counters.set_many({f"c{i}": b"0" for i in range(12)})
    sign_in(page, console)
    expect(page.get_by_test_id("location")).to_contain_text("pluginkv.db")
    scopes = console.store.scopes()
    expect(page.get_by_test_id("total-scopes")).to_have_text(str(len(scopes)))
    expect(page.get_by_test_id("total-keys")).to_have_text(str(sum(u.keys for _, u in scopes)))
    chart = page.locator("svg polyline").first
    for i in range(400):  # traffic until the chart has drawn a few samples of it
        counters.get(f"c{i % 12}")
        if len((chart.get_attribute("points") or "").split()) >= 4:
            break
        page.wait_for_timeout(10)
    expect(page.get_by_test_id("rate")).to_contain_text("/s")
    expect(page.get_by_test_id("latency")).to_contain_text("ms")
    screenshot(page, "overview")


def test_a_quota_bar_follows_writes_through_the_api_and_the_quota_is_editable(
    page: Any, console: Console
) -> None:
    bars = console.client("ws-3", "acme/bars")
    bars.set("a", b"x" * 1000)
    console.client("ws-3", "acme/other").set("b", b"y")
    sign_in(page, console)
    page.goto(console.url + "/ui/scopes")
    row = page.locator('tr[data-scope="ws-3/acme/bars"]')
    bar = row.get_by_test_id("usage-bar")
    expect(bar).to_have_attribute("max", str(64 * 1024))
    before = float(bar.get_attribute("value"))
    assert before == bars.usage().bytes_used

    bars.set("b", b"y" * 8000)
    page.get_by_role("button", name="Refresh").click()
    expect(bar).to_have_attribute("value", str(bars.usage().bytes_used))
    assert float(bar.get_attribute("value")) > before

    row.get_by_test_id("quota-input").fill("20000")
    row.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("error")).to_have_text("")
    expect(bar).to_have_attribute("max", "20000")
    assert bars.usage().quota_bytes == 20000

    page.get_by_test_id("scope-filter").fill("other")
    expect(page.locator("tr[data-scope]")).to_have_count(1)
    page.get_by_test_id("scope-filter").fill("ws-3")
    page.get_by_test_id("scope-sort").select_option("fill")
    expect(page.locator("tr[data-scope]").first).to_have_attribute("data-scope", "ws-3/acme/bars")
    screenshot(page, "scopes")


def test_purging_a_scope_needs_its_name_typed(page: Any, console: Console) -> None:
    doomed = console.client("ws-4", "acme/doomed")
    doomed.set_many({"a": b"1", "b": b"2"})
    sign_in(page, console)
    page.goto(console.url + "/ui/scopes")
    page.locator('tr[data-scope="ws-4/acme/doomed"]').get_by_test_id("purge").click()
    dialog = page.get_by_test_id("purge-dialog")
    confirm = dialog.get_by_role("button", name="Purge", exact=True)
    expect(confirm).to_be_disabled()
    dialog.get_by_test_id("purge-confirm").fill("ws-4/acme/doome")
    expect(confirm).to_be_disabled()
    screenshot(page, "purge")
    assert doomed.usage().keys == 2
    dialog.get_by_test_id("purge-confirm").fill("ws-4/acme/doomed")
    confirm.click()
    expect(dialog).to_be_hidden()
    row = page.locator('tr[data-scope="ws-4/acme/doomed"]')
    expect(row.get_by_test_id("usage-text")).to_contain_text("0 B of")  # its counter stays
    assert doomed.usage().keys == 0


def test_the_plugins_page_shows_a_connected_plugin_its_tools_and_its_log(
    page: Any, console: Console
) -> None:
    host = console.app.state.host
    with FakePlugin(host.debug_port) as plugin:
        plugin.register(console.tokens.issue_debug_key(workspace="ws-7"))
        deadline = time.monotonic() + 10
        while not any(info.plugin == "fake/plugin" for info in host.plugins()):
            assert time.monotonic() < deadline, "the plugin did not register"
            time.sleep(0.02)
        sign_in(page, console)
        page.goto(console.url + "/ui/plugins")
        row = page.get_by_role("row").filter(has_text="fake/plugin")
        expect(row).to_contain_text("ws-7")
        expect(row).to_contain_text("running")
        row.get_by_role("button", name="Details").click()
        detail = page.get_by_test_id("plugin-detail")
        expect(detail).to_contain_text("fake / echo")
        expect(page.get_by_test_id("plugin-log")).to_have_text("No log is kept for this plugin.")
        screenshot(page, "plugins")


def test_a_token_created_in_the_console_is_shown_once_and_works_until_revoked(
    page: Any, console: Console
) -> None:
    sign_in(page, console)
    page.goto(console.url + "/ui/plugins")
    form = page.get_by_test_id("token-create")
    form.get_by_label("Workspace").fill("ws-5")
    form.get_by_label("Plugin").fill("acme/new")
    form.get_by_role("button", name="Create").click()
    shown = page.get_by_test_id("created-token")
    expect(shown).not_to_have_value("")
    token = shown.input_value()
    screenshot(page, "tokens")

    from pluginkv.client import RemoteStorage

    with RemoteStorage(console.url, token) as fresh:
        fresh.set("hello", b"world")
        revoke = page.get_by_test_id("token-revoke")
        revoke.get_by_label("Workspace").fill("ws-5")
        revoke.get_by_label("Plugin").fill("acme/new")
        revoke.get_by_role("button", name="Revoke").click()
        expect(revoke).to_contain_text("Revoked every token of ws-5/acme/new")
        with pytest.raises(Unauthorized):
            fresh.get("hello")
    page.reload()
    expect(page.get_by_test_id("created-token")).to_be_hidden()  # shown once


def test_on_a_read_only_service_the_console_says_so_and_offers_no_write(
    page: Any, console: Console
) -> None:
    console.client("ws-6", "acme/frozen").set("k", b"v")
    writable_store, writable_settings = console.app.state.store, console.app.state.settings
    frozen = pluginkv.open_store(writable_settings.database_url, read_only=True)
    console.app.state.store, console.app.state.settings = frozen, frozen.settings
    try:
        sign_in(page, console)
        expect(page.get_by_test_id("read-only")).to_be_visible()
        page.goto(console.url + "/ui/keys?workspace=ws-6&plugin=acme/frozen")
        page.get_by_role("button", name="k", exact=True).click()
        expect(page.get_by_test_id("value-text")).to_have_value("v")
        expect(page.get_by_test_id("read-only")).to_be_visible()
        expect(page.get_by_test_id("save")).to_be_disabled()
        expect(page.get_by_test_id("delete")).to_be_disabled()
        screenshot(page, "read-only")
    finally:
        page.goto("about:blank")  # its long poll waits on this store: the page leaves first
        console.app.state.store, console.app.state.settings = writable_store, writable_settings
        # Closed only once the service has ended that long poll: closing a store under a
        # read in flight on another thread is what the service's shutdown never does.
        deadline = time.monotonic() + 30
        while frozen.notifier.waiting() and time.monotonic() < deadline:
            time.sleep(0.05)
        frozen.close()
