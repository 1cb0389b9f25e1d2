"""A hub with the WeChat channel on, the stand-in WeChat API beside it, and WeChat's side of the callback."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from channels.wechat.standin import Simulator, StandInWeChat
from router.models import Conversation, Message, Role
from tests.conftest import RunningHub, start_hub
from tests.support.wechat import AES_KEY, APP_ID, TOKEN, running_standin, wechat_settings
from tests.workorders.conftest import LEAK


def simulator(http: aiohttp.ClientSession, hub_url: str, mode: str = "safe", **options: Any) -> Simulator:
    """WeChat's side of the hub's callback for the stand-in account."""
    return Simulator(http, f"{hub_url}/wechat", TOKEN, app_id=APP_ID, encoding_aes_key=AES_KEY, mode=mode,
                     **options)


class WeChatWorld:
    """The hub, the stand-in API and a simulator per callback mode."""

    def __init__(self, hub: RunningHub, standin: StandInWeChat, http: aiohttp.ClientSession) -> None:
        self.hub, self.standin, self.http = hub, standin, http

    def simulator(self, mode: str = "safe", **options: Any) -> Simulator:
        return simulator(self.http, self.hub.url, mode, **options)

    async def resident_with_an_order(self, openid: str) -> dict[str, Any]:
        """``openid`` writes in; an agent takes the chat and makes a leak order of it (returned)."""
        simulator = self.simulator("safe")
        report = simulator.xml(openid, "text", {"Content": "单元门口水管漏水"}, msg_id=secrets.randbits(63))
        await simulator.post(report)
        conversation_id = (await self.messages_of(openid))[0].conversation_id
        agent = await self.hub.staff(Role.AGENT, listen=False)
        try:
            await agent.claims(conversation_id)
            return await agent.call("POST", "/api/workorders", {**LEAK, "conversation_id": conversation_id},
                                    expect=201)
        finally:
            await agent.close()

    async def messages_of(self, openid: str, author: str | None = None) -> list[Message]:
        """The resident's conversation, or what ``author`` (resident, agent, system, bot) wrote in it."""
        async with self.hub.hub.sessions() as session:
            return [m for m in await session.scalars(
                select(Message).join(Conversation, Conversation.id == Message.conversation_id)
                .where(Conversation.channel == "wechat", Conversation.external_id == openid)
                .order_by(Message.id)) if author is None or m.author == author]


@pytest.fixture
async def standin() -> AsyncIterator[tuple[StandInWeChat, str]]:
    async with running_standin() as running:
        yield running


@pytest.fixture
def hub_overrides() -> dict[str, Any]:
    """Settings a test module gives its hubs (a bot's address, for one): override the fixture."""
    return {}


@pytest.fixture
async def wechat(own_settings: Callable[..., Any], standin: tuple[StandInWeChat, str], hub_overrides: dict[str, Any],
                 request: pytest.FixtureRequest) -> AsyncIterator[WeChatWorld]:
    """``indirect`` parametrization adds settings. Compatible mode (wechat_settings), so that one hub takes every
    simulator's posts."""
    settings = {"channels": "webchat,wechat", "outbound_backoff_base_seconds": 0.2,
                "outbound_backoff_max_seconds": 0.5, **wechat_settings(standin[1]), **hub_overrides}
    running = await start_hub(own_settings(**settings | getattr(request, "param", {})))
    async with aiohttp.ClientSession() as http:
        yield WeChatWorld(running, standin[0], http)
    await running.runner.cleanup()
