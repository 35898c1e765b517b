"""What runs inside a plugin's own process: ``storage(session)``, and the shapes both sides share.

Plugin code written with Dify's ``dify_plugin`` SDK gets the full ``Storage``
API with ``storage(self.session)``.  The host that runs such plugins lives in
``pluginkv.host``; it reads the shapes from here, never the reverse.
Importing this package pulls in nothing beyond the core.

==================  =================================================================
``plugin_storage``  the plugin side of ``storage(session)``'s operations: ``ChannelStorage``
``channel_commit``  what ``ChannelStorage.atomic()`` builds: a commit sent as one call
``extended_calls``  pluginkv's calls on the channel, their arguments and answers
``change_calls``    the calls of commits and of the change feed
``messages``        the host's lines: requests and backwards-invocation answers
``key_paths``       keys on the plugin channel cleaned as Dify's daemon reads them (file paths)
==================  =================================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..storage import Storage

if TYPE_CHECKING:
    from .plugin_storage import ChannelStorage

__all__ = ["storage"]


def storage(session: Any) -> Storage | ChannelStorage:
    """The full ``Storage`` API for plugin code, on its session's storage.

    ``session`` is the ``self.session`` of a ``dify_plugin`` ``Tool`` or
    ``Endpoint``.  On pluginkv's host every ``Storage`` method works (keys,
    batches, TTL, compare-and-set, ``incr``, metadata, ``atomic()``,
    ``changes()`` and ``watch()``) and raises the engine's exceptions; on a
    host that only has Dify's four verbs, ``set``, ``get``, ``exist`` and
    ``delete`` work and the rest raise ``NotSupported``.  Either type meets
    ``pluginkv.StorageAPI`` and ``pluginkv.ChangesAPI``.  With
    ``pluginkv.testing.FakeSession`` it is the fake's in-memory ``Storage``.
    """
    kv = getattr(session, "kv", None)
    if isinstance(kv, Storage):
        return kv
    from .plugin_storage import ChannelStorage

    return ChannelStorage(session.storage)
