"""A tool parameter's value cast to its declared type, as Dify's API casts it before a call.

Dify casts every parameter a call carries to the type the tool's YAML
declares (``cast_parameter_value`` in its ``core/plugin/entities/parameters.py``):
a form's ``"false"`` reaches the plugin as ``False``, a ``"3"`` for a number
as ``3``.  The same rules hold here, with one difference: where Dify would
guess (``bool("maybe")`` is true, an unparsable object becomes ``{}``, a
``str()`` of a list), the value is refused with ``InvalidArgument`` naming the
parameter, and the plugin is not called.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import InvalidArgument

__all__ = ["cast_parameter", "declared_default"]

# The strings Dify reads as booleans (YAML's, plus "1" and "0"), compared lower-cased.
_TRUE = ("true", "yes", "y", "1")
_FALSE = ("false", "no", "n", "0")
_TEXT = ("string", "secret-input", "select", "text-input", "dynamic-select")


def cast_parameter(declared: dict[str, Any], value: Any, what: str) -> Any:
    """``value`` as the parameter ``declared`` (its YAML entry) takes it; ``None`` stays ``None``.

    ``what`` names the call in the error.
    """
    if value is None:
        return None
    kind = declared.get("type")
    name = declared.get("name")
    try:
        if kind in _TEXT:
            text = _text(value)
            if kind == "select":
                _check_option(declared, text)
            return text
        caster = _CASTERS.get(kind)  # type: ignore[arg-type]
        # A type this host does not know (a newer SDK's): passed on as given.
        return value if caster is None else caster(value)
    except _Refused as refused:
        raise InvalidArgument(
            f"{what}: parameter {name!r} ({kind}) {refused}, not {_shown(value)}"
        ) from None


def declared_default(declared: dict[str, Any]) -> Any:
    """The ``default`` of a declared parameter or setting, as a call gets it.

    A remote plugin's declarations went through the SDK's models, whose
    ``default: int | float | str`` makes a boolean's ``true`` 1: cast back
    here.  A default that cannot be cast is returned as written.
    """
    try:
        return cast_parameter(declared, declared.get("default"), "the declaration")
    except InvalidArgument:
        return declared.get("default")


class _Refused(Exception):
    """What the value should have been; the caller adds the parameter and the value."""


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)  # Dify's str(): 3 -> "3", True -> "True"
    raise _Refused("takes text (or a number or boolean, which becomes text)")


def _check_option(declared: dict[str, Any], text: str) -> None:
    options = declared.get("options")
    if not isinstance(options, list) or not options:
        return
    values = [str(o.get("value")) for o in options if isinstance(o, dict)]
    if values and text not in values:
        raise _Refused(f"takes one of {', '.join(map(repr, values))}")


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    elif isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    raise _Refused('takes true or false ("true"/"false", "yes"/"no", "y"/"n", 1/0)')


def _number(value: Any) -> int | float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip():
        try:
            # As Dify: a "." makes it a float, anything else must be an integer.
            return float(value) if "." in value else int(value)
        except ValueError:
            pass
    raise _Refused('takes a number (or its text, e.g. "3" or "2.5")')


def _file(value: Any) -> Any:
    if isinstance(value, list):
        if len(value) != 1:
            raise _Refused("takes one file")
        value = value[0]
    if not isinstance(value, dict):
        raise _Refused("takes a file object")
    return value


def _files(value: Any) -> list[Any]:
    files = value if isinstance(value, list) else [value]
    if not all(isinstance(item, dict) for item in files):
        raise _Refused("takes a list of file objects")
    return files


def _array(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            return parsed
    return [value]  # as Dify: a single value is a list of one


def _object(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return parsed
    raise _Refused("takes an object (or its JSON text)")


def _selector(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Refused("takes an object")
    return value


def _tools(value: Any) -> Any:
    if value and not isinstance(value, list):
        raise _Refused("takes a list")
    return value


def _any(value: Any) -> Any:
    if value and not isinstance(value, str | dict | list | int | float):
        raise _Refused("takes text, a number, an object or a list")
    return value


_CASTERS: dict[str, Any] = {
    "boolean": _boolean,
    "number": _number,
    "file": _file,
    "files": _files,
    "system-files": _files,
    "array": _array,
    "object": _object,
    "model-selector": _selector,
    "app-selector": _selector,
    "array[tools]": _tools,
    "tools-selector": _tools,
    "any": _any,
}


def _shown(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
