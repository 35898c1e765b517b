"""The README's Python example runs as printed, and again: nothing in it raises the second time."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def _python_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    (example,) = [block for block in blocks if "open_store" in block]
    return str(example)


def test_the_readme_python_example_runs_twice_in_a_row(tmp_path: Path) -> None:
    (tmp_path / "pluginkv-data").mkdir()
    runs = [
        subprocess.run(
            [sys.executable, "-c", _python_example()],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        for _ in range(2)
    ]
    for run in runs:
        assert run.returncode == 0, run.stderr
