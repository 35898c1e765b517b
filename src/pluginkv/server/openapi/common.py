"""What the parts of the OpenAPI document share: the ``Json`` type, references, patterns."""

from __future__ import annotations

from typing import Any

from ...keys import MAX_KEY_BYTES

OPENAPI_PATH = "/openapi.json"

Json = dict[str, Any]

_BEARER: list[Json] = [{"bearerAuth": []}]
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _ref(kind: str, name: str) -> Json:
    return {"$ref": f"#/components/{kind}/{name}"}


# -- schemas -------------------------------------------------------------------------------
# Keys: 1-256 bytes of UTF-8, no control character, no backslash, no "..".  JSON
# Schema's `maxLength` counts characters, and no schema keyword counts bytes: 256
# characters is the bound that holds for every key (a character is 1 to 4 bytes),
# exact for ASCII keys; the description says what the server counts.
_NO_FORBIDDEN = r"^[^\x00-\x1f\x7f-\x9f\\]*$"
_KEY_RULES = (
    f"1 to {MAX_KEY_BYTES} **bytes** of UTF-8 (the schema's `maxLength` counts characters: "
    f"{MAX_KEY_BYTES} ASCII characters fit, {MAX_KEY_BYTES // 2} two-byte ones); "
    "no control characters (C0, DEL, C1), "
    "no backslash, no `..`. Keys are opaque: nothing is normalised, so `a//b` and `a/b` "
    "are two keys."
)
_BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
# A Python float's repr, as the handlers write Unix times into headers.
_TIMESTAMP_HEADER = {
    "type": "string",
    "pattern": r"^[0-9]+(\.[0-9]+)?(e[+-]?[0-9]+)?$",
}
_WORKSPACE = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
_PLUGIN_PART = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}"
_PLUGIN = rf"^{_PLUGIN_PART}/{_PLUGIN_PART}$"
