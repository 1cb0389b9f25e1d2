"""The database stops for 30 seconds while residents write over web chat and WeChat: nothing is lost, nothing twice.

Sixteen residents (eight on the web chat widget's protocol, the load generator's clients; eight on WeChat, posting
as WeChat's servers do, retries included) write a message every 1.5 s before, during and after an outage of the
hub's PostgreSQL server (its own cluster, stopped and started). An agent answers every message as it appears.
Afterwards every message is stored exactly once, each resident's in the order they were sent, and every one of
them got its answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, expect
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from bench.clients import Recorder
from bench.clients import Resident as WebChatResident
from channels.wechat.standin import StandInWeChat
from router.models import Message, Role
from tests.channels.wechat.conftest import simulator
from tests.conftest import RunningHub, outage_settings, start_hub
from tests.support.actors import Staff
from tests.support.pages import watch_errors, widget
from tests.support.pgcluster import PrivateCluster
from tests.support.wechat import running_standin, wechat_settings
from workorders.api import WORKORDERS

RESIDENTS_PER_CHANNEL = 8
EVERY_SECONDS = 1.5
BEFORE_SECONDS, OUTAGE_SECONDS, AFTER_SECONDS = 6.0, 30.0, 6.0
SETTLE_SECONDS = 120.0


def answer_to(key: str) -> str:
    return f"已收到您的第 {key} 条留言,正在处理"


async def answer_everything(running: RunningHub, agent: Staff, recorder: Recorder, stop: asyncio.Event) -> int:
    """The agents' desks: each new resident message is answered whenever the database lets them see it (messages
    journaled during the outage appear when they are stored). Each conversation is claimed once and answered in
    order; conversations are answered side by side, as a room of agents would. Returns the answers sent."""
    seen, answered = 0, 0
    backlog: dict[int, asyncio.Queue[str]] = {}
    desks: list[asyncio.Task[None]] = []

    async def desk(conversation_id: int, queue: asyncio.Queue[str]) -> None:
        nonlocal answered
        claimed = False
        while True:
            text = answer_to(await queue.get())
            recorder.ledger.sent[text] = time.perf_counter()
            while True:  # the database may go away again between two calls: try until it is done
                if not claimed:
                    status, _ = await agent.attempt("POST", f"/api/conversations/{conversation_id}/claim")
                    claimed = status == 200
                if claimed:
                    status, _ = await agent.attempt("POST", f"/api/conversations/{conversation_id}/messages",
                                                    {"text": text})
                    if status == 201:
                        break
                await asyncio.sleep(0.5)
            answered += 1

    try:
        while not stop.is_set():
            try:
                async with running.hub.sessions() as session:
                    rows = (await session.execute(
                        select(Message.id, Message.conversation_id, Message.channel_message_id)
                        .where(Message.direction == "in", Message.id > seen).order_by(Message.id))).all()
            except (SQLAlchemyError, OSError):
                rows = []
            for row in rows:
                if row.conversation_id not in backlog:
                    backlog[row.conversation_id] = asyncio.Queue()
                    desks.append(asyncio.create_task(desk(row.conversation_id, backlog[row.conversation_id])))
                backlog[row.conversation_id].put_nowait(row.channel_message_id)
                seen = row.id
            await asyncio.sleep(0.3)
    finally:
        for task in desks:
            task.cancel()
        await asyncio.gather(*desks, return_exceptions=True)
    return answered


@pytest.mark.timeout(300)  # 42 s of traffic, up to 120 s to settle: the settle deadline must report, not the timeout
async def test_a_30_second_database_outage_loses_no_message_and_stores_none_twice(
    private_pg: PrivateCluster, tmp_path: Path
) -> None:
    async with running_standin() as (standin, api_url):
        settings = outage_settings(private_pg, tmp_path / "var", channels="webchat,wechat",
                                   outbound_backoff_base_seconds=0.2, outbound_backoff_max_seconds=2.0,
                                   outbound_max_attempts=100, **wechat_settings(api_url))
        running = await start_hub(settings)
        recorder = Recorder()
        agent = await running.staff(Role.AGENT, listen=False, max_chats=2 * RESIDENTS_PER_CHANNEL + 4)
        stop_answering = asyncio.Event()
        connector = aiohttp.TCPConnector(limit=0)
        try:
            async with aiohttp.ClientSession(connector=connector) as http:
                await _run_outage(running, standin, private_pg, http, recorder, agent, stop_answering)
        finally:
            stop_answering.set()
            await agent.close()
            await running.runner.cleanup()


async def _run_outage(running: RunningHub, standin: StandInWeChat, cluster: PrivateCluster,
                      http: aiohttp.ClientSession, recorder: Recorder, agent: Staff,
                      stop_answering: asyncio.Event) -> None:
    webchat = [WebChatResident(http, running.url, recorder) for _ in range(RESIDENTS_PER_CHANNEL)]
    await asyncio.gather(*(resident.connect() for resident in webchat))
    wechat = simulator(http, running.url, "safe")  # retries as WeChat does
    openids = ["o" + secrets.token_hex(13) for _ in range(RESIDENTS_PER_CHANNEL)]
    sent: dict[str, list[str]] = {}  # resident → channel message ids, in the order sent
    wechat_answers: list[str] = []
    desk = asyncio.create_task(answer_everything(running, agent, recorder, stop_answering))
    until = time.monotonic() + BEFORE_SECONDS + OUTAGE_SECONDS + AFTER_SECONDS

    async def web_resident(number: int, resident: WebChatResident) -> None:
        keys = sent.setdefault(f"web-{number}", [])
        while time.monotonic() < until:
            key = f"outage-web{number:02d}-{len(keys):03d}"
            keys.append(key)
            await resident.send(key, f"网页居民 {number} 的第 {len(keys)} 条:水压很低")
            await asyncio.sleep(EVERY_SECONDS)

    async def wechat_resident(openid: str) -> None:
        keys = sent.setdefault(openid, [])
        while time.monotonic() < until:
            msg_id = str(secrets.randbits(63))
            keys.append(msg_id)
            xml = wechat.xml(openid, "text", {"Content": f"第 {len(keys)} 条:小区停水了"}, msg_id=int(msg_id))
            wechat_answers.append(await wechat.post(xml))
            await asyncio.sleep(EVERY_SECONDS)

    async def outage() -> None:
        await asyncio.sleep(BEFORE_SECONDS)
        await asyncio.to_thread(cluster.stop)
        await asyncio.sleep(OUTAGE_SECONDS)
        await asyncio.to_thread(cluster.start)

    await asyncio.gather(outage(), *(web_resident(n, r) for n, r in enumerate(webchat)),
                         *(wechat_resident(openid) for openid in openids))
    total = sum(len(keys) for keys in sent.values())
    assert set(wechat_answers) == {"success"}  # every WeChat post acknowledged, none left to WeChat's retries
    assert recorder.ledger.refused == {}  # no web chat message refused: kept while the database was away

    # Stored exactly once, each resident's in order; every message echoed to its widget and answered.
    deadline = time.monotonic() + SETTLE_SECONDS
    web_keys = [key for resident, keys in sent.items() if resident.startswith("web-") for key in keys]
    while time.monotonic() < deadline:
        answered_web = all(answer_to(k) in recorder.ledger.at_resident for k in web_keys)
        answered_wechat = {m["text"]["content"] for m in standin.sent if m.get("api") == "custom"}
        if answered_web and all(answer_to(k) in answered_wechat for o in openids for k in sent[o]):
            break
        await asyncio.sleep(0.5)
    async with running.hub.sessions() as session:
        rows = (await session.execute(select(Message.conversation_id, Message.channel_message_id)
                                      .where(Message.direction == "in").order_by(Message.id))).all()
    stored = [row.channel_message_id for row in rows]
    assert len(stored) == len(set(stored)) == total
    for resident, keys in sent.items():
        own = [row for row in rows if row.channel_message_id in set(keys)]
        assert [row.channel_message_id for row in own] == keys, resident
        assert len({row.conversation_id for row in own}) == 1, resident
    assert all(key in recorder.ledger.at_resident for key in web_keys)  # each widget saw its message stored
    missing_web = [k for k in web_keys if answer_to(k) not in recorder.ledger.at_resident]
    answered_wechat = {m["text"]["content"] for m in standin.sent if m.get("api") == "custom"}
    missing_wechat = [k for o in openids for k in sent[o] if answer_to(k) not in answered_wechat]
    assert missing_web == [] and missing_wechat == []
    assert running.hub.journal.replayed > 0  # the outage was real: messages went through the journal
    assert running.runner.app[WORKORDERS].clock._scheduler._thread.is_alive()

    stop_answering.set()
    answers = await desk
    assert answers == total
    for resident in webchat:
        with contextlib.suppress(Exception):
            await resident.close()


async def test_the_widget_shows_a_message_written_during_an_outage_as_received_until_it_is_stored(
    private_pg: PrivateCluster, tmp_path: Path, browser: Browser
) -> None:
    running = await start_hub(outage_settings(private_pg, tmp_path / "var"))
    context = await browser.new_context(viewport={"width": 412, "height": 860})
    errors: list[str] = []
    try:
        page = watch_errors(await context.new_page(), "resident", errors)
        await page.goto(f"{running.url}/#chat")
        await expect(widget(page, "webchat-panel")).to_be_visible()
        await widget(page, "webchat-input").fill("停电前的一条")
        await widget(page, "webchat-input").press("Enter")
        before = widget(page, "webchat-message").filter(has_text="停电前的一条")
        await expect(before).to_have_attribute("data-message-id", re.compile(r"^\d+$"))
        await asyncio.to_thread(private_pg.stop)
        await widget(page, "webchat-input").fill("数据库停了,楼道里的水还在漏")
        await widget(page, "webchat-input").press("Enter")
        during = widget(page, "webchat-message").filter(has_text="楼道里的水还在漏")
        await expect(during).to_have_attribute("data-accepted", "true")
        await expect(during).to_contain_text("已收到，稍后显示")
        await expect(during).not_to_have_attribute("data-message-id", re.compile(".*"))
        await page.screenshot(path=str(tmp_path / "widget-during-outage.png"))

        await asyncio.to_thread(private_pg.start)
        stored = widget(page, "webchat-message").filter(has_text="楼道里的水还在漏")
        await expect(stored).to_have_attribute("data-message-id", re.compile(r"^\d+$"), timeout=30_000)
        await expect(stored).not_to_contain_text("已收到，稍后显示")
        texts = await widget(page, "webchat-message").all_inner_texts()
        assert len([t for t in texts if "楼道里的水还在漏" in t]) == 1, texts  # stored once, shown once
        assert errors == []
    finally:
        await context.close()
        await running.runner.cleanup()
