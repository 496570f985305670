"""A bidirectional stream served concurrently: frames share batches and are answered as they finish."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

Request = TypeVar("Request")
Answer = TypeVar("Answer")


async def answer_concurrently(
    requests: AsyncIterator[Request], answer: Callable[[Request], Awaitable[Answer]]
) -> AsyncIterator[Answer]:
    """Yield `answer(request)` for every request, in the order they finish, not the order sent.

    A refused frame must come back at once, not behind the frames sent before it; callers
    match answers to frames by their ids. `answer` must not raise for one bad frame: the
    stream would end for every frame after it.
    """
    answers: asyncio.Queue[tuple[Answer] | None] = asyncio.Queue()
    in_flight: set[asyncio.Task[None]] = set()

    async def serve(request: Request) -> None:
        answers.put_nowait((await answer(request),))

    async def read_all() -> None:
        try:
            async for request in requests:
                task = asyncio.create_task(serve(request))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            await asyncio.gather(*in_flight)
        finally:
            answers.put_nowait(None)

    reader = asyncio.create_task(read_all())
    try:
        while (item := await answers.get()) is not None:
            yield item[0]
        await reader  # re-raise what ended the request stream, if anything did
    finally:
        for task in (reader, *in_flight):
            task.cancel()
