"""The single-client PUT breakdown still runs: ``bench_put_breakdown.py --quick`` exits 0
and prints every part of a set's time and the target."""

from __future__ import annotations

import re
from pathlib import Path

from .test_benchmarks_run import run_quick

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_put_breakdown.py"


def test_bench_put_breakdown_quick_prints_every_part_and_the_target() -> None:
    out = run_quick(SCRIPT, timeout=120)
    for part in (
        "RemoteStorage.set 100 B -> pluginkv FULL",
        "http.client PUT 100 B -> echo",
        "raw sqlite3 durable commit (FULL)",
        "server CPU per set, event-loop thread",
        "server CPU per set, other threads (writer)",
        "the rest: waiting (flush, hops, client)",
    ):
        assert re.search(rf"^  {re.escape(part)}\s+-?\d+$", out, re.MULTILINE), f"{part}:\n{out}"
    target = r"^target: set / \(echo PUT \+ raw commit\) = \d+\.\d\dx \(.*\) <= 1\.4  (PASS|MISS)$"
    assert re.search(target, out, re.MULTILINE), out
