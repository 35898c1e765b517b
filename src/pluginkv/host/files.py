"""Files plugins upload (``self.session.file.upload``), kept in their own storage scope.

The SDK's upload is two steps (``dify_plugin/invocations/file.py``): an
``upload_file`` backwards call with the file's name and MIME type, answered
with ``{"url": ...}``, a signed URL; then a multipart POST of the file to
that URL, answered ``201`` with the file's description, Dify's
``FileResponse`` (``id``, ``name``, ``size``, ``extension``, ``mime_type``,
``preview_url``, ...).  On Dify the file goes to Dify's own file storage;
here it goes to the store, in the scope of the plugin and the session's
workspace, under ``FILES_PREFIX`` (so it counts against the plugin's quota),
and ``preview_url`` is a signed URL of this service that serves it back.
Both URLs are JWTs signed with the service's token secret
(``Tokens.issue_signed``) and lapse after
``PLUGINKV_FILES_ACCESS_TIMEOUT_SECONDS``.
"""

from __future__ import annotations

import functools
import json
import mimetypes
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ..config import Settings
from ..errors import Forbidden, InvalidArgument, PluginNotFound
from ..services.readers import Readers
from ..services.tokens import Tokens
from ..services.write_groups import WriteQueue
from ..store import Store

__all__ = ["FILES_PREFIX", "PREVIEW_PATH", "UPLOAD_PATH", "PluginFiles", "StoredFile"]

# The plugin's keys of a file: FILES_PREFIX + id + "/content" and "/meta".
FILES_PREFIX = ".dify-files/"
UPLOAD_PATH = "/files/upload/for-plugin"  # Dify's path
PREVIEW_PATH = "/files/tools/"  # + id + extension, as Dify's tool files
_UPLOAD = "file-upload"  # the types of the signed tokens
_PREVIEW = "file-preview"


@dataclass(frozen=True, slots=True)
class StoredFile:
    name: str
    mime_type: str
    content: bytes


class PluginFiles:
    """Signs the URLs, keeps the files and serves them back, on the service's store.

    ``store``, ``writer`` and ``readers`` are looked up at each call: the
    service replaces them when it starts.
    """

    def __init__(
        self,
        settings: Settings,
        tokens: Tokens,
        store: Callable[[], Store],
        writer: Callable[[], WriteQueue],
        readers: Callable[[], Readers],
    ) -> None:
        self._settings = settings
        self._tokens = tokens
        self._store = store
        self._writer = writer
        self._readers = readers

    @property
    def _base(self) -> str:
        settings = self._settings
        return (settings.files_url or f"http://{settings.host}:{settings.port}").rstrip("/")

    def upload_url(self, request: object, *, workspace: str, plugin: str) -> dict[str, Any]:
        """The answer to an ``upload_file`` call: ``{"url": ...}`` to POST the file to."""
        if not isinstance(request, dict):
            raise InvalidArgument("upload_file request is not an object")
        filename, mimetype = request.get("filename"), request.get("mimetype")
        if not isinstance(filename, str) or not filename:
            raise InvalidArgument("upload_file needs a filename")
        if not isinstance(mimetype, str) or not mimetype:
            raise InvalidArgument("upload_file needs a mimetype")
        claims = {"ws": workspace, "plugin": plugin, "name": filename, "mime": mimetype}
        token = self._tokens.issue_signed(_UPLOAD, claims, self._ttl)
        return {"url": f"{self._base}{UPLOAD_PATH}?token={quote(token)}"}

    async def save(
        self, token: str, filename: str, mimetype: str, content: bytes
    ) -> dict[str, Any]:
        """Keep an uploaded file; its description as Dify's upload answers it.

        The name and type must be those the URL was signed for, as on Dify.
        Engine limits apply: the value limit and the plugin's quota.
        """
        claims = self._tokens.signed_claims(token, _UPLOAD)
        if (claims.get("name"), claims.get("mime")) != (filename, mimetype):
            raise Forbidden("this upload URL was signed for another file name or MIME type")
        workspace, plugin = str(claims["ws"]), str(claims["plugin"])
        file_id = str(uuid.uuid4())
        extension = mimetypes.guess_extension(mimetype) or ".bin"  # Dify's choice
        meta = {"name": filename, "mime_type": mimetype, "created_at": time.time()}
        store = self._store()
        storage = store.storage(workspace=workspace, plugin=plugin)
        items = {
            f"{FILES_PREFIX}{file_id}/content": content,
            f"{FILES_PREFIX}{file_id}/meta": json.dumps(meta).encode(),
        }
        await self._writer().run(store.backend, functools.partial(storage.set_many, items))
        preview = self._tokens.issue_signed(
            _PREVIEW, {"ws": workspace, "plugin": plugin, "id": file_id}, self._ttl
        )
        preview_url = f"{self._base}{PREVIEW_PATH}{file_id}{extension}?token={quote(preview)}"
        return {
            "id": file_id,
            "name": filename,
            "size": len(content),
            "extension": extension,
            "mime_type": mimetype,
            "preview_url": preview_url,
            "source_url": None,
            "original_url": None,
            "user_id": None,
            "tenant_id": workspace,
            "conversation_id": None,
            "file_key": f"{FILES_PREFIX}{file_id}/content",
        }

    async def load(self, token: str, file_name: str) -> StoredFile:
        """The file a preview URL names; ``PluginNotFound`` once it is gone."""
        claims = self._tokens.signed_claims(token, _PREVIEW)
        file_id = file_name.split(".", 1)[0]
        if claims.get("id") != file_id:
            raise Forbidden("this preview URL was signed for another file")
        store = self._store()
        storage = store.storage(workspace=str(claims["ws"]), plugin=str(claims["plugin"]))
        keys = [f"{FILES_PREFIX}{file_id}/content", f"{FILES_PREFIX}{file_id}/meta"]
        found = await self._readers().run(store.backend, storage.get_many, keys)
        if len(found) != 2:
            raise PluginNotFound(f"file {file_id} is no longer stored")
        meta = json.loads(found[keys[1]])
        return StoredFile(str(meta["name"]), str(meta["mime_type"]), found[keys[0]])

    @property
    def _ttl(self) -> float:
        return self._settings.files_access_timeout_seconds
