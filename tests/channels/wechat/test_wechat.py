"""The WeChat channel through its real protocol: the stand-in WeChat posts signed (and encrypted) XML to the
hub's callback and serves the API the hub answers through."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
import uuid

import pytest
from sqlalchemy import update
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto

from channels.wechat.messages import CHANNEL
from channels.wechat.standin import Simulator
from router.models import Message, Role
from router.residents import resident_token as resident_token_of
from tests.channels.wechat.conftest import WeChatWorld
from tests.support.files import png_bytes
from tests.support.wechat import APP_ID, FIXTURES, SAMPLE, TOKEN

FIXTURE_OPENID = "oXyZ1234567890abcdefghijklmn"
MODES = ["plain", "compat", "safe"]


def fixture_xml(name: str, openid: str) -> str:
    """A message as WeChat documents it, from a resident of the test's own (with a MsgId of its own)."""
    xml = (FIXTURES / name).read_text("utf-8").replace(FIXTURE_OPENID, openid)
    return re.sub(r"<MsgId>\d+</MsgId>", lambda _: f"<MsgId>{secrets.randbits(63)}</MsgId>", xml)


def new_openid() -> str:
    return "o" + uuid.uuid4().hex[:27]


def test_the_documented_encryption_sample_decrypts() -> None:
    crypto = WeChatCrypto(SAMPLE["token"], SAMPLE["encoding_aes_key"], SAMPLE["app_id"])
    plain = crypto.decrypt_message(SAMPLE["encrypted_xml"], SAMPLE["msg_signature"], SAMPLE["timestamp"],
                                   SAMPLE["nonce"])
    assert plain == SAMPLE["plain_xml"]


async def test_the_server_address_check_echoes_only_for_our_signature(wechat: WeChatWorld) -> None:
    simulator = wechat.simulator("plain")
    query, _ = simulator._signed_query("")
    async with wechat.http.get(f"{wechat.hub.url}/wechat", params={**query, "echostr": "4721983"}) as response:
        assert response.status == 200 and await response.text() == "4721983"
    async with wechat.http.get(f"{wechat.hub.url}/wechat",
                               params={**query, "signature": "0" * 40, "echostr": "4721983"}) as response:
        assert response.status == 403 and (await response.json())["error"]["code"] == "bad_signature"


@pytest.mark.parametrize("mode", MODES)
async def test_every_message_type_is_stored_as_the_resident_sent_it(wechat: WeChatWorld, mode: str) -> None:
    openid = new_openid()
    picture = png_bytes()
    media_id = wechat.standin.add_media(picture, "image/png", "leak.png")
    voice_id = wechat.standin.add_media(b"#!AMR\n" + bytes(200), "audio/amr", "voice.amr")
    simulator = wechat.simulator(mode)
    for name in ["text.xml", "image.xml", "voice_recognition.xml", "video.xml", "location.xml", "link.xml",
                 "event_click.xml"]:
        xml = fixture_xml(name, openid).replace(
            "Fx1mgMediaId_8kQpT3vW2sLzN5rY7uB0cD4eF6gH9iJ1kL3mN5oP7qR9sT1uV3wX", media_id).replace(
            "Fx1voiceMediaId_4cDeF6gHiJ8kLmN0oPqR2sTuV4wXyZ6aBcD8eFgH0iJkL2mN", voice_id)
        assert await simulator.post(xml) == "success"  # people answer here (no bot): acknowledged at once
    stored = await wechat.messages_of(openid, "resident")
    kinds = [(m.type, m.text) for m in stored]
    assert kinds[0] == ("text", "你好，我家楼下水表井一直在冒水，南城街道鸿福路106号")
    assert kinds[1][0] == "image" and kinds[2] == ("voice", "我要报修自来水管漏水")
    assert kinds[3][0] == "file"  # the video: WeChat's media that the hub could not fetch stays a reference
    assert stored[4].type == "location" and stored[4].payload["location"] == {
        "lat": 23.011724, "lng": 113.751862, "label": "广东省东莞市南城街道鸿福路106号"}
    assert stored[5].payload["link"]["url"] == "https://mp.weixin.qq.com/s/FakeFixtureArticle00001"
    assert kinds[6] == ("text", "我要报修")  # the menu's 我要报修 button, as if the resident had written it
    image = stored[1].payload["attachment"]
    assert image["content_type"] == "image/png" and image["size"] == len(picture)  # fetched through media/get
    assert stored[2].payload["attachment"]["content_type"] == "audio/amr"
    assert stored[3].payload["wechat"]["media_id"].startswith("Fx1video")
    # An agent answers the lot, through the customer-service API.
    agent = await wechat.hub.staff(Role.AGENT, listen=False)
    try:
        await agent.claims(stored[0].conversation_id)
        await agent.replies(stored[0].conversation_id, "收到您的照片、语音和位置,已安排抢修")
    finally:
        await agent.close()
    (answer,) = await wechat.standin.wait_sent(1)
    assert answer["touser"] == openid and answer["text"]["content"] == "收到您的照片、语音和位置,已安排抢修"


@pytest.mark.parametrize("mode", ["plain", "safe"])
async def test_events_get_a_welcome_or_a_plain_acknowledgement_and_store_nothing(wechat: WeChatWorld,
                                                                                mode: str) -> None:
    openid = new_openid()
    simulator = wechat.simulator(mode)
    welcome = parse_message(await simulator.post(fixture_xml("event_subscribe.xml", openid)))
    assert welcome.type == "text" and "欢迎关注" in welcome.content and welcome.target == openid
    assert "欢迎关注" in parse_message(await simulator.post(fixture_xml("event_subscribe_scan.xml", openid))).content
    for name in ["event_unsubscribe.xml", "event_view.xml", "event_location.xml"]:
        assert await simulator.post(fixture_xml(name, openid)) == "success"
    assert await wechat.messages_of(openid) == []


async def test_a_bad_signature_is_refused_and_nothing_is_stored(wechat: WeChatWorld) -> None:
    openid = new_openid()
    forged = Simulator(wechat.http, f"{wechat.hub.url}/wechat", "not-the-token", mode="plain")
    with pytest.raises(AssertionError, match="HTTP 403"):
        await forged.post(fixture_xml("text.xml", openid))
    wrong_key = Simulator(wechat.http, f"{wechat.hub.url}/wechat", TOKEN, app_id=APP_ID, mode="safe",
                          encoding_aes_key="A" * 43)  # signs right, encrypts with another account's key
    with pytest.raises(AssertionError, match=r"HTTP (400|403)"):
        await wrong_key.post(fixture_xml("text.xml", openid))
    assert await wechat.messages_of(openid) == []


@pytest.mark.parametrize("body", [
    "<xml><ToUserName>", "not xml at all", "<xml><MsgType><![CDATA[hologram]]></MsgType></xml>",
    "<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;'>]><xml>&b;</xml>",
])
async def test_malformed_or_unknown_xml_with_a_good_signature_is_acknowledged(wechat: WeChatWorld,
                                                                             body: str) -> None:
    assert await wechat.simulator("plain").post(body) == "success"
    async with wechat.http.get(f"{wechat.hub.url}/readyz") as response:
        assert response.status == 200  # the hub is fine


async def test_retries_of_one_message_store_it_once(wechat: WeChatWorld) -> None:
    openid = new_openid()
    xml = fixture_xml("text.xml", openid)
    simulator = wechat.simulator("safe")
    answers = await asyncio.gather(*(simulator.post(xml) for _ in range(4)))  # the first and three retries
    assert answers == ["success"] * 4
    assert len(await wechat.messages_of(openid, "resident")) == 1


async def test_two_residents_sending_the_same_msg_id_each_get_their_own_message(wechat: WeChatWorld) -> None:
    """A MsgId names a message only together with its sender: one resident's id never returns another's text."""
    simulator = wechat.simulator("safe")
    first, second = new_openid(), new_openid()
    msg_id = secrets.randbits(63)
    mine = simulator.xml(first, "text", {"Content": "小区停水了"}, msg_id=msg_id)
    theirs = simulator.xml(second, "text", {"Content": "水管爆了"}, msg_id=msg_id)
    assert await asyncio.gather(simulator.post(mine), simulator.post(theirs)) == ["success"] * 2
    assert await simulator.post(theirs) == "success"  # WeChat retrying the second resident's message
    assert [m.text for m in await wechat.messages_of(first, "resident")] == ["小区停水了"]
    assert [m.text for m in await wechat.messages_of(second, "resident")] == ["水管爆了"]


async def test_an_agent_reply_and_picture_reach_the_resident_through_the_customer_service_api(
        wechat: WeChatWorld) -> None:
    openid = new_openid()
    await wechat.simulator("safe").post(fixture_xml("text.xml", openid))
    conversation_id = (await wechat.messages_of(openid))[0].conversation_id
    agent = await wechat.hub.staff(Role.AGENT)
    try:
        await agent.claims(conversation_id)
        await agent.replies(conversation_id, "您好,抢修人员半小时内到达")
        await agent.upload(f"/api/conversations/{conversation_id}/attachments", "现场照片.png", png_bytes())
        text, picture = await wechat.standin.wait_sent(2)
    finally:
        await agent.close()
    assert text == {"api": "custom", "touser": openid, "msgtype": "text",
                    "text": {"content": "您好,抢修人员半小时内到达"}}
    assert picture["msgtype"] == "image" and picture["image"]["media_id"] in wechat.standin.media


async def test_a_reply_sent_while_the_residents_next_message_is_being_stored_still_reaches_them(
        wechat: WeChatWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a callback that waits for the bot may carry a reply: one that is storing a message for people to
    answer ends with ``success``, and a reply handed to it was lost."""
    openid, simulator = new_openid(), wechat.simulator("safe")
    await simulator.post(fixture_xml("text.xml", openid))
    conversation_id = (await wechat.messages_of(openid))[0].conversation_id
    hub = wechat.hub.hub
    storing, stored = asyncio.Event(), asyncio.Event()
    store = hub.ingest_or_journal

    async def slowly(inbound: object) -> object:
        storing.set()
        await stored.wait()
        return await store(inbound)

    monkeypatch.setattr(hub, "ingest_or_journal", slowly)
    agent = await wechat.hub.staff(Role.AGENT, listen=False)
    try:
        await agent.claims(conversation_id)
        callback = asyncio.create_task(simulator.post(fixture_xml("text.xml", openid)))
        await storing.wait()
        await agent.replies(conversation_id, "抢修人员已出发")
        await asyncio.sleep(1)  # the reply goes out while the callback is still storing
        stored.set()
        assert await callback == "success"
        [sent] = await wechat.standin.wait_sent(1)
    finally:
        await agent.close()
    assert sent["text"] == {"content": "抢修人员已出发"}


async def wait_delivery(wechat: WeChatWorld, openid: str, states: set[str], within: float = 15) -> list:
    deadline = time.monotonic() + within
    while True:
        outbound = [m for m in await wechat.messages_of(openid) if (m.direction == "out" and m.author != "system")
                    or (m.payload and "work_order" in (m.payload or {}))]
        if outbound and all(m.delivery in states for m in outbound):
            return outbound
        assert time.monotonic() < deadline, [(m.text, m.delivery, m.last_error) for m in outbound]
        await asyncio.sleep(0.1)


async def agent_answers(wechat: WeChatWorld, openid: str, text: str) -> None:
    await wechat.simulator("plain").post(fixture_xml("text.xml", openid))
    conversation_id = (await wechat.messages_of(openid))[0].conversation_id
    agent = await wechat.hub.staff(Role.AGENT, listen=False)
    try:
        await agent.claims(conversation_id)
        await agent.replies(conversation_id, text)
    finally:
        await agent.close()


async def test_an_expired_token_is_replaced_and_the_message_still_goes(wechat: WeChatWorld) -> None:
    first, second = new_openid(), new_openid()
    await agent_answers(wechat, first, "第一条")
    await wechat.standin.wait_sent(1)
    wechat.standin.expire_tokens()  # two hours later
    await agent_answers(wechat, second, "第二条")
    sent = await wechat.standin.wait_sent(2)
    assert [m["text"]["content"] for m in sent] == ["第一条", "第二条"]
    assert wechat.standin.token_requests == 2
    await wait_delivery(wechat, second, {"sent"})


async def test_wechat_busy_is_retried_and_nothing_is_lost(wechat: WeChatWorld) -> None:
    openid = new_openid()
    wechat.standin.fail_next("/cgi-bin/message/custom/send", -1, times=2)
    await agent_answers(wechat, openid, "系统繁忙也要送到")
    sent = await wechat.standin.wait_sent(1)
    assert sent[0]["text"]["content"] == "系统繁忙也要送到"
    (reply,) = await wait_delivery(wechat, openid, {"sent"})
    assert reply.attempts == 3


@pytest.mark.parametrize("wechat", [{"wechat_api_timeout_seconds": 0.5}], indirect=True)
async def test_a_slow_wechat_is_retried_once_it_answers_in_time(wechat: WeChatWorld) -> None:
    openid = new_openid()
    wechat.standin.delay = 1.0
    await agent_answers(wechat, openid, "慢也要送到")
    await asyncio.sleep(1.5)
    wechat.standin.delay = 0.0
    (reply,) = await wait_delivery(wechat, openid, {"sent"})
    assert reply.attempts >= 2
    assert [m["text"]["content"] for m in wechat.standin.sent].count("慢也要送到") >= 1


@pytest.mark.parametrize("wechat", [{"wechat_fallback_template_id": "TPL-REPLY-0001"}], indirect=True)
async def test_outside_the_48_hour_window_a_reply_goes_as_a_template_message(wechat: WeChatWorld) -> None:
    openid = new_openid()
    wechat.standin.window_closed.add(openid)
    await agent_answers(wechat, openid, "您的水表已更换完毕")
    (template,) = await wechat.standin.wait_sent(1)
    assert template["api"] == "template" and template["template_id"] == "TPL-REPLY-0001"
    assert template["data"]["thing3"]["value"] == "您的水表已更换完毕"


async def test_outside_the_window_without_a_template_the_agent_sees_why(wechat: WeChatWorld) -> None:
    openid = new_openid()
    wechat.standin.window_closed.add(openid)
    await agent_answers(wechat, openid, "送不到的消息")
    (reply,) = await wait_delivery(wechat, openid, {"failed"})
    assert "48小时" in reply.last_error and "45015" in reply.last_error


async def test_two_hub_processes_refresh_the_token_once(wechat: WeChatWorld) -> None:
    from tests.conftest import start_hub

    other = await start_hub(wechat.hub.hub.settings.model_copy(update={"wechat_push_menu": False}))
    try:
        adapters = [wechat.hub.hub.adapters["wechat"], other.hub.adapters["wechat"]]
        tokens = await asyncio.gather(*(a.api.access_token() for a in adapters for _ in range(5)))
    finally:
        await other.runner.cleanup()
    assert len(set(tokens)) == 1
    assert wechat.standin.token_requests == 1


async def test_the_menu_is_published_when_the_hub_starts(wechat: WeChatWorld) -> None:
    deadline = time.monotonic() + 10
    while not wechat.standin.menus:
        assert time.monotonic() < deadline, "no menu/create"
        await asyncio.sleep(0.1)
    (menu,) = wechat.standin.menus
    assert [b["name"] for b in menu["button"]] == ["我要报修", "查询", "人工服务"]
    assert menu["button"][1]["sub_button"][1]["url"] == f"{wechat.hub.url}/notices"
    assert menu["button"][2]["sub_button"][1] == {"type": "view", "name": "请给我回电",
                                                  "url": f"{wechat.hub.url}/wechat/callback"}


@pytest.mark.parametrize("wechat", [{"wechat_progress_template_id": "TPL-ORDER-0001"}], indirect=True)
async def test_a_work_order_change_reaches_the_resident_as_a_template_message(wechat: WeChatWorld) -> None:
    openid = new_openid()
    order = await wechat.resident_with_an_order(openid)
    (template,) = await wechat.standin.wait_sent(1)
    assert template["api"] == "template" and template["template_id"] == "TPL-ORDER-0001"
    assert template["touser"] == openid and template["data"]["character_string1"]["value"] == order["number"]
    assert template["url"].endswith("/wechat/orders")
    # WeChat reports the template's fate later; the hub records it on the message.
    simulator = wechat.simulator("safe")
    finished = fixture_xml("event_templatesendjobfinish.xml", openid).replace(
        "3487542469355618313", str(template["msgid"]))
    assert await simulator.post(finished) == "success"
    (notice,) = await wait_delivery(wechat, openid, {"delivered"})
    assert notice.payload["work_order"]["number"] == order["number"]


@pytest.mark.parametrize("wechat", [{"wechat_progress_template_id": "TPL-ORDER-0001"}], indirect=True)
async def test_a_template_report_that_overtakes_the_recording_of_its_send_still_counts(wechat: WeChatWorld) -> None:
    """WeChat may report a template's fate before the hub has recorded the send (and WeChat's msgid)."""
    openid = new_openid()
    await wechat.resident_with_an_order(openid)
    (template,) = await wechat.standin.wait_sent(1)
    (notice,) = await wait_delivery(wechat, openid, {"sent"})
    recorded = notice.channel_message_id
    async with wechat.hub.hub.sessions.begin() as session:  # as it is before the send's outcome is recorded
        await session.execute(update(Message).where(Message.id == notice.id).values(channel_message_id=None))
    finished = fixture_xml("event_templatesendjobfinish.xml", openid).replace(
        "3487542469355618313", str(template["msgid"]))
    assert await wechat.simulator("safe").post(finished) == "success"
    await asyncio.sleep(0.3)
    async with wechat.hub.hub.sessions.begin() as session:  # the outcome is recorded after the report
        await session.execute(update(Message).where(Message.id == notice.id).values(channel_message_id=recorded))
    (notice,) = await wait_delivery(wechat, openid, {"delivered"}, within=10)
    assert notice.delivered_at is not None


async def test_the_customer_service_quota_is_shown_to_the_agent_and_not_retried(wechat: WeChatWorld) -> None:
    openid = new_openid()
    wechat.standin.fail_next("/cgi-bin/message/custom/send", 45047)
    await agent_answers(wechat, openid, "第二十一条")
    (reply,) = await wait_delivery(wechat, openid, {"failed"})
    assert "上限" in reply.last_error and reply.attempts == 1


async def test_a_document_goes_as_a_link_only_its_resident_can_open(wechat: WeChatWorld) -> None:
    openid = new_openid()
    await wechat.simulator("safe").post(fixture_xml("text.xml", openid))
    conversation_id = (await wechat.messages_of(openid))[0].conversation_id
    document = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<<>>\n%%EOF\n"
    agent = await wechat.hub.staff(Role.AGENT, listen=False)
    try:
        await agent.claims(conversation_id)
        await agent.upload(f"/api/conversations/{conversation_id}/attachments", "缴费须知.pdf", document)
    finally:
        await agent.close()
    (sent,) = await wechat.standin.wait_sent(1)
    link = sent["text"]["content"].split("缴费须知.pdf: ", 1)[1]
    assert link.startswith(f"{wechat.hub.url}/files/") and "?s=" in link  # a link to this one file, for a day
    async with wechat.http.get(link) as response:  # WeChat's browser: no staff session, only the link
        assert response.status == 200 and await response.read() == document
    async with wechat.http.get(link[:-4] + "AAAA") as response:
        assert response.status == 404
    async with wechat.http.get(link.split("?", 1)[0]) as response:
        assert response.status == 404
    token = resident_token_of(wechat.hub.hub.secret_key, CHANNEL, openid)  # names the resident, not a file
    async with wechat.http.get(link.split("?", 1)[0], params={"t": token}) as response:
        assert response.status == 404
