"""Conversations as residents really have them, end to end: the web chat or WeChat, the hub, the real Rasa
model and action server. Each dialogue in dialogues.yml is written the way residents type and ends in an
expected outcome: a work order with these fields, a person, or nothing filed. The summary at the end of
the run gives the task completion rate (tests/bot/conftest.py).

A turn is ``say`` (typed text), ``click`` (a button of the bot's latest message, web chat), ``photo`` or
``location`` (WeChat); ``expect`` is a piece of what the bot answers that turn. Every turn must get an
answer, and no question may be asked three times in a row.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from sqlalchemy import func, select

from router.models import Author, Conversation, ConversationState, Direction, Message, PendingBotTurn, Role
from tests.channels.wechat.conftest import simulator as wechat_simulator
from tests.conftest import RunningHub
from tests.support.actors import Resident
from tests.support.bot import READY_TIMEOUT, rasa_tracker
from tests.support.files import png_bytes
from workorders.models import WorkOrder, WorkOrderCategory

DIALOGUES: list[dict[str, Any]] = yaml.safe_load((Path(__file__).parent / "dialogues.yml").read_text("utf-8"))
TURN_KINDS = {"say", "click", "photo", "location"}
OUTCOMES = {"order", "handoff", "none"}
TURN_TIMEOUT = 30.0
pytestmark = pytest.mark.timeout(READY_TIMEOUT + 240)


@dataclass
class Said:
    conversation_id: int
    message_id: int


class WebChat:
    def __init__(self, hub: RunningHub, http: aiohttp.ClientSession) -> None:
        self.hub, self.http = hub, http
        self.resident = Resident(http, hub.url)

    async def start(self) -> None:
        await self.resident.connect()

    async def say(self, text: str) -> Said:
        message = await self.resident.says(text)
        return Said(message["conversation_id"], message["id"])

    async def click(self, conversation_id: int, title: str) -> Said:
        buttons = await offered_buttons(self.hub, conversation_id)
        button = next((b for b in buttons if b["title"] == title), None)
        assert button is not None, f"no button {title!r} among {buttons}"
        client_id = str(uuid.uuid4())
        assert self.resident.ws is not None
        await self.resident.ws.send_json({"type": "message", "client_id": client_id, "text": button["title"],
                                          "choice": button["payload"]})
        frame = await self.resident.expect(
            lambda f: f["type"] == "message" and f["message"]["client_id"] == client_id)
        return Said(frame["message"]["conversation_id"], frame["message"]["id"])

    async def close(self) -> None:
        await self.resident.close()


class WeChat:
    def __init__(self, hub: RunningHub, http: aiohttp.ClientSession, standin: Any) -> None:
        self.hub, self.standin = hub, standin
        self.openid = "o" + uuid.uuid4().hex[:27]
        self.simulator = wechat_simulator(http, hub.url, "safe")

    async def start(self) -> None:
        return None

    async def _post(self, kind: str, fields: dict[str, Any]) -> Said:
        await self.simulator.post(self.simulator.xml(self.openid, kind, fields, msg_id=secrets.randbits(63)))
        async with self.hub.hub.sessions() as session:
            row = (await session.execute(
                select(Message.conversation_id, func.max(Message.id))
                .join(Conversation, Conversation.id == Message.conversation_id)
                .where(Conversation.channel == "wechat", Conversation.external_id == self.openid,
                       Message.author == Author.RESIDENT)
                .group_by(Message.conversation_id).order_by(func.max(Message.id).desc()).limit(1))).one()
        return Said(row[0], row[1])

    async def say(self, text: str) -> Said:
        return await self._post("text", {"Content": text})

    async def photo(self) -> Said:
        media_id = self.standin.add_media(png_bytes(8, 8), "image/png", "leak.png")
        return await self._post("image", {"PicUrl": "http://mmbiz.qpic.cn/mmbiz_jpg/leak/0", "MediaId": media_id})

    async def location(self, place: dict[str, Any]) -> Said:
        return await self._post("location", {"Location_X": place["lat"], "Location_Y": place["lng"], "Scale": 16,
                                             "Label": place["label"]})

    async def close(self) -> None:
        return None


async def offered_buttons(hub: RunningHub, conversation_id: int) -> list[dict[str, Any]]:
    async with hub.hub.sessions() as session:
        payload = await session.scalar(
            select(Message.payload).where(Message.conversation_id == conversation_id, Message.author == Author.BOT)
            .order_by(Message.id.desc()).limit(1))
    return list((payload or {}).get("buttons") or [])


async def answer_to(hub: RunningHub, said: Said) -> tuple[list[str], str]:
    """What the bot (and the hub) said back to one message, once its turn is over; the conversation's state."""
    deadline = time.monotonic() + TURN_TIMEOUT
    while True:
        async with hub.hub.sessions() as session:
            pending = await session.scalar(select(func.count()).select_from(PendingBotTurn)
                                           .where(PendingBotTurn.conversation_id == said.conversation_id))
            conversation = await session.get(Conversation, said.conversation_id)
            assert conversation is not None
            replies = list(await session.scalars(
                select(Message.text).where(Message.conversation_id == said.conversation_id,
                                           Message.id > said.message_id, Message.direction == Direction.OUT)
                .order_by(Message.id)))
        if not pending and (replies or conversation.state != ConversationState.BOT):
            return [text or "" for text in replies], conversation.state
        assert time.monotonic() < deadline, f"no answer to message {said.message_id} in {TURN_TIMEOUT:.0f} s"
        await asyncio.sleep(0.05)


async def check_outcome(hub: RunningHub, conversation_id: int, outcome: dict[str, Any], state: str) -> str:
    """'' when the conversation ended as expected, else what differs."""
    async with hub.hub.sessions() as session:
        orders = list(await session.scalars(select(WorkOrder).where(WorkOrder.conversation_id == conversation_id)))
        notes = list(await session.scalars(
            select(Message.text).where(Message.conversation_id == conversation_id,
                                       Message.direction == Direction.INTERNAL, Message.author == Author.BOT)))
    if "order" in outcome:
        want = outcome["order"]
        if len(orders) != 1:
            return f"{len(orders)} orders filed, one expected"
        order = orders[0]
        async with hub.hub.sessions() as session:
            code = await session.scalar(select(WorkOrderCategory.code).where(WorkOrderCategory.id == order.category_id))
        found = {"category": code, "address": order.address, "phone": order.contact_phone,
                 **(order.custom_fields or {})}
        wrong = {k: (found.get(k), v) for k, v in want.items() if k not in {"photos", "address_has"}
                 and found.get(k) != v}
        if "address_has" in want and want["address_has"] not in (order.address or ""):
            wrong["address"] = (order.address, want["address_has"])
        if "photos" in want:
            photos = await order_photos(hub, order.id)
            if photos != want["photos"]:
                wrong["photos"] = (photos, want["photos"])
        return f"order differs (found, expected): {wrong}" if wrong else ""
    if orders:
        return f"an order was filed: {[o.number for o in orders]}"
    if outcome.get("handoff"):
        if state != ConversationState.QUEUED:
            return f"not handed to people (state {state})"
        missing = [word for word in outcome.get("note_has", []) if not any(word in (n or "") for n in notes)]
        return f"the agent's note lacks {missing}: {notes}" if missing else ""
    if state != ConversationState.BOT:
        return f"the conversation left the bot (state {state})"
    return ""


async def order_photos(hub: RunningHub, order_id: int) -> int:
    supervisor = await hub.staff(Role.SUPERVISOR, listen=False)
    try:
        return len((await supervisor.call("GET", f"/api/workorders/{order_id}"))["attachments"])
    finally:
        await supervisor.close()


def test_the_dialogue_set_is_well_formed() -> None:
    """Each turn does one thing (a comma in an unquoted flow mapping would silently make a second key)."""
    names = [dialogue["name"] for dialogue in DIALOGUES]
    assert len(names) >= 60 and len(set(names)) == len(names)
    assert {dialogue["channel"] for dialogue in DIALOGUES} == {"webchat", "wechat"}
    for dialogue in DIALOGUES:
        assert len(set(dialogue["outcome"]) & OUTCOMES) == 1, dialogue["name"]
        for turn in dialogue["turns"]:
            assert len(set(turn) & TURN_KINDS) == 1 and set(turn) <= TURN_KINDS | {"expect"}, (dialogue["name"], turn)
            assert all(isinstance(turn[key], str) for key in ("say", "click", "expect") if key in turn), turn


@pytest.mark.parametrize("dialogue", DIALOGUES, ids=[d["name"] for d in DIALOGUES])
async def test_dialogue(bot_hub, wechat_api, http, dialogue: dict[str, Any]) -> None:
    chat: WebChat | WeChat = (WebChat(bot_hub, http) if dialogue["channel"] == "webchat"
                              else WeChat(bot_hub, http, wechat_api[0]))
    await chat.start()
    transcript: list[str] = []
    conversation_id = 0
    state = ConversationState.BOT
    questions: list[str] = []
    try:
        for turn in dialogue["turns"]:
            if "say" in turn:
                said = await chat.say(str(turn["say"]))
            elif "click" in turn:
                assert isinstance(chat, WebChat), "buttons are clicked in the web chat"
                said = await chat.click(conversation_id, turn["click"])
            elif "photo" in turn:
                assert isinstance(chat, WeChat)
                said = await chat.photo()
            else:
                assert isinstance(chat, WeChat)
                said = await chat.location(turn["location"])
            conversation_id = said.conversation_id
            replies, state = await answer_to(bot_hub, said)
            transcript += [f"resident: {turn}", *(f"  bot: {r}" for r in replies)]
            context = "\n".join(transcript)
            assert replies, f"no answer:\n{context}"
            if "expect" in turn:
                assert any(turn["expect"] in r for r in replies), f"expected {turn['expect']!r}:\n{context}"
            questions.append(replies[-1])
            assert not (len(questions) >= 3 and questions[-1] == questions[-2] == questions[-3]), \
                f"the same question three times:\n{context}"
        problem = await check_outcome(bot_hub, conversation_id, dialogue["outcome"], state)
        assert not problem, f"{problem}\n" + "\n".join(transcript) + "\n" + await rasa_tracker(bot_hub,
                                                                                              conversation_id)
    finally:
        await chat.close()
