"""Waiting in tests for what happens elsewhere (another process, a server, the hub's background work)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable


async def until(condition: Callable[[], bool | Awaitable[bool]], what: str = "condition", within: float = 10.0,
                every: float = 0.05) -> None:
    """Check ``condition`` (a function, or a coroutine function) until it holds; fail naming ``what`` once
    ``within`` seconds have passed."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        held = condition()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not met within {within} s")
        await asyncio.sleep(every)
