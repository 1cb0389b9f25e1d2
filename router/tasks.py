"""Background tasks an object starts and keeps until they finish: asyncio holds only a weak reference to a
running task, so one nobody keeps may be collected mid-way. Stopping the owner cancels what is still running."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any


async def first_done(*waitables: Awaitable[Any], timeout: float | None = None) -> None:  # noqa: ASYNC109
    """Wait until the first of ``waitables`` is done (or ``timeout`` seconds). What this wraps in a task (a
    coroutine such as ``event.wait()``) is cancelled on the way out, however it is left: a waiter left pending
    would outlive its caller. Such a task's exception is the caller's to find out otherwise (an ended call is
    seen on the call); futures passed in are left as they are."""
    futures = [asyncio.ensure_future(waitable) for waitable in waitables]
    own = [future for future, waitable in zip(futures, waitables, strict=True) if future is not waitable]
    try:
        await asyncio.wait(futures, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in own:
            if future.done() and not future.cancelled():
                future.exception()
            future.cancel()


class TaskSet:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Future[Any]] = set()

    def spawn(self, work: Awaitable[Any], name: str | None = None) -> asyncio.Future[Any]:
        """Run ``work`` in the background, kept here until it is done."""
        task = asyncio.ensure_future(work)
        if name is not None and isinstance(task, asyncio.Task):
            task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def cancel(self) -> None:
        """Cancel every task still running and wait until each has ended."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __len__(self) -> int:
        return len(self._tasks)
