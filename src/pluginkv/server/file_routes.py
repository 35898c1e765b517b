"""The signed URLs of files plugins upload: the upload itself and the preview (``host/files.py``).

No bearer token: the URL's own signed ``token`` says what it allows, as
Dify's signed file URLs do.  The upload is the multipart form the SDK's
``requests.post(url, files={"file": ...})`` sends, parsed with the standard
library's MIME parser.
"""

from __future__ import annotations

import email.parser
import email.policy
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..config import Settings
from ..errors import Forbidden, InvalidArgument
from ..host.files import PREVIEW_PATH, UPLOAD_PATH
from ..host.plugin_host import PluginHost
from .answers import UploadedFile
from .describe import VALUE_LIMIT, WRITE_UNAVAILABLE, ApiRoute, Operation, ok, query, ref
from .parsing import read_body

__all__ = ["file_routes"]

# Room for the multipart framing around a file of the largest value.
_FORM_OVERHEAD = 64 * 1024


def _token(request: Request) -> str:
    token = request.query_params.get("token")
    if not token:
        raise Forbidden("this URL is not valid: it has no token")
    return token


_TOKEN = query("token", {"type": "string"}, "The URL's signature.", required=True)

UPLOAD_FILE = Operation(
    "uploadPluginFile",
    "endpoints",
    "Upload a file a plugin sends (`self.session.file.upload`)",
    description="No bearer token: the signed URL the plugin got from its `upload_file` call "
    "carries a `token` for one file name and MIME type, valid "
    "`PLUGINKV_FILES_ACCESS_TIMEOUT_SECONDS`. The file is kept in the plugin's storage scope "
    "of the workspace and counts against its quota.",
    public=True,
    parameters=[_TOKEN],
    body={
        "required": True,
        "description": f"{VALUE_LIMIT} for the file.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "contentMediaType": "*/*"}},
                }
            }
        },
    },
    responses={
        "201": ok("Kept.", UploadedFile),
        "400": ref("responses", "BadRequestError"),
        "403": ref("responses", "ForbiddenError"),
        "408": ref("responses", "RequestTimeoutError"),
        "413": ref("responses", "ValueTooLargeError"),
        "503": ref("responses", WRITE_UNAVAILABLE),
        "507": ref("responses", "InsufficientStorageError"),
    },
)


async def upload_file(request: Request) -> Response:
    token = _token(request)
    settings: Settings = request.app.state.settings
    body = await read_body(
        request.receive,
        request.headers.get("content-length"),
        settings.max_value_bytes + _FORM_OVERHEAD,
        "PLUGINKV_MAX_VALUE_BYTES",
        settings.request_timeout_seconds,
    )
    part = _file_part(request.headers.get("content-type", ""), body)
    filename, mimetype = part.get_filename(), part.get_content_type()
    if not filename:
        raise InvalidArgument("the uploaded file has no file name")
    content = part.get_payload(decode=True)
    host: PluginHost = request.app.state.host
    described = await host.files.save(token, filename, mimetype, bytes(content or b""))
    return JSONResponse(described, status_code=201)


def _file_part(content_type: str, body: bytes) -> Any:
    """The form's ``file`` part; ``InvalidArgument`` for a body that is no such form."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise InvalidArgument("the upload must be multipart/form-data with a 'file' part")
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
    form = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if form.is_multipart():
        for part in form.iter_parts():
            if part.get_param("name", header="content-disposition") == "file":
                return part
    raise InvalidArgument("the upload form has no 'file' part")


PREVIEW_FILE = Operation(
    "previewPluginFile",
    "endpoints",
    "A file a plugin uploaded, by its signed preview URL",
    description="No bearer token: the `preview_url` of the upload's answer carries a "
    "`token` for this file, valid `PLUGINKV_FILES_ACCESS_TIMEOUT_SECONDS`.",
    public=True,
    parameters=[
        {
            "name": "name",
            "in": "path",
            "required": True,
            "description": "The file's id and extension.",
            "schema": {"type": "string"},
        },
        _TOKEN,
    ],
    responses={
        "200": {"description": "The file, with its MIME type.", "content": {"*/*": {"schema": {}}}},
        "403": ref("responses", "ForbiddenError"),
        "404": ref("responses", "PluginNotFoundError"),
        "503": ref("responses", "BackendUnavailableError"),
    },
)


async def preview_file(request: Request) -> Response:
    token = _token(request)
    host: PluginHost = request.app.state.host
    stored = await host.files.load(token, request.path_params["name"])
    disposition = f"inline; filename*=utf-8''{quote(stored.name, safe='')}"
    # The type is the plugin's word: a browser must not run what it names (HTML, say)
    # in the service's origin, nor guess another type.
    headers = {
        "Content-Disposition": disposition,
        "Content-Security-Policy": "sandbox",
        "X-Content-Type-Options": "nosniff",
    }
    return Response(stored.content, media_type=stored.mime_type, headers=headers)


file_routes: list[Any] = [
    ApiRoute(UPLOAD_PATH, POST=(upload_file, UPLOAD_FILE)),
    ApiRoute(PREVIEW_PATH + "{name}", GET=(preview_file, PREVIEW_FILE)),
]
