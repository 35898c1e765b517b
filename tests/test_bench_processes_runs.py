"""The workers benchmark still runs: ``bench_processes.py --quick`` exits 0 and prints
each workload's figures for ``serve --workers 1`` and ``--workers 2``, and their ratio.

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
def test_bench_processes_quick_prints_one_and_two_workers_and_the_ratio() -> None:
    out = run_quick(SCRIPT, timeout=180)
    for method in ("GET", "PUT"):
        one = rf"^  {method} 100 B  1 worker\(s\)\s+[\d,]+/s\s+\d+ us  p99\s+[\d.]+ ms$"
        assert re.search(one, out, re.MULTILINE), f"{method} 1:\n{out}"
        two = rf"^  {method} 100 B  2 worker\(s\)\s+[\d,]+/s\s+\d+ us  p99\s+[\d.]+ ms  "
        two += r"\d+\.\d\dx of 1 \("
        assert re.search(two, out, re.MULTILINE), f"{method} 2:\n{out}"
