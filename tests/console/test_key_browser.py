"""The console's key browser in Chromium: find, open, edit, expire and delete keys."""

from __future__ import annotations

import struct
import zlib
from typing import Any

from playwright.sync_api import expect

from .conftest import Console, screenshot, sign_in


def _browse(page: Any, console: Console, workspace: str, plugin: str, prefix: str = "") -> None:
    page.goto(f"{console.url}/ui/keys?workspace={workspace}&plugin={plugin}&prefix={prefix}")


def _png() -> bytes:
    """A real 16x16 PNG: blue, with a white diagonal."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(
        b"\x00" + b"".join(b"\xff\xff\xff" if x == y else b"\x2f\x5b\xd3" for x in range(16))
        for y in range(16)
    )
    header = struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_the_key_browser_finds_keys_by_prefix_and_pages_through_them(
    page: Any, console: Console
) -> None:
    notes = console.client("ws-1", "acme/notes")
    notes.set_many({f"user:{i:03d}": b'{"visits": %d}' % i for i in range(120)})
    notes.set("settings", b"dark", ttl=3600)
    sign_in(page, console)
    _browse(page, console, "ws-1", "acme/notes")
    keys = page.get_by_test_id("key")
    expect(keys).to_have_count(50)  # one page, not all 121
    expect(keys.first).to_have_text("settings")

    page.get_by_test_id("prefix").fill("user:11")
    page.get_by_test_id("search").click()
    expect(keys).to_have_count(10)
    expect(keys.first).to_have_text("user:110")

    page.get_by_test_id("prefix").fill("user:")
    page.get_by_test_id("search").click()
    expect(keys.first).to_have_text("user:000")
    page.get_by_test_id("next-page").click()
    expect(keys.first).to_have_text("user:050")
    page.get_by_test_id("next-page").click()
    expect(keys).to_have_count(20)
    expect(page.get_by_test_id("page")).to_have_text("page 3")
    expect(page.get_by_test_id("next-page")).to_be_disabled()
    assert "prefix=user%3A" in page.url  # the search, never the token, is in the URL

    page.get_by_role("button", name="First page").click()
    page.get_by_role("button", name="user:007").click()
    expect(page.get_by_test_id("value-text")).to_have_value('{\n  "visits": 7\n}')
    screenshot(page, "keys")


def test_the_key_browser_without_a_scope_offers_every_scope(page: Any, console: Console) -> None:
    console.client("ws-8", "acme/choice").set("picked", b"yes")
    sign_in(page, console)
    page.goto(console.url + "/ui/keys")
    choice = page.get_by_test_id("scope-choice")
    choice.get_by_role("link", name="ws-8/acme/choice").click()
    expect(page.get_by_role("button", name="picked")).to_be_visible()
    assert "workspace=ws-8" in page.url


def test_an_edit_of_a_key_changed_since_it_was_shown_is_a_conflict_not_an_overwrite(
    page: Any, console: Console
) -> None:
    notes = console.client("ws-1", "acme/people")
    notes.set("profile", b'{"name": "Ada"}')
    sign_in(page, console)
    _browse(page, console, "ws-1", "acme/people", "prof")
    page.get_by_role("button", name="profile").click()
    text = page.get_by_test_id("value-text")
    expect(text).to_have_value('{\n  "name": "Ada"\n}')

    text.fill('{"name": "Lovelace"}')
    notes.set("profile", b'{"name": "Grace"}')  # someone else writes meanwhile
    expect(page.get_by_test_id("underneath")).to_contain_text("now at version 2")
    page.get_by_test_id("save").click()
    conflict = page.get_by_test_id("conflict")
    expect(conflict).to_contain_text("changed since this page showed version 1")
    expect(conflict).to_contain_text("now at version 2")
    assert notes.get("profile") == b'{"name": "Grace"}'
    screenshot(page, "key-conflict")

    page.get_by_role("button", name="profile").click()  # open it again: the current value
    expect(text).to_have_value('{\n  "name": "Grace"\n}')
    expect(conflict).to_be_hidden()
    text.fill('{"name": "Grace Hopper"}')
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("notice")).to_contain_text("Saved (version 3)")
    assert notes.get("profile") == b'{"name": "Grace Hopper"}'


def test_a_ttl_is_set_on_the_version_shown(page: Any, console: Console) -> None:
    notes = console.client("ws-1", "acme/ttl")
    notes.set("session", b"abc")
    sign_in(page, console)
    _browse(page, console, "ws-1", "acme/ttl")
    page.get_by_role("button", name="session").click()
    page.get_by_test_id("ttl-input").fill("3600")
    page.get_by_test_id("set-ttl").click()
    expect(page.get_by_test_id("notice")).to_contain_text("TTL set")
    entry = notes.get_entry("session")
    assert entry is not None and entry.value == b"abc" and entry.expires_at is not None


def test_a_save_keeps_the_entrys_metadata_and_content_type(page: Any, console: Console) -> None:
    storage = console.store.storage(workspace="ws-1", plugin="acme/meta")
    storage.set("doc", b'{"a": 1}', metadata={"owner": "u1"}, content_type="application/json")
    sign_in(page, console)
    _browse(page, console, "ws-1", "acme/meta")
    page.get_by_role("button", name="doc").click()
    page.get_by_test_id("value-text").fill('{"a": 2}')
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("notice")).to_contain_text("Saved")
    entry = storage.get_entry("doc")
    assert entry is not None and entry.value == b'{"a": 2}'
    assert entry.metadata == {"owner": "u1"}
    assert entry.content_type == "application/json"


def test_deleting_asks_first_and_deletes_only_the_version_shown(
    page: Any, console: Console
) -> None:
    notes = console.client("ws-1", "acme/trash")
    notes.set("old", b"1")
    notes.set("changed", b"1")
    sign_in(page, console)
    _browse(page, console, "ws-1", "acme/trash")

    page.get_by_role("button", name="old").click()
    page.get_by_test_id("delete").click()
    assert notes.get("old") == b"1"  # asking deletes nothing
    page.get_by_test_id("confirm-delete").click()
    expect(page.get_by_role("button", name="old")).to_have_count(0)
    assert notes.get("old") is None

    page.get_by_role("button", name="changed").click()
    page.get_by_test_id("delete").click()
    notes.set("changed", b"2")  # while the page asks
    expect(page.get_by_test_id("underneath")).to_contain_text("Changed elsewhere")
    page.get_by_test_id("confirm-delete").click()
    expect(page.get_by_test_id("conflict")).to_contain_text("Nothing was overwritten")
    assert notes.get("changed") == b"2"


def test_images_show_as_images_and_other_bytes_as_hex(page: Any, console: Console) -> None:
    files = console.client("ws-1", "acme/files")
    files.set("logo.png", _png())
    files.set("raw.bin", bytes(range(256)))
    sign_in(page, console)
    _browse(page, console, "ws-1", "acme/files")
    page.get_by_role("button", name="logo.png").click()
    image = page.get_by_test_id("value-image")
    expect(image).to_be_visible()
    assert image.evaluate("img => img.naturalWidth") == 16
    assert image.get_attribute("src").startswith("blob:")
    page.get_by_role("button", name="raw.bin").click()
    hex_view = page.get_by_test_id("value-hex")
    expect(hex_view).to_contain_text("00000000  00 01 02 03")
    expect(image).to_be_hidden()


MARKUP_KEY = '<img src=x onerror="window.pwned=1">'
SCRIPT_KEY = "<script>window.pwned=2</script>"


def test_keys_and_values_holding_markup_are_shown_as_text_and_never_run(
    page: Any, console: Console
) -> None:
    hostile = console.client("ws-1", "evil/markup")
    hostile.set(MARKUP_KEY, SCRIPT_KEY.encode())
    hostile.set(SCRIPT_KEY, MARKUP_KEY.encode())
    hostile.set("<svg onload=alert(3)>", b'{"html": "<img src=y onerror=alert(4)>"}')
    sign_in(page, console)
    _browse(page, console, "ws-1", "evil/markup", "<")
    keys = page.get_by_test_id("key")
    expect(keys).to_have_count(3)
    for key, value in [(MARKUP_KEY, SCRIPT_KEY), (SCRIPT_KEY, MARKUP_KEY)]:
        page.get_by_role("button", name=key, exact=True).click()
        expect(page.get_by_test_id("value-key")).to_have_text(key)
        expect(page.get_by_test_id("value-text")).to_have_value(value)
    page.get_by_role("button", name="<svg onload=alert(3)>").click()
    expect(page.get_by_test_id("value-text")).to_have_value(
        '{\n  "html": "<img src=y onerror=alert(4)>"\n}'
    )
    assert page.evaluate("window.pwned") is None
    assert page.locator("main img[src='x'], main img[src='y'], main svg[onload]").count() == 0
    assert page.locator("script:not([src])").count() == 0
    screenshot(page, "keys-markup")
    # Any alert() would have opened a dialog: the page fixture fails the test on one.
