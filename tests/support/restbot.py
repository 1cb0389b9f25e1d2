"""A bot speaking Rasa's REST channel contract (``POST /webhooks/rest/webhook``), answering what a test sets.

The contract is what the hub depends on; the real Rasa server and its trained model are exercised by the bot's
own tests (tests/bot). This one answers at once, after ``delay`` seconds, or, while held, not until released:
a bot in the middle of a turn for as long as a test needs (to kill the hub that asked it, for one).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from router.net import free_port


class StandInBot:
    def __init__(self, answer: list[dict[str, Any]]) -> None:
        self.url = ""  # the hub's HUB_RASA_URL, once it listens
        self.answer = answer
        self.delay = 0.0
        self.received: list[dict[str, Any]] = []  # every question asked, in order
        self._open = asyncio.Event()
        self._open.set()
        self._asked = asyncio.Event()

    def hold(self) -> None:
        """Questions from now on are answered only once :meth:`release` is called."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    async def wait_asked(self, count: int, within: float = 10.0) -> None:
        """Until the bot was asked ``count`` questions in all."""
        async with asyncio.timeout(within):
            while len(self.received) < count:
                self._asked.clear()
                await self._asked.wait()

    async def _webhook(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        self._asked.set()
        await asyncio.sleep(self.delay)
        await self._open.wait()
        return web.json_response(self.answer)


@contextlib.asynccontextmanager
async def running_bot(answer: list[dict[str, Any]]) -> AsyncIterator[StandInBot]:
    """The stand-in bot, listening on a free port."""
    bot = StandInBot(answer)
    app = web.Application()
    app.router.add_post("/webhooks/rest/webhook", bot._webhook)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    bot.url = f"http://127.0.0.1:{port}"
    try:
        yield bot
    finally:
        bot.release()
        await runner.cleanup()
