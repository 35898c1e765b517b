"""Running plugins written with Dify's ``dify_plugin`` SDK, and serving their ``session.storage``.

The wire protocol is the one Dify's plugin daemon speaks (see
``docs/dify-host.md``).  The host side lives in the submodules and needs the
``server`` extra; importing this package alone pulls in nothing beyond the core.

Plugin code gets the full ``Storage`` API with ``storage(self.session)``.

==================  =================================================================
``framing``         newline-delimited JSON in both directions
``messages``        the host's lines: requests and backwards-invocation answers
``manifest``        what a plugin declares about itself at registration
``sessions``        one host-to-plugin request and what comes back on it
``connection``      one running plugin's channel: reading events, routing sessions
``invocations``     answering backwards invocations (storage; an error for the rest)
``storage_handler`` the storage verbs of a backwards invocation, served from the ``Store``
``remote``          the TCP listener for remote-debug plugins: handshake, registration
``plugin_dir``      reading a plugin folder: manifest and declarations from its YAML
``envs``            the virtual environments of installed plugins
``tracebacks``      the exception that ended a plugin, picked out of its stderr
``plugin_logs``     each installed plugin's log file: rotated, read on from a cursor
``local``           one installed plugin's process over stdio, restarted when it dies
``installs``        which folders are installed for which workspaces, on disk
``tools``           tool calls as Dify's API makes them: the declared tool, its credentials
``host``            the registry of running plugins, and the calls the service makes
``extended_storage`` the host side of ``storage(session)``'s operations
``plugin_storage``  the plugin side of them: ``ChannelStorage``
==================  =================================================================
"""

from __future__ import annotations

from typing import Any

from ..storage import Storage

__all__ = ["storage"]


def storage(session: Any) -> Any:
    """The full ``Storage`` API for plugin code, on its session's storage.

    ``session`` is the ``self.session`` of a ``dify_plugin`` ``Tool`` or
    ``Endpoint``.  On pluginkv's host every ``Storage`` method works (keys,
    batches, TTL, compare-and-set, ``incr``) and raises the engine's
    exceptions; on a host that only has Dify's four verbs, ``set``, ``get``,
    ``exist`` and ``delete`` work and the rest raise ``NotSupported``.  With
    ``pluginkv.testing.FakeSession`` it is the fake's in-memory ``Storage``.
    """
    kv = getattr(session, "kv", None)
    if isinstance(kv, Storage):
        return kv
    from .plugin_storage import ChannelStorage

    return ChannelStorage(session.storage)
