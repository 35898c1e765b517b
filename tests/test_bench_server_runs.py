"""The service benchmark still runs: ``bench_server.py --quick`` exits 0 and prints every row.

It needs ``wrk`` (the load generator of the benchmark); without it the test is skipped, in
CI too: wrk is a benchmark tool, not a test dependency. Without wrk the benchmark itself
must exit non-zero with an install hint, which is tested whatever is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_server.py"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env=env,
    )


def test_without_wrk_it_exits_non_zero_with_an_install_hint(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # an empty directory: no wrk on the PATH
    result = run("--quick", env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "wrk is not installed" in result.stderr
    assert "apt-get install wrk" in result.stderr


@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)"
)
def test_bench_server_quick_prints_every_row_and_stops_its_servers() -> None:
    result = run("--quick")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    for method, target in (("GET", "0.6"), ("PUT", "0.4")):
        assert re.search(rf"^{method} 100 B\s+echo\s+[\d,]+ ", out, re.MULTILINE), out
        full = rf"^{method} 100 B\s+pluginkv FULL\s+[\d,]+ .*>={target}\s+(PASS|MISS)$"
        assert re.search(full, out, re.MULTILINE), f"no {method} row for FULL:\n{out}"
        assert re.search(rf"^{method} 100 B\s+pluginkv NORMAL\s+.*\(info\)$", out, re.MULTILINE)
    for label in ("get 100 B", "set 100 B"):
        for pair, target in (
            ("RemoteStorage -> pluginkv FULL / http.client -> echo", "0.8"),
            ("http.client -> echo / httpx.Client -> echo", "2.0"),
        ):
            line = rf"^  {re.escape(pair)}, {label}: \d+\.\d\dx .*>= {target}\s+(PASS|MISS)$"
            assert re.search(line, out, re.MULTILINE), f"no {pair} {label} line:\n{out}"
    for label in ("set 10 MiB", "get 10 MiB"):
        line = rf"^  RemoteStorage -> pluginkv FULL / http.client -> echo, {label}: .*>= 0\.7"
        assert re.search(line, out, re.MULTILINE), f"no {label} line:\n{out}"
    assert re.search(r"^(all 8 targets met|\d of 8 target\(s\) missed)$", out, re.MULTILINE)
    # Every server it started has been stopped.
    started = re.search(r"^started : (.*)$", out, re.MULTILINE)
    assert started is not None, out
    pids = [int(pid) for pid in re.findall(r"\(pid (\d+), port \d+\)", started.group(1))]
    assert len(pids) == 3, started.group(1)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
