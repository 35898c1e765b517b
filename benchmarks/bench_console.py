"""The console's key browser on a scope of 1,000,000 keys, against the plain API listing call.

Run with ``.venv/bin/python benchmarks/bench_console.py`` (``--help`` for options; ``--quick``
for a smoke run on 20,000 keys). It needs Debian's ``chromium`` (``make chromium``) and
Playwright for Python (in ``.[dev]``).

1. A temporary SQLite store gets one scope of ``--keys`` keys (16-byte keys, 32-byte
   values), written once with plain ``sqlite3`` in one transaction into the tables the
   engine created (its triggers keep the scope's counters, as for any write).
2. The service runs on that store (``create_app`` under uvicorn in a thread, 127.0.0.1).
3. Baseline: ``GET /v1/keys?limit=50`` (the call the key browser's first page makes)
   with a scope token over one keep-alive ``http.client`` connection, ``--rounds`` times.
4. The console: Chromium opens ``/ui/keys?workspace=..&plugin=..`` in a new browser
   context each round (a cold cache: the page, its script, its style and the library
   are fetched anew; one untimed round first, as an operator's browser is already
   running), signed in (the admin token put in session storage before the
   page runs). The time is from the navigation's start until the table shows the 50
   keys of the first page (HTML, scripts, a scope token from ``POST /v1/admin/tokens``,
   the listing call, and the rendering), on the browser's own clock: the console marks
   the moment (``performance.mark``). Target: under 1 s, every round. Also printed:
   the same as Playwright saw it, which adds its own polling.
5. What the console costs an API request: the same requests (``GET /v1/kv/k``,
   ``GET /v1/keys?limit=1``, ``GET /v1/usage``) driven as raw ASGI calls in process, on
   the app as built and on the same app without the console's routes, alternating in
   rounds, in CPU time per request; the ratio is the median of per-round ratios
   (1.00x: nothing). Beside it the same ratio between two apps without the console
   (A/A): the noise floor.

Figures are medians with the lowest and highest in brackets; the machine's load average
is printed, as other work moves them.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import http.client
import os
import platform
import shutil
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pluginkv
from common import HOST, load_average, version
from pluginkv.server.app import create_app
from pluginkv.server.console import CONSOLE_PATH
from pluginkv.services.tokens import Tokens

WORKSPACE, PLUGIN = "bench", "acme/big"
SECRET = "bench-console-" + "x" * 40
PAGE_SIZE = 50
TARGET_SECONDS = 1.0
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def fill(path: Path, keys: int) -> float:
    """Seconds to write ``keys`` entries of one scope into a new store at ``path``."""
    pluginkv.open_store(str(path)).close()  # the engine's schema, triggers included
    now = time.time()
    start = time.perf_counter()
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO pluginkv_entries (workspace, plugin, key, size, version, created_at, "
            "updated_at, expires_at, value) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?)",
            (
                (WORKSPACE, PLUGIN, key, len(key) + 32, i + 1, now, now, b"v" * 32)
                for i in range(keys)
                for key in (f"item:{i:011d}",)
            ),
        )
    conn.close()
    return time.perf_counter() - start


class Service:
    """The app on ``store`` under uvicorn in a thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        with socket.socket() as sock:
            sock.bind((HOST, 0))
            self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(app, host=HOST, port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise SystemExit("the service did not start")
            time.sleep(0.01)
        self.url = f"http://{HOST}:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def api_listing(port: int, token: str, rounds: int) -> list[float]:
    connection = http.client.HTTPConnection(HOST, port)
    headers = {"Authorization": f"Bearer {token}"}
    times = []
    try:
        for _ in range(rounds):
            start = time.perf_counter()
            connection.request("GET", f"/v1/keys?limit={PAGE_SIZE}", headers=headers)
            response = connection.getresponse()
            body = response.read()
            times.append(time.perf_counter() - start)
            if response.status != 200 or body.count(b'"key"') != PAGE_SIZE:
                raise SystemExit(f"the listing call answered {response.status}: {body[:200]!r}")
    finally:
        connection.close()
    return times


def console_first_page(url: str, admin: str, rounds: int) -> tuple[list[float], list[float]]:
    """Seconds to the first page: by the page's own clock, and as Playwright saw it."""
    from playwright.sync_api import sync_playwright

    page_url = f"{url}{CONSOLE_PATH}/keys?workspace={WORKSPACE}&plugin={PLUGIN}"
    shown, seen = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for round_ in range(rounds + 1):  # round 0 starts the browser's processes, untimed
                context = browser.new_context()
                context.add_init_script(
                    f"sessionStorage.setItem('pluginkv.admin-token', {admin!r})"
                )
                page = context.new_page()
                start = time.perf_counter()
                page.goto(page_url, wait_until="commit")
                # A locator, not wait_for_function: the page's policy forbids eval.
                page.get_by_test_id("key").nth(PAGE_SIZE - 1).wait_for(timeout=30_000)
                if round_ == 0:
                    context.close()
                    continue
                seen.append(time.perf_counter() - start)
                # The console marks when its keys are on the screen; the mark's time
                # counts from the navigation's start, on the browser's own clock.
                mark = page.evaluate(
                    "performance.getEntriesByName('pluginkv:keys-shown')[0].startTime"
                )
                shown.append(mark / 1000)
                context.close()
        finally:
            browser.close()
    return shown, seen


# -- what the console adds to an API request ------------------------------------------------
def _asgi_loop(
    app: Any, path: str, query: bytes, headers: list[tuple[bytes, bytes]], n: int
) -> float:
    """CPU seconds per request for ``n`` raw ASGI GETs of ``path``."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": [(b"host", b"bench"), *headers],
        "client": ("bench", 50000),
        "server": ("bench", 80),
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    async def run() -> float:
        # CPU time, not wall time: on a shared machine it moves less with others' load.
        start = time.process_time()
        for _ in range(n):
            await app(dict(scope), receive, send)
        return (time.process_time() - start) / n

    seconds = asyncio.run(run())
    if status != 200:
        raise SystemExit(f"GET {path} answered {status} in process")
    return seconds


def _without_console(app: Any) -> Any:
    app.router.routes[:] = [
        route
        for route in app.router.routes
        if not getattr(route, "path", "").startswith(CONSOLE_PATH)
    ]
    return app


def console_cost(
    calls: int, rounds: int
) -> list[tuple[str, float, float, list[float], list[float]]]:
    """Per request: (name, µs with the console, µs without, per-round ratios, A/A ratios).

    The A/A ratios compare two apps without the console, built alike: how far apart
    two identical apps measure here, the noise floor of the ratio.
    """
    store = pluginkv.open_store("memory://")
    tokens = Tokens(SECRET, default_ttl=3600)
    store.storage(workspace=WORKSPACE, plugin=PLUGIN).set("k", b"v" * 100)
    with_console = create_app(store=store, tokens=tokens)
    without = _without_console(create_app(store=store, tokens=tokens))
    twin = _without_console(create_app(store=store, tokens=tokens))
    auth = [
        (b"authorization", f"Bearer {tokens.issue(workspace=WORKSPACE, plugin=PLUGIN)}".encode())
    ]
    requests: list[tuple[str, str, bytes]] = [
        ("GET /v1/kv/k", "/v1/kv/k", b""),
        ("GET /v1/keys", "/v1/keys", b"limit=1"),
        ("GET /v1/usage", "/v1/usage", b""),
    ]
    results = []
    apps = [with_console, without, twin]
    for name, path, query in requests:
        measure: Callable[[Any], float] = functools.partial(
            _asgi_loop, path=path, query=query, headers=auth, n=calls
        )
        for app in apps:
            measure(app)  # warm up
        on, off, ratios, noise = [], [], [], []
        for i in range(rounds):
            order = apps[i % 3 :] + apps[: i % 3]  # each app first in turn
            if i % 2:
                order.reverse()
            took = {id(app): measure(app) for app in order}
            a, b, c = took[id(with_console)], took[id(without)], took[id(twin)]
            on.append(a)
            off.append(b)
            ratios.append(a / b)
            noise.append(c / b)
        results.append(
            (name, statistics.median(on) * 1e6, statistics.median(off) * 1e6, ratios, noise)
        )
    store.close()
    return results


def spread(values: Sequence[float], scale: float = 1.0, digits: int = 1) -> str:
    return (
        f"{statistics.median(values) * scale:.{digits}f} "
        f"[{min(values) * scale:.{digits}f}-{max(values) * scale:.{digits}f}]"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000, help="keys in the scope")
    parser.add_argument("--rounds", type=int, default=7, help="page loads and listing calls")
    parser.add_argument("--calls", type=int, default=5_000, help="in-process calls per round")
    parser.add_argument("--quick", action="store_true", help="20,000 keys, 2 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.keys, args.rounds, args.calls = 20_000, 2, 500
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
    with tempfile.TemporaryDirectory(prefix="bench-console-") as directory:
        path = Path(directory) / "pluginkv.db"
        seconds = fill(path, args.keys)
        print(f"filled one scope with {args.keys:,} keys in {seconds:.1f} s")
        store = pluginkv.open_store(str(path))
        tokens = Tokens(SECRET, default_ttl=3600)
        service = Service(create_app(store=store, tokens=tokens))
        try:
            scope_token = tokens.issue(workspace=WORKSPACE, plugin=PLUGIN)
            api_listing(service.port, scope_token, 3)  # warm up the connection and the cache
            listing = api_listing(service.port, scope_token, args.rounds)
            page, seen = console_first_page(service.url, tokens.issue(admin=True), args.rounds)
        finally:
            service.stop()
            store.close()
    print(f"load average before the in-process part: {load_average()}")
    cost = console_cost(args.calls, max(args.rounds, 3))
    print()
    print(f"key browser, first page of {PAGE_SIZE} keys, scope of {args.keys:,} keys:")
    print(f"  GET /v1/keys?limit={PAGE_SIZE} (baseline)   {spread(listing, 1e3, 2)} ms")
    print(f"  console page, cold, rendered    {spread(page, 1e3, 0)} ms")
    print(f"  ... as Playwright saw it        {spread(seen, 1e3, 0)} ms")
    ratio = statistics.median(page) / statistics.median(listing)
    verdict = "PASS" if max(page) < TARGET_SECONDS else "MISS"
    print(f"  console / baseline              {ratio:.0f}x")
    target = f"target < {TARGET_SECONDS * 1e3:.0f} ms"
    print(f"  slowest page {max(page) * 1e3:.0f} ms, {target}: {verdict}")
    print()
    print("what the console adds to an API request (in process, CPU µs per request):")
    for name, on, off, ratios, noise in cost:
        print(
            f"  {name:<16} with {on:7.1f}  without {off:7.1f}  "
            f"ratio {statistics.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]  "
            f"A/A {statistics.median(noise):.2f}x [{min(noise):.2f}-{max(noise):.2f}]"
        )
    print(f"load average: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
