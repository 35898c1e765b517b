"""The scale benchmark still runs: ``bench_scale.py --quick`` exits 0 and prints a row per
size, every target and the space reuse, on SQLite and on PostgreSQL; on SQLite also raw
sqlite3's get and set beside pluginkv's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .test_benchmarks_run import run_quick

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_scale.py"
TARGETS = ["get", "set", "page of 100", "usage\\(\\)"]


def check_figures(out: str, backend: str) -> None:
    assert f"\n{backend}: microseconds per call" in out, out
    for size in ("2,000", "4,000"):
        row = rf"^\s+{size}(\s+[\d,.]+){{11}}$"
        assert re.search(row, out, re.MULTILINE), f"no {backend} row for {size} keys:\n{out}"
    for target in TARGETS:
        line = rf"^  {target}: \d+\.\d\dx >= 0\.7  (PASS|MISS)$"
        assert re.search(line, out, re.MULTILINE), f"no {target} target:\n{out}"
    assert re.search(
        r"^  reads beside delete_prefix, worst p99 .* <= 50 ms  (PASS|MISS)$", out, re.M
    )
    assert re.search(r"^(all 5 targets met|\d of 5 target\(s\) missed)$", out, re.MULTILINE), out


def check_raw(out: str) -> None:
    assert "\nraw sqlite3 on the same file, alternating with pluginkv" in out, out
    for size in ("2,000", "4,000"):
        row = rf"^\s+{size}(\s+[\d,.]+){{8}}$"
        assert re.search(row, out, re.MULTILINE), f"no raw sqlite3 row for {size} keys:\n{out}"
    assert re.search(
        r"^  raw sqlite3, same run and file: get \d+\.\d\dx \(mmap [\d,]+ MiB\), "
        r"\d+\.\d\dx \(mmap [\d,]+ MiB\); set \d+\.\d\dx$",
        out,
        re.MULTILINE,
    ), out


def check_report(out: str, backend: str) -> None:
    check_figures(out, backend)
    assert re.search(
        r"^space per stored byte at 4,000 keys: \d+\.\d\d; every other key deleted: "
        r"\d+\.\d\d; as many new keys stored: \d+\.\d\d",
        out,
        re.MULTILINE,
    ), out


def test_bench_scale_quick_on_sqlite_prints_every_figure_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    out = run_quick(SCRIPT, "--backends", "sqlite", "--dir", str(tmp_path), timeout=240)
    check_report(out, "SQLite")
    check_raw(out)
    assert list(tmp_path.iterdir()) == [], "the benchmark left files behind"


def test_bench_scale_no_reuse_skips_the_space_reuse_step_and_keeps_every_figure(
    tmp_path: Path,
) -> None:
    out = run_quick(
        SCRIPT, "--backends", "sqlite", "--dir", str(tmp_path), "--no-reuse", timeout=240
    )
    check_figures(out, "SQLite")
    check_raw(out)
    assert "space per stored byte at" not in out, out


@pytest.mark.postgres
def test_bench_scale_quick_on_postgres_prints_every_figure_and_drops_its_database(
    postgres_url: str,
) -> None:
    from .postgres import connect, server_url

    out = run_quick(SCRIPT, "--backends", "postgres", "--url", server_url(), timeout=240)
    check_report(out, "PostgreSQL")
    assert "raw sqlite3" not in out, out
    database = re.search(r"^database: (pluginkv_bench_scale_\d+)", out, re.MULTILINE)
    assert database is not None, out
    with connect(server_url()) as conn:
        found = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s", (database.group(1),)
        ).fetchone()
    assert found == (0,), f"{database.group(1)} was not dropped"
