"""The supervisor of the bot's processes: a child that dies or hangs in start-up is started again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from router.access import BOT_TOKEN_NAME
from router.audit import AuditEntry
from router.bot_secrets import actions_token
from router.companions import Companion, Companions
from router.models import ApiToken, utcnow
from router.net import free_port
from tests.conftest import start_hub
from tests.support.hubproc import ROOT
from tests.support.waiting import until


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


async def test_a_child_that_never_gets_healthy_is_killed_and_started_again(tmp_path: Path) -> None:
    port = free_port()  # nothing listens: the health check never passes
    companion = Companion(
        name="sleeper", argv=[sys.executable, "-c", "import time; print('up', flush=True); time.sleep(600)"],
        cwd=tmp_path, env={}, health_url=f"http://127.0.0.1:{port}/health", log_path=tmp_path / "sleeper.log",
        health_timeout=1.0)
    async with supervised(companion):
        await until(lambda: companion.restarts >= 2, "a hung child was not restarted", within=30)
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
        await until(companion.healthy.is_set, "the child never became healthy", within=30)
        await until(lambda: companion.restarts >= 1, "the child that exited was not started again", within=30)


async def test_a_revoked_action_server_token_stays_revoked_when_the_hub_starts_again(
        own_settings, http, caplog: pytest.LogCaptureFixture) -> None:
    """An administrator revoked the bot's hub token (it leaked, say): restarting the hub must not revive it."""
    running = await start_hub(own_settings())
    try:
        hub = running.hub
        companions = Companions(hub.settings, hub.secret_key)  # what a hub with HUB_BOT_AUTOSTART starts with
        headers = {"Authorization": f"Bearer {actions_token(hub.secret_key)}"}
        await companions.issue_token(hub.sessions)
        async with http.get(f"{running.url}/api/workorders", headers=headers) as response:
            assert response.status == 200
        async with hub.sessions.begin() as session:
            await session.execute(update(ApiToken).where(ApiToken.name == BOT_TOKEN_NAME)
                                  .values(revoked_at=utcnow()))

        await companions.issue_token(hub.sessions)  # the hub starts again
        async with http.get(f"{running.url}/api/workorders", headers=headers) as response:
            assert response.status == 401
        assert f"python -m router restore-token {BOT_TOKEN_NAME}" in caplog.text

        restore = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "router", "restore-token", BOT_TOKEN_NAME, cwd=ROOT,
            env={**os.environ, "HUB_DATABASE_URL": hub.settings.effective_database_url},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, errors = await asyncio.wait_for(restore.communicate(), 60)
        assert restore.returncode == 0, errors.decode()
        await companions.issue_token(hub.sessions)
        async with http.get(f"{running.url}/api/workorders", headers=headers) as response:
            assert response.status == 200
        async with hub.sessions() as session:
            entries = list(await session.scalars(select(AuditEntry).where(AuditEntry.action == "token.restore")))
        assert [(e.target_id, e.actor) for e in entries] == [(BOT_TOKEN_NAME, "system")]
    finally:
        await running.runner.cleanup()
