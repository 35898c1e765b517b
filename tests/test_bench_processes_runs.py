"""The processes benchmark still runs: ``bench_processes.py --quick`` exits 0 and prints
each workload's figures for one process and two, and their ratio.

Like ``bench_server.py`` it needs wrk, and is skipped without it, in CI too.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from .test_benchmarks_run import run_quick

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_processes.py"


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_bench_processes_quick_prints_one_and_two_processes_and_the_ratio() -> None:
    out = run_quick(SCRIPT, timeout=180)
    for method in ("GET", "PUT"):
        for how in ("one", "two"):
            row = rf"^  {method} 100 B  {how} process\(es\)\s+[\d,]+/s\s+\d+ us  p99\s+[\d.]+ ms$"
            assert re.search(row, out, re.MULTILINE), f"{method} {how}:\n{out}"
        assert re.search(rf"^  {method} two / one: \d+\.\d\dx \(", out, re.MULTILINE), out
