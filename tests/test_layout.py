"""The package's shape: no import cycle between modules, no module too long to read whole.

The layers themselves (which package may import which) are import-linter's
contracts in pyproject.toml, checked by ``make lint``.
"""

from __future__ import annotations

import graphlib
from pathlib import Path

import grimp

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_MODULE_LINES = 800


def test_no_import_cycle_between_modules() -> None:
    # Imports under ``if TYPE_CHECKING:`` never run, so they close no cycle.
    graph = grimp.build_graph("pluginkv", exclude_type_checking_imports=True, cache_dir=None)
    sorter = graphlib.TopologicalSorter(
        {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    )
    try:
        sorter.prepare()
    except graphlib.CycleError as cycle:
        raise AssertionError(f"import cycle: {' -> '.join(cycle.args[1])}") from None


def test_every_module_is_in_the_import_graph() -> None:
    # A folder without __init__.py is a namespace package, which grimp skips: its
    # modules' imports would go unchecked by the test above and by the contracts.
    graph = grimp.build_graph("pluginkv", cache_dir=None)
    files = {
        ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        for path in (SRC / "pluginkv").rglob("*.py")
    }
    assert files == graph.modules


def test_no_module_is_over_800_lines() -> None:
    lengths = {
        str(path.relative_to(SRC)): len(path.read_text(encoding="utf-8").splitlines())
        for path in SRC.rglob("*.py")
    }
    assert {path: n for path, n in lengths.items() if n > MAX_MODULE_LINES} == {}
