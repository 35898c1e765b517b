"""The engine benchmarks still run: each ``--quick`` run exits 0 and prints every row."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_engine.py"
OPERATIONS = [
    "set 100 B",
    "get 100 B",
    "exist 100 B",
    "delete 100 B",
    "set 1 MiB",
    "get 1 MiB",
    "set 10 MiB",
    "get 10 MiB",
]
MODES = ["FULL", "NORMAL"]


def run_quick(script: Path, *args: str, timeout: float = 60) -> str:
    """The output of ``script --quick ARGS``, which must exit 0."""
    result = subprocess.run(
        [sys.executable, str(script), "--quick", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_bench_engine_quick_prints_a_ratio_per_operation(tmp_path: Path) -> None:
    out = run_quick(SCRIPT, "--dir", str(tmp_path))
    for mode in MODES:
        assert f"synchronous={mode}:" in out
    for operation in OPERATIONS:
        row = re.compile(
            rf"^{re.escape(operation)}\s+[\d,.]+ (ops|MB)/s\s+[\d,.]+ (ops|MB)/s\s+"
            rf"\d+\.\d\dx\s+\S+\s+>=\d\.\d\s+(PASS|MISS)$",
            re.MULTILINE,
        )
        assert len(row.findall(out)) == len(MODES), f"no ratio line for {operation!r}:\n{out}"
    assert list(tmp_path.iterdir()) == [], "the benchmark left files behind"


PG_SCRIPT = SCRIPT.parent / "bench_postgres.py"
PG_OPERATIONS = [*OPERATIONS[:4], "set 1 MiB", "get 1 MiB", "set x8 thr"]


@pytest.mark.postgres
def test_bench_postgres_quick_prints_a_ratio_per_operation(postgres_url: str) -> None:
    from .postgres import server_url

    out = run_quick(PG_SCRIPT, "--url", server_url(), timeout=120)
    for operation in PG_OPERATIONS:
        row = re.compile(
            rf"^{re.escape(operation)}\s+[\d,.]+ (ops|MB)/s\s+[\d,.]+ (ops|MB)/s\s+"
            rf"\d+\.\d\dx\s+\S+\s+>=\d\.\d\s+(PASS|MISS)$",
            re.MULTILINE,
        )
        assert len(row.findall(out)) == 1, f"no line for {operation!r}:\n{out}"
    assert "set x8 1scope" in out


FLOOR_SCRIPT = SCRIPT.parent / "bench_write_floor.py"
FLOOR_ROWS = ["fdatasync, 4 KiB overwritten", "fdatasync, 4 KiB appended"] + [
    f"{row}, {mode}"
    for mode in MODES
    for row in ("store.set 100 B", "writer hop, empty", "writer hop + set 100 B")
]


def test_bench_write_floor_quick_prints_every_figure(tmp_path: Path) -> None:
    out = run_quick(FLOOR_SCRIPT, "--dir", str(tmp_path))
    for row in FLOOR_ROWS:
        line = re.compile(rf"^{re.escape(row)}\s+\d+ us  \(\d+-\d+\)$", re.MULTILINE)
        assert line.search(out), f"no figure for {row!r}:\n{out}"
    assert list(tmp_path.iterdir()) == [], "the benchmark left files behind"


def test_bench_attacks_quick_prints_every_phase() -> None:
    out = run_quick(SCRIPT.parent / "bench_attacks.py", timeout=120)
    for phase in ("quiet", "slowloris", "silent", "8 MiB header"):
        row = rf"^{re.escape(phase)}\s+\d+\s+[\d,.]+ ms\s+[\d,.]+ ms\s+[\d,.]+ ms\s+\d+\s"
        assert re.search(row, out, re.MULTILINE), f"no row for {phase!r}:\n{out}"


def test_bench_watchers_quick_prints_every_state_and_the_fan_out() -> None:
    out = run_quick(SCRIPT.parent / "bench_watchers.py", timeout=120)
    for state in ("idle service", "1 long poll (baseline)", "50 long polls", "+ 50 event streams"):
        row = rf"^{re.escape(state)}\s+[\d.]+\s+(-|[\d.]+x)\s+[\d.]+\s+(-|-?[\d.]+)$"
        assert re.search(row, out, re.MULTILINE), f"no row for {state!r}:\n{out}"
    assert re.search(r"^one write reaches all 100 watchers in \d+ ms$", out, re.MULTILINE), out


@pytest.mark.postgres
def test_bench_atomic_quick_prints_each_ratio_and_latency_and_stops_its_service(
    postgres_url: str,
) -> None:
    from .postgres import server_url

    out = run_quick(SCRIPT.parent / "bench_atomic.py", "--postgres", server_url(), timeout=120)
    for backend, verdict in (
        ("SQLite FULL", r">=3\.0  (PASS|MISS)"),
        ("SQLite NORMAL", r"\(info\)"),
        ("PostgreSQL", r">=2\.0  (PASS|MISS)"),
    ):
        row = rf"^{backend}\s+[\d.]+\s+[\d.]+\s+\d+\.\d\dx  {verdict}$"
        assert re.search(row, out, re.MULTILINE), f"no row for {backend}:\n{out}"
    for kind in ("long poll", "event stream"):
        row = rf"^20 x {kind}\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+-?[\d.]+\s+-?[\d.]+\s+\d+\.\d\dx$"
        assert re.search(row, out, re.MULTILINE), f"no latency row for {kind}:\n{out}"
    started = re.search(r"^started : pluginkv serve \(pid (\d+), port \d+\)$", out, re.MULTILINE)
    assert started is not None, out
    with pytest.raises(ProcessLookupError):
        os.kill(int(started.group(1)), 0)
