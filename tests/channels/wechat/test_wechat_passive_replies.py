"""The bot's answer goes back in WeChat's own callback when it can, and counts as sent only once written there."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from wechatpy import parse_message

from tests.channels.wechat.conftest import WeChatWorld
from tests.support.restbot import StandInBot, running_bot

ANSWER = "阶梯水价按年用水量分三档计价。"


@pytest.fixture
async def bot() -> AsyncIterator[StandInBot]:
    async with running_bot([{"recipient_id": "x", "text": ANSWER}]) as bot:
        yield bot


@pytest.fixture
def hub_overrides(bot: StandInBot) -> dict[str, Any]:
    return {"rasa_url": bot.url}


def question(wechat: WeChatWorld, openid: str, **options: Any) -> tuple[Any, str]:
    simulator = wechat.simulator("safe", **options)
    return simulator, simulator.xml(openid, "text", {"Content": "阶梯水价怎么收费"}, msg_id=secrets.randbits(63))


async def test_the_bots_answer_ready_in_time_is_the_passive_reply_and_nothing_more(wechat: WeChatWorld,
                                                                                   bot: StandInBot) -> None:
    openid = "o" + uuid.uuid4().hex[:27]
    simulator, xml = question(wechat, openid)
    reply = parse_message(await simulator.post(xml))
    assert reply.type == "text" and reply.content == ANSWER
    await asyncio.sleep(1.0)
    assert wechat.standin.sent == []
    (answer,) = await wechat.messages_of(openid, "bot")
    assert answer.delivery == "sent"


async def test_a_passive_reply_wechat_hung_up_on_follows_as_a_customer_service_message(wechat: WeChatWorld,
                                                                                       bot: StandInBot) -> None:
    """WeChat drops the callback just before the answer is written; its retry is a duplicate, answered ``success``:
    the answer must not be taken as sent."""
    bot.delay = 1.5
    openid = "o" + uuid.uuid4().hex[:27]
    simulator, xml = question(wechat, openid, timeout=1.0, retries=1)
    assert await simulator.post(xml) == "success"
    assert simulator.attempts == 2
    (sent,) = await wechat.standin.wait_sent(1)
    assert sent["api"] == "custom" and sent["touser"] == openid and sent["text"]["content"] == ANSWER
    await asyncio.sleep(1.0)
    assert len(wechat.standin.sent) == 1  # once
    (answer,) = await wechat.messages_of(openid, "bot")
    assert answer.delivery == "sent"
