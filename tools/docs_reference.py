"""The reference parts of ``docs/`` that are written from the code, by cog.

``docs/configuration.md`` holds the table of settings and ``docs/cli-reference.md``
every command's help, each between cog markers that call a function here.
``make docs`` rewrites them; ``tests/test_docs_reference.py`` fails when either
differs from what the code says now (``cog --check``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click
from pydantic.fields import FieldInfo

from pluginkv.cli import main
from pluginkv.config import Settings, env_name

KiB = 1024
MiB = 1024 * KiB
DAY = 24 * 3600

# The width the help text is wrapped at: fixed, so the page does not depend on the
# terminal of whoever regenerated it.
HELP_WIDTH = 88


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _default(name: str, field: FieldInfo) -> str:
    """The default of a setting as the table shows it."""
    extra = field.json_schema_extra
    if isinstance(extra, dict) and "doc_default" in extra:
        return str(extra["doc_default"])
    value: Any = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, (int, float)):
        text = _number(value)
        if name.endswith("_bytes") and value >= KiB and value % KiB == 0:
            unit, size = ("MiB", MiB) if value % MiB == 0 else ("KiB", KiB)
            return f"{text} ({_number(value / size)} {unit})"
        if name.endswith("_seconds") and value >= DAY and value % DAY == 0:
            return f"{text} ({_number(value / DAY)} days)"
        return text
    if value == "":
        return "(empty)"
    if isinstance(value, dict):
        return f"`{value}`" if value else "`{}`"
    return f"`{value}`"


def settings_table() -> str:
    """The table of every setting: name, variable, default, meaning."""
    lines = [
        "| setting | environment variable | default | meaning |",
        "|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        meaning = (field.description or "").replace("|", "\\|")
        lines.append(f"| `{name}` | `{env_name(name)}` | {_default(name, field)} | {meaning} |")
    return "\n".join(lines)


def _commands(group: click.Group, path: list[str]) -> list[tuple[list[str], click.Command]]:
    found: list[tuple[list[str], click.Command]] = []
    for name in sorted(group.commands):
        command = group.commands[name]
        if command.hidden:
            continue
        found.append(([*path, name], command))
        if isinstance(command, click.Group):
            found.extend(_commands(command, [*path, name]))
    return found


def _lookup(path: list[str]) -> click.Command:
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


def cli_reference() -> str:
    """Every command's ``--help``, in the order of the command tree."""
    top = main.make_context("pluginkv", [], resilient_parsing=True)
    top.terminal_width = top.max_content_width = HELP_WIDTH
    parts = ["## `pluginkv`", "", "```text", main.get_help(top), "```"]
    for path, command in _commands(main, []):
        ctx = top
        for depth in range(len(path)):
            step = _lookup(path[: depth + 1])
            ctx = step.make_context(path[depth], [], parent=ctx, resilient_parsing=True)
        parts += [
            "",
            f"## `pluginkv {' '.join(path)}`",
            "",
            "```text",
            command.get_help(ctx),
            "```",
        ]
    return "\n".join(parts)


# The pages cog writes, relative to the repository.
PAGES = ["docs/configuration.md", "docs/cli-reference.md"]


def run_cog(*options: str) -> int:
    """Run cog over ``PAGES`` (``-r`` rewrites them, ``--check`` only compares).

    ``PLUGINKV_*`` variables of the caller's shell are dropped first: the CLI's
    defaults read them, and the pages describe the defaults of a clean environment.
    """
    from cogapp import Cog  # type: ignore[import-untyped]  # cogapp ships no type information

    for name in [name for name in os.environ if name.startswith("PLUGINKV_")]:
        del os.environ[name]
    root = Path(__file__).resolve().parent.parent
    os.chdir(root)
    status: int = Cog().main(["cog", "-I", str(root / "tools"), *options, *PAGES])
    return status


if __name__ == "__main__":
    sys.exit(run_cog(*sys.argv[1:]))
