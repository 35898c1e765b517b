"""The ``pluginkv`` command line.

``main`` is the command group; every command is registered on it here, from
the module of its subject.  Exit codes are in ``common`` (and ``docs/cli.md``).

=============  ==============================================================
``common``     exit codes, shared options, engine errors as exits
``kv``         the storage verbs of one scope (``kv ...``), ``usage``, ``scopes``
``serve``      the HTTP service and the plugin host
``tokens``     bearer tokens (``token create``, ``token revoke``)
``plugins``    the Dify plugin host's commands: debug keys, plugins, endpoints, tools
``transfer``   ``export`` and ``import``
``init``       ``init``: create a store
=============  ==============================================================
"""

from __future__ import annotations

import click

from .. import __version__
from .common import EXIT_CONFLICT, EXIT_ERROR, EXIT_FALSE
from .init import init
from .kv import kv, scopes, usage
from .plugins import debug_key, endpoint, plugin, plugins, tool
from .serve import serve
from .tokens import token
from .transfer import export, import_

__all__ = ["EXIT_CONFLICT", "EXIT_ERROR", "EXIT_FALSE", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="pluginkv")
def main() -> None:
    """pluginkv: persistent, workspace-scoped key-value storage for plugins."""


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
