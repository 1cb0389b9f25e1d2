"""The supervisor of the bot's processes: a child that dies or hangs in start-up is started again."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from router.companions import Companion
from tests.support.services import free_port


@contextlib.asynccontextmanager
async def supervised(companion: Companion) -> AsyncIterator[None]:
    stopping = asyncio.Event()
    supervisor = asyncio.create_task(companion.supervise(stopping))
    try:
        yield
    finally:
        stopping.set()
        await companion.stop()
        await asyncio.wait_for(supervisor, 10)


async def until(condition: Callable[[], bool], failure: str, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, failure
        await asyncio.sleep(0.05)


async def test_a_child_that_never_gets_healthy_is_killed_and_started_again(tmp_path: Path) -> None:
    port = free_port()  # nothing listens: the health check never passes
    companion = Companion(
        name="sleeper", argv=[sys.executable, "-c", "import time; print('up', flush=True); time.sleep(600)"],
        cwd=tmp_path, env={}, health_url=f"http://127.0.0.1:{port}/health", log_path=tmp_path / "sleeper.log",
        health_timeout=1.0)
    async with supervised(companion):
        await until(lambda: companion.restarts >= 2, "a hung child was not restarted")
    assert companion.process is not None and companion.process.returncode is not None
    assert (tmp_path / "sleeper.log").read_text().count("up") >= 2  # every start's output is kept


async def test_a_healthy_child_is_restarted_after_it_dies(tmp_path: Path) -> None:
    port = free_port()
    server = (f"import http.server as h; s = h.HTTPServer(('127.0.0.1', {port}), h.SimpleHTTPRequestHandler); "
              "s.handle_request(); import time; time.sleep(1)")  # answers the health check, stays a second, exits
    companion = Companion(name="server", argv=[sys.executable, "-c", server], cwd=tmp_path, env={},
                          health_url=f"http://127.0.0.1:{port}/", log_path=tmp_path / "server.log",
                          health_timeout=20.0)
    async with supervised(companion):
        await until(companion.healthy.is_set, "the child never became healthy")
        await until(lambda: companion.restarts >= 1, "the child that exited was not started again")
