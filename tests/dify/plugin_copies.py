"""Copies of the example plugin that start late, break, or carry another version."""

from __future__ import annotations

import shutil
from pathlib import Path

from .conftest import STORAGE_TOOL

# Waits, before it runs the SDK, until the test creates the file ``gate`` in its folder.
GATED_MAIN = """\
import time
from pathlib import Path

while not Path("gate").exists():
    time.sleep(0.02)

from dify_plugin import DifyPluginEnv, Plugin

plugin = Plugin(DifyPluginEnv(MAX_REQUEST_TIMEOUT=120))

if __name__ == "__main__":
    plugin.run()
"""

# A configuration error the SDK's pydantic settings reject at start-up.
INVALID_MAIN = """\
from dify_plugin import DifyPluginEnv, Plugin

plugin = Plugin(DifyPluginEnv(MAX_REQUEST_TIMEOUT="not a number"))

if __name__ == "__main__":
    plugin.run()
"""


def example_copy(
    directory: Path,
    *,
    version: str = "0.1.0",
    main: str | None = None,
    source: Path = STORAGE_TOOL,
) -> Path:
    """An example plugin (``source``) copied to ``directory``, at ``version``, with another
    ``main.py``."""
    shutil.copytree(source, directory, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = directory / "manifest.yaml"
    text = manifest.read_text()
    assert text.startswith("version: 0.1.0\n")
    manifest.write_text(text.replace("version: 0.1.0\n", f"version: {version}\n", 1))
    if main is not None:
        (directory / "main.py").write_text(main)
    return directory
