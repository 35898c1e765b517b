"""The HTTP floor benchmark still runs: ``bench_http_floor.py --quick`` exits 0, prints
every row, ratio and CPU share, and stops the servers it started.

It needs wrk, redis-server and redis-benchmark (``make peers`` installs them, and ``make
test`` depends on it); without one the test is skipped, except under ``CI=true``, where it
fails. Without them the benchmark itself must exit non-zero with an install hint, which is
tested whatever is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_http_floor.py"
TOOLS = ("wrk", "redis-server", "redis-benchmark")
MISSING = [tool for tool in TOOLS if shutil.which(tool) is None]
SERVERS = ("raw app 1w", "raw app 2w", "pluginkv 1w", "pluginkv 2w", "Redis always")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env=env,
    )


def test_without_its_tools_it_exits_non_zero_naming_the_packages(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # an empty directory: none of the tools
    result = run("--quick", env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "not installed (or not on the PATH): wrk, redis-server, redis-benchmark" in (
        result.stderr
    )
    assert "apt-get install redis-tools" in result.stderr
    assert "started" not in result.stdout


@pytest.mark.skipif(
    bool(MISSING) and os.environ.get("CI") != "true",
    reason=f"not installed: {', '.join(MISSING)} (make peers)",
)
def test_bench_http_floor_quick_prints_every_ratio_and_stops_its_servers() -> None:
    result = run("--quick")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    for method in ("PUT", "GET"):
        for server in SERVERS:
            row = rf"^{method} 100 B\s+{server}\s+[\d,]+\s+[\d.]+ ms\s+[\d.]+ ms\s+[\d,]+ us$"
            assert re.search(row, out, re.MULTILINE), f"no {method} row for {server}:\n{out}"
        target = "0.50" if method == "PUT" else "0.35"
        ratio = r"\d+\.\d\dx \(.*\)"
        for n in (1, 2):
            lines = (
                rf"^  {method} pluginkv {n}w / raw app {n}w: {ratio}$",
                rf"^  {method} raw app {n}w / Redis always: {ratio}  "
                rf"the floor: (above|BELOW) the target {target}$",
                rf"^  {method} pluginkv {n}w / Redis always: {ratio} >= {target}  (PASS|MISS)$",
                rf"^  {method} {n}w: -?[\d,]+ us of [\d,]+ us \(-?\d+%\); the stack: [\d,]+ us$",
            )
            for line in lines:
                assert re.search(line, out, re.MULTILINE), f"no line {line!r}:\n{out}"
    assert re.search(r"^(all 4 targets met|\d of 4 target\(s\) missed)$", out, re.MULTILINE)
    started = re.search(r"^started : (.*)$", out, re.MULTILINE)
    assert started is not None, out
    pids = [int(pid) for pid in re.findall(r"\(pid (\d+), port \d+\)", started.group(1))]
    assert len(pids) == len(SERVERS), started.group(1)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    data = re.search(r"--data-dir (/\S+)/pluginkv-1w ", out)
    assert data is not None, out
    assert not Path(data.group(1)).exists(), "the benchmark left its data behind"
