"""The key browser follows the change feed: keys written elsewhere show without a reload."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from playwright.sync_api import expect

from .conftest import Console, screenshot, sign_in


def _browse(page: Any, console: Console, workspace: str, plugin: str, prefix: str = "") -> None:
    page.goto(f"{console.url}/ui/keys?workspace={workspace}&plugin={plugin}&prefix={prefix}")
    expect(page.get_by_test_id("live")).to_have_text("Live")
    # Marks this document: a reload would lose it.
    page.evaluate("window.notReloaded = true")


def _not_reloaded(page: Any) -> bool:
    return bool(page.evaluate("window.notReloaded === true"))


def test_a_key_set_through_the_api_appears_in_order_and_others_stay_out(
    page: Any, console: Console
) -> None:
    notes = console.client("ws-live", "acme/appear")
    notes.set_many({"note:a": b"1", "note:c": b"3"})
    sign_in(page, console)
    _browse(page, console, "ws-live", "acme/appear", "note:")
    keys = page.get_by_test_id("key")
    expect(keys).to_have_text(["note:a", "note:c"])

    notes.set("note:b", b"2")
    notes.set("other", b"not under the prefix")
    expect(keys).to_have_text(["note:a", "note:b", "note:c"])
    assert _not_reloaded(page)
    screenshot(page, "keys-live")


def test_a_key_holding_markup_that_arrives_live_is_shown_as_text(
    page: Any, console: Console
) -> None:
    hostile = console.client("ws-live", "evil/live")
    hostile.set("plain", b"1")
    sign_in(page, console)
    _browse(page, console, "ws-live", "evil/live")
    key = '<img src=x onerror="window.pwned=1">'
    hostile.set(key, b"<script>window.pwned=2</script>")
    expect(page.get_by_test_id("key")).to_have_text([key, "plain"])
    assert page.evaluate("window.pwned") is None
    assert page.locator("main img[src='x']").count() == 0


def test_a_key_changed_through_the_api_shows_its_new_version_and_size(
    page: Any, console: Console
) -> None:
    notes = console.client("ws-live", "acme/change")
    notes.set("counter", b"1")
    sign_in(page, console)
    _browse(page, console, "ws-live", "acme/change")
    row = page.locator("#key-rows tr").filter(has_text="counter")
    expect(row).to_contain_text("8 B")  # the key and the value

    notes.set("counter", b"12345")
    expect(row.locator("td").nth(1)).to_have_text("12 B")
    expect(row.locator("td").nth(2)).to_have_text("2")
    assert _not_reloaded(page)


def test_a_key_deleted_through_the_api_leaves_the_listing(page: Any, console: Console) -> None:
    notes = console.client("ws-live", "acme/delete")
    notes.set_many({"keep": b"1", "drop": b"2"})
    sign_in(page, console)
    _browse(page, console, "ws-live", "acme/delete")
    keys = page.get_by_test_id("key")
    expect(keys).to_have_text(["drop", "keep"])

    notes.delete("drop")
    expect(keys).to_have_text(["keep"])
    assert _not_reloaded(page)


def test_a_key_whose_ttl_passes_leaves_the_listing(page: Any, console: Console) -> None:
    notes = console.client("ws-live", "acme/expire")
    notes.set("stays", b"1")
    sign_in(page, console)
    _browse(page, console, "ws-live", "acme/expire")
    keys = page.get_by_test_id("key")
    notes.set("brief", b"1", ttl=1)
    expect(keys).to_have_text(["brief", "stays"])
    expect(keys).to_have_text(["stays"])  # once its second has passed
    assert notes.get("brief") is None
    assert _not_reloaded(page)


def test_an_untouched_open_value_shows_a_change_made_elsewhere(page: Any, console: Console) -> None:
    notes = console.client("ws-live", "acme/open")
    notes.set("greeting", b"hello")
    sign_in(page, console)
    _browse(page, console, "ws-live", "acme/open")
    page.get_by_role("button", name="greeting").click()
    text = page.get_by_test_id("value-text")
    expect(text).to_have_value("hello")

    notes.set("greeting", b"hello, world")
    expect(text).to_have_value("hello, world")
    expect(page.get_by_test_id("notice")).to_have_text("Changed elsewhere: now at version 2.")
    expect(page.get_by_test_id("underneath")).to_be_hidden()


def test_an_open_editor_is_warned_of_a_change_underneath_and_keeps_the_edit(
    page: Any, console: Console
) -> None:
    notes = console.client("ws-live", "acme/edit")
    notes.set("draft", b"first")
    sign_in(page, console)
    _browse(page, console, "ws-live", "acme/edit")
    page.get_by_role("button", name="draft").click()
    text = page.get_by_test_id("value-text")
    expect(text).to_have_value("first")
    text.fill("mine")

    notes.set("draft", b"theirs")
    underneath = page.get_by_test_id("underneath")
    expect(underneath).to_contain_text("version 1 is now at version 2")
    expect(text).to_have_value("mine")  # the edit is not overwritten
    screenshot(page, "key-underneath")

    page.get_by_test_id("save").click()  # still names version 1: refused
    expect(page.get_by_test_id("conflict")).to_contain_text("now at version 2")
    assert notes.get("draft") == b"theirs"
    page.get_by_test_id("conflict").get_by_role("button", name="Show the current value").click()
    expect(text).to_have_value("theirs")
    expect(page.get_by_test_id("conflict")).to_be_hidden()


def test_an_open_key_deleted_elsewhere_is_shown_as_gone(page: Any, console: Console) -> None:
    notes = console.client("ws-live", "acme/gone")
    notes.set("doomed", b"x")
    sign_in(page, console)
    _browse(page, console, "ws-live", "acme/gone")
    page.get_by_role("button", name="doomed").click()
    expect(page.get_by_test_id("value-text")).to_have_value("x")

    notes.delete("doomed")
    expect(page.get_by_test_id("underneath")).to_contain_text("Deleted elsewhere")
    expect(page.get_by_test_id("key")).to_have_count(0)


def test_the_key_page_holds_one_long_poll_at_a_time_with_the_token_in_a_header(
    page: Any, console: Console
) -> None:
    polls: list[Any] = []
    open_polls: list[Any] = []
    most_open = [0]

    def started(request: Any) -> None:
        if "/v1/changes" in request.url:
            polls.append(request)
            open_polls.append(request)
            most_open[0] = max(most_open[0], len(open_polls))

    def ended(request: Any) -> None:
        if request in open_polls:
            open_polls.remove(request)

    page.on("request", started)
    page.on("requestfinished", ended)
    page.on("requestfailed", ended)
    notes = console.client("ws-live", "acme/busy")
    sign_in(page, console)
    _browse(page, console, "ws-live", "acme/busy")
    for i in range(30):  # a burst of writes, each its own change
        notes.set(f"k{i:02d}", b"v")
    notes.set_many({f"m{i:03d}": b"v" for i in range(200)})  # and one of many changes
    expect(page.get_by_test_id("key")).to_have_count(50)
    expect(page.get_by_test_id("key").first).to_have_text("k00")
    assert most_open[0] == 1
    for request in polls:
        assert "token" not in request.url.lower()
        assert request.headers["authorization"].startswith("Bearer ")
    assert page.evaluate("document.cookie") == ""


def _tab_shown(page: Any, shown: bool) -> None:
    """As the browser does when the tab goes to the background or comes back."""
    state = "visible" if shown else "hidden"
    page.evaluate(
        """state => {
            Object.defineProperty(document, "visibilityState", {get: () => state,
                                                                configurable: true});
            document.dispatchEvent(new Event("visibilitychange"));
        }""",
        state,
    )


def test_a_tab_hidden_for_long_stops_polling_and_catches_up_when_shown(
    page: Any, console: Console
) -> None:
    open_polls: list[Any] = []
    page.on("request", lambda r: open_polls.append(r) if "/v1/changes" in r.url else None)
    page.on("requestfinished", lambda r: open_polls.remove(r) if r in open_polls else None)
    page.on("requestfailed", lambda r: open_polls.remove(r) if r in open_polls else None)
    notes = console.client("ws-live", "acme/hidden")
    notes.set("before", b"1")
    page.clock.install()
    sign_in(page, console)
    _browse(page, console, "ws-live", "acme/hidden")
    live = page.get_by_test_id("live")

    _tab_shown(page, False)
    page.clock.fast_forward("01:01")  # a minute and a second in the background
    expect(live).to_have_text("Paused while the tab is hidden")
    for _ in range(500):  # until the aborted poll's event has come
        if not open_polls:
            break
        page.wait_for_timeout(10)
    assert open_polls == []  # no request waits while the tab is away
    notes.set("meanwhile", b"2")

    _tab_shown(page, True)
    expect(live).to_have_text("Live")
    expect(page.get_by_test_id("key")).to_have_text(["before", "meanwhile"])
    assert _not_reloaded(page)


def test_a_key_page_whose_scope_tokens_are_revoked_follows_on_with_a_new_one(
    page: Any, console: Console
) -> None:
    console.client("ws-live", "acme/revoked").set("one", b"1")
    sign_in(page, console)
    _browse(page, console, "ws-live", "acme/revoked")
    keys = page.get_by_test_id("key")
    expect(keys).to_have_text(["one"])

    revoke = urllib.request.Request(
        console.url + "/v1/admin/tokens/revoke",
        data=json.dumps({"workspace": "ws-live", "plugin": "acme/revoked"}).encode(),
        headers={"Authorization": f"Bearer {console.admin}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(revoke) as answer:
        assert answer.status == 200
    later = console.client("ws-live", "acme/revoked")  # a token issued after the revocation
    later.set("two", b"2")
    expect(keys).to_have_text(["one", "two"])
    later.set("three", b"3")  # followed with the page's new token
    expect(keys).to_have_text(["one", "three", "two"])
    expect(page.get_by_test_id("live")).to_have_text("Live")
