"""The lines the host writes to a plugin.

Shapes from ``docs/dify-protocol.md`` §5 (request envelope) and §7.1 (backwards
responses).  Every backwards answer carries ``message`` (a string) and
``data`` (an object or null): the SDK rejects an answer without them.  Every
backwards call is closed with ``end``, success or failure, as the daemon does.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LOAD_FAILED", "PERMISSION_DENIED", "backwards_error", "backwards_reply", "request"]

Message = dict[str, Any]

# The daemon's texts, which plugins written for Dify may match on.
PERMISSION_DENIED = "permission denied, you need to enable storage access in plugin manifest"
LOAD_FAILED = "load data failed, please check if the key is correct or you have not set it"


def request(
    session_id: str,
    data: Message,
    *,
    endpoint_id: str | None = None,
    conversation_id: str | None = None,
    message_id: str | None = None,
    app_id: str | None = None,
) -> Message:
    """Open a session: a request the plugin routes by ``data.type`` and ``data.action``.

    The ids are those Dify gives a call (plugin code reads them as
    ``self.session.conversation_id`` and so on); none is needed.
    """
    message: Message = {
        "session_id": session_id,
        "conversation_id": conversation_id,
        "message_id": message_id,
        "app_id": app_id,
        "endpoint_id": endpoint_id,
        "context": {},
        "event": "request",
        "data": data,
    }
    return message


def _backwards(
    session_id: str, request_id: str, event: str, message: str, data: Message | None
) -> Message:
    return {
        "session_id": session_id,
        "event": "backwards_response",
        "data": {
            "backwards_request_id": request_id,
            "event": event,
            "message": message,
            "data": data,
        },
    }


def backwards_reply(session_id: str, request_id: str, data: Message) -> list[Message]:
    """A successful answer: ``response`` (message ``"struct"``, as the daemon's), then ``end``."""
    return [
        _backwards(session_id, request_id, "response", "struct", data),
        _backwards(session_id, request_id, "end", "", None),
    ]


def backwards_error(session_id: str, request_id: str, text: str) -> list[Message]:
    """A failed call: ``error`` (plugin code gets ``Exception(text)``), then ``end``."""
    return [
        _backwards(session_id, request_id, "error", text, None),
        _backwards(session_id, request_id, "end", "", None),
    ]
