"""Reading a request body: the timeout answers 408 and leaves other cancellations alone."""

from __future__ import annotations

import asyncio

import pytest
from starlette.exceptions import HTTPException
from starlette.types import Message

from pluginkv.server.parsing import read_body


async def never() -> Message:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


def test_a_body_that_never_arrives_gets_408_and_the_task_can_go_on() -> None:
    async def main() -> int:
        with pytest.raises(HTTPException) as caught:
            await read_body(never, None, 100, "PLUGINKV_MAX_VALUE_BYTES", timeout=0.05)
        assert "PLUGINKV_REQUEST_TIMEOUT_SECONDS" in str(caught.value.detail)
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0  # the 408 answer can still be sent
        await asyncio.sleep(0)
        return caught.value.status_code

    assert asyncio.run(main()) == 408


def test_a_cancellation_from_elsewhere_still_cancels() -> None:
    async def main() -> None:
        reading = asyncio.ensure_future(read_body(never, None, 100, "X", timeout=60))
        await asyncio.sleep(0.01)
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading

    asyncio.run(main())


def test_a_body_in_pieces_is_joined_and_the_timer_is_gone() -> None:
    pieces: list[Message] = [
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cd", "more_body": False},
    ]

    async def receive() -> Message:
        return pieces.pop(0)

    async def main() -> bytes:
        body = await read_body(receive, "4", 100, "X", timeout=0.05)
        await asyncio.sleep(0.1)  # past the timeout: nothing may cancel this task now
        return body

    assert asyncio.run(main()) == b"abcd"
