"""What an open, live key page of the console asks of the service, against the writes it follows.

Run with ``.venv/bin/python benchmarks/bench_console_live.py`` (``--help`` for options;
``--quick`` for a smoke run). It needs Debian's ``chromium`` (``make chromium``) and
Playwright for Python (in ``.[dev]``).

1. A temporary SQLite store with one scope of 1,000 keys; the service (``create_app``)
   under uvicorn in a thread, 127.0.0.1.
2. Chromium, driven by Playwright, opens the scope's key page signed in; every request
   it makes is counted by route, and the most ``GET /v1/changes`` open at once.
3. Idle: the page stays open ``--idle`` seconds while nothing is written.
4. Single writes: ``--writes`` keys set one request at a time through the client SDK,
   each sorting first (on the page shown), until the last is on the screen.
   Baseline: the writer's own requests; the ratio is the page's requests to them.
5. A burst: ``--burst`` keys in ``set_many`` calls of 1,000, each sorting first, until
   the first is shown.
6. Delay: ``--rounds`` times, one key set, until its row is on the screen (as Playwright
   sees it, which adds its polling). Baseline: the ``set`` call's own round trip.

Counts are exact; times are medians with the lowest and highest in brackets. The
machine's load average is printed, as other work moves times (not counts).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pluginkv
from bench_console import CHROMIUM, Service, spread
from common import load_average, version
from pluginkv.client import RemoteStorage
from pluginkv.server.app import create_app
from pluginkv.server.console import CONSOLE_PATH
from pluginkv.services.tokens import Tokens

WORKSPACE, PLUGIN = "bench", "acme/live"
SECRET = "bench-console-live-" + "x" * 40
SEED_KEYS = 1000


class Watch:
    """The page's requests to the service, by route, and the most long polls open at once."""

    def __init__(self, page: Any, url: str) -> None:
        self.url = url
        self.routes: Counter[str] = Counter()
        self.open: list[Any] = []
        self.most_open = 0
        page.on("request", self._started)
        page.on("requestfinished", self._ended)
        page.on("requestfailed", self._ended)

    def _started(self, request: Any) -> None:
        route = request.url.removeprefix(self.url).split("?")[0]
        self.routes[route] += 1
        if route == "/v1/changes":
            self.open.append(request)
            self.most_open = max(self.most_open, len(self.open))

    def _ended(self, request: Any) -> None:
        if request in self.open:
            self.open.remove(request)

    def take(self) -> Counter[str]:
        """The counts since the last take."""
        counts, self.routes = self.routes, Counter()
        return counts


def counted(counts: Counter[str]) -> str:
    return ", ".join(f"{route} {n}" for route, n in sorted(counts.items())) or "none"


def run(args: argparse.Namespace, directory: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    store = pluginkv.open_store(str(directory / "pluginkv.db"))
    tokens = Tokens(SECRET, default_ttl=3600)
    store.storage(workspace=WORKSPACE, plugin=PLUGIN).set_many(
        {f"seed:{i:05d}": b"v" * 32 for i in range(SEED_KEYS)}
    )
    service = Service(create_app(store=store, tokens=tokens))
    writer = RemoteStorage(service.url, tokens.issue(workspace=WORKSPACE, plugin=PLUGIN))
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            context = browser.new_context()
            context.add_init_script(
                f"sessionStorage.setItem('pluginkv.admin-token', {tokens.issue(admin=True)!r})"
            )
            page = context.new_page()
            page.set_default_timeout(60_000)
            watch = Watch(page, service.url)
            keys = page.get_by_test_id("key")
            page.goto(f"{service.url}{CONSOLE_PATH}/keys?workspace={WORKSPACE}&plugin={PLUGIN}")
            expect(keys).to_have_count(50)
            expect(page.get_by_test_id("live")).to_have_text("Live")
            page.wait_for_timeout(1000)
            opening = watch.take()
            print(f"opening the page: {counted(opening)}")

            page.wait_for_timeout(args.idle * 1000)
            idle = watch.take()
            per_minute = sum(idle.values()) * 60 / args.idle
            print(f"idle {args.idle:.0f} s: {counted(idle)} ({per_minute:.1f} requests a minute)")

            start = time.perf_counter()
            for i in range(args.writes):
                writer.set(f"a:{args.writes - i:05d}", b"w" * 32)  # each sorts first
            wrote = time.perf_counter() - start
            expect(keys.first).to_have_text("a:00001")
            page.wait_for_timeout(1500)  # what the last change still brings
            single = watch.take()
            ratio = sum(single.values()) / args.writes
            print(
                f"{args.writes} single writes in {wrote:.1f} s: {counted(single)} "
                f"(page / writer requests {ratio:.3f}x)"
            )

            for start_at in range(0, args.burst, 1000):
                writer.set_many(
                    {
                        f"1:{i:06d}": b"b" * 32  # sorting before every key so far
                        for i in range(start_at, min(args.burst, start_at + 1000))
                    }
                )
            expect(keys.first).to_have_text("1:000000")
            page.wait_for_timeout(1500)
            burst = watch.take()
            print(
                f"a burst of {args.burst} keys in set_many calls of 1,000: {counted(burst)} "
                f"({sum(burst.values()) * 1000 / args.burst:.1f} page requests per 1,000 keys)"
            )

            delays, trips = [], []
            for i in range(args.rounds):
                page.wait_for_timeout(1100)  # past the page's pause after a re-read
                key = f"0:{i:03d}"
                start = time.perf_counter()
                writer.set(key, b"d")
                trips.append(time.perf_counter() - start)
                expect(keys.first).to_have_text(key)
                delays.append(time.perf_counter() - start)
                writer.delete(key)
                expect(keys.first).not_to_have_text(key)
            watch.take()
            print(f"most long polls open at once: {watch.most_open}")
            print()
            print(f"a key set until its row is shown, {args.rounds} rounds:")
            print(f"  set() round trip (baseline)   {spread(trips, 1e3, 2)} ms")
            print(f"  until shown on the page       {spread(delays, 1e3, 0)} ms")
            print(
                f"  shown / baseline              "
                f"{statistics.median(delays) / statistics.median(trips):.0f}x"
            )
            context.close()
            browser.close()
    finally:
        writer.close()
        service.stop()
        store.close()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=float, default=120, help="seconds the page stays idle")
    parser.add_argument("--writes", type=int, default=200, help="keys set one by one")
    parser.add_argument("--burst", type=int, default=5000, help="keys set in a burst")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of the delay")
    parser.add_argument("--quick", action="store_true", help="2 s idle, 20 writes, 2 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.idle, args.writes, args.burst, args.rounds = 2, 20, 1000, 2
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not Path(CHROMIUM).exists():
        print("Debian's chromium is not installed: make chromium", file=sys.stderr)
        return 2
    print(
        f"pluginkv {version('pluginkv')}, Python {platform.python_version()}, "
        f"{platform.machine()} x {os.cpu_count()} cores, chromium at {CHROMIUM}"
    )
    print(f"load average: {load_average()}")
    with tempfile.TemporaryDirectory(prefix="bench-console-live-") as directory:
        run(args, Path(directory))
    print(f"load average: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
