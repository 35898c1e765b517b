"""The public surface of ``pluginkv`` is exactly ``__all__``, and errors form one tree."""

from __future__ import annotations

import inspect

import pluginkv
from pluginkv import errors


def test_all_is_sorted_and_complete() -> None:
    public = {name for name in vars(pluginkv) if not name.startswith("_")} - {"annotations"}
    modules = {name for name in public if inspect.ismodule(getattr(pluginkv, name))}
    assert pluginkv.__all__ == sorted(pluginkv.__all__)
    assert set(pluginkv.__all__) == public - modules


def test_every_error_has_the_one_root() -> None:
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), pluginkv.PluginKVError)


def test_error_tree_is_drawn_in_the_module_docstring() -> None:
    assert errors.__doc__ is not None
    for name in errors.__all__:
        assert name in errors.__doc__


def test_errors_are_also_the_builtin_they_resemble() -> None:
    assert issubclass(pluginkv.InvalidKey, ValueError)
    assert issubclass(pluginkv.InvalidValueType, TypeError)


def test_storage_offers_the_documented_four_and_more() -> None:
    for verb in ["set", "get", "delete", "exist", "get_entry", "keys", "get_many", "set_many"]:
        assert callable(getattr(pluginkv.Storage, verb))
    for verb in ["delete_many", "delete_prefix", "incr", "set_json", "get_json", "usage"]:
        assert callable(getattr(pluginkv.Storage, verb))


def test_every_setting_is_documented() -> None:
    from pathlib import Path

    from pluginkv.config import env_name

    text = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    for field in pluginkv.Settings.model_fields:
        assert f"`{field}`" in text and env_name(field) in text, field
