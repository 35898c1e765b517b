"""The reason a plugin died, picked out of its stderr."""

from __future__ import annotations

from pluginkv.host.tracebacks import ExceptionCatcher

GEVENT_NOISE = """\
Exception ignored in: <function _removeHandlerRef at 0x7f00e11ee480>
Traceback (most recent call last):
  File "/usr/lib/python3.11/logging/__init__.py", line 855, in _removeHandlerRef
  File "/venv/lib/python3.11/site-packages/gevent/thread.py", line 81, in get_ident
RuntimeError: greenlet is being finalized
"""

VALIDATION_ERROR = """\
Traceback (most recent call last):
  File "<frozen runpy>", line 198, in _run_module_as_main
  File "/plugin/main.py", line 3, in <module>
    plugin = Plugin(DifyPluginEnv(MAX_REQUEST_TIMEOUT="not a number"))
                    ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
pydantic_core._pydantic_core.ValidationError: 1 validation error for DifyPluginEnv
MAX_REQUEST_TIMEOUT
  Input should be a valid integer [type=int_parsing, input_value='not a number']
"""

CHAINED = """\
Traceback (most recent call last):
  File "/plugin/main.py", line 2, in <module>
KeyError: 'API_KEY'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/plugin/main.py", line 4, in <module>
RuntimeError: no key configured
"""


def _reason(stderr: str) -> str | None:
    catcher = ExceptionCatcher()
    for line in stderr.splitlines():
        catcher.feed(line)
    return catcher.reason()


def test_the_exception_is_the_one_before_gevents_exit_noise() -> None:
    assert _reason(VALIDATION_ERROR + GEVENT_NOISE + GEVENT_NOISE) == (
        "pydantic_core._pydantic_core.ValidationError: 1 validation error for DifyPluginEnv\n"
        "MAX_REQUEST_TIMEOUT\n"
        "  Input should be a valid integer [type=int_parsing, input_value='not a number']"
    )


def test_exceptions_the_interpreter_ignored_are_no_reason() -> None:
    assert _reason("starting\n" + GEVENT_NOISE) is None


def test_a_chain_is_told_by_its_first_exception() -> None:
    assert _reason(CHAINED) == "KeyError: 'API_KEY'"


def test_a_later_traceback_is_the_reason_of_a_later_death() -> None:
    reason = _reason(CHAINED + "\n" + VALIDATION_ERROR)
    assert reason is not None
    assert reason.startswith("pydantic_core._pydantic_core.ValidationError")


def test_stderr_without_a_traceback_has_no_exception() -> None:
    assert _reason("broken on purpose\n") is None
