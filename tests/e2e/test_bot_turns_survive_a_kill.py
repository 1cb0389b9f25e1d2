"""A hub process killed in the middle of bot turns: once it is back, every resident has been answered exactly once.

On PostgreSQL two processes share the database and the other one takes up the turns; on SQLite the one process
is killed and started again. The residents write on WeChat, whose stand-in counts the customer-service messages
the answers go out as (the callbacks that would have carried them died with the process).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select

from channels.wechat.standin import StandInWeChat
from router.db import create_engine, session_factory
from router.models import Conversation, Message, PendingBotTurn
from tests.channels.wechat.conftest import simulator
from tests.conftest import PASSWORD
from tests.support.hubproc import HubProcess
from tests.support.restbot import StandInBot, running_bot
from tests.support.services import REDIS_URL
from tests.support.wechat import running_standin, wechat_settings

ANSWER = "阶梯水价按年用水量分三档计价。"
RESIDENTS = 6
LEASE_SECONDS = 6


@pytest.fixture
async def bot() -> AsyncIterator[StandInBot]:
    async with running_bot([{"recipient_id": "x", "text": ANSWER}]) as bot:
        yield bot


@pytest.fixture
async def standin() -> AsyncIterator[tuple[StandInWeChat, str]]:
    async with running_standin() as running:
        yield running


@pytest.fixture
def hub_env(backend: str, fresh_database_url: str, bot: StandInBot, standin: tuple[StandInWeChat, str],
            ) -> dict[str, str]:
    wechat = {f"HUB_{name.upper()}": str(value) for name, value in wechat_settings(standin[1]).items()}
    env = {**wechat, "HUB_DATABASE_URL": fresh_database_url, "HUB_SECRET_KEY": "s" * 40,
           "HUB_FIRST_ADMIN_PASSWORD": PASSWORD, "HUB_CHANNELS": "webchat,wechat", "HUB_WECHAT_PUSH_MENU": "false",
           "HUB_RASA_URL": bot.url, "HUB_BOT_TIMEOUT_SECONDS": "5", "HUB_OUTBOUND_POLL_SECONDS": "0.2",
           "HUB_BOT_TURN_LEASE_SECONDS": str(LEASE_SECONDS), "HUB_BOT_TURN_SWEEP_SECONDS": "0.5"}
    if backend == "postgresql":
        env |= {"HUB_REDIS_URL": REDIS_URL, "HUB_REDIS_PREFIX": f"test-{uuid.uuid4().hex[:8]}"}
    return env


@contextlib.contextmanager
def processes(env: dict[str, str], tmp_path: Path, count: int) -> Iterator[list[HubProcess]]:
    started = [HubProcess(env, tmp_path / "var", name=f"hub{i}") for i in range(count)]
    try:
        yield started
    finally:
        for process in started:
            process.kill()


async def answers_in_the_database(database_url: str, openids: list[str]) -> tuple[list[int], int]:
    """How many bot messages each resident's conversation holds, and the bot turns still pending."""
    engine = create_engine(database_url, 2)
    try:
        async with session_factory(engine)() as session:
            counts = dict((await session.execute(
                select(Conversation.external_id, func.count(Message.id))
                .join(Message, (Message.conversation_id == Conversation.id) & (Message.author == "bot"), isouter=True)
                .where(Conversation.channel == "wechat", Conversation.external_id.in_(openids))
                .group_by(Conversation.external_id))).all())
            pending = await session.scalar(select(func.count()).select_from(PendingBotTurn))
    finally:
        await engine.dispose()
    return [counts.get(openid, 0) for openid in openids], pending or 0


async def test_a_hub_killed_mid_turn_leaves_every_resident_answered_exactly_once(
        backend: str, hub_env: dict[str, str], fresh_database_url: str, bot: StandInBot,
        standin: tuple[StandInWeChat, str], tmp_path: Path) -> None:
    wechat = standin[0]
    count = 2 if backend == "postgresql" else 1  # SQLite is the single-process embedded mode
    with processes(hub_env, tmp_path, count) as hubs:
        for hub in hubs:
            await asyncio.to_thread(hub.start)
        victim = hubs[0]
        openids = ["o" + uuid.uuid4().hex[:27] for _ in range(RESIDENTS)]
        async with aiohttp.ClientSession() as http:
            wechat_side = simulator(http, victim.url, "safe", retries=0)
            bot.hold()  # every turn is in the middle of asking the bot …
            posts = [asyncio.create_task(wechat_side.post(wechat_side.xml(
                openid, "text", {"Content": "阶梯水价怎么收费"}, msg_id=secrets.randbits(63)))) for openid in openids]
            await bot.wait_asked(RESIDENTS)
            victim.kill()  # … when the process that runs them dies
            await asyncio.gather(*posts, return_exceptions=True)
            bot.release()
            await asyncio.to_thread(victim.start)

            deadline = asyncio.get_running_loop().time() + LEASE_SECONDS + 30
            while len([m for m in wechat.sent if m["touser"] in openids]) < RESIDENTS:
                assert asyncio.get_running_loop().time() < deadline, (
                    f"{len(wechat.sent)} of {RESIDENTS} residents answered")
                await asyncio.sleep(0.2)
            await asyncio.sleep(2 * LEASE_SECONDS / 3)  # time for a second answer, were there one

    sent = [m for m in wechat.sent if m["touser"] in openids]
    assert sorted(m["touser"] for m in sent) == sorted(openids)  # each resident once
    assert all(m["api"] == "custom" and m["text"]["content"] == ANSWER for m in sent)
    assert len(bot.received) == 2 * RESIDENTS  # asked by the killed process, then again after it died
    per_resident, pending = await answers_in_the_database(fresh_database_url, openids)
    assert per_resident == [1] * RESIDENTS and pending == 0
