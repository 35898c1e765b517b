"""``client/_http.py`` follows ``http.client.HTTPResponse.begin``: notice when CPython's changes.

``Response.begin`` is CPython's own method with the header parsing swapped
(see the module's docstring).  A fix CPython makes there would not reach the
SDK, so this test pins the code it was written against: the method's tokens,
without comments and layout, which are the same on 3.11, 3.12 and 3.13.  When
it fails, compare the new ``begin`` with ``Response.begin``, carry the change
over, and record the new digest here.
"""

from __future__ import annotations

import hashlib
import http.client
import inspect
import io
import tokenize

# The tokens of HTTPResponse.begin in CPython 3.11.7, 3.12.1 and 3.13.0.
FOLLOWED = "994487c82b7c30e27a4c220ad75c5f2d8ab6497553f37e3a8110c5392e423787"
_LAYOUT = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}


def _code_digest(source: str) -> str:
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    code = " ".join(t.string for t in tokens if t.type not in _LAYOUT)
    return hashlib.sha256(code.encode()).hexdigest()


def test_cpythons_response_begin_is_the_one_the_client_follows() -> None:
    source = inspect.getsource(http.client.HTTPResponse.begin)
    assert _code_digest(source) == FOLLOWED, (
        "http.client.HTTPResponse.begin changed in this Python: carry the change over to "
        "pluginkv/client/_http.py's Response.begin, then record the new digest here"
    )


def test_the_digest_ignores_comments_and_layout_but_not_code() -> None:
    plain = "def f(x):\n    return x + 1\n"
    assert _code_digest(plain) == _code_digest("def f(x):  # why\n\n    return x + 1\n")
    assert _code_digest(plain) != _code_digest("def f(x):\n    return x + 2\n")
