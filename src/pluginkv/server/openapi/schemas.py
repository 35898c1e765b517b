"""The document's ``components/schemas``: the bodies' models, keys, names and error bodies.

Request and response bodies are the pydantic models of ``bodies.py`` and
``answers.py``, their JSON Schema written as OpenAPI 3.1 shows it: no titles, a
nullable field as ``"type": [..., "null"]``, other models by ``$ref``.  Keys, workspaces
and plugin names are strings whose patterns are those ``keys.py`` checks.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from ...keys import MAX_KEY_BYTES, PLUGIN_PATTERN, WORKSPACE_PATTERN
from ..answers import RESPONSE_MODELS
from ..bodies import REQUEST_MODELS
from ..describe import CHECK_FAILED, KEY_RULES, NO_FORBIDDEN, Json, ref
from .responses import (
    _CHECK_FAILED,
    _ERROR_CODES,
    _HOST_ERRORS,
    _WRITE_UNAVAILABLE,
    _error_schema,
)

_BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


def schemas() -> Json:
    """Every schema, with ``{settings.NAME}`` placeholders where a limit is a setting's."""
    named: Json = {
        "Key": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_KEY_BYTES,
            "pattern": NO_FORBIDDEN,
            "not": {"pattern": r"\.\."},
            "description": KEY_RULES,
        },
        "Base64Value": {
            "type": "string",
            "contentEncoding": "base64",
            "pattern": _BASE64,
            "description": "The value's bytes in standard base64 with padding.",
        },
        "Workspace": {"type": "string", "pattern": f"^{WORKSPACE_PATTERN}$"},
        "Plugin": {
            "type": "string",
            "pattern": f"^{PLUGIN_PATTERN}$",
            "description": "`author/name`, without a version.",
        },
    }
    result = {**named, **_model_schemas(REQUEST_MODELS + RESPONSE_MODELS)}
    for status, (name, _, _) in _ERROR_CODES.items():
        result[name] = _error_schema(status)
    for status, name, code, _ in _HOST_ERRORS:
        result[name] = _error_schema(status, [code])
    result[_WRITE_UNAVAILABLE[0]] = _error_schema(503, _WRITE_UNAVAILABLE[1])
    result[_CHECK_FAILED[0]] = _error_schema(412, [CHECK_FAILED])
    return result


@functools.cache
def _generated(models: tuple[type[BaseModel], ...]) -> Json:
    _, top = models_json_schema(
        [(model, "validation") for model in models], ref_template="#/$defs/{model}"
    )
    definitions: Json = top["$defs"]
    return definitions


def _model_schemas(models: tuple[type[BaseModel], ...]) -> Json:
    """The models' schemas; a model that is no component of its own is inlined where used."""
    definitions = _generated(models)
    components = {model.__name__ for model in models}

    def clean(node: Any) -> Any:
        if isinstance(node, list):
            return [clean(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "x-schema" in node:
            return ref("schemas", node["x-schema"])
        if "$ref" in node:
            name = node["$ref"].removeprefix("#/$defs/")
            return ref("schemas", name) if name in components else clean(definitions[name])
        node = {name: clean(value) for name, value in node.items() if name != "title"}
        # What JSON Schema assumes anyway; an optional field's null default says nothing.
        if node.get("additionalProperties") is True:
            del node["additionalProperties"]
        if "default" in node and node["default"] is None:
            del node["default"]
        return _nullable(node)

    return {model.__name__: clean(definitions[model.__name__]) for model in models}


def _nullable(node: Json) -> Json:
    """``anyOf: [{"type": T, ...}, {"type": "null"}]`` as ``{"type": [T, "null"], ...}``."""
    options = node.get("anyOf")
    if not (isinstance(options, list) and len(options) == 2 and {"type": "null"} in options):
        return node
    (other,) = [option for option in options if option != {"type": "null"}]
    if not isinstance(other.get("type"), str):
        return node
    merged = {name: value for name, value in node.items() if name != "anyOf"}
    merged.update(other)
    merged["type"] = [other["type"], "null"]
    if "enum" in other:
        merged["enum"] = [*other["enum"], None]
    return merged
