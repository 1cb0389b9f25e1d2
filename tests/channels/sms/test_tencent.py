"""The SMS channel on Tencent Cloud SMS, against the stand-in: sends signed by Tencent's own SDK and checked as
Tencent checks them, the approved template and signature, delivery reports and replies pushed to the hub."""

from __future__ import annotations

import asyncio
import itertools
import random
import secrets
from collections.abc import AsyncIterator

import aiohttp
import pytest
from sqlalchemy import select

from channels.sms.tencent_standin import StandInTencentSms
from router.models import Conversation, Delivery, Direction, Message, Role
from tests.channels.sms.test_sms import reply_of
from tests.conftest import RunningHub, start_hub
from tests.support.waiting import until

SECRET_ID, SECRET_KEY, APP_ID = "AKIDstandin0001", "standin-secret-key", "1400123456"
SIGN, TEMPLATE = "清源水务", "1110"
TOKEN = secrets.token_urlsafe(24)
_numbers = itertools.count(random.randrange(10**7))


def mobile() -> str:
    return f"139{next(_numbers) % 10**8:08d}"


@pytest.fixture
async def tencent() -> AsyncIterator[StandInTencentSms]:
    async with StandInTencentSms(SECRET_ID, SECRET_KEY, APP_ID, SIGN, {TEMPLATE: "您好,{1}"},
                                 undeliverable=r"86[0-9]*4444") as running:
        yield running


def tencent_settings(standin: StandInTencentSms, **overrides: str) -> dict[str, object]:
    return {"channels": "webchat,sms", "sms_provider": "tencent", "sms_tencent_secret_id": SECRET_ID,
            "sms_tencent_secret_key": SECRET_KEY, "sms_tencent_sdk_app_id": APP_ID, "sms_tencent_sign_name": SIGN,
            "sms_tencent_template_id": TEMPLATE, "sms_tencent_endpoint": standin.endpoint,
            "sms_callback_token": TOKEN, "outbound_backoff_base_seconds": 0.1, "outbound_backoff_max_seconds": 0.5,
            **overrides}


@pytest.fixture
async def tencent_hub(own_settings, tencent: StandInTencentSms) -> AsyncIterator[RunningHub]:
    running = await start_hub(own_settings(**tencent_settings(tencent)))
    tencent.status_url = f"{running.url}/sms/tencent/{TOKEN}/status"
    tencent.reply_url = f"{running.url}/sms/tencent/{TOKEN}/reply"
    yield running
    await running.runner.cleanup()


async def test_a_reply_reaches_an_agent_whose_answer_goes_as_the_approved_template(
        tencent_hub: RunningHub, tencent: StandInTencentSms) -> None:
    agent = await tencent_hub.staff(Role.AGENT)
    await agent.becomes("ready")
    number = mobile()
    assert (await tencent.reply(number, "收到停水通知,请问几点来水?"))["body"] == '{"result": 0, "errmsg": "OK"}'
    conversation = await agent.gets_assigned()
    assert conversation["channel"] == "sms"
    sent = await agent.replies(conversation["id"], "预计今晚八点恢复供水。")
    await until(lambda: tencent.handsets.get(number), "the text on the handset")
    [shown] = tencent.handsets[number]
    assert shown.text == "【清源水务】您好,预计今晚八点恢复供水。"
    message = await reply_of(tencent_hub, sent["id"], lambda m: m.delivery == Delivery.DELIVERED)
    assert message.channel_message_id.endswith(shown.serial_no) and message.attempts == 1
    await agent.close()


async def test_tencents_errors_are_retried_or_not_and_reports_of_failure_are_kept(
        tencent_hub: RunningHub, tencent: StandInTencentSms) -> None:
    agent = await tencent_hub.staff(Role.AGENT, max_chats=5)
    await agent.becomes("ready")
    conversations = {}
    # The last is a fixed line (a caller's, say): the hub takes it for a phone, Tencent sends no SMS to it.
    for number in (mobile(), "1390000" + "4444", "02161234567"):
        await tencent.reply(number, "你好")
        conversations[number] = (await agent.gets_assigned())["id"]
    busy, unreachable, wrong = conversations

    tencent.fail_next("InternalError.Timeout", "请求超时", count=2)  # Tencent's own trouble: tried again
    sent = await agent.replies(conversations[busy], "好的")
    message = await reply_of(tencent_hub, sent["id"], lambda m: m.delivery == Delivery.DELIVERED)
    assert message.attempts == 3 and len(tencent.handsets[busy]) == 1

    sent = await agent.replies(conversations[unreachable], "好的")  # taken, then reported undelivered
    message = await reply_of(tencent_hub, sent["id"], lambda m: m.delivery == Delivery.FAILED)
    assert message.last_error == "短信未送达 (MK:0005 用户手机不在服务区)"

    sent = await agent.replies(conversations[wrong], "好的")  # a number Tencent refuses: not tried again
    message = await reply_of(tencent_hub, sent["id"], lambda m: m.delivery == Delivery.FAILED)
    assert (message.attempts, message.last_error) == (
        1, "腾讯云短信: InvalidParameterValue.IncorrectPhoneNumber 手机号格式错误。")
    await agent.close()


async def test_a_wrong_key_is_refused_by_the_signature_check(own_settings, tencent: StandInTencentSms) -> None:
    hub = await start_hub(own_settings(**tencent_settings(tencent, sms_tencent_secret_key="not-the-key")))
    try:
        tencent.reply_url = f"{hub.url}/sms/tencent/{TOKEN}/reply"
        agent = await hub.staff(Role.AGENT)
        await agent.becomes("ready")
        await tencent.reply(mobile(), "你好")
        conversation = await agent.gets_assigned()
        sent = await agent.replies(conversation["id"], "好的")
        message = await reply_of(hub, sent["id"], lambda m: m.delivery == Delivery.FAILED)
        assert message.last_error.startswith("腾讯云短信: AuthFailure.SignatureFailure")
        assert not tencent.handsets
        await agent.close()
    finally:
        await hub.runner.cleanup()


async def test_the_web_hooks_refuse_a_wrong_token_and_bad_bodies(tencent_hub: RunningHub) -> None:
    async with aiohttp.ClientSession() as http:
        async def post(path: str, body: object) -> tuple[int, dict]:
            async with http.post(f"{tencent_hub.url}{path}", json=body) as response:
                return response.status, await response.json()

        assert (await post("/sms/tencent/wrong-token/reply", {"mobile": "13900000000", "text": "x", "time": 1}))[0] \
            == 404
        status, body = await post(f"/sms/tencent/{TOKEN}/reply", {"mobile": "13900000000", "text": 5})
        assert (status, body["result"]) == (400, 1)
        status, body = await post(f"/sms/tencent/{TOKEN}/status", {"sid": "x"})  # an object, not an array
        assert (status, body["result"]) == (400, 1)
        async with http.post(f"{tencent_hub.url}/sms/tencent/{TOKEN}/status", data=b"{not json") as response:
            assert response.status == 400
    await asyncio.sleep(0.2)
    async with tencent_hub.hub.sessions() as session:
        stored = await session.scalar(select(Message.id).where(Message.channel == "sms",
                                                                Message.direction == Direction.IN))
        conversations = await session.scalar(select(Conversation.id).where(Conversation.channel == "sms"))
    assert stored is None and conversations is None
