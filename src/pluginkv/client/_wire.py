"""What ``RemoteStorage`` and ``AsyncRemoteStorage`` share: validation, paths, bodies, replies.

Pure functions only — no I/O — so the two clients differ in their transport
and nothing else: the same arguments are refused locally with the same
exceptions, the same requests go on the wire, the same replies come back.
"""

from __future__ import annotations

import base64
import functools
import json
import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple
from urllib.parse import quote, urlencode, urlsplit

from tenacity import RetryCallState

from ..entry_metadata import check_content_type, check_metadata, extra_size
from ..errors import BackendUnavailable, InvalidArgument, PluginKVError, ReadOnly
from ..keys import (
    check_conditions,
    check_key,
    check_keys,
    check_prefix,
    check_prefix_delete,
    check_ttl,
    check_value,
)
from ..models import Entry, EntryMeta, JSONHelpers, Page, Usage
from .errors import error_from_response

__all__ = [
    "DEFAULT_RETRIES",
    "JSON_HEADERS",
    "METADATA_HEADER",
    "NO_LIMIT",
    "RETRY_STATUSES",
    "Put",
    "Retryable",
    "Service",
    "backoff",
    "decode_json",
    "delete_headers",
    "delete_prefix_path",
    "dumps",
    "encode_json",
    "entry_extras",
    "entry_from_reply",
    "entry_path",
    "incr_request",
    "keys_path",
    "kv_path",
    "meta_from_reply",
    "metadata_headers",
    "page_from_json",
    "parse_json",
    "parse_service_url",
    "reply_error",
    "retry_after",
    "retry_wait",
    "retryable",
    "set_many_body",
    "set_request",
    "usage_from_json",
    "values_from_json",
    "version_from_etag",
    "versions_from_reply",
]

NO_LIMIT = 2**63  # the service enforces the value limit; it may differ from local settings
JSON_HEADERS: Mapping[str, str] = {"Content-Type": "application/json"}
METADATA_HEADER = "Pluginkv-Metadata"
OCTET_STREAM = "application/octet-stream"  # a value's type when the write gave none
DEFAULT_RETRIES = 12
"""Extra attempts of a request that is safe to repeat: with ``retry_wait``, about 30 s
of trying, which outlasts a database failover (about 10 s measured, docs/benchmarks.md)
and a service restart."""

RETRY_FIRST_WAIT = 0.1  # seconds; each wait doubles, up to RETRY_MAX_WAIT
RETRY_MAX_WAIT = 4.0
RETRY_JITTER = 0.1  # seconds at most, added so that clients spread out

MAX_RETRY_AFTER = 30.0  # seconds: a longer Retry-After is the service's wish, not a blip


class Retryable(Exception):
    """A failure that repeating a safe request may cure, with the service's Retry-After."""

    def __init__(self, error: PluginKVError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


def retry_after(header: Callable[[str], str | None]) -> float | None:
    """The seconds a ``Retry-After`` header asks for (its delta-seconds form), else ``None``."""
    value = header("Retry-After")
    if value is None or not value.strip().isdigit():
        return None
    return min(float(value.strip()), MAX_RETRY_AFTER)


def retry_wait(state: RetryCallState) -> float:
    """The backoff, or longer if the service's ``Retry-After`` asked for it."""
    failure = state.outcome.exception() if state.outcome is not None else None
    asked = failure.retry_after if isinstance(failure, Retryable) else None
    return backoff(state.attempt_number, asked)


def backoff(attempt: int, asked: float | None = None) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (from 1): doubling from
    ``RETRY_FIRST_WAIT`` up to ``RETRY_MAX_WAIT``, with jitter, or the ``Retry-After``
    the service ``asked`` for if longer."""
    exponent = min(attempt - 1, 16)  # 2**16 * 0.1 s is past any cap
    wait = min(RETRY_FIRST_WAIT * 2.0**exponent, RETRY_MAX_WAIT)
    wait += random.uniform(0, RETRY_JITTER)
    return wait if asked is None else max(wait, asked)


class Service(NamedTuple):
    """Where the service is: ``url`` as given (no trailing slash) and its parts."""

    url: str
    https: bool
    host: str
    port: int | None
    prefix: str


def parse_service_url(url: str) -> Service:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # out of range or not a number
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
        raise InvalidArgument(f"service URL must be http(s)://host[:port][/prefix], got {url!r}")
    return Service(
        url.rstrip("/"), parts.scheme == "https", parts.hostname, port, parts.path.rstrip("/")
    )


# -- paths ---------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4096)
def kv_path(key: str) -> str:
    # Everything but unreserved characters is encoded, '/' included, so no
    # HTTP layer can normalise the path ('a/./b' stays one opaque key).
    # Cached: plugins read and write the same keys again and again, and
    # quote() costs about 1 us per call, more than the rest of the SDK's own work.
    return "/v1/kv/" + quote(key, safe="")


def entry_path(key: str) -> str:
    """A GET of the value with its timestamps (plain GETs leave them out)."""
    return kv_path(key) + "?meta=1"


def keys_path(prefix: str, limit: int | None, cursor: str | None) -> str:
    check_prefix(prefix)
    if limit is not None and type(limit) is not int:
        raise InvalidArgument(
            f"limit must be an int (setting PLUGINKV_MAX_PAGE_SIZE bounds it), got {limit!r}"
        )
    query: dict[str, str | int] = {"prefix": prefix}
    if limit is not None:
        query["limit"] = limit
    if cursor is not None:
        query["cursor"] = cursor
    return "/v1/keys?" + urlencode(query)


def delete_prefix_path(prefix: str, all: bool) -> str:
    check_prefix_delete(prefix, all)
    query = {"prefix": prefix, "all": "true"} if all else {"prefix": prefix}
    return "/v1/keys?" + urlencode(query)


# -- requests --------------------------------------------------------------------------------
class Put(NamedTuple):
    """A checked ``set``: where to send which bytes, and whether repeating it is safe."""

    path: str
    data: bytes
    headers: dict[str, str]
    safe: bool


def set_request(
    key: str,
    val: bytes,
    ttl: float | None,
    if_version: int | None,
    if_absent: bool,
    if_exists: bool = False,
    metadata: dict[str, Any] | None = None,
    content_type: str | None = None,
) -> Put:
    check_key(key)
    data = check_value(val, NO_LIMIT)
    check_conditions(if_version, if_absent, if_exists)
    seconds = check_ttl(ttl)
    if metadata is None and content_type is None:  # the common set: no checks to run
        headers = {"Content-Type": OCTET_STREAM}
    else:
        headers = metadata_headers(metadata, content_type)
    headers.update(_if_match(if_version, if_exists))
    if if_absent:
        headers["If-None-Match"] = "*"
    path = kv_path(key) if seconds is None else f"{kv_path(key)}?ttl={seconds!r}"
    conditional = if_version is not None or if_absent or if_exists
    return Put(path, data, headers, not conditional)


def metadata_headers(metadata: dict[str, Any] | None, content_type: str | None) -> dict[str, str]:
    """The headers of a PUT that stores ``metadata`` and ``content_type`` (both checked).

    The service enforces the size limits (``PLUGINKV_MAX_METADATA_BYTES``,
    ``PLUGINKV_MAX_CONTENT_TYPE_BYTES``): its settings may differ from local ones.
    """
    checked = check_metadata(metadata, NO_LIMIT)
    kind = check_content_type(content_type, NO_LIMIT)
    headers = {"Content-Type": OCTET_STREAM if kind is None else kind}
    if checked is not None:
        # ASCII only: a header carries Latin-1 at most; the service decodes the escapes.
        headers[METADATA_HEADER] = json.dumps(metadata, separators=(",", ":"), allow_nan=False)
    return headers


def entry_extras(
    header: Callable[[str], str | None],
) -> tuple[dict[str, Any] | None, str | None, int]:
    """An entry's metadata and content type from a GET's headers, and the bytes they add
    to its size (as the engine counts them)."""
    text = header(METADATA_HEADER)
    metadata = None
    if text is not None:
        try:
            found = json.loads(text)
        except ValueError:
            raise BackendUnavailable(
                f"the service sent a {METADATA_HEADER} header that is not JSON: {text[:80]!r}"
            ) from None
        metadata = found if isinstance(found, dict) else None
    kind = header("Content-Type")
    content_type = None if kind is None or kind == OCTET_STREAM else kind
    stored = check_metadata(metadata, NO_LIMIT)  # the engine's own encoding, to count it
    return metadata, content_type, extra_size(stored, content_type)


def delete_headers(key: str, if_version: int | None, if_exists: bool = False) -> dict[str, str]:
    """The headers of a checked ``delete`` (safe to repeat only without a condition)."""
    check_key(key)
    check_conditions(if_version, False, if_exists)
    return _if_match(if_version, if_exists)


def _if_match(if_version: int | None, if_exists: bool) -> dict[str, str]:
    if if_version is not None:
        return {"If-Match": f'"{if_version}"'}
    return {"If-Match": "*"} if if_exists else {}


def version_from_etag(etag: str | None) -> int:
    """The version a write's ``ETag`` names (``"7"``); 0 when there is none.

    A service from before writes answered with their version sends none; the
    write did happen, so it must not look failed.  0 is no version any entry
    has, and ``if_version=0`` is refused, so it cannot be mistaken for one.
    """
    tag = "" if etag is None else etag.removeprefix("W/").strip('"')
    return int(tag) if tag.isascii() and tag.isdigit() else 0


def set_many_body(mapping: Mapping[str, bytes], ttl: float | None) -> bytes:
    if not isinstance(mapping, Mapping):
        raise InvalidArgument(
            f"set_many takes a mapping of key to bytes, not {type(mapping).__name__}"
        )
    items = {}
    for key in check_keys(mapping.keys()):
        data = check_value(mapping[key], NO_LIMIT)
        items[key] = base64.b64encode(data).decode("ascii")
    return dumps({"items": items, "ttl": check_ttl(ttl)})


def incr_request(key: str, delta: int) -> tuple[str, dict[str, int]]:
    check_key(key)
    if type(delta) is not int:
        raise InvalidArgument(f"incr delta must be an int, not {type(delta).__name__}")
    return "/v1/incr/" + quote(key, safe=""), {"delta": delta}


def dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


# -- replies ---------------------------------------------------------------------------------
RETRY_STATUSES = frozenset({502, 503, 504})  # the service or a proxy in front, briefly away


def retryable(status: int, error: PluginKVError) -> bool:
    """Whether a failed request that is safe to repeat is worth repeating.

    A read-only store's 503 is not a blip: it lasts until the operator ends
    it, so it comes out at once rather than after every attempt.
    """
    return status in RETRY_STATUSES and not isinstance(error, ReadOnly)


def reply_error(
    status: int, header: Callable[[str], str | None], body: bytes, absent_ok: bool
) -> PluginKVError | None:
    """``None`` when a reply is an answer, else the error it carries.

    Only a 2xx is an answer — and a 404 whose ``X-Error-Code`` says the key is
    absent, where absence is an answer (get, exist, get_entry).  A redirect or
    any other 404 (a wrong URL prefix, say) is an error, never "absent".
    """
    if 200 <= status < 300:
        return None
    if absent_ok and status == 404 and header("X-Error-Code") == "not_found":
        return None
    return error_from_response(status, body)


def parse_json(body: bytes) -> dict[str, Any]:
    """A JSON object the service answered, or ``BackendUnavailable`` for anything else."""
    try:
        result = json.loads(body)
    except ValueError:
        result = None
    if not isinstance(result, dict):
        raise BackendUnavailable(f"the service answered with something not JSON: {body[:80]!r}")
    return result


def entry_from_reply(key: str, body: bytes, header: Callable[[str], str | None]) -> Entry:
    """The ``Entry`` a ``GET /v1/kv/{key}`` answered; ``header`` looks a response header up."""
    etag = header("ETag")
    created = header("X-Created-At")
    updated = header("X-Updated-At")
    expires = header("X-Expires-At")
    metadata, content_type, extra = entry_extras(header)
    return Entry(
        key=key,
        value=body,
        version=int(("0" if etag is None else etag).strip('"')),
        size=len(key.encode("utf-8")) + len(body) + extra,
        created_at=float("0" if created is None else created),
        updated_at=float("0" if updated is None else updated),
        expires_at=None if expires is None else float(expires),
        metadata=metadata,
        content_type=content_type,
    )


def meta_from_reply(key: str, header: Callable[[str], str | None]) -> EntryMeta:
    """The ``EntryMeta`` a ``HEAD /v1/kv/{key}?meta=1`` answered (its headers are a GET's)."""
    entry = entry_from_reply(key, b"", header)
    length = header("Content-Length")
    return EntryMeta(
        key=key,
        size=entry.size + int("0" if length is None else length),
        version=entry.version,
        created_at=entry.created_at,
        updated_at=entry.updated_at,
        expires_at=entry.expires_at,
        metadata=entry.metadata,
        content_type=entry.content_type,
    )


def page_from_json(page: Mapping[str, Any]) -> Page:
    return Page([EntryMeta(**item) for item in page["entries"]], page["next_cursor"])


def values_from_json(found: Mapping[str, Any]) -> dict[str, bytes]:
    return {key: base64.b64decode(text) for key, text in found["values"].items()}


def versions_from_reply(body: bytes, keys: Iterable[str]) -> dict[str, int]:
    """The new version of each key a batch set stored (0 each from an older service's 204)."""
    if not body:
        return dict.fromkeys(keys, 0)
    return {key: int(version) for key, version in parse_json(body)["versions"].items()}


def usage_from_json(used: Mapping[str, Any]) -> Usage:
    return Usage(used["bytes_used"], used["keys"], used["quota_bytes"])


# -- JSON values: exactly the encoding of ``JSONHelpers`` --------------------------------------
class _Recorder(JSONHelpers):
    """``JSONHelpers`` over one value held in memory, to reuse its encoding without I/O."""

    def __init__(self, data: bytes | None = None) -> None:
        self.data = data

    def set(self, key: str, val: bytes, *, ttl: float | None = None) -> None:
        self.data = val

    def get(self, key: str) -> bytes | None:
        return self.data


def encode_json(key: str, obj: Any) -> bytes:
    """``obj`` as ``set_json`` stores it (``InvalidValueType`` if it is not JSON-encodable)."""
    recorder = _Recorder()
    recorder.set_json(key, obj)
    assert recorder.data is not None
    return recorder.data


def decode_json(key: str, data: bytes | None, default: Any) -> Any:
    """What ``get_json`` returns for ``data`` (``WrongValueType`` if it is not JSON)."""
    return _Recorder(data).get_json(key, default)
