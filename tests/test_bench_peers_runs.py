"""The peers benchmark still runs: ``bench_peers.py --quick`` exits 0, prints every row and
ratio, and stops the servers it started.

It needs wrk, redis-server, redis-benchmark and etcd (``make peers`` installs them, and
``make test`` depends on it); without one the test is skipped, except under ``CI=true``,
where it fails. Without them the benchmark itself must exit non-zero with an install hint,
which is tested whatever is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_peers.py"
TOOLS = ("wrk", "redis-server", "redis-benchmark", "etcd")
MISSING = [tool for tool in TOOLS if shutil.which(tool) is None]


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
    assert "not installed (or not on the PATH): wrk, redis-server" in result.stderr
    assert "apt-get install etcd-server" in result.stderr
    assert "started" not in result.stdout


@pytest.mark.skipif(
    bool(MISSING) and os.environ.get("CI") != "true",
    reason=f"not installed: {', '.join(MISSING)} (make peers)",
)
def test_bench_peers_quick_prints_every_ratio_and_stops_its_servers() -> None:
    result = run("--quick")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    for method in ("PUT", "GET"):
        for server in ("pluginkv", "Redis always", "etcd"):
            row = rf"^{method} 100 B\s+{server}\s+[\d,]+\s+[\d.]+ ms\s+[\d.]+ ms\s+[\d,]+ us$"
            assert re.search(row, out, re.MULTILINE), f"no {method} row for {server}:\n{out}"
    for method, peer, target in (
        ("PUT", "Redis always", "0.50"),
        ("PUT", "etcd", "1.50"),
        ("GET", "Redis always", "0.35"),
        ("GET", "etcd", "2.00"),
    ):
        line = rf"^  {method} pluginkv / {peer}: \d+\.\d\dx \(.*\) >= {target}  (PASS|MISS)$"
        assert re.search(line, out, re.MULTILINE), f"no {method} / {peer} ratio:\n{out}"
    assert re.search(r"^(all 4 targets met|\d of 4 target\(s\) missed)$", out, re.MULTILINE)
    started = re.search(r"^started : (.*)$", out, re.MULTILINE)
    assert started is not None, out
    pids = [int(pid) for pid in re.findall(r"\(pid (\d+), port \d+\)", started.group(1))]
    assert len(pids) == 3, started.group(1)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    data = re.search(r"--data-dir (/\S+)/pluginkv ", out)
    assert data is not None, out
    assert not Path(data.group(1)).exists(), "the benchmark left its data behind"
