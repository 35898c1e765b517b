"""The JSON request bodies: one pydantic model each, which parses it and describes it.

A handler reads its body with ``parse(Model, body)``: an unknown field, a missing one or
one of the wrong type is a 400 (``InvalidArgument``) that names it, in the words the
service has always used.  The same model's JSON Schema is the body's schema in the
OpenAPI document (``openapi/schemas.py``), so what is refused and what is described
cannot drift apart.  Checks that need the running settings (a batch's size) or the
storage's own rules (key bytes, a TTL's range, int64) stay where they were, with their
specific errors; the schema states them too (``{settings.NAME}`` is filled in).

Models are strict: ``5`` is no string, ``"5"`` no number, ``true`` no number.  JSON does
not tell ``5`` from ``5.0``, so an integral float is taken as an integer (``Int``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WithJsonSchema

from ..errors import InvalidArgument
from .parsing import known_fields

__all__ = [
    "COMMIT_OPERATIONS",
    "REQUEST_MODELS",
    "VALUE_FORMS",
    "AtomicRequest",
    "BatchGetRequest",
    "BatchSetRequest",
    "CommitCheck",
    "CredentialsRequest",
    "EndpointRequest",
    "IncrRequest",
    "InstallRequest",
    "KeyList",
    "QuotaRequest",
    "ScopeRef",
    "TaggedBase64Value",
    "TextValue",
    "TokenRequest",
    "ToolInvokeRequest",
    "UninstallRequest",
    "named",
    "parse",
]

M = TypeVar("M", bound=BaseModel)

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def named(name: str) -> WithJsonSchema:
    """The schema ``components/schemas/<name>``, built beside the models (Key, Workspace...)."""
    return WithJsonSchema({"x-schema": name})


def _integral(value: object) -> object:
    return int(value) if type(value) is float and value.is_integer() else value


Int = Annotated[int, BeforeValidator(_integral)]
Key = Annotated[str, named("Key")]
Workspace = Annotated[str, named("Workspace")]
Plugin = Annotated[str, named("Plugin")]

_KEY_LIST = WithJsonSchema(
    {
        "type": "array",
        "maxItems": "{settings.max_batch_items}",
        "items": {"x-schema": "Key"},
        "description": "At most {settings.max_batch_items} keys, duplicates counted "
        "(setting `PLUGINKV_MAX_BATCH_ITEMS`).",
    }
)
_CREDENTIALS = {
    "type": ["object", "null"],
    "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
    "propertyNames": {"minLength": 1},
}


# The handler refuses an empty name with its own message (host_routes._name).
_NOT_EMPTY: dict[str, Any] = {"minLength": 1}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class IncrRequest(_Body):
    delta: Int | None = Field(
        None,
        description="Added to the stored integer; absent or null means 1.",
        json_schema_extra={"format": "int64", "minimum": INT64_MIN, "maximum": INT64_MAX},
    )


class KeyList(_Body):
    keys: Annotated[list[str], _KEY_LIST]


class BatchGetRequest(_Body):
    keys: Annotated[list[str], _KEY_LIST]
    encoding: Annotated[
        str | None,
        WithJsonSchema(
            {
                "type": ["string", "null"],
                "enum": ["base64", "text", None],
                "default": "base64",
                "description": "`base64` (default, also null): each value a base64 string. "
                '`text`: each value `{"text": "..."}` when it is UTF-8, else `{"base64": "..."}`.',
            }
        ),
    ] = "base64"


# A batch value as UTF-8 text, and in base64 tagged: forms of ``batch/set``'s items and of
# ``batch/get``'s answers.  (A docstring here would become the schema's description.)
class TextValue(_Body):
    text: str = Field(description="The value as UTF-8 text.")


class TaggedBase64Value(_Body):
    base64: Annotated[str, named("Base64Value")]


# A batch value's forms: each field is one (routes._value checks them with the key named).
VALUE_FORMS = frozenset(TextValue.model_fields) | frozenset(TaggedBase64Value.model_fields)


class BatchSetRequest(_Body):
    # Each value's form is checked with its key named (routes._value): the schema says it.
    items: Annotated[
        dict[str, Any],
        WithJsonSchema(
            {
                "type": "object",
                "maxProperties": "{settings.max_batch_items}",
                "propertyNames": {"x-schema": "Key"},
                "additionalProperties": {
                    "oneOf": [
                        {"x-schema": "Base64Value"},
                        {"x-schema": "TextValue"},
                        {"x-schema": "TaggedBase64Value"},
                    ]
                },
                "description": "Key to value: a base64 string, "
                '`{"base64": "..."}`, or `{"text": "..."}` (stored as its UTF-8 bytes). '
                "At most {settings.max_batch_items} items (setting `PLUGINKV_MAX_BATCH_ITEMS`).",
            }
        ),
    ]
    ttl: float | None = Field(
        None,
        description="Seconds until every item expires, at most `PLUGINKV_MAX_TTL_SECONDS`; "
        "null keeps them forever.",
        json_schema_extra={"exclusiveMinimum": 0, "maximum": "{settings.max_ttl_seconds}"},
    )


class QuotaRequest(_Body):
    workspace: Workspace
    plugin: Plugin
    quota_bytes: Int | None = Field(
        None,
        description="The scope's quota override; null (or absent) returns it to the settings.",
        json_schema_extra={"minimum": 0, "maximum": INT64_MAX},
    )


class ScopeRef(_Body):
    workspace: Workspace
    plugin: Plugin


class TokenRequest(_Body):
    workspace: Workspace
    plugin: Plugin
    ttl: float | None = Field(
        None,
        description="Lifetime in seconds; default `PLUGINKV_TOKEN_TTL_SECONDS`, from 1 to "
        "{settings.token_max_ttl_seconds} (setting `PLUGINKV_TOKEN_MAX_TTL_SECONDS`).",
        json_schema_extra={"minimum": 1, "maximum": "{settings.token_max_ttl_seconds}"},
    )
    read_only: bool = Field(False, description="A token that reads and never writes.")


class _PluginCall(_Body):
    workspace: Workspace
    plugin: Plugin


class ToolInvokeRequest(_PluginCall):
    provider: str = Field(
        description="The tool provider's `identity.name` (not `author/name`).",
        json_schema_extra=_NOT_EMPTY,
    )
    tool: str = Field(description="The tool's `identity.name`.", json_schema_extra=_NOT_EMPTY)
    parameters: dict[str, Any] | None = Field(
        None,
        description="The tool's parameters. Those missing (absent or null) get the defaults "
        "the tool declares; every declared one, given or defaulted, is cast to its type as "
        'Dify does (`"false"` for a boolean is `false`, `"3"` for a number is `3`). A required '
        "one missing without a default, or a value that cannot be cast, is a 400 naming it, "
        "and the plugin is not called.",
    )
    user: str | None = Field(
        None, description="The user id the plugin sees (`self.runtime.user_id`)."
    )
    conversation_id: str | None = Field(
        None, description="`self.session.conversation_id` in the plugin; default null."
    )
    app_id: str | None = Field(
        None, description="`self.session.app_id` in the plugin; default null."
    )
    message_id: str | None = Field(
        None, description="`self.session.message_id` in the plugin; default null."
    )
    credentials: Annotated[
        dict[str, Any] | None,
        WithJsonSchema(
            {
                **_CREDENTIALS,
                "description": "The tool provider's credentials by name, as Dify's daemon "
                "sends them decrypted (`self.runtime.credentials`); default none. Anything "
                "but an object of strings, numbers, booleans or nulls is a 400 and nothing "
                "reaches the plugin.",
            }
        ),
    ] = None
    # The host checks the value and names the choices (host/tools.py).
    credential_type: Annotated[
        str | None,
        WithJsonSchema(
            {
                "type": ["string", "null"],
                "enum": ["api-key", "oauth2", "unauthorized", None],
                "description": "How they were obtained (`self.runtime.credential_type`); "
                "default `api-key`.",
            }
        ),
    ] = None


class CredentialsRequest(_PluginCall):
    provider: str = Field(
        description="The tool provider's `identity.name`.", json_schema_extra=_NOT_EMPTY
    )
    credentials: Annotated[
        dict[str, Any] | None,
        WithJsonSchema(
            {
                **_CREDENTIALS,
                "description": "The credentials to check, by name; the provider's declared "
                "defaults fill in those left out.",
            }
        ),
    ] = None
    user: str | None = Field(None, description="The user id the plugin sees.")


class InstallRequest(_Body):
    directory: str = Field(
        description="Absolute path, on the service's machine, of a plugin folder "
        "(manifest.yaml, pyproject.toml and uv.lock or requirements.txt, _assets/, the YAML "
        "and Python files), from which the plugin runs, or of a .difypkg file, which is "
        "checked and unpacked under the data directory."
    )
    workspace: Workspace


class UninstallRequest(_Body):
    plugin: Plugin
    workspace: Workspace


class EndpointRequest(_PluginCall):
    settings: dict[str, Any] | None = Field(
        None,
        description="The endpoint's settings (the endpoint group's `settings` schema), passed "
        "to the plugin with every request.",
    )


# POST /v1/atomic: checks and operations, each item parsed on its own with its position
# named (change_routes.py); the schemas say what each takes.
class CommitCheck(_Body):
    key: Key
    version: Int | None = Field(
        description="The version the key must be at; null: the key must hold no value.",
        json_schema_extra={"minimum": 1},
    )


_BATCH_VALUE = {
    "oneOf": [
        {"x-schema": "TextValue"},
        {"x-schema": "TaggedBase64Value"},
        {"x-schema": "Base64Value"},
    ],
    "description": '`{"text": "..."}` (stored as its UTF-8 bytes) or `{"base64": "..."}`, '
    "as in `batch/set`.",
}


class SetOperation(_Body):
    op: Literal["set"]
    key: Key
    value: Annotated[Any, WithJsonSchema(_BATCH_VALUE)]
    ttl: float | None = Field(
        None,
        description="Seconds until the entry expires, at most `PLUGINKV_MAX_TTL_SECONDS`; "
        "null keeps it forever.",
        json_schema_extra={"exclusiveMinimum": 0, "maximum": "{settings.max_ttl_seconds}"},
    )
    metadata: dict[str, Any] | None = Field(
        None,
        description="A JSON object kept with the value, at most `PLUGINKV_MAX_METADATA_BYTES` "
        "as compact JSON.",
    )
    content_type: str | None = Field(
        None,
        description="How to read the value, `type/subtype`; at most "
        "`PLUGINKV_MAX_CONTENT_TYPE_BYTES`.",
    )


class DeleteOperation(_Body):
    op: Literal["delete"]
    key: Key


class IncrOperation(_Body):
    op: Literal["incr"]
    key: Key
    delta: Int | None = Field(
        None,
        description="Added to the stored integer; absent or null means 1.",
        json_schema_extra={"format": "int64", "minimum": INT64_MIN, "maximum": INT64_MAX},
    )


# Each operation's model by its "op".
COMMIT_OPERATIONS: dict[str, type[SetOperation | DeleteOperation | IncrOperation]] = {
    "set": SetOperation,
    "delete": DeleteOperation,
    "incr": IncrOperation,
}


class AtomicRequest(_Body):
    checks: Annotated[
        list[Any],
        WithJsonSchema(
            {
                "type": "array",
                "items": {"x-schema": "CommitCheck"},
                "description": "Every check must hold, else nothing is written (412). Checks "
                "and operations together are at most {settings.max_commit_operations} "
                "(setting `PLUGINKV_MAX_COMMIT_OPERATIONS`).",
            }
        ),
    ] = []
    operations: Annotated[
        list[Any],
        WithJsonSchema(
            {
                "type": "array",
                "items": {
                    "oneOf": [
                        {"x-schema": "SetOperation"},
                        {"x-schema": "DeleteOperation"},
                        {"x-schema": "IncrOperation"},
                    ]
                },
                "description": "Applied in order, each over what the earlier ones left; "
                "their keys, values and metadata at most {settings.max_commit_bytes} bytes "
                "(setting `PLUGINKV_MAX_COMMIT_BYTES`).",
            }
        ),
    ] = []


REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    CommitCheck,
    SetOperation,
    DeleteOperation,
    IncrOperation,
    AtomicRequest,
    IncrRequest,
    KeyList,
    BatchGetRequest,
    BatchSetRequest,
    TextValue,
    TaggedBase64Value,
    QuotaRequest,
    ScopeRef,
    TokenRequest,
    ToolInvokeRequest,
    CredentialsRequest,
    InstallRequest,
    EndpointRequest,
    UninstallRequest,
)

# What a pydantic type error says a field must be, in the service's words.
_KINDS = {
    "int_type": "int",
    "string_type": "str",
    "list_type": "list",
    "dict_type": "dict",
    "float_type": "int or float",
}


def parse(model: type[M], body: dict[str, Any]) -> M:
    """``body`` (a JSON object) as ``model``; ``InvalidArgument`` naming what is wrong.

    Unknown fields first, all of them named, as ``known_fields`` names a query's; then
    the first field that is missing or of the wrong type, in the model's order.
    """
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        problems = exc.errors(include_url=False)
        if any(problem["type"] == "extra_forbidden" for problem in problems):
            known_fields(body, frozenset(model.model_fields))
        (first, *_) = [p for p in problems if p["type"] != "extra_forbidden"]
        raise _refusal(model, body, first) from None


def _refusal(model: type[BaseModel], body: dict[str, Any], problem: Any) -> InvalidArgument:
    name = str(problem["loc"][0])
    required = model.model_fields[name].is_required()
    if problem["type"] == "missing" or (required and body.get(name) is None):
        return InvalidArgument(f"request body needs the field {name!r}")
    if len(problem["loc"]) > 1 and isinstance(problem["loc"][1], int):  # an item of a list
        return InvalidArgument(f"field {name!r} must be a list of strings")
    kind = _KINDS.get(problem["type"], "valid value")
    return InvalidArgument(f"field {name!r} must be a {kind}")
