"""The supervisor of the bot's processes: a child that dies or hangs in start-up is started again."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from router.companions import Companion
from tests.support.services import free_port


async def test_a_child_that_never_gets_healthy_is_killed_and_started_again(tmp_path: Path) -> None:
    port = free_port()  # nothing listens: the health check never passes
    companion = Companion(
        name="sleeper", argv=[sys.executable, "-c", "import time; print('up', flush=True); time.sleep(600)"],
        cwd=tmp_path, env={}, health_url=f"http://127.0.0.1:{port}/health", log_path=tmp_path / "sleeper.log",
        health_timeout=1.0)
    stopping = asyncio.Event()
    supervisor = asyncio.create_task(companion.supervise(stopping))
    deadline = time.monotonic() + 30
    while companion.restarts < 2:
        assert time.monotonic() < deadline, "a hung child was not restarted"
        await asyncio.sleep(0.1)
    stopping.set()
    await companion.stop()
    await asyncio.wait_for(supervisor, 10)
    assert companion.process is not None and companion.process.returncode is not None
    assert (tmp_path / "sleeper.log").read_text().count("up") >= 2  # every start's output is kept


async def test_a_healthy_child_is_restarted_after_it_dies(tmp_path: Path) -> None:
    port = free_port()
    server = (f"import http.server as h; s = h.HTTPServer(('127.0.0.1', {port}), h.SimpleHTTPRequestHandler); "
              "s.handle_request()")  # answers the health check, then exits
    companion = Companion(name="server", argv=[sys.executable, "-c", server], cwd=tmp_path, env={},
                          health_url=f"http://127.0.0.1:{port}/", log_path=tmp_path / "server.log",
                          health_timeout=20.0)
    stopping = asyncio.Event()
    supervisor = asyncio.create_task(companion.supervise(stopping))
    deadline = time.monotonic() + 30
    while not companion.healthy.is_set():
        assert time.monotonic() < deadline, "the child never became healthy"
        await asyncio.sleep(0.05)
    while companion.restarts < 1:
        assert time.monotonic() < deadline, "the child that exited was not started again"
        await asyncio.sleep(0.05)
    stopping.set()
    await companion.stop()
    await asyncio.wait_for(supervisor, 10)
