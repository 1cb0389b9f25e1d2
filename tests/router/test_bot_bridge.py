"""The bot answers through Rasa's REST channel contract; a bot that is down or hangs never traps a resident."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest

from channels.base import InboundMessage
from router.bot import BOT_TEXT_LIMIT, BotUnavailable, parse_turn, question_for_bot
from router.botturns import KeyedLock
from router.models import Role
from router.net import free_port
from tests.conftest import start_hub
from tests.support.actors import Resident
from tests.support.restbot import running_bot


@contextlib.asynccontextmanager
async def hanging_server() -> AsyncIterator[str]:
    """Accepts connections and never answers, like a bot stuck in a long GC pause or a dead lock."""
    connections: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in connections:
            writer.close()
        server.close()


async def _handed_off(http, hub_url: str, running) -> None:
    resident = await Resident(http, hub_url).connect()
    try:
        said = await resident.says("我家没水了")
        notice = await resident.hears("system", timeout=10)
        assert notice["text"] == "正在为您转接人工客服,请稍候。"
        state = await resident.expect(lambda f: f["type"] == "state" and f["conversation"]["state"] == "queued")
        assert state["conversation"]["id"] == said["conversation_id"]
        supervisor = await running.staff(role=Role.SUPERVISOR, listen=False)
        history = await supervisor.call("GET", f"/api/conversations/{said['conversation_id']}/messages")
        await supervisor.close()
        handoff = [m for m in history["items"] if (m["payload"] or {}).get("event") == "handoff"]
        assert len(handoff) == 1 and "机器人不可用" in handoff[0]["text"]
        assert [m["text"] for m in history["items"] if m["author"] == "resident"] == ["我家没水了"]
    finally:
        await resident.close()


async def test_bot_down_sends_the_resident_to_the_human_queue(own_settings, http) -> None:
    running = await start_hub(own_settings(rasa_url=f"http://127.0.0.1:{free_port()}", bot_timeout_seconds=1))
    try:
        await _handed_off(http, running.url, running)
    finally:
        await running.runner.cleanup()


async def test_bot_that_hangs_is_given_up_after_the_timeout(own_settings, http) -> None:
    async with hanging_server() as url:
        running = await start_hub(own_settings(rasa_url=url, bot_timeout_seconds=0.5))
        try:
            started = asyncio.get_running_loop().time()
            await _handed_off(http, running.url, running)
            assert asyncio.get_running_loop().time() - started < 8
        finally:
            await running.runner.cleanup()


async def test_bot_answers_and_hands_off_by_custom_payload(own_settings, http) -> None:
    answer = [
        {"recipient_id": "x", "text": "您好,这里是清源水务智能客服。"},
        {"recipient_id": "x", "text": "请选择:", "buttons": [{"title": "报修", "payload": "/report_leak"}]},
        {"recipient_id": "x", "custom": {"handoff": True, "team": "投诉专席", "reason": "居民投诉"}},
    ]
    async with running_bot(answer) as bot:
        running = await start_hub(own_settings(rasa_url=bot.url))
        resident = await Resident(http, running.url).connect()
        try:
            said = await resident.says("我要投诉你们抄表员")
            greeting = await resident.hears("bot")
            assert greeting["text"] == "您好,这里是清源水务智能客服。"
            buttons = await resident.hears("bot")
            assert buttons["payload"]["buttons"] == [{"title": "报修", "payload": "/report_leak"}]
            state = await resident.expect(lambda f: f["type"] == "state" and f["conversation"]["state"] == "queued")
            assert state["conversation"]["id"] == said["conversation_id"]
            assert bot.received[0]["sender"] == str(said["conversation_id"])
            assert bot.received[0]["message"] == "我要投诉你们抄表员"
            assert bot.received[0]["metadata"]["channel"] == "webchat"
            # An unknown team falls back to the default one; the reason is kept for the agent.
            supervisor = await running.staff(role=Role.SUPERVISOR, listen=False)
            conversation = await supervisor.call("GET", f"/api/conversations/{said['conversation_id']}")
            await supervisor.close()
            assert conversation["team"]["name"] == running.hub.settings.default_team
        finally:
            await resident.close()
            await running.runner.cleanup()


@pytest.mark.parametrize("body", [
    {"not": "a list"},
    [{"text": 5}],
    [{"buttons": [{"payload": "/x"}]}],
])
def test_garbage_from_the_bot_counts_as_unavailable(body) -> None:
    with pytest.raises(BotUnavailable):
        parse_turn(json.loads(json.dumps(body)))


async def test_bot_turns_of_one_conversation_run_one_at_a_time_and_leave_no_locks() -> None:
    turns, order = KeyedLock(), []

    async def turn(key: int, label: str) -> None:
        async with turns.hold(key):
            order.append(f"{label}+")
            await asyncio.sleep(0.01)
            order.append(f"{label}-")

    await asyncio.gather(turn(1, "a"), turn(1, "b"), turn(2, "c"))
    assert order.index("a-") < order.index("b+")  # same conversation: in turn
    assert order.index("c+") < order.index("a-")  # other conversations: side by side
    assert len(turns) == 0


def stored(text: str | None, type_: str = "text") -> dict:
    return {"id": 7, "type": type_, "text": text, "attachment": None}


def test_the_bot_gets_the_number_and_place_a_channel_knows_and_the_start_of_a_long_text() -> None:
    sms = InboundMessage(channel="sms", external_id="13912345678", channel_message_id="m1", text="水管爆了",
                         phone="13912345678")
    text, metadata = question_for_bot(sms, 3, stored("水管爆了"))
    assert text == "水管爆了"
    assert metadata == {"channel": "sms", "conversation_id": 3, "message_id": 7, "type": "text", "attachment": None,
                        "phone": "13912345678"}

    place = {"lat": 31.38, "lng": 120.98, "label": "前进东路88号"}
    shared = InboundMessage(channel="wechat", external_id="o1", channel_message_id="m2", type="location",
                            payload={"location": place})
    text, metadata = question_for_bot(shared, 3, stored(None, "location"))
    assert (text, metadata["location"]) == ("前进东路88号", place) and "phone" not in metadata

    long = "漏" * 5000
    text, _ = question_for_bot(InboundMessage(channel="webchat", external_id="v", channel_message_id="m3", text=long),
                               3, stored(long))
    assert text == "漏" * BOT_TEXT_LIMIT
    text, _ = question_for_bot(InboundMessage(channel="webchat", external_id="v", channel_message_id="m4"), 3,
                               stored("   "))
    assert text == "[text]"
