"""The SDK's header parsing gives what ``http.client``'s own gives, for any header block."""

from __future__ import annotations

import http.client
import io

import pytest

from pluginkv.client._http import parse_headers

BLOCKS = [
    pytest.param(b'content-length: 5\r\netag: "3"\r\n\r\n', id="plain"),
    pytest.param(b"Content-Type:text/plain\r\nX-A:  spaced  \r\n\r\n", id="no-space-and-padding"),
    pytest.param(b"set-cookie: a=1\r\nset-cookie: b=2\r\nSET-COOKIE: c=3\r\n\r\n", id="repeated"),
    pytest.param(b"x-folded: one\r\n two\r\nx-after: 1\r\n\r\n", id="folded-continuation"),
    pytest.param(b"not a header line\r\nx: 1\r\n\r\n", id="no-colon"),
    pytest.param(b"x-latin: caf\xe9\r\n\r\n", id="latin-1"),
    pytest.param(b"x: 1\nY: 2\n\n", id="bare-newlines"),
    pytest.param(b"\r\n", id="none"),
]


@pytest.mark.parametrize("block", BLOCKS)
def test_headers_parse_as_http_client_parses_them(block: bytes) -> None:
    body = b"the body"
    ours_fp, theirs_fp = io.BytesIO(block + body), io.BytesIO(block + body)

    ours, theirs = parse_headers(ours_fp), http.client.parse_headers(theirs_fp)

    assert isinstance(ours, http.client.HTTPMessage)
    assert ours.items() == theirs.items()
    for name in ("content-length", "ETAG", "set-cookie", "x-folded", "x-latin", "y"):
        assert ours.get_all(name) == theirs.get_all(name)
    assert ours_fp.read() == theirs_fp.read() == body  # the body is left unread


def test_too_many_headers_are_refused_as_http_client_refuses_them() -> None:
    block = b"".join(b"x-%d: 1\r\n" % i for i in range(101)) + b"\r\n"
    with pytest.raises(http.client.HTTPException, match="more than 100 headers"):
        parse_headers(io.BytesIO(block))


def test_an_over_long_header_line_is_refused() -> None:
    with pytest.raises(http.client.LineTooLong):
        parse_headers(io.BytesIO(b"x: " + b"a" * 70_000 + b"\r\n\r\n"))
