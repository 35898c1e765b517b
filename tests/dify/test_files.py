"""``self.session.file.upload`` on pluginkv: the file kept in the plugin's scope, served back.

Through the example's ``upload`` op on the real SDK, which does what Dify's
SDK does: the ``upload_file`` call for a signed URL, then a multipart POST.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

import pytest

from pluginkv import Forbidden
from pluginkv.host.files import FILES_PREFIX
from pluginkv.services.tokens import Tokens

from .conftest import EXAMPLE, EXAMPLE_V2, PLUGIN_ID, Example, HostService, Served


def _upload(
    service: HostService, workspace: str, name: str, text: str, *, example: Example = EXAMPLE
) -> dict[str, Any]:
    parameters = {"op": "upload", "key": name, "value": text}
    body = {"workspace": workspace, "plugin": example.plugin, "provider": example.provider}
    status, answer = service.call(
        "POST", "/v1/admin/tools/invoke", {**body, "tool": "kv", "parameters": parameters}
    )
    assert status == 200, answer
    result: dict[str, Any] = json.loads(answer)["message"]["json_object"]
    return result


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.headers["content-type"], response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers["content-type"], exc.read()


def test_an_uploaded_file_is_described_as_dify_describes_it_and_served_back(
    service: HostService, served: Served
) -> None:
    """On SDK 0.7.4 and 0.10 alike (the same two steps; 0.10 posts with a timeout)."""
    name = f"notes-{uuid.uuid4().hex[:8]}.txt"
    answer = _upload(service, served.workspace, name, "hello, file", example=served.example)
    uploaded = answer["file"]
    file_id = uploaded["id"]
    assert uploaded == {
        "id": file_id,
        "name": name,
        "size": 11,
        "extension": ".txt",
        "mime_type": "text/plain",
        "type": "document",
        "preview_url": uploaded["preview_url"],
    }
    assert uploaded["preview_url"].startswith(f"{service.url}/files/tools/{file_id}.txt?token=")
    assert _get(uploaded["preview_url"]) == (200, "text/plain; charset=utf-8", b"hello, file")
    # Kept in the plugin's scope of the workspace, where it counts against its quota.
    plugin = served.example.plugin
    stored = service.store.storage(workspace=served.workspaces[0], plugin=plugin)
    assert stored.get(f"{FILES_PREFIX}{file_id}/content") == b"hello, file"
    other = service.store.storage(workspace=served.workspaces[1], plugin=plugin)
    assert other.get(f"{FILES_PREFIX}{file_id}/content") is None


@pytest.mark.parametrize(
    ("example", "plugin_fixture", "workspace", "quota"),
    [
        (EXAMPLE, "ws1_plugin", "ws-1", 64 * 1024),
        (EXAMPLE_V2, "v2_remote_plugins", "v2-ws-1", 1024 * 1024),
    ],
    ids=["sdk0.7.4", "sdk0.10.2"],
)
def test_a_file_over_the_plugins_quota_is_refused(
    service: HostService,
    example: Example,
    plugin_fixture: str,
    workspace: str,
    quota: int,
    request: pytest.FixtureRequest,
) -> None:
    """The examples' manifests give them 64 KiB and 1 MiB: the SDK raises with the host's
    answer, and nothing is stored."""
    request.getfixturevalue(plugin_fixture)  # the plugin serving the workspace
    stored = service.store.storage(workspace=workspace, plugin=example.plugin)
    before = stored.usage()
    answer = _upload(service, workspace, "big.txt", "x" * (quota + 1), example=example)
    assert answer["error_type"] == "Exception"
    assert answer["error"].startswith("upload file failed, status code: 507")
    assert "quota exceeded" in answer["error"]
    assert stored.usage() == before


def test_a_preview_is_never_run_as_the_services_page(service: HostService) -> None:
    """The MIME type is the plugin's word: every preview is served sandboxed, its type
    not guessed, so no file runs as a page of the service's origin."""
    parameters = {"op": "upload", "key": "page.html", "value": "<script>1</script>"}
    body = {"workspace": "ws-1", "plugin": PLUGIN_ID, "provider": "storage_tool", "tool": "kv"}
    _, answer = service.call("POST", "/v1/admin/tools/invoke", {**body, "parameters": parameters})
    url = json.loads(answer)["message"]["json_object"]["file"]["preview_url"]
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.headers["content-security-policy"] == "sandbox"
        assert response.headers["x-content-type-options"] == "nosniff"


def test_a_preview_url_serves_only_its_file(service: HostService) -> None:
    uploaded = _upload(service, "ws-1", "a.txt", "a")["file"]
    url = urllib.parse.urlsplit(uploaded["preview_url"])
    another = f"{service.url}/files/tools/{uuid.uuid4()}.txt?{url.query}"
    status, _, body = _get(another)
    assert (status, json.loads(body)["error"]["code"]) == (403, "forbidden")
    tampered = uploaded["preview_url"][:-2] + ("AA" if not url.query.endswith("AA") else "BB")
    assert _get(tampered)[0] == 403
    assert _get(f"{service.url}{url.path}")[0] == 403  # no token


def test_an_upload_url_takes_only_the_file_it_was_signed_for(service: HostService) -> None:
    url = service.app.state.host.files.upload_url(
        {"filename": "a.txt", "mimetype": "text/plain"}, workspace="ws-1", plugin=PLUGIN_ID
    )["url"]
    boundary = "b0undary"
    form = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="b.txt"\r\n'
        f"Content-Type: text/plain\r\n\r\nbody\r\n--{boundary}--\r\n"
    ).encode()
    request = urllib.request.Request(
        url,
        data=form,
        method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    with refused.value as error:
        assert error.code == 403
        assert "another file name or MIME type" in json.loads(error.read())["error"]["message"]


def test_signed_urls_lapse() -> None:
    now = [1000.0]
    tokens = Tokens("s" * 40, default_ttl=60, clock=lambda: now[0])
    token = tokens.issue_signed("file-preview", {"id": "f"}, 300)
    assert tokens.signed_claims(token, "file-preview")["id"] == "f"
    with pytest.raises(Forbidden, match="signed for something else"):
        tokens.signed_claims(token, "file-upload")
    now[0] += 301
    with pytest.raises(Forbidden, match="expired"):
        tokens.signed_claims(token, "file-preview")
