"""The real bot behind the hub: the trained Rasa model and the action server, started by the hub itself."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
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
from wechatpy import parse_message

from channels.base import InboundMessage
from channels.wechat.standin import Simulator, StandInWeChat
from router.billing import DemoBilling
from router.companions import COMPANIONS, HEALTH_TIMEOUT, Companions
from router.models import Conversation, ConversationState, Message
from router.settings import PROJECT_ROOT
from tests.channels.wechat.conftest import simulator as wechat_simulator
from tests.conftest import RunningHub, start_hub
from tests.support.actors import Resident
from tests.support.services import free_port
from tests.support.wechat import running_standin, wechat_settings
from workorders.models import WorkOrder

MODEL = PROJECT_ROOT / "bot" / "models" / "current.tar.gz"
FAQ = yaml.safe_load((PROJECT_ROOT / "bot" / "domain" / "faq.yml").read_text("utf-8"))["responses"]
READY_TIMEOUT = 240.0
SLOW_BOT_SECONDS = 8.0
# Starting Rasa (TensorFlow, the model) is part of the first test's set-up: allow for a busy machine.
pytestmark = pytest.mark.timeout(READY_TIMEOUT + 180)


async def wait_until_healthy(*urls: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        for url in urls:
            while True:
                try:
                    async with http.get(url) as response:
                        if response.status == 200:
                            break
                except (aiohttp.ClientError, TimeoutError):
                    pass
                assert time.monotonic() < deadline, f"{url} not healthy after {READY_TIMEOUT:.0f} s"
                await asyncio.sleep(0.5)


@pytest.fixture(scope="module")
async def wechat_api() -> AsyncIterator[tuple[StandInWeChat, str]]:
    async with running_standin() as running:
        yield running


@pytest.fixture(scope="module")
async def bot_hub(make_settings, wechat_api) -> AsyncIterator[RunningHub]:
    """A hub that starts the real bot beside itself (tracker store in the hub's database), with WeChat on."""
    assert MODEL.exists(), "no trained bot: run scripts/bot-train.sh (make test does)"
    settings = make_settings(bot_autostart=True, rasa_port=free_port(), actions_port=free_port(),
                             bot_timeout_seconds=10.0, bot_model_path=MODEL, message_max_chars=5000,
                             channels="webchat,wechat", **wechat_settings(wechat_api[1]))
    running = await start_hub(settings)
    try:
        await wait_until_healthy(f"http://127.0.0.1:{settings.rasa_port}/status",
                                 f"http://127.0.0.1:{settings.actions_port}/health")
        yield running
    finally:
        await running.runner.cleanup()


def companions(hub: RunningHub) -> Companions:
    found = hub.runner.app[COMPANIONS]
    assert found is not None
    return found


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


async def rasa_tracker(hub: RunningHub, conversation_id: int) -> str:
    """What Rasa made of a conversation (intents, entities, slots, actions), for a failure's message."""
    url = f"http://127.0.0.1:{hub.hub.settings.rasa_port}/conversations/{conversation_id}/tracker"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        events = (await response.json())["events"]
    lines = []
    for event in events:
        if event["event"] == "user":
            parsed = event["parse_data"]
            entities = [(e["entity"], e["value"]) for e in parsed["entities"]]
            lines.append(f"user {event['text']!r} {parsed['intent']} {entities}")
        elif event["event"] in {"slot", "action"}:
            lines.append(f"  {event['event']} {event['name']} {event.get('value', '')}")
    return "\n".join(lines)


async def answer_until_order(hub: RunningHub, resident: Resident, conversation_id: int, answers: dict[str, str]) -> str:
    """Answer whatever the repair form asks until the bot gives an order number; returns its last message."""
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


async def test_a_leak_report_becomes_a_work_order(bot_hub, http) -> None:
    resident = await Resident(http, bot_hub.url).connect()
    said = await resident.says("清源路18号门口马路上在冒水,水很大")
    final = await answer_until_order(bot_hub, resident, said["conversation_id"], {
        "位置": "路面", "地址": "清源路18号", "电话": "13812345678", "描述": "马路中间冒水,已经流了半小时"})
    number = final.split("工单号 ", 1)[1][:15]
    async with bot_hub.hub.sessions() as session:
        order = await session.scalar(select(WorkOrder).where(WorkOrder.number == number))
    assert order is not None, final
    assert (order.source, order.conversation_id, order.contact_phone) == ("bot", said["conversation_id"], "13812345678")
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
        if "范围" in text:
            await send("整栋")
        elif "地址" in text:
            await send(None, type="location", payload={"location": place})
        elif "描述" in text:
            await send("从早上八点开始没水的")
    assert not any("电话" in q for q in questions), questions
    assert "工单号" in questions[-1], [*questions, await rasa_tracker(bot_hub, said["conversation_id"])]
    number = questions[-1].split("工单号 ", 1)[1][:15]
    async with bot_hub.hub.sessions() as session:
        order = await session.scalar(select(WorkOrder).where(WorkOrder.number == number))
    assert order is not None
    assert (order.contact_phone, order.address, order.lat, order.lng) == (
        "13912345678", place["label"], place["lat"], place["lng"])
    assert order.custom_fields == {"scope": "整栋"} and order.category.code == "no_water"
    await resident.close()


async def test_the_bill_of_an_account_named_in_the_question(bot_hub, http) -> None:
    billing = DemoBilling()
    for number in (f"3000{i:04d}" for i in range(5678, 5700)):  # an account of the demo backend with arrears
        account = await billing.account(number)
        if account is not None and account.arrears > 0:
            break
    assert account is not None and account.arrears > 0
    resident = await Resident(http, bot_hub.url).connect()
    await resident.says(f"户号{number}欠多少钱")
    answer = await bot_says(resident)
    assert answer.startswith(f"户号 {number}") and f"当前欠费 {account.arrears:.2f} 元" in answer, answer
    await resident.close()


async def test_a_question_gets_its_answer(bot_hub, http) -> None:
    resident = await Resident(http, bot_hub.url).connect()
    await resident.says("阶梯水价是怎么收费的")
    assert await bot_says(resident) == FAQ["utter_faq/tiered_price"][0]["text"]
    await resident.close()


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
    assert (await bot_says(newcomer)).startswith("户号 30005678")
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
                headers={"Content-Type": request.content_type}) as answer:
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
