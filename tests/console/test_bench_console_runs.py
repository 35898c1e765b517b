"""The console benchmark still runs: its ``--quick`` run exits 0 and prints every figure."""

from __future__ import annotations

import re
from pathlib import Path

from ..test_benchmarks_run import run_quick
from .conftest import need_chromium

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_console.py"


def test_bench_console_quick_prints_the_page_against_the_listing_call() -> None:
    need_chromium()
    out = run_quick(SCRIPT, timeout=180)
    assert "filled one scope with 20,000 keys" in out
    assert re.search(r"GET /v1/keys\?limit=50 \(baseline\)\s+[\d.]+ \[", out), out
    assert re.search(r"console page, cold, rendered\s+\d+ \[", out), out
    assert re.search(r"console / baseline\s+\d+x", out), out
    assert re.search(r"target < 1000 ms: (PASS|MISS)$", out, re.MULTILINE), out
    for request in ("GET /v1/kv/k", "GET /v1/keys", "GET /v1/usage"):
        assert re.search(
            rf"{re.escape(request)}\s+with\s+[\d.]+\s+without\s+[\d.]+\s+ratio .* A/A ", out
        )
