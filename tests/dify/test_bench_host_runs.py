"""The plugin host benchmark still runs: ``bench_host.py --quick`` prints every row, per SDK."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_host.py"


@pytest.mark.usefixtures("sdk_python", "sdk10_python")
def test_bench_host_quick_prints_a_ratio_per_sdk_transport_and_operation() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--synchronous", "NORMAL"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    sections = re.split(r"^dify_plugin ", result.stdout, flags=re.MULTILINE)[1:]
    assert [section.split()[0] for section in sections] == ["0.7.4", "0.10.2"], result.stdout
    for section in sections:
        for transport in ("stdio", "tcp"):
            for operation in ("set 100 B", "get 100 B", "set 1 MiB", "get 1 MiB"):
                row = rf"^{transport}\s+{operation}\s+[\d,.]+ (ops|MB)/s\s+[\d,.]+ (ops|MB)/s\s+"
                row += r"\d+\.\d\dx\s+\S+\s+>=\d\.\d (PASS|MISS)$"
                assert re.search(row, section, re.MULTILINE), (operation, section)
