"""The ``pluginkv`` command line (placeholder until the CLI lands)."""

from __future__ import annotations

import click


@click.group()
def main() -> None:
    """pluginkv: persistent key-value storage for plugins."""
