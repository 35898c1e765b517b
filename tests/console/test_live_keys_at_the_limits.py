"""The key browser at the change log's limits: a full page of changes, changes dropped."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from .conftest import Console, need_chromium, serve_console, sign_in


@pytest.fixture(scope="module", name="console")
def _small_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """A service whose pages hold 50 changes at most, and whose change log keeps one
    change per scope once the sweeper runs."""
    need_chromium()
    with serve_console(
        tmp_path_factory.mktemp("limits"), max_page_size=50, changes_retention_count=1
    ) as console:
        yield console


def test_a_write_of_exactly_one_page_of_changes_shows_at_once(page: Any, console: Console) -> None:
    notes = console.client("ws-full", "acme/full")
    notes.set("z", b"1")
    sign_in(page, console)
    page.goto(f"{console.url}/ui/keys?workspace=ws-full&plugin=acme/full")
    keys = page.get_by_test_id("key")
    expect(keys).to_have_text(["z"])
    expect(page.get_by_test_id("live")).to_have_text("Live")

    notes.set_many({f"k{i:02d}": b"v" for i in range(50)})  # 50 changes: a full page
    expect(keys).to_have_count(50)  # not only after the next poll's wait
    expect(keys.first).to_have_text("k00")


def test_changes_dropped_while_the_feed_was_away_are_caught_up_by_a_re_read(
    page: Any, console: Console
) -> None:
    statuses: list[int] = []
    page.on(
        "response",
        lambda response: (
            statuses.append(response.status) if "/v1/changes" in response.url else None
        ),
    )
    notes = console.client("ws-gap", "acme/gap")
    notes.set("a", b"1")
    sign_in(page, console)
    page.goto(f"{console.url}/ui/keys?workspace=ws-gap&plugin=acme/gap")
    keys = page.get_by_test_id("key")
    live = page.get_by_test_id("live")
    expect(keys).to_have_text(["a"])
    expect(live).to_have_text("Live")
    notes.set("b", b"2")
    expect(keys).to_have_text(["a", "b"])  # followed: the position is now after "b"

    # The next polls fail (a busy proxy, say) while more is written and the log trimmed.
    page.route(
        "**/v1/changes?*",
        lambda route: route.fulfill(
            status=429, json={"error": {"code": "busy", "message": "busy"}}
        ),
    )
    expect(live).to_contain_text("Reconnecting")
    notes.set("c", b"3")
    notes.set("d", b"4")
    console.store.sweep_expired()  # keeps only the last change: "c" is gone from the log
    page.unroute("**/v1/changes?*")

    expect(keys).to_have_text(["a", "b", "c", "d"])  # answered 410: the page was read again
    expect(live).to_have_text("Live")
    assert 410 in statuses
    assert page.evaluate("document.cookie") == ""
