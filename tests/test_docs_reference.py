"""The reference pages written from the code (settings, every command's help) match it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_settings_table_and_the_cli_reference_are_what_the_code_says() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "docs_reference.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (
        f"{result.stdout}{result.stderr}\nrun `make docs` to rewrite them from the code"
    )


def test_every_command_has_a_section_in_the_cli_reference() -> None:
    import click

    from pluginkv.cli import main

    page = (ROOT / "docs" / "cli-reference.md").read_text()

    def walk(group: click.Group, path: list[str]) -> list[str]:
        names: list[str] = []
        for name, command in group.commands.items():
            if not command.hidden:
                names.append(" ".join([*path, name]))
                if isinstance(command, click.Group):
                    names += walk(command, [*path, name])
        return names

    commands = walk(main, [])
    assert len(commands) > 20
    for command in commands:
        assert f"## `pluginkv {command}`" in page, command
