"""Where uv finds packages: the index pip is configured for, when uv is told none.

uv reads no pip configuration, so a machine that reaches its packages through
a mirror set in ``pip.conf`` (or ``PIP_INDEX_URL``) would send uv to PyPI.
pip itself says what it is configured with (``pip config list``: its files
and ``PIP_*`` variables, in its own order of precedence); each setting is
handed to uv under uv's name unless uv's own variable is set already:

==================  ===========================================================
pip                 uv
==================  ===========================================================
``index-url``       ``UV_DEFAULT_INDEX``
``extra-index-url`` ``UV_INDEX``, with ``UV_INDEX_STRATEGY=unsafe-best-match``
                    (pip picks the best version across all indexes)
``find-links``      ``UV_FIND_LINKS``
``cert``            ``SSL_CERT_FILE``
==================  ===========================================================

A ``uv.lock`` names the URL of every file, so ``uv sync --frozen`` downloads
from where the lock was made whatever the index says.
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from collections.abc import Mapping

__all__ = ["pip_settings", "uv_index_environment"]

# pip setting -> (uv's variable, the uv variables that mean the operator chose already)
_MAPPING = {
    "index-url": ("UV_DEFAULT_INDEX", ("UV_DEFAULT_INDEX", "UV_INDEX_URL")),
    "extra-index-url": ("UV_INDEX", ("UV_INDEX", "UV_EXTRA_INDEX_URL")),
    "find-links": ("UV_FIND_LINKS", ("UV_FIND_LINKS",)),
    "cert": ("SSL_CERT_FILE", ("SSL_CERT_FILE",)),
}
_SEPARATOR = {"UV_INDEX": " ", "UV_FIND_LINKS": ","}


def uv_index_environment(
    environ: Mapping[str, str], pip: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The variables to add to ``environ`` so uv uses pip's configured index.

    ``pip`` is ``pip_settings()`` unless given.
    """
    pip = pip_settings() if pip is None else pip
    added: dict[str, str] = {}
    for name, (variable, chosen) in _MAPPING.items():
        value = pip.get(name, "").split()
        if not value or any(environ.get(v) for v in chosen):
            continue
        added[variable] = _SEPARATOR.get(variable, " ").join(value)
    if "UV_INDEX" in added and not environ.get("UV_INDEX_STRATEGY"):
        added["UV_INDEX_STRATEGY"] = "unsafe-best-match"
    return added


@functools.cache
def pip_settings() -> dict[str, str]:
    """pip's effective global settings, as ``pip config list`` shows them (empty without pip).

    A ``PIP_*`` variable wins over the ``[install]`` section, which wins over ``[global]``.
    """
    try:
        answer = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    if answer.returncode != 0:
        return {}
    return parse_pip_config(answer.stdout)


def parse_pip_config(listing: str) -> dict[str, str]:
    """``pip config list``'s lines (``section.name='value'``) as name -> effective value."""
    by_section: dict[str, dict[str, str]] = {}
    for line in listing.splitlines():
        key, sep, raw = line.partition("=")
        section, dot, name = key.rpartition(".")
        if not sep or not dot:
            continue
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            continue
        if isinstance(value, str):
            by_section.setdefault(section, {})[name] = value
    effective: dict[str, str] = {}
    for section in ("global", "install", ":env:"):  # later wins
        effective.update(by_section.get(section, {}))
    return effective
