"""One storage operation per call, answered as a JSON message.

Errors raised by ``self.session.storage`` are caught and reported in the
message (``error`` and ``error_type``), so a caller sees exactly what plugin
code saw.
"""

import json
import time
from collections.abc import Generator
from typing import Any

from dify_plugin import Tool
from dify_plugin.entities.tool import ToolInvokeMessage


class KvTool(Tool):
    def _invoke(self, tool_parameters: dict[str, Any]) -> Generator[ToolInvokeMessage, None, None]:
        op = tool_parameters["op"]
        key = tool_parameters.get("key", "")
        # A host fills in the YAML defaults; a unit test calling _invoke may not.
        encoding = tool_parameters.get("encoding", "utf-8")
        storage = self.session.storage
        result: dict[str, Any] = {"op": op, "key": key}
        if op == "raise":  # outside the try below: the session ends in an error
            raise RuntimeError(tool_parameters.get("value") or "the tool failed on request")
        if op == "wait":
            yield from _wait(storage, key, float(tool_parameters.get("value") or 60), self)
            return
        try:
            if op == "set":
                storage.set(key, tool_parameters.get("value", "").encode(encoding))
            elif op == "get":
                if tool_parameters.get("missing_ok", False) and not storage.exist(key):
                    result["value"] = None
                else:
                    result["value"] = storage.get(key).decode(encoding)
            elif op == "exist":
                result["exist"] = storage.exist(key)
            elif op == "delete":
                storage.delete(key)
            elif op == "count":
                # The documented pattern: guard get with exist.
                count = int(storage.get(key)) if storage.exist(key) else 0
                count += int(tool_parameters.get("step", 1))
                storage.set(key, str(count).encode("ascii"))
                result["count"] = count
            elif op == "params":
                result["parameters"] = tool_parameters
            elif op == "context":
                # What Dify gives a call, and storage keyed on the conversation.
                session = self.session
                result["context"] = {
                    "user_id": self.runtime.user_id,
                    "conversation_id": session.conversation_id,
                    "app_id": session.app_id,
                    "message_id": session.message_id,
                }
                if session.conversation_id is not None:
                    turns_key = f"turns/{session.conversation_id}"
                    turns = int(storage.get(turns_key)) + 1 if storage.exist(turns_key) else 1
                    storage.set(turns_key, str(turns).encode("ascii"))
                    result["turns"] = turns
            elif op == "upload":
                # The file goes to the host; key is its name, value its text.
                uploaded = self.session.file.upload(
                    key or "file.txt",
                    tool_parameters.get("value", "").encode(encoding),
                    "text/plain",
                )
                result["file"] = uploaded.model_dump(mode="json")
            elif op in ("incr", "cas", "batch"):
                result.update(_beyond_dify(self.session, op, key))
            elif op in ("atomic", "meta", "changes", "watch"):
                result.update(_changes_and_commits(self.session, op, key, tool_parameters))
            elif op == "bench":
                result.update(_bench(self.session, json.loads(tool_parameters["value"])))
            elif op == "credentials":
                # What the host sent as the provider's credentials; a real tool
                # would use them, never echo them.
                result["credentials"] = self.runtime.credentials
                result["credential_type"] = self.runtime.credential_type.value
            elif op == "print":
                # Lands in the protocol stream of a local plugin: the host must skip it.
                print("a line from plugin code, not JSON")
            elif op == "sleep":
                time.sleep(float(tool_parameters.get("value", "1")))
            elif op == "call_other_tool":
                # A backwards invocation that is not storage.
                result["messages"] = len(
                    list(self.session.tool.invoke_builtin_tool("time", "current_time", {}))
                )
            else:
                raise ValueError(f"unknown op {op!r}")
        except Exception as exc:
            result["error"] = str(exc)
            result["error_type"] = type(exc).__name__
        yield self.create_json_message(result)


def _wait(
    storage: Any, key: str, seconds: float, tool: Tool
) -> Generator[ToolInvokeMessage, None, None]:
    """A message at once, the answer once ``key`` exists: what a caller reads before the end.

    The key's value decides the end: ``fail`` makes the tool raise after its
    first message, anything else is the answer.
    """
    yield tool.create_text_message(f"waiting for {key}")
    deadline = time.monotonic() + seconds
    while not storage.exist(key):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{key} did not appear within {seconds:g} seconds")
        time.sleep(0.02)
    released = storage.get(key).decode("utf-8")
    if released == "fail":
        raise RuntimeError(f"{key} says fail")
    yield tool.create_json_message({"op": "wait", "key": key, "released": released})


def _beyond_dify(session: Any, op: str, key: str) -> dict[str, Any]:
    """The full Storage API: needs the pluginkv package beside dify_plugin."""
    import pluginkv.dify
    from pluginkv import VersionConflict

    full = pluginkv.dify.storage(session)
    if op == "incr":
        return {"count": full.incr(key)}
    if op == "cas":
        full.set(key, b"first", if_absent=True)
        try:
            full.set(key, b"second", if_absent=True)
        except VersionConflict as exc:
            return {"conflict": str(exc), "version": full.get_entry(key).version}
        return {"conflict": None}
    full.set_many({f"{key}/a": b"1", f"{key}/b": b"2"}, ttl=3600)
    listed = [entry.key for entry in full.keys(f"{key}/")]
    return {"keys": listed, "values": {k: v.decode() for k, v in full.get_many(listed).items()}}


def _changes_and_commits(
    session: Any, op: str, key: str, tool_parameters: dict[str, Any]
) -> dict[str, Any]:
    """Commits of many keys, metadata and the change feed: needs pluginkv, as above.

    ``changes`` and ``watch`` read ``value`` as the sequence number to follow from
    (empty: the oldest kept, or for ``watch`` from now on); ``watch`` answers the
    first change that comes.
    """
    import pluginkv.dify
    from pluginkv import ChangesExpired

    full = pluginkv.dify.storage(session)
    if op == "atomic":  # take key/lock if nobody holds it, and count the takes
        results = [
            full.atomic()
            .check(f"{key}/lock", version=None)
            .set(f"{key}/lock", b"mine", metadata={"by": "atomic"}, content_type="text/plain")
            .incr(f"{key}/takes")
            .commit()
            for _ in range(2)  # the second finds the lock held
        ]
        return {
            "commits": [
                {"ok": r.ok, "versions": r.versions, "failed": r.failed, "counters": r.counters}
                for r in results
            ]
        }
    if op == "meta":
        version = full.set(
            key, b"{}", metadata={"owner": "plugin", "tags": ["a"]}, content_type="application/json"
        )
        entry = full.get_entry(key)
        listed = [m for m in full.keys(key) if m.key == key]
        return {
            "version": version,
            "entry": {"metadata": entry.metadata, "content_type": entry.content_type},
            "listed": [{"metadata": m.metadata, "content_type": m.content_type} for m in listed],
        }
    value = tool_parameters.get("value") or ""
    since = int(value) if value else None
    try:
        if op == "changes":
            page = full.changes(key, since=since)
            return {"changes": [c.as_dict() for c in page.changes], "next": page.next}
        return {"change": next(iter(full.watch(key, since=since))).as_dict()}
    except ChangesExpired as exc:
        return {"expired": str(exc), "oldest": exc.oldest}


def _bench(session: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """Time ``n`` storage calls, or no-op round trips, from inside the plugin (bench_host.py)."""
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
        elif call == "up":  # the same channel, no storage; bytes travel as hex, as in set
            noop = {"opt": "pluginkv", "call": "noop", "args": {"payload": value.hex()}}
            list(storage._backwards_invoke(InvokeType.Storage, dict, noop))
        else:  # down, like get: hex back, decoded
            for data in storage._backwards_invoke(InvokeType.Storage, dict, zeros):
                bytes.fromhex(data["result"])
    return {"seconds": time.perf_counter() - started, "n": n}
