"""The ``pluginkv`` command line.

``main`` is the command group; every command is registered on it here, from
the module of its subject.  Exit codes are in ``common`` (and ``docs/cli.md``).

=============  ==============================================================
``common``     exit codes, shared options, engine errors as exits
``kv``         the storage verbs of one scope (``kv ...``), ``usage``, ``scopes``
``kv_changes`` ``kv watch`` and ``kv txn``: the change feed, atomic commits
``serve``      the HTTP service and the plugin host
``tokens``     bearer tokens (``token create``, ``token revoke``)
``plugins``    the Dify plugin host's commands: debug keys, plugins, endpoints, tools
``transfer``   ``export`` and ``import``
``init``       ``init``: create a store
=============  ==============================================================
"""

from __future__ import annotations

import logging
from typing import Any

import click

from .. import __version__
from .common import EXIT_CONFLICT, EXIT_ERROR, EXIT_FALSE, EXIT_UNREACHABLE, CommandFailed
from .init import init
from .kv import kv, scopes, usage
from .kv_changes import txn, watch
from .plugins import debug_key, endpoint, plugin, plugins, tool
from .serve import serve
from .tokens import token
from .transfer import export, import_

__all__ = ["EXIT_CONFLICT", "EXIT_ERROR", "EXIT_FALSE", "EXIT_UNREACHABLE", "main"]


# The optional extras, by the modules they bring (pyproject.toml).
_EXTRAS = {
    "jwt": "server",
    "multipart": "server",
    "prometheus_client": "server",
    "starlette": "server",
    "uvicorn": "server",
    "uvloop": "server",
    "yaml": "server",
    "aiohttp": "async",
    "psycopg": "postgres",
    "psycopg_pool": "postgres",
}


class _Commands(click.Group):
    """The command group; a module of an extra that is not installed is one line, exit 3."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ModuleNotFoundError as exc:
            top = (exc.name or "").split(".")[0]
            if top not in _EXTRAS:
                raise
            raise CommandFailed(
                f"this command needs the {_EXTRAS[top]} extra, which is not installed "
                f"(no module {top!r}): pip install 'pluginkv[{_EXTRAS[top]}]'"
            ) from None


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="pluginkv")
@click.pass_context
def main(ctx: click.Context) -> None:
    """pluginkv: persistent, workspace-scoped key-value storage for plugins."""
    if ctx.invoked_subcommand != "serve":
        # The PostgreSQL pool logs each failed connection attempt; a command that
        # cannot connect says so in its one error line instead.
        logging.getLogger("psycopg").setLevel(logging.CRITICAL)


kv.add_command(watch)
kv.add_command(txn)

for command in (
    kv,
    usage,
    scopes,
    serve,
    token,
    debug_key,
    plugins,
    plugin,
    endpoint,
    tool,
    export,
    import_,
    init,
):
    main.add_command(command)
