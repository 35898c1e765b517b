"""The plugin channel's framing: lines as sent whatever the chunks, none held past the limit.

Properties over generated input (hypothesis): a short run here, a long one under
``make stress``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pluginkv.host.framing import LineReader, LineTooLong, read_messages

LIMIT = 64


class Chunks:
    """A stream that hands out ``chunks`` one read at a time and records the reads' sizes."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._data = b"".join(chunks)
        self._cuts = [len(c) for c in chunks]
        self.asked: list[int] = []

    async def read(self, n: int) -> bytes:
        self.asked.append(n)
        size = min(n, self._cuts.pop(0) if self._cuts else len(self._data))
        piece, self._data = self._data[:size], self._data[size:]
        return piece


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True) if b > a]


async def read_all(reader: LineReader) -> list[bytes | None]:
    """Every line; ``None`` for one over the limit."""
    lines: list[bytes | None] = []
    while True:
        try:
            line = await reader.readline()
        except LineTooLong:
            lines.append(None)
            continue
        if not line:
            return lines
        lines.append(line)


def check_lines(lines: list[bytes], cuts: list[int]) -> None:
    stream = Chunks(split(b"".join(line + b"\n" for line in lines), cuts))
    reader = LineReader(stream, LIMIT)
    got = asyncio.run(read_all(reader))
    assert got == [line + b"\n" if len(line) <= LIMIT else None for line in lines]
    assert max(stream.asked, default=0) <= LIMIT + 1  # never more than the limit at once


LINES = st.lists(st.binary(max_size=3 * LIMIT).map(lambda b: b.replace(b"\n", b"")), max_size=8)
CUTS = st.lists(st.integers(min_value=0, max_value=2000), max_size=12)


@settings(max_examples=200, deadline=None)
@given(LINES, CUTS)
def test_lines_come_whole_and_those_over_the_limit_are_refused_once(
    lines: list[bytes], cuts: list[int]
) -> None:
    check_lines(lines, cuts)


@pytest.mark.slow
@settings(max_examples=20_000, deadline=None)
@given(LINES, CUTS)
def test_lines_come_whole_and_those_over_the_limit_are_refused_once_at_length(
    lines: list[bytes], cuts: list[int]
) -> None:
    check_lines(lines, cuts)


def test_a_raised_limit_takes_the_next_line() -> None:
    stream = Chunks([b"short\n", b"x" * 100 + b"\n"])
    reader = LineReader(stream, 10)

    async def two() -> tuple[bytes, bytes]:
        first = await reader.readline()
        reader.limit = 1000
        return first, await reader.readline()

    assert asyncio.run(two()) == (b"short\n", b"x" * 100 + b"\n")


def test_a_last_line_without_a_newline_still_comes() -> None:
    reader = LineReader(Chunks([b"a\nlast"]), LIMIT)
    assert asyncio.run(read_all(reader)) == [b"a\n", b"last"]


async def messages_of(data: bytes) -> list[dict[str, Any]]:
    stream = asyncio.StreamReader()
    stream.feed_data(data)
    stream.feed_eof()
    return [m async for m in read_messages(LineReader(stream, LIMIT), "fuzz")]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=2 * LIMIT), st.just(b"\n"), st.just(b"{}\n"))))
def test_any_bytes_give_json_objects_or_nothing(pieces: list[bytes]) -> None:
    data = b"".join(pieces)
    got = asyncio.run(messages_of(data))
    assert all(isinstance(m, dict) for m in got)
    assert len(got) >= sum(1 for line in data.split(b"\n") if line.strip() == b"{}")
