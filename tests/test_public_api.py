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


def test_pluginkv_works_without_the_postgres_driver() -> None:
    """psycopg is an optional extra: importing pluginkv and SQLite need none of it,
    and a postgresql:// URL without it says what to install."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['psycopg'] = sys.modules['psycopg_pool'] = None\n"
        "import pluginkv\n"
        "pluginkv.open_store('memory://').storage(workspace='w', plugin='a/b').set('k', b'v')\n"
        "try:\n"
        "    pluginkv.open_store('postgresql://127.0.0.1/x')\n"
        "except pluginkv.InvalidArgument as exc:\n"
        "    print(exc)\n"
        "assert 'psycopg' not in sys.modules or sys.modules['psycopg'] is None\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'pluginkv[postgres]'" in result.stdout


def test_redact_url_hides_only_the_password() -> None:
    from pluginkv.config import redact_url

    assert redact_url("postgresql://u:hunter2@h:5432/db?sslmode=require") == (
        "postgresql://u:***@h:5432/db?sslmode=require"
    )
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"
    several = "postgresql://u:hunter2@h1:5432,h2:5433/db?target_session_attrs=read-write"
    assert redact_url(several) == several.replace("hunter2", "***")
    assert redact_url("sqlite:///data/pluginkv.db") == "sqlite:///data/pluginkv.db"
