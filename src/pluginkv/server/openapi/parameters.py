"""The parameters several operations share (``components/parameters``): path, query, headers."""

from __future__ import annotations

from ..describe import KEY_RULES, Json, query, ref


# -- parameters ----------------------------------------------------------------------------
def _parameters() -> Json:
    return {
        "Key": {
            "name": "key",
            "in": "path",
            "required": True,
            "description": "The key, percent-encoded as one path segment (encode `/` as "
            "`%2F`, and `%`, `?`, `#`); the server decodes the raw path itself, so every key "
            "round-trips exactly and `a%2Fb` and `a/b` name the same key `a/b`. " + KEY_RULES,
            "schema": ref("schemas", "Key"),
            "examples": {
                "plain": {"value": "greeting"},
                "with slashes": {
                    "summary": "`/` is part of the key: send `reports%2F2024%2Fsummary.json`",
                    "value": "reports/2024/summary.json",
                },
            },
        },
        "Metadata": {
            "name": "Pluginkv-Metadata",
            "in": "header",
            "required": False,
            "description": "A JSON object stored with the value, at most "
            "`PLUGINKV_MAX_METADATA_BYTES` as compact JSON (else 413); anything but an object "
            "is a 400 naming the header. A write without it stores none.",
            "schema": {"type": "string"},
        },
        "IfMatch": {
            "name": "If-Match",
            "in": "header",
            "required": False,
            "description": "Compare-and-set: act only if the entry is at this version (the `ETag` "
            'of a GET or a write, e.g. `"3"`; `W/` and the quotes are optional), or, with `*`, '
            "only if the key holds a value. Else 412 with the current `ETag`. Not combinable "
            "with `If-None-Match` (400).",
            "schema": {"type": "string", "pattern": r'^(\*|(W/)?"?[1-9][0-9]{0,18}"?)$'},
        },
        "Meta": query(
            "meta",
            {"type": "string", "enum": ["1", "true", "0", "false"]},
            "`1` or `true`: also send the entry's timestamps (`X-Created-At`, `X-Updated-At`). "
            "Off by default: every header costs each read.",
        ),
        "IfNoneMatchVersion": {
            "name": "If-None-Match",
            "in": "header",
            "required": False,
            "description": "Versions the client holds (`ETag`s of earlier reads, "
            'comma-separated, e.g. `"3"`), or `*`: when the entry is at one of them (or '
            "exists, for `*`), the answer is 304 and the value is not read. Entries that "
            "are not versions never match.",
            "schema": {"type": "string"},
        },
        "IfNoneMatch": {
            "name": "If-None-Match",
            "in": "header",
            "required": False,
            "description": "`*`: store only if the key holds no value (else 412). Not "
            "combinable with `If-Match` (400).",
            "schema": {"type": "string", "enum": ["*"]},
        },
    }
