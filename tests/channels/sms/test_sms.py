"""Residents text the service number over the stand-in SMSC: the bot or an agent answers by SMS, receipts mark
what reached the handset, and a refusing, throttling, silent or absent SMSC loses and doubles nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
from sqlalchemy import select

from channels.base import InboundMessage
from channels.sms.smpp import Status
from channels.sms.smpp_standin import StandInSmsc
from router.models import Conversation, Delivery, Direction, Message, Role
from tests.channels.sms.conftest import bound
from tests.conftest import RunningHub, start_hub
from tests.support import choices
from tests.support.actors import Staff
from tests.support.restbot import running_bot
from tests.support.sms import Handset, sms_settings
from tests.support.waiting import until
from tests.workorders.conftest import LEAK


async def conversation_of(hub: RunningHub, handset: Handset, timeout: float = 10) -> Conversation:
    async with asyncio.timeout(timeout):
        while True:
            async with hub.hub.sessions() as session:
                found = await session.scalar(select(Conversation).where(
                    Conversation.channel == "sms", Conversation.external_id == handset.phone))
            if found is not None:
                return found
            await asyncio.sleep(0.05)


async def reply_of(hub: RunningHub, message_id: int, done: Callable[[Message], bool], timeout: float = 10) -> Message:
    """The outbound message once ``done`` holds for it."""
    async with asyncio.timeout(timeout):
        while True:
            async with hub.hub.sessions() as session:
                message = await session.get(Message, message_id)
            assert message is not None and message.direction == Direction.OUT
            if done(message):
                return message
            await asyncio.sleep(0.05)


async def agent_with(hub: RunningHub, handset: Handset, text: str) -> tuple[Staff, int]:
    agent = await hub.staff(Role.AGENT)
    await agent.becomes("ready")
    await handset.texts(text)
    conversation = await agent.gets_assigned()
    return agent, conversation["id"]


async def test_a_text_reaches_an_agent_whose_long_reply_arrives_whole_and_is_marked_delivered(
        sms_hub: RunningHub, handset) -> None:
    resident = handset()
    agent, conversation_id = await agent_with(sms_hub, resident, "我家水表漏水了，請派人來看看")
    stored = await conversation_of(sms_hub, resident)
    assert stored.id == conversation_id and stored.channel == "sms"
    seen = await agent.sees_message("我家水表漏水了，請派人來看看")
    assert seen["author"] == "resident"

    reply = ("您好，您反映的水表漏水问题已经收到。维修人员将在两小时内上门，请保持电话畅通。"
             "如漏水严重，请先关闭水表前的阀门，并注意用电安全。感谢您对水务热线的支持。") * 2
    sent = await agent.replies(conversation_id, reply)
    shown = await resident.receives()
    assert (shown.text, shown.source, shown.data_coding) == (reply, "962740", 8)
    assert len(shown.message_ids) == -(-len(reply) // 67)  # 67 characters to a UCS-2 part
    message = await reply_of(sms_hub, sent["id"], lambda m: m.delivery == Delivery.DELIVERED)
    assert message.attempts == 1 and message.channel_message_id.endswith(shown.message_ids[0])
    await agent.close()


async def test_the_bot_offers_numbered_choices_and_a_typed_number_picks_one(own_settings, smsc: StandInSmsc,
                                                                            handset) -> None:
    async with running_bot(choices.ASKED) as bot:
        hub = await bound(await start_hub(own_settings(rasa_url=bot.url, **sms_settings(smsc))))
        try:
            resident = handset()
            await resident.texts("我家漏水了")
            asked = await resident.receives()
            assert asked.text == "请问漏水的位置是?\n回复数字即可选择:\n1. 路面\n2. 小区内\n3. 户内"
            await resident.texts("２")  # a full-width digit, as a Chinese keyboard types it
            await bot.wait_asked(2)
            assert bot.received[-1]["message"] == '/inform{"detail":"小区内"}'
            await resident.texts("户内")  # or the title itself
            await bot.wait_asked(3)
            assert bot.received[-1]["message"] == '/inform{"detail":"户内"}'
        finally:
            await hub.runner.cleanup()


async def test_throttled_refused_and_undelivered_replies(sms_hub: RunningHub, smsc: StandInSmsc, handset) -> None:
    agent = await sms_hub.staff(Role.AGENT, max_chats=5)
    await agent.becomes("ready")
    throttled, refused, unreachable = handset(), handset("0000"), handset("4444")
    conversations = {}
    for resident in (throttled, refused, unreachable):
        await resident.texts("请问明天停水吗")
        conversations[resident.number] = (await agent.gets_assigned())["id"]

    smsc.fail_next(Status.RTHROTTLED, 2)  # the gateway's throttle, twice: tried again, out once
    sent = await agent.replies(conversations[throttled.number], "明天不停水。")
    assert (await throttled.receives()).text == "明天不停水。"
    message = await reply_of(sms_hub, sent["id"], lambda m: m.delivery == Delivery.DELIVERED)
    assert message.attempts == 3 and len(throttled.inbox()) == 1

    sent = await agent.replies(conversations[refused.number], "明天不停水。")  # refused for good: not tried again
    message = await reply_of(sms_hub, sent["id"], lambda m: m.delivery == Delivery.FAILED)
    assert (message.attempts, message.last_error) == (1, "号码无效 (ESME_RINVDSTADR)")

    sent = await agent.replies(conversations[unreachable.number], "明天不停水。")  # taken, never reached
    message = await reply_of(sms_hub, sent["id"], lambda m: m.delivery == Delivery.FAILED)
    assert message.last_error == "短信未送达 (UNDELIV err:001)" and message.attempts == 1
    assert unreachable.inbox() == [] and refused.inbox() == []
    await agent.close()


async def readiness(hub: RunningHub, expect: bool = True) -> bool:
    """Whether ``/readyz`` reports the SMS channel as ``expect``."""
    async with aiohttp.ClientSession() as http, http.get(f"{hub.url}/readyz") as response:
        return (await response.json())["checks"]["sms"] is expect


async def test_replies_wait_for_an_smsc_that_is_down_or_silent_and_go_out_once(sms_hub: RunningHub,
                                                                              smsc: StandInSmsc, handset) -> None:
    resident = handset()
    agent, conversation_id = await agent_with(sms_hub, resident, "水压很低")
    assert await readiness(sms_hub)

    smsc.holding = True  # the SMSC takes the submit and never answers: tried again after the timeout
    sent = await agent.replies(conversation_id, "我们正在排查。")
    await asyncio.sleep(1.5)
    smsc.holding = False
    assert (await resident.receives()).text == "我们正在排查。"
    message = await reply_of(sms_hub, sent["id"], lambda m: m.delivery == Delivery.DELIVERED)
    assert message.attempts >= 2

    port = smsc.port
    await smsc.stop()  # the SMSC goes away: replies wait in the queue, the hub keeps binding
    await until(lambda: readiness(sms_hub, expect=False), "the channel reported down")
    sent = await agent.replies(conversation_id, "维修人员已出发。")
    await asyncio.sleep(1.0)
    async with sms_hub.hub.sessions() as session:
        waiting = await session.get(Message, sent["id"])
    assert waiting is not None and waiting.delivery in (Delivery.QUEUED, Delivery.SENDING)
    assert waiting.last_error == "短信网关未连接"

    back = await StandInSmsc(smsc.system_id, smsc.password).start(port=port)  # back, on the same port
    try:
        resident.smsc, resident.read = back, 0
        assert (await resident.receives(timeout=15)).text == "维修人员已出发。"
        await reply_of(sms_hub, sent["id"], lambda m: m.delivery == Delivery.DELIVERED)
        assert len(resident.inbox()) == 1 and await readiness(sms_hub)
        await resident.texts("收到,谢谢")  # and texts come in again
        await agent.sees_message("收到,谢谢")
    finally:
        await back.stop()
    await agent.close()


async def test_a_wrong_password_is_refused_and_reported(own_settings, smsc: StandInSmsc) -> None:
    hub = await start_hub(own_settings(**sms_settings(smsc, sms_smpp_password="wrong")))
    try:
        await until(lambda: len(smsc.binds) >= 2, "a second bind (refused, then tried again)")
        assert {status for _, _, status in smsc.binds} == {Status.RINVPASWD}
        assert await readiness(hub, expect=False)
    finally:
        await hub.runner.cleanup()


async def test_texts_the_hub_cannot_take_are_refused_and_nothing_is_stored(sms_hub: RunningHub,
                                                                          smsc: StandInSmsc, handset) -> None:
    await smsc.mo("WATERCO", "广告短信")  # from what is no resident's number
    await smsc.mo("8613911112222", "   ")  # nothing but spaces
    resident = handset()
    await resident.texts("这条可以")
    stored = await conversation_of(sms_hub, resident)
    async with sms_hub.hub.sessions() as session:
        texts = list(await session.scalars(select(Message.text).where(Message.channel == "sms",
                                                                       Message.direction == Direction.IN)))
    assert texts == ["这条可以"] and stored.channel == "sms"


async def test_a_callers_order_notice_goes_to_their_phone_by_sms(sms_hub: RunningHub, handset) -> None:
    """The phone carries no text: a caller hears of the order filed from their call by SMS, on the call's
    conversation."""
    caller = handset()
    call = await sms_hub.hub.ingest(InboundMessage(
        channel="voice", external_id=caller.phone, channel_message_id=f"call-{caller.number}", type="event",
        text="来电(拨打 962740)", payload={"call": {"id": 1, "did": "962740"}}, phone=caller.phone))
    anonymous = await sms_hub.hub.ingest(InboundMessage(
        channel="voice", external_id="anonymous-ch1", channel_message_id="call-anonymous", type="event", text="来电"))
    agent = await sms_hub.staff(Role.AGENT, listen=False)
    order = await agent.call("POST", "/api/workorders", {**LEAK, "conversation_id": call.conversation_id},
                             expect=201)
    notice = await caller.receives()
    assert order["number"] in notice.text and notice.source == "962740"
    async with sms_hub.hub.sessions() as session:
        [sent] = await session.scalars(select(Message).where(Message.conversation_id == call.conversation_id,
                                                             Message.direction == Direction.OUT))
    assert sent.channel == "sms"
    sent = await reply_of(sms_hub, sent.id, lambda m: m.delivery == Delivery.DELIVERED)
    # A withheld number has nowhere to be texted: its notice stays on the phone channel, which cannot carry it.
    await agent.call("POST", "/api/workorders", {**LEAK, "conversation_id": anonymous.conversation_id}, expect=201)
    async with sms_hub.hub.sessions() as session:
        [kept] = await session.scalars(select(Message).where(Message.conversation_id == anonymous.conversation_id,
                                                             Message.direction == Direction.OUT))
    assert kept.channel == "voice"
    await agent.close()


async def test_a_caller_who_texts_is_one_contact(sms_hub: RunningHub, handset) -> None:
    resident = handset()
    call = await sms_hub.hub.ingest(InboundMessage(
        channel="voice", external_id=resident.phone, channel_message_id=f"call-{resident.number}", type="event",
        text="来电", phone=resident.phone))
    await resident.texts("刚才电话里说的地址是清源路18号")
    texted = await conversation_of(sms_hub, resident)
    async with sms_hub.hub.sessions() as session:
        called = await session.get(Conversation, call.conversation_id)
    assert called is not None and texted.contact_id == called.contact_id and texted.id != called.id
