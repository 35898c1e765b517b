"""One storage operation per call, answered as a JSON message.

Errors raised by ``self.session.storage`` are caught and reported in the
message (``error`` and ``error_type``), so a caller sees exactly what plugin
code saw.
"""

import importlib.metadata
import json
import platform
import time
from collections.abc import Generator
from typing import Any

from dify_plugin import Tool
from dify_plugin.entities.tool import ToolInvokeMessage


class KvTool(Tool):
    def _invoke(self, tool_parameters: dict[str, Any]) -> Generator[ToolInvokeMessage]:
        op = tool_parameters["op"]
        key = tool_parameters.get("key") or ""
        storage = self.session.storage
        result: dict[str, Any] = {"op": op, "key": key}
        try:
            match op:
                case "set":
                    storage.set(key, (tool_parameters.get("value") or "").encode())
                case "get":
                    result["value"] = storage.get(key).decode()
                case "exist":
                    result["exist"] = storage.exist(key)
                case "delete":
                    storage.delete(key)
                case "context":
                    result.update(_context(self))
                case "upload":
                    # The file goes to the host: key is its name, value its text.
                    uploaded = self.session.file.upload(
                        key or "file.txt",
                        (tool_parameters.get("value") or "").encode(),
                        "text/plain",
                    )
                    result["file"] = uploaded.model_dump(mode="json")
                case "version":
                    result["python"] = platform.python_version()
                    result["dify_plugin"] = importlib.metadata.version("dify_plugin")
                case "bench":
                    result.update(_bench(self.session, json.loads(tool_parameters["value"])))
                case _:
                    raise ValueError(f"unknown op {op!r}")
        except Exception as exc:
            result["error"] = str(exc)
            result["error_type"] = type(exc).__name__
        yield self.create_json_message(result)


def _context(tool: Tool) -> dict[str, Any]:
    """The ids the call carries and, in a conversation, its turns counted in storage.

    Plugins on Dify key storage on ``self.session.conversation_id`` this way.
    """
    session = tool.session
    ids = {
        "user_id": tool.runtime.user_id,
        "conversation_id": session.conversation_id,
        "app_id": session.app_id,
        "message_id": session.message_id,
    }
    if session.conversation_id is None:
        return {"context": ids}
    turns_key = f"turns/{session.conversation_id}"
    turns = int(session.storage.get(turns_key)) + 1 if session.storage.exist(turns_key) else 1
    session.storage.set(turns_key, str(turns).encode())
    return {"context": ids, "turns": turns}


def _bench(session: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """Time ``n`` storage calls, or no-op round trips, from inside the plugin (bench_host.py).

    The no-op calls are pluginkv's (``opt: pluginkv``) on the storage channel:
    ``noop`` carries the value up as set does, ``zeros`` brings as many bytes down.
    """
    from dify_plugin.core.entities.invocation import InvokeType

    storage, call, size, n = session.storage, spec["call"], spec["size"], spec["n"]
    value = b"x" * size
    if call == "get":
        storage.set("bench", value)
    zeros = {"opt": "pluginkv", "call": "zeros", "args": {"size": size}}
    started = time.perf_counter()
    for _ in range(n):
        if call == "set":
            storage.set("bench", value)
        elif call == "get":
            storage.get("bench")
        elif call == "up":
            noop = {"opt": "pluginkv", "call": "noop", "args": {"payload": value.hex()}}
            list(storage._backwards_invoke(InvokeType.Storage, dict, noop))
        else:
            for data in storage._backwards_invoke(InvokeType.Storage, dict, zeros):
                bytes.fromhex(data["result"])
    return {"seconds": time.perf_counter() - started, "n": n}
