"""The real bot behind the hub: the trained Rasa model and the action server, started by the hub itself."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.engine import make_url
from wechatpy import parse_message

from channels.base import InboundMessage
from channels.wechat.standin import Simulator
from router.billing import Account, DemoBilling
from router.bot_secrets import actions_secret, rasa_token
from router.companions import HEALTH_TIMEOUT
from router.models import Conversation, ConversationState, Message, Role
from router.net import free_port
from router.settings import PROJECT_ROOT
from tests.channels.wechat.conftest import simulator as wechat_simulator
from tests.conftest import RunningHub, start_hub
from tests.support.actors import ActionServer, Resident
from tests.support.bot import HUB_SECRETS_IN_THE_ENVIRONMENT, READY_TIMEOUT, companions, rasa_tracker
from workorders.models import WorkOrder

FAQ = yaml.safe_load((PROJECT_ROOT / "bot" / "domain" / "faq.yml").read_text("utf-8"))["responses"]
SLOW_BOT_SECONDS = 8.0
# Starting Rasa (TensorFlow, the model) is part of the first test's set-up: allow for a busy machine.
pytestmark = pytest.mark.timeout(READY_TIMEOUT + 180)


async def bot_says(resident: Resident, timeout: float = 10) -> str:
    return (await resident.hears("bot", timeout=timeout))["text"] or ""


async def handed_to_people(hub: RunningHub, resident: Resident, conversation_id: int, timeout: float) -> None:
    """The resident is told a person will take over, and the conversation waits in the human queue."""
    notice = await resident.hears("system", timeout=timeout)
    assert "人工" in (notice["text"] or "")
    async with hub.hub.sessions() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        assert conversation.state == ConversationState.QUEUED


async def answer_until_order(hub: RunningHub, resident: Resident, conversation_id: int, answers: dict[str, str]) -> str:
    """Answer whatever the repair form asks until the bot gives an order number; returns its last message.
    ``answers`` are tried in order: put the read-back's 确认提交 first, as it names every other question's subject."""
    transcript = []
    for _ in range(8):
        text = await bot_says(resident)
        transcript.append(f"bot: {text}")
        if "工单号" in text:
            return text
        for question, reply in answers.items():
            if question in text:
                await resident.says(reply)
                transcript.append(f"resident: {reply}")
                break
    raise AssertionError("the bot never gave an order number:\n" + "\n".join(transcript) + "\n"
                         + await rasa_tracker(hub, conversation_id))


@pytest.mark.parametrize(("typed", "phone"), [
    ("13812345678", "13812345678"),
    ("１３８－１２３４－５６７８", "13812345678"),  # full-width, with dashes
    ("0571-8765 4321", "0571-87654321"),  # a landline of another city
])
async def test_a_leak_report_becomes_a_work_order(bot_hub, http, typed: str, phone: str) -> None:
    resident = await Resident(http, bot_hub.url).connect()
    said = await resident.says("清源路18号门口马路上在冒水,水很大")
    final = await answer_until_order(bot_hub, resident, said["conversation_id"], {
        "确认提交": "确认", "位置": "路面", "地址": "清源路18号", "电话": typed, "描述": "马路中间冒水,已经流了半小时"})
    number = final.split("工单号 ", 1)[1][:15]
    async with bot_hub.hub.sessions() as session:
        order = await session.scalar(select(WorkOrder).where(WorkOrder.number == number))
    assert order is not None, final
    assert (order.source, order.conversation_id, order.contact_phone) == ("bot", said["conversation_id"], phone)
    assert order.custom_fields == {"leak_location": "路面"} and order.category.code == "leak_repair"
    assert "清源路18号" in (order.address or "")
    await resident.close()


async def test_a_known_number_and_a_shared_location_fill_the_report(bot_hub, http) -> None:
    """A channel that knows the caller's number (SMS, voice) and a location message (WeChat) spare questions."""
    resident = await Resident(http, bot_hub.url).connect()
    visitor = bot_hub.hub.adapters["webchat"].visitor_of(resident.token)  # type: ignore[attr-defined]
    assert visitor is not None

    async def send(text: str | None, **fields: Any) -> dict[str, Any]:
        result = await bot_hub.hub.ingest(InboundMessage(
            channel="webchat", external_id=visitor, channel_message_id=str(uuid.uuid4()), text=text,
            phone="13912345678", **fields))
        return {"conversation_id": result.conversation_id}

    said = await send("我家停水了,整栋楼都没有水")
    place = {"lat": 31.3862, "lng": 120.9808, "label": "昆山市玉山镇前进东路88号"}
    questions = []
    for _ in range(6):
        text = await bot_says(resident)
        questions.append(text)
        if "工单号" in text:
            break
        if "确认提交" in text:  # the read-back, which names the other questions' subjects too
            await send("确认")
        elif "范围" in text:
            await send("整栋")
        elif "地址" in text:
            await send(None, type="location", payload={"location": place})
        elif "描述" in text:
            await send("从早上八点开始没水的")
    assert not any("联系电话" in q for q in questions), questions
    assert "工单号" in questions[-1], [*questions, await rasa_tracker(bot_hub, said["conversation_id"])]
    number = questions[-1].split("工单号 ", 1)[1][:15]
    async with bot_hub.hub.sessions() as session:
        order = await session.scalar(select(WorkOrder).where(WorkOrder.number == number))
    assert order is not None
    assert (order.contact_phone, order.address, order.lat, order.lng) == (
        "13912345678", place["label"], place["lat"], place["lng"])
    assert order.custom_fields == {"scope": "整栋"} and order.category.code == "no_water"
    await resident.close()


async def demo_account_with_arrears() -> tuple[str, str, Account]:
    """A demo account with arrears nobody has linked yet (random, as the bot hub is shared), and its phone."""
    billing = DemoBilling()
    while True:
        number = f"3{secrets.randbelow(10**7):07d}"
        account, phone = await billing.account(number), billing.phone(number)
        if account is not None and phone is not None and account.arrears > 0:
            return number, phone, account


def discloses(text: str, account: Account) -> bool:
    return account.holder in text or account.address in text or f"{account.arrears:.2f}" in text


async def test_an_account_not_linked_to_the_resident_is_shown_only_after_the_phones_last_four(bot_hub,
                                                                                              http) -> None:
    number, phone, account = await demo_account_with_arrears()
    wrong = f"{(int(phone[-4:]) + 1) % 10000:04d}"
    resident = await Resident(http, bot_hub.url).connect()
    said = await resident.says(f"户号{number}欠多少钱")
    question = await bot_says(resident)
    assert "后四位" in question and not discloses(question, account), question

    await resident.says(wrong)
    refused = await bot_says(resident)
    assert "不符" in refused and not discloses(refused, account), [
        refused, await rasa_tracker(bot_hub, said["conversation_id"])]

    await resident.says("查一下我家水费")
    assert "户号" in await bot_says(resident)
    await resident.says(number)
    assert "后四位" in await bot_says(resident)
    await resident.says(f"尾号{phone[-4:]}")
    answer = await bot_says(resident)
    assert answer.startswith(f"户号 {number}({account.holder},{account.address})"), answer
    assert f"当前欠费 {account.arrears:.2f} 元" in answer, answer

    # Linked now: the same resident is answered at once, in this chat and the next.
    await resident.says(f"户号{number}欠多少钱")
    assert (await bot_says(resident)).startswith(f"户号 {number}")
    await resident.close()


async def test_five_wrong_tries_hand_the_resident_to_a_person_and_stop_the_lookups(bot_hub, http) -> None:
    number, phone, account = await demo_account_with_arrears()
    resident = await Resident(http, bot_hub.url).connect()
    for attempt in range(5):
        said = await resident.says(f"户号{number}欠多少钱")
        assert "后四位" in await bot_says(resident)
        await resident.says(f"{(int(phone[-4:]) + 1 + attempt) % 10000:04d}")
        reply = await bot_says(resident)
        assert not discloses(reply, account), reply
    assert "次数过多" in reply and "人工" in reply, [reply, await rasa_tracker(bot_hub, said["conversation_id"])]
    await handed_to_people(bot_hub, resident, said["conversation_id"], timeout=20)

    # The action server's next lookup for this resident is refused, even with the right digits.
    answer = await (await ActionServer.of(bot_hub, http)).account(said["conversation_id"], number, phone[-4:])
    assert answer == {"found": False, "verified": False, "blocked": True, "account": None}
    await resident.close()


async def test_an_orders_progress_is_told_only_to_its_resident(bot_hub, http) -> None:
    agent = await bot_hub.staff(Role.AGENT, listen=False)
    owner = await Resident(http, bot_hub.url).connect()
    stranger = await Resident(http, bot_hub.url).connect()
    said = await owner.says("你好")
    await bot_says(owner)
    order = await agent.call("POST", "/api/workorders", {
        "category": "leak_repair", "title": "水表井漏水", "description": "楼下水表井一直在冒水",
        "custom_fields": {"leak_location": "水表井"}, "contact_phone": "13812345678",
        "conversation_id": said["conversation_id"]}, expect=201)
    admin = await bot_hub.staff(Role.ADMIN, listen=False)
    department = await admin.call("POST", "/api/departments", {"name": f"抢修中心-{uuid.uuid4().hex[:6]}"},
                                  expect=201)
    await admin.close()
    order = await agent.call("POST", f"/api/workorders/{order['id']}/transitions",
                             {"action": "dispatch", "department_id": department["id"]})
    assert order["department"]["name"] == department["name"]

    await stranger.says(f"{order['number']} 现在到哪一步了")
    told = await bot_says(stranger)
    assert "已登记" in told and order["state_label"] not in told and department["name"] not in told, told
    await stranger.says(f"{order['number']} 手机尾号0000")
    refused = await bot_says(stranger)
    assert "不符" in refused and order["state_label"] not in refused and department["name"] not in refused, refused
    await stranger.says(f"{order['number']} 我是报修人,手机尾号5678,到哪一步了")  # the phone left on the order
    assert f"处理部门:{department['name']}" in await bot_says(stranger)

    await owner.says(f"{order['number']} 现在到哪一步了")
    progress = await bot_says(owner)
    assert progress.startswith(f"工单 {order['number']}(漏水报修):{order['state_label']}"), progress
    assert f"处理部门:{department['name']}" in progress
    await agent.close()
    await owner.close()
    await stranger.close()


async def test_a_question_gets_its_answer(bot_hub, http) -> None:
    resident = await Resident(http, bot_hub.url).connect()
    await resident.says("阶梯水价是怎么收费的")
    assert await bot_says(resident) == FAQ["utter_faq/tiered_price"][0]["text"]
    await resident.close()


@pytest.mark.parametrize(("plain", "as_typed"), [
    ("阶梯水价是怎么收费的", "階梯水價是怎麼收費的"),
    ("阶梯水价是怎么收费的", "阶梯水价是怎么收费的？？？😭😭"),
    ("我家停水了吗", "我家停水了嗎😡😡！！！"),
    ("水表井漏水", "水錶井漏水"),
    ("账单查询", "帳單查詢"),
    ("怎么缴水费", "怎麼繳水費"),
    ("营业厅几点关门", "營業廳幾點關門"),
])
async def test_traditional_characters_and_emoji_get_the_answer_of_the_plain_question(bot_hub, http, plain: str,
                                                                                      as_typed: str) -> None:
    """The bot is asked the normalised text; the conversation keeps what the resident typed."""
    answers = []
    for text in (plain, as_typed):
        resident = await Resident(http, bot_hub.url).connect()
        said = await resident.says(text)
        answers.append(await bot_says(resident))
        async with bot_hub.hub.sessions() as session:
            stored = await session.get(Message, said["id"])
        assert stored is not None and stored.text == text
        await resident.close()
    assert answers[0] and answers[1] == answers[0], answers


async def test_asking_for_a_person_queues_the_chat_and_the_bot_goes_quiet(bot_hub, http) -> None:
    resident = await Resident(http, bot_hub.url).connect()
    said = await resident.says("转人工")
    await handed_to_people(bot_hub, resident, said["conversation_id"], timeout=20)
    await resident.says("你好,请问有人吗")
    with pytest.raises(AssertionError, match="no matching frame"):
        await resident.hears("bot", timeout=4)  # the bot stays silent once a person is to take over
    await resident.close()


@pytest.mark.timeout(HEALTH_TIMEOUT + READY_TIMEOUT + 60)
async def test_rasa_killed_mid_conversation_hands_the_resident_to_people(bot_hub, http) -> None:
    resident = await Resident(http, bot_hub.url).connect()
    await resident.says("你好")
    assert await bot_says(resident)
    rasa = companions(bot_hub).rasa
    assert rasa.process is not None
    restarts = rasa.restarts
    os.killpg(rasa.process.pid, signal.SIGKILL)
    await asyncio.sleep(0.5)
    said = await resident.says("我家水表在漏水")
    await handed_to_people(bot_hub, resident, said["conversation_id"], timeout=10)
    # The hub starts Rasa again (and once more should that start hang); new residents meet the bot once it is back.
    deadline = time.monotonic() + HEALTH_TIMEOUT + READY_TIMEOUT
    while not (rasa.restarts > restarts and rasa.healthy.is_set()):
        assert time.monotonic() < deadline, "Rasa was not restarted"
        await asyncio.sleep(0.5)
    newcomer = await Resident(http, bot_hub.url).connect()
    await newcomer.says("你好")
    assert await bot_says(newcomer)
    await resident.close()
    await newcomer.close()


@pytest.mark.parametrize("text", [
    "😀😀😀", "<script>alert(1)</script>", "hello 我想问下 water bill 怎么 pay", "漏水了" * 1666 + "水水", "？？？",
    "a", "<p>家里<b>没水</b>了</p>",
])
async def test_odd_messages_get_an_answer_not_an_error(bot_hub, http, text: str) -> None:
    resident = await Resident(http, bot_hub.url).connect()
    await resident.says(text)
    reply = await resident.expect(lambda f: f["type"] == "message" and f["message"]["author"] in {"bot", "system"},
                                  timeout=20)
    assert reply["message"]["text"] or reply["message"]["payload"]
    await resident.close()


def test_the_tracker_store_is_the_hubs_database(bot_hub) -> None:
    endpoints = Path(bot_hub.hub.settings.var_dir) / "bot" / "endpoints.yml"
    store = yaml.safe_load(endpoints.read_text())["tracker_store"]
    assert store["type"] == "SQL"
    if bot_hub.hub.settings.is_sqlite:
        assert store["db"] == str(Path(bot_hub.hub.settings.effective_database_url.split(":///", 1)[1]).resolve())
    else:
        assert store["dialect"] == "postgresql" and store["db"] in bot_hub.hub.settings.effective_database_url
    assert oct(endpoints.stat().st_mode & 0o777) == "0o600"


async def test_an_empty_message_gets_an_answer(bot_hub, http) -> None:
    """Channels whose messages may be empty (an SMS with only spaces, a WeChat event) still get a reply."""
    resident = await Resident(http, bot_hub.url).connect()
    visitor = bot_hub.hub.adapters["webchat"].visitor_of(resident.token)  # type: ignore[attr-defined]
    await bot_hub.hub.ingest(InboundMessage(channel="webchat", external_id=visitor or "",
                                            channel_message_id=str(uuid.uuid4()), text="   "))
    reply = await resident.expect(lambda f: f["type"] == "message" and f["message"]["author"] in {"bot", "system"},
                                  timeout=20)
    assert reply["message"]["text"] or reply["message"]["payload"]
    await resident.close()


async def replace_actions(hub: RunningHub, *, argv: list[str] | None = None, hub_url: str | None = None,
                          wait_healthy: bool = True) -> None:
    """Kill the action server; its supervisor starts ``argv`` (default: the same) calling the hub at ``hub_url``."""
    actions = companions(hub).actions
    assert actions.process is not None
    restarts, killed = actions.restarts, actions.process
    if argv is not None:
        actions.argv = argv
    if hub_url is not None:
        actions.env = {**actions.env, "HUB_URL": hub_url}
    os.killpg(killed.pid, signal.SIGKILL)
    deadline = time.monotonic() + READY_TIMEOUT
    while not (actions.restarts > restarts and actions.process is not killed
               and (actions.healthy.is_set() or not wait_healthy)):
        assert time.monotonic() < deadline, "the action server was not restarted"
        await asyncio.sleep(0.2)


async def test_the_hub_unreachable_from_the_actions_hands_the_resident_to_people(bot_hub, http) -> None:
    """The action server cannot reach the hub's API: the bot apologises and a person takes over."""
    hub_url = companions(bot_hub).actions.env["HUB_URL"]
    await replace_actions(bot_hub, hub_url=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    try:
        resident = await Resident(http, bot_hub.url).connect()
        said = await resident.says("户号30005678欠多少钱")
        assert "系统暂时无法办理" in await bot_says(resident)
        await handed_to_people(bot_hub, resident, said["conversation_id"], timeout=20)
        await resident.close()
    finally:
        await replace_actions(bot_hub, hub_url=hub_url)
    newcomer = await Resident(http, bot_hub.url).connect()
    await newcomer.says("户号30005678欠多少钱")
    assert "后四位" in await bot_says(newcomer)  # the hub answered: its account is not the newcomer's
    await newcomer.close()


async def test_the_action_server_down_hands_the_resident_to_people(bot_hub, http) -> None:
    """Rasa cannot run its actions: whatever it manages to say, the resident ends with a person, not silence."""
    argv = companions(bot_hub).actions.argv
    # In its place a process that never answers: the action server stays down for as long as the test needs.
    await replace_actions(bot_hub, argv=["sleep", "600"], wait_healthy=False)
    try:
        resident = await Resident(http, bot_hub.url).connect()
        said = await resident.says("楼下马路在冒水,地址是幸福小区8栋")
        await handed_to_people(bot_hub, resident, said["conversation_id"], timeout=30)
        await resident.close()
    finally:
        await replace_actions(bot_hub, argv=argv)


def wechat_text(simulator: Simulator, openid: str, text: str) -> str:
    return simulator.xml(openid, "text", {"Content": text}, msg_id=secrets.randbits(63))


async def wechat_messages(hub: RunningHub, openid: str, author: str) -> list[Message]:
    async with hub.hub.sessions() as session:
        return list(await session.scalars(
            select(Message).join(Conversation, Conversation.id == Message.conversation_id)
            .where(Conversation.channel == "wechat", Conversation.external_id == openid, Message.author == author)))


@pytest.mark.parametrize("mode", ["plain", "safe"])
async def test_a_wechat_question_gets_the_bots_answer_as_the_passive_reply(bot_hub, wechat_api, http,
                                                                          mode: str) -> None:
    openid = "o" + uuid.uuid4().hex[:27]
    simulator = wechat_simulator(http, bot_hub.url, mode)
    started = time.monotonic()
    reply = parse_message(await simulator.post(wechat_text(simulator, openid, "阶梯水价是怎么收费的")))
    assert time.monotonic() - started < 4.8  # inside WeChat's five seconds
    assert reply.type == "text" and reply.target == openid
    assert reply.content == FAQ["utter_faq/tiered_price"][0]["text"]
    await asyncio.sleep(0.5)
    assert [m for m in wechat_api[0].sent if m["touser"] == openid] == []  # answered once, passively
    assert simulator.attempts == 1


async def test_a_wechat_resident_answers_the_offered_choices_by_their_number(bot_hub, wechat_api, http) -> None:
    """WeChat has no buttons: they are listed with numbers, and the number reaches the bot as the button's payload."""
    openid = "o" + uuid.uuid4().hex[:27]
    simulator = wechat_simulator(http, bot_hub.url, "plain")
    offer = parse_message(await simulator.post(wechat_text(simulator, openid, "我想办理开户")))
    assert offer.type == "text"
    [asking] = [m for m in await wechat_messages(bot_hub, openid, "bot") if (m.payload or {}).get("buttons")]
    titles = [b["title"] for b in asking.payload["buttons"]]
    assert offer.content.endswith("回复数字即可选择:\n" + "\n".join(f"{n}. {t}" for n, t in enumerate(titles, 1)))

    number = titles.index("过户") + 1
    reply = parse_message(await simulator.post(wechat_text(simulator, openid, f"{number}")))
    deadline = time.monotonic() + 15
    told = reply.content if reply.type == "text" else ""
    while "工单号" not in told and time.monotonic() < deadline:  # a slow answer follows as a customer-service one
        await asyncio.sleep(0.2)
        told = "\n".join(m.text or "" for m in await wechat_messages(bot_hub, openid, "bot"))
    assert "过户" in told and "工单号" in told, told
    async with bot_hub.hub.sessions() as session:
        [order] = (await session.scalars(
            select(WorkOrder).join(Conversation, Conversation.id == WorkOrder.conversation_id)
            .where(Conversation.external_id == openid))).all()
    assert (order.custom_fields["application_type"], order.source) == ("过户", "bot")


@pytest.fixture
async def slow_bot_hub(bot_hub) -> AsyncIterator[RunningHub]:
    """A second hub on the same database whose bot answers after 8 s (a proxy in front of the real Rasa)."""
    rasa_url = bot_hub.hub.settings.rasa_url

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        if request.method == "POST":
            await asyncio.sleep(SLOW_BOT_SECONDS)
        async with aiohttp.ClientSession() as client, client.request(
                request.method, rasa_url + request.path_qs, data=body,
                headers={"Content-Type": request.content_type,
                         "Authorization": request.headers.get("Authorization", "")}) as answer:
            return web.Response(body=await answer.read(), status=answer.status, content_type=answer.content_type)

    proxy = web.Application()
    proxy.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(proxy, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    slow = await start_hub(bot_hub.hub.settings.model_copy(update={
        "bot_autostart": False, "rasa_url": f"http://127.0.0.1:{port}", "bot_timeout_seconds": 15.0,
        "wechat_push_menu": False}))
    try:
        yield slow
    finally:
        await slow.runner.cleanup()
        await runner.cleanup()


async def test_a_bot_that_takes_eight_seconds_still_answers_once_through_retries(slow_bot_hub, wechat_api,
                                                                                  http) -> None:
    openid = "o" + uuid.uuid4().hex[:27]
    simulator = wechat_simulator(http, slow_bot_hub.url, "safe", retries=0)
    xml = wechat_text(simulator, openid, "阶梯水价是怎么收费的")

    async def delivery(after: float) -> tuple[str, float]:
        """WeChat's first delivery, and its retries: the same message, a second apart."""
        await asyncio.sleep(after)
        started = time.monotonic()
        return await simulator.post(xml), time.monotonic() - started

    answers = await asyncio.gather(*(delivery(after) for after in (0, 1, 2, 3)))
    assert [text for text, _ in answers] == ["success"] * 4  # the bot was not ready in time: no passive reply
    assert all(took < 5 for _, took in answers)  # each delivery answered within WeChat's limit
    deadline = time.monotonic() + 15
    while not [m for m in wechat_api[0].sent if m["touser"] == openid]:
        assert time.monotonic() < deadline, "the bot's late answer never reached WeChat"
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)  # time for a second answer, were there one
    (answer,) = [m for m in wechat_api[0].sent if m["touser"] == openid]  # exactly one answer
    assert answer["api"] == "custom" and answer["text"]["content"] == FAQ["utter_faq/tiered_price"][0]["text"]
    assert len(await wechat_messages(slow_bot_hub, openid, "resident")) == 1  # stored once
    assert len(await wechat_messages(slow_bot_hub, openid, "bot")) == 1


def listening_addresses(port: int) -> set[str]:
    """The local addresses of the sockets listening on ``port`` (``ss``: the kernel's own account)."""
    listing = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return {line.split()[3].rsplit(":", 1)[0] for line in listing.splitlines()}


def non_loopback_addresses() -> list[str]:
    return subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=True).stdout.split()


def process_environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


def process_command_line(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")


async def orders_titled(hub: RunningHub, words: str) -> list[WorkOrder]:
    async with hub.hub.sessions() as session:
        return list(await session.scalars(select(WorkOrder).where(WorkOrder.title.contains(words))))


async def test_the_action_server_runs_actions_only_for_rasa(bot_hub, http) -> None:
    """Whoever reaches the action server's port cannot file a work order through it: only Rasa's secret opens it."""
    settings = bot_hub.hub.settings
    marker = f"伪造投诉{uuid.uuid4().hex}"
    call = {"next_action": "action_record_complaint", "sender_id": "intruder", "version": "3.6.21", "domain": {},
            "tracker": {"sender_id": "intruder", "slots": {}, "events": [], "paused": False,
                        "latest_message": {"text": marker, "metadata": {}}, "followup_action": None,
                        "active_loop": {}, "latest_action_name": None}}
    base = f"http://{settings.actions_host}:{settings.actions_port}"
    wrong = ["", "Bearer ", "Bearer wrong", f"Bearer {rasa_token(settings.rasa_token, bot_hub.hub.secret_key)}",
             f"Bearer {bot_hub.hub.secret_key}"]
    for authorization in wrong:
        async with http.post(f"{base}/webhook", json=call, headers={"Authorization": authorization}) as response:
            assert response.status == 401, (authorization, await response.text())
        async with http.get(f"{base}/actions", headers={"Authorization": authorization}) as response:
            assert response.status == 401
    async with http.post(f"{base}/webhook", json=call) as response:
        assert response.status == 401
    assert await orders_titled(bot_hub, marker) == []

    secret = actions_secret(settings.actions_secret, bot_hub.hub.secret_key)
    async with http.post(f"{base}/webhook", json=call, headers={"Authorization": f"Bearer {secret}"}) as response:
        assert response.status == 200, await response.text()
    assert len(await orders_titled(bot_hub, marker)) == 1


async def test_rasa_answers_only_the_hub(bot_hub, http) -> None:
    """Rasa's HTTP API and the webhook residents' messages go through both refuse a caller without the token."""
    settings = bot_hub.hub.settings
    base = f"http://127.0.0.1:{settings.rasa_port}"
    token = rasa_token(settings.rasa_token, bot_hub.hub.secret_key)
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", "/status", None), ("GET", "/conversations/1/tracker", None),
        ("POST", "/model/parse", {"text": "我家停水了"}), ("PUT", "/model", {"model_file": "/tmp/x.tar.gz"}),
        ("POST", "/webhooks/rest/webhook", {"sender": "intruder", "message": "我家停水了"})]
    for method, path, body in calls:
        for params, headers in (({}, {}), ({"token": "wrong"}, {"Authorization": "Bearer wrong"})):
            async with http.request(method, base + path, json=body, params=params, headers=headers) as response:
                assert response.status in {401, 403}, (method, path, response.status)
    async with http.get(f"{base}/status", params={"token": token}) as response:
        assert response.status == 200
    async with http.post(f"{base}/webhooks/rest/webhook", json={"sender": f"hub-{uuid.uuid4().hex}",
                                                                "message": "阶梯水价是怎么收费的"},
                         headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 200 and (await response.json())[0]["text"]


async def test_the_bots_processes_listen_on_the_loopback_address_only(bot_hub) -> None:
    settings = bot_hub.hub.settings
    for port in (settings.rasa_port, settings.actions_port):
        assert listening_addresses(port) == {"127.0.0.1"}, port
        for address in non_loopback_addresses():
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((address, port), timeout=2).close()


async def test_the_bots_processes_get_none_of_the_hubs_secrets(bot_hub) -> None:
    """The children's real environment (and command line, which every user sees in ps) holds no hub secret."""
    settings = bot_hub.hub.settings
    secrets_of_the_hub = [*HUB_SECRETS_IN_THE_ENVIRONMENT.values(), bot_hub.hub.secret_key,
                          settings.wechat_app_secret.get_secret_value()]
    password = make_url(settings.effective_database_url).password
    if password:
        secrets_of_the_hub.append(password)
    rasa_secret = rasa_token(settings.rasa_token, bot_hub.hub.secret_key)
    for companion in (companions(bot_hub).rasa, companions(bot_hub).actions):
        assert companion.process is not None
        environment = process_environment(companion.process.pid)
        assert not HUB_SECRETS_IN_THE_ENVIRONMENT.keys() & environment.keys(), companion.name
        assert not [name for name, value in environment.items() if any(s in value for s in secrets_of_the_hub)]
        command_line = process_command_line(companion.process.pid)
        assert rasa_secret not in command_line and "auth-token" not in command_line
