"""The live key page's benchmark still runs: its ``--quick`` run exits 0 and prints every figure."""

from __future__ import annotations

import re
from pathlib import Path

from ..test_benchmarks_run import run_quick
from .conftest import need_chromium

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_console_live.py"


def test_bench_console_live_quick_counts_the_page_requests_against_the_writes() -> None:
    need_chromium()
    out = run_quick(SCRIPT, timeout=180)
    assert re.search(r"^opening the page: .*/v1/changes \d+", out, re.MULTILINE), out
    assert re.search(r"^idle 2 s: .*\([\d.]+ requests a minute\)", out, re.MULTILINE), out
    assert re.search(r"20 single writes .*page / writer requests [\d.]+x", out), out
    assert re.search(r"burst of 1000 keys .*[\d.]+ page requests per 1,000 keys", out), out
    assert "most long polls open at once: 1\n" in out
    assert re.search(r"shown / baseline\s+\d+x", out), out
