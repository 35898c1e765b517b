"""The WAL page count still runs: ``bench_wal_pages.py --quick`` exits 0 and prints, for
both engines, the frames a set and a delete put in the WAL."""

from __future__ import annotations

import re
from pathlib import Path

from .test_benchmarks_run import run_quick

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_wal_pages.py"


def test_bench_wal_pages_quick_prints_frames_per_write_of_both_engines(tmp_path: Path) -> None:
    out = run_quick(SCRIPT, "--dir", str(tmp_path))
    for label in ("pluginkv set", "pluginkv delete", "raw set", "raw delete"):
        match = re.search(rf"^{label}\s+(\d+\.\d\d)  \(.+\)$", out, re.MULTILINE)
        assert match is not None, f"{label}:\n{out}"
        assert float(match.group(1)) >= 1.0, out  # every commit writes a page at least
