"""The JSON answers: one pydantic model each, which describes it in the OpenAPI document.

The handlers build these bodies as plain dicts (the hot ones for speed, the others to
stay alike), so the models describe and do not build them; the schemathesis run in
``tests/server/test_openapi.py`` checks the real answers against the document.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from .bodies import INT64_MAX, INT64_MIN, Plugin, Workspace, named

__all__ = ["RESPONSE_MODELS"]

_UNIX = "Unix time, seconds."
_STATE = Literal["running", "starting", "restarting", "failed"]


class _Answer(BaseModel):
    model_config = ConfigDict(strict=True)


class EntryMeta(_Answer):
    key: str
    size: int = Field(
        ge=1,
        description="The key's UTF-8 bytes plus the value's bytes, as the quota counts them.",
    )
    version: int = Field(ge=1)
    created_at: float = Field(description=_UNIX)
    updated_at: float = Field(description=_UNIX)
    expires_at: float | None = Field(description="Unix time, seconds; null without a TTL.")
    metadata: dict[str, Any] | None = Field(
        description="The JSON object stored with the value; null when the write gave none."
    )
    content_type: str | None = Field(
        description="The content type stored with the value; null when the write gave none."
    )


class KeyPage(_Answer):
    entries: Annotated[
        list[EntryMeta], Field(json_schema_extra={"maxItems": "{settings.max_page_size}"})
    ]
    next_cursor: str | None = Field(
        description="Pass back as `cursor` for the next page; null on the last."
    )


class IncrResult(_Answer):
    value: int = Field(
        json_schema_extra={"format": "int64", "minimum": INT64_MIN, "maximum": INT64_MAX}
    )


class Deleted(_Answer):
    deleted: int = Field(ge=0, description="How many keys held a value and were removed.")


_VALUE = {
    "oneOf": [
        {"x-schema": "Base64Value"},
        {"x-schema": "TextValue"},
        {"x-schema": "TaggedBase64Value"},
    ]
}


class BatchValues(_Answer):
    values: Annotated[
        dict[str, Any],
        WithJsonSchema(
            {
                "type": "object",
                "additionalProperties": _VALUE,
                "description": "The keys that are present, with their values, as `encoding` asked.",
            }
        ),
    ]


class BatchVersions(_Answer):
    versions: Annotated[
        dict[str, Annotated[int, Field(ge=1)]],
        Field(description="Each stored key's new version (its `ETag`, unquoted)."),
    ]


class CommitDone(_Answer):
    ok: Literal[True]
    versions: Annotated[
        dict[str, Annotated[int, Field(ge=1)]],
        Field(
            description="The new version of each key set or incremented; deleted keys are absent."
        ),
    ]
    counters: Annotated[
        dict[str, int],
        Field(description="The sum of each key incremented, after the whole commit."),
    ]


class Change(_Answer):
    seq: int = Field(ge=1, description="Numbers the scope's changes from 1, in commit order.")
    key: str
    kind: Literal["set", "delete", "expire"]
    version: int = Field(
        ge=1, description="`set`: the entry's new version; else the version it had."
    )


class ChangeList(_Answer):
    changes: Annotated[
        list[Change], Field(json_schema_extra={"maxItems": "{settings.max_page_size}"})
    ]
    next: int = Field(ge=0, description="Pass back as `since` for the next page.")


class Usage(_Answer):
    bytes_used: int = Field(
        ge=0, description="Bytes stored: each live key's UTF-8 bytes plus its value's bytes."
    )
    keys: int = Field(ge=0, description="Live keys.")
    quota_bytes: int = Field(ge=0, description="The scope's quota.")


class _Named(_Answer):
    workspace: Workspace
    plugin: Plugin


class ScopeUsage(Usage, _Named):  # pydantic orders fields from the last base: the names first
    pass


class ScopeList(_Answer):
    scopes: list[ScopeUsage]


class StoreInfo(_Answer):
    version: str = Field(description="pluginkv's version.")
    backend: Literal["sqlite", "postgresql", "memory"]
    data_location: str = Field(
        description="The SQLite file, or the database URL with its password as `***`."
    )
    read_only: bool = Field(description="The store refuses writes (`PLUGINKV_READ_ONLY`).")
    started_at: float = Field(description="Unix time the service started.")
    uptime_seconds: float = Field(ge=0)
    max_page_size: int = Field(
        ge=1, description="Largest `limit` of a page of keys or changes (`PLUGINKV_MAX_PAGE_SIZE`)."
    )
    max_changes_wait_seconds: float = Field(
        gt=0,
        description="Longest `wait` of a `GET /v1/changes` long poll "
        "(`PLUGINKV_MAX_CHANGES_WAIT_SECONDS`).",
    )
    worker: int = Field(
        ge=0, description="The worker process that answered (`serve --workers N`): 0 to N-1."
    )
    workers: int = Field(ge=1, description="Worker processes of the service.")
    pid: int = Field(description="Process id of the worker that answered.")


class IssuedToken(_Answer):
    token: str = Field(description="The bearer token; shown this once.")
    workspace: Workspace
    plugin: Plugin
    read_only: bool
    expires_at: int = Field(description="Unix time the token lapses.")


class Revoked(_Answer):
    workspace: Workspace
    plugin: Plugin
    revoked_at: float = Field(
        description="Unix time: the scope's tokens issued at or before it are refused; "
        "tokens created afterwards work."
    )


class CredentialsValid(_Answer):
    plugin: Plugin
    provider: str
    valid: Literal[True]


class DeclaredField(_Answer):
    """A declared tool parameter, credential or setting."""

    name: str | None
    type: str | None
    required: bool
    default: Any = Field(description="The declared default, or null.")
    form: Annotated[
        str | None,
        WithJsonSchema({"type": "string", "description": "Tool parameters: llm, form, ..."}),
    ] = None
    options: Annotated[
        list[Any] | None,
        WithJsonSchema({"type": "array", "description": "A select's option values."}),
    ] = None


class _Tool(_Answer):
    name: str | None
    description: str | None
    parameters: list[DeclaredField]


class _Provider(_Answer):
    name: str | None
    description: str | None
    credentials: list[DeclaredField]
    tools: list[_Tool]


class _Endpoint(_Answer):
    method: str | None
    path: str | None
    hidden: bool


class _EndpointGroup(_Answer):
    settings: list[DeclaredField]
    endpoints: list[_Endpoint]


class _Running(_Answer):
    transport: Literal["tcp", "stdio"]
    workspaces: list[Workspace]
    state: str


class PluginOffer(_Answer):
    plugin: Plugin
    version: str
    permissions: dict[str, Any] = Field(
        description="The manifest's `resource.permission`, as declared."
    )
    providers: list[_Provider]
    endpoints: list[_EndpointGroup] = Field(
        description="The endpoint groups: their settings and endpoints."
    )
    running: list[_Running] = Field(
        description="Where it runs: each connection or installed process."
    )


_NULL = WithJsonSchema({"type": "null"})


class UploadedFile(_Answer):
    """A file a plugin uploaded, described as Dify's upload answers it."""

    id: str
    name: str
    size: int = Field(ge=0)
    extension: str = Field(description="From the MIME type: `.txt`.")
    mime_type: str
    preview_url: str = Field(description="Signed URL of this service that serves the file.")
    source_url: Annotated[None, _NULL] = None
    original_url: Annotated[None, _NULL] = None
    user_id: Annotated[None, _NULL] = None
    tenant_id: Annotated[str | None, named("Workspace")] = None
    conversation_id: Annotated[None, _NULL] = None
    file_key: Annotated[
        str | None,
        WithJsonSchema({"type": "string", "description": "Its key in the plugin's scope."}),
    ] = None


class EndpointCreated(_Answer):
    hook_id: str = Field(pattern="^[0-9a-f]{32}$")
    url: str = Field(description="The base URL, `<service>/e/<hook_id>`; requests go under it.")


class _ListedEndpoint(_Answer):
    hook_id: str
    url: str
    workspace: Workspace
    plugin: Plugin
    created_at: float = Field(description="Unix time.")


class EndpointList(_Answer):
    endpoints: list[_ListedEndpoint]


class Uninstalled(_Answer):
    plugin: str
    workspaces: list[Workspace] = Field(
        description="The workspaces it still serves; none: it was stopped."
    )


class PluginInfo(_Answer):
    plugin: Plugin
    version: str
    transport: Literal["tcp", "stdio"]
    workspaces: list[Workspace] = Field(
        description="The workspaces it serves: a remote-debug plugin the one of its key, a "
        "local one those that installed it."
    )
    peer: str = Field(
        description="host:port of a remote plugin, pid of a local one; empty while no "
        "process of it runs."
    )
    since: float = Field(
        description="Unix time, seconds: when it connected or started, or entered its state "
        "if it is not running."
    )
    last_heartbeat: float | None = Field(
        description="Unix time, seconds; null while no process of it runs."
    )
    state: _STATE = Field(
        description="A remote-debug plugin is listed while connected, so running. An "
        "installed one is starting (its environment is built or its process launched), "
        "running, restarting (its process ended; it is launched again after a pause, until "
        "it runs) or failed (it could not start; the next install or service start tries "
        "again)."
    )
    error: str | None = Field(
        description="Why it is not running: the last failure (the end of its stderr "
        "included); null while it runs."
    )


class PluginList(_Answer):
    plugins: list[PluginInfo]


class PluginLog(_Answer):
    plugin: Plugin
    text: str = Field(description="Whole lines, each ending in a newline.")
    cursor: str = Field(description="Pass it back to read what is written after these lines.")
    more: bool = Field(description="More was written already: read on at once with the cursor.")


class Alive(_Answer):
    status: Literal["ok"]


class Ready(_Answer):
    status: Literal["ready", "disk_full"]
    error: Annotated[
        dict[str, Any] | None,
        WithJsonSchema(
            {
                "type": "object",
                "description": "With `disk_full`: why writes that add data are refused.",
                "properties": {"code": {"const": "disk_full"}, "message": {"type": "string"}},
            }
        ),
    ] = None


# The models that are components of the document; the others are inlined where used.
RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    EntryMeta,
    KeyPage,
    IncrResult,
    Deleted,
    BatchValues,
    BatchVersions,
    CommitDone,
    Change,
    ChangeList,
    Usage,
    ScopeUsage,
    ScopeList,
    Revoked,
    StoreInfo,
    IssuedToken,
    CredentialsValid,
    PluginOffer,
    DeclaredField,
    UploadedFile,
    EndpointCreated,
    EndpointList,
    Uninstalled,
    PluginList,
    PluginLog,
    PluginInfo,
    Alive,
    Ready,
)
