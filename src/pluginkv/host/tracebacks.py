"""Picking the exception that matters out of a plugin's stderr.

A plugin that dies at start-up prints its traceback, and then, as its
interpreter shuts down under gevent, ``Exception ignored in: ...`` blocks
about greenlets being finalized.  The last lines of stderr are that noise;
the reason is the exception line of the first traceback of the chain that
ended the process (the first one Python prints of a chain is its root
cause), e.g. a pydantic ``ValidationError`` with its details.
"""

from __future__ import annotations

__all__ = ["ExceptionCatcher"]

_TRACEBACK = "Traceback (most recent call last):"
_IGNORED = "Exception ignored in"  # printed by the interpreter for errors it cannot raise
_CHAINED = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)
_MAX_LINES = 20  # of one exception's message (a ValidationError lists each field)
_MAX_CHARS = 2000


class ExceptionCatcher:
    """Fed stderr line by line; ``reason()`` is the exception, once a traceback has been seen."""

    def __init__(self) -> None:
        self.exception: str | None = None
        self._state = "outside"  # frames: inside a traceback; message: after its frames
        self._ignored = False  # the current traceback is one the interpreter ignored
        self._previous = ""  # the last line that was not blank
        self._message: list[str] = []

    def feed(self, line: str) -> None:
        if line.startswith(_TRACEBACK):
            self._end_message()
            self._ignored = self._previous.startswith(_IGNORED)
            if not self._ignored and self._previous not in _CHAINED:
                self.exception = None  # a new chain: the one that ended the process is the last
            self._state = "frames"
        elif self._state == "frames":
            if line and not line[0].isspace():
                self._state = "message"
                self._message = [line]
        elif self._state == "message":
            if not line.strip() or line.startswith(_IGNORED) or line in _CHAINED:
                self._end_message()
            elif len(self._message) < _MAX_LINES:
                self._message.append(line)
        if line.strip():
            self._previous = line

    def reason(self) -> str | None:
        """The exception found so far, its message as far as it has been fed."""
        return self._message_text() if self.exception is None else self.exception

    def _end_message(self) -> None:
        self.exception = self.reason()
        self._state = "outside"
        self._message = []

    def _message_text(self) -> str | None:
        if self._state != "message" or self._ignored:
            return None
        text = "\n".join(self._message)
        return text if len(text) <= _MAX_CHARS else text[:_MAX_CHARS] + "..."
