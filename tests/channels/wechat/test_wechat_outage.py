"""WeChat during a database outage: a message is acknowledged, kept on disk, and stored once the database is back.

WeChat retries a callback that fails three times within about 15 seconds, then drops the message; the hub's own
PostgreSQL server (tests/support/pgcluster.py) is stopped for longer than that.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.channels.wechat.conftest import simulator
from tests.conftest import RunningHub, outage_settings, start_hub
from tests.support.outage import wait_for_stored
from tests.support.pgcluster import PrivateCluster
from tests.support.wechat import running_standin, wechat_settings


@pytest.fixture
async def wechat_on_own_server(private_pg: PrivateCluster, tmp_path: Path,
                               request: pytest.FixtureRequest) -> AsyncIterator[RunningHub]:
    async with running_standin() as (_standin, url):
        settings = outage_settings(private_pg, tmp_path / "var", channels="webchat,wechat",
                                   **wechat_settings(url) | getattr(request, "param", {}))
        running = await start_hub(settings)
        yield running
        await running.runner.cleanup()


def text_from(sim: Any, openid: str, text: str) -> tuple[str, str]:
    msg_id = str(secrets.randbits(63))
    return sim.xml(openid, "text", {"Content": text}, msg_id=int(msg_id)), msg_id


async def test_messages_during_an_outage_are_acknowledged_and_stored_once_in_order_afterwards(
    wechat_on_own_server: RunningHub, private_pg: PrivateCluster
) -> None:
    openid = "o" + secrets.token_hex(13)
    async with aiohttp.ClientSession() as http:
        sim = simulator(http, wechat_on_own_server.url, "safe", retries=0)
        before, first_id = text_from(sim, openid, "停水了吗")
        assert await sim.post(before) == "success"
        private_pg.stop()
        ids = [first_id]
        for n in range(3):
            body, msg_id = text_from(sim, openid, f"数据库停了,第{n}条")
            assert await sim.post(body) == "success"  # before the journal: HTTP 500, and the message lost
            ids.append(msg_id)
        assert await sim.post(body) == "success"  # WeChat's retry of the last one (a new nonce, the same MsgId)
        private_pg.start()
    await wait_for_stored(wechat_on_own_server, {openid: ids})


@pytest.mark.parametrize("wechat_on_own_server", [{"spool_max_megabytes": 0.0001}], indirect=True)
async def test_a_full_spool_makes_wechat_retry(wechat_on_own_server: RunningHub, private_pg: PrivateCluster) -> None:
    openid = "o" + secrets.token_hex(13)
    async with aiohttp.ClientSession() as http:
        sim = simulator(http, wechat_on_own_server.url, "safe", retries=0)
        private_pg.stop()
        body, msg_id = text_from(sim, openid, "这条放不进日志:" + "漏水" * 50)
        with pytest.raises(AssertionError, match="HTTP 503"):
            await sim.post(body)
        private_pg.start()
        assert await sim.post(body) == "success"  # WeChat's retry, once the database is back
    await wait_for_stored(wechat_on_own_server, {openid: [msg_id]})
