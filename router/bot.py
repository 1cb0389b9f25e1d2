"""The bridge to the bot, over Rasa's REST channel contract (the hub never imports Rasa).

``POST {rasa}/webhooks/rest/webhook`` with ``sender``, ``message`` and ``metadata`` and the hub's token
(``Authorization: Bearer``, checked by bot/hub_rasa.py); the answer is a
list of bot messages, each with ``text``, ``image``, ``buttons`` and/or ``custom``. A custom payload
``{"handoff": true, "team": ..., "reason": ..., "note": ...}`` (sent by the bot's ``action_handoff`` and by a
repair report handed over half-way, whose note lists what was collected) asks for a human. A bot that is
down, answers garbage or is slower than the timeout is reported as :class:`BotUnavailable`, and the router
hands the conversation to the human queue.

Offered choices: a bot message may carry buttons (``title`` and ``payload``, a text or a Rasa structured
message such as ``/inform{"detail":"户内"}``). A resident answers them by a click in the web chat (the
message's ``payload["choice"]``), by typing a button's title or by its number as listed on WeChat (see
:func:`answer_for_bot`); the bot then gets that button's payload. Nothing else that starts with ``/`` reaches
Rasa, which would read it as an intent of its own choosing (``/restart``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from pydantic import BaseModel, ConfigDict, ValidationError

from channels.base import InboundMessage
from router.botinput import normalise_for_bot
from router.logs import get_logger

log = get_logger(__name__)

# The bot reads the start of a long message (the whole of it stays in the conversation for people):
# Rasa's featurizers take longer the longer the text, and no question needs more than this to be understood.
BOT_TEXT_LIMIT = 500
HANDOFF_NOTE_LIMIT = 2000
# The key of a resident's click on a button: in the stored message's payload (the button's payload) and, while
# the turn waits, in its context (taken out before the bot is asked).
CHOICE = "choice"
CHOICE_MAX_CHARS = 200
# A choice by its number, the whole message: "2", "２", "二", "第2个", "选2", "2.", "②".
CHINESE_NUMBERS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
CIRCLED = {chr(0x2460 + i): i + 1 for i in range(20)}  # ① … ⑳
CHOICE_NUMBER = re.compile(
    r"^(?:选择?|第|选第)?\s*([0-9]{1,2}|十[一二三四五六七八九]|[一二两三四五六七八九十]|[\u2460-\u2473])\s*(?:个|项|条)?$")
TRAILING_MARKS = " \t\n!?.,;:~。、…，！？；：．"
INTENT_PREFIX = re.compile(r"^[\s/]+")


class BotUnavailable(Exception):
    pass


class _Button(BaseModel):
    model_config = ConfigDict(extra="ignore")
    title: str
    payload: str | None = None


class _RasaMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    recipient_id: str | None = None
    text: str | None = None
    image: str | None = None
    buttons: list[_Button] | None = None
    custom: dict[str, Any] | None = None
    attachment: Any = None


@dataclass(frozen=True, slots=True)
class BotReply:
    text: str | None = None
    image_url: str | None = None
    buttons: list[dict[str, Any]] = field(default_factory=list)
    custom: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Handoff:
    team: str | None
    reason: str
    note: str | None = None  # what the bot collected, for the agent (an internal note, never sent)


@dataclass(frozen=True, slots=True)
class BotTurn:
    replies: list[BotReply]
    handoff: Handoff | None


def question_for_bot(
    inbound: InboundMessage, conversation_id: int, message: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """The text and metadata the bot gets for one stored resident message.

    The metadata carries what the actions use besides the words: the channel, the stored message and its
    attachment (a photo for a repair), the resident's number when the channel knows it (SMS, caller id:
    the repair form does not ask for it again) and a shared location (the repair's address). The text is
    normalised for the bot (:func:`router.botinput.normalise_for_bot`); the stored message keeps the original.
    """
    metadata: dict[str, Any] = {
        "channel": inbound.channel,
        "conversation_id": conversation_id,
        "message_id": message["id"],
        "type": message["type"],
        "attachment": message["attachment"],
    }
    if inbound.phone:
        metadata["phone"] = inbound.phone
    choice = inbound.payload.get(CHOICE)
    if isinstance(choice, str):
        metadata[CHOICE] = choice  # the clicked button, checked against the offer when the turn runs
    location = inbound.payload.get("location")
    if isinstance(location, dict):
        metadata["location"] = location
    text = normalise_for_bot(message["text"] or "")
    if not text and isinstance(location, dict):
        text = str(location.get("label") or "")
    return (text or f"[{message['type']}]")[:BOT_TEXT_LIMIT], metadata


def offered_buttons(payload: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The (title, payload) pairs a stored bot message offers, in the order they are shown."""
    buttons = (payload or {}).get("buttons")
    if not isinstance(buttons, list):
        return []
    offered = []
    for button in buttons:
        if isinstance(button, dict) and isinstance(button.get("title"), str):
            said = button.get("payload")
            offered.append((button["title"], said if isinstance(said, str) and said else button["title"]))
    return offered


def _plain(text: str) -> str:
    return normalise_for_bot(text).rstrip(TRAILING_MARKS).strip().casefold()


def choice_number(text: str) -> int | None:
    """The number a message that is nothing but a choice's number names (1-based), or None."""
    match = CHOICE_NUMBER.match(_plain(text))
    if match is None:
        return None
    said = match.group(1)
    if said in CIRCLED:
        return CIRCLED[said]
    if said.isascii():
        return int(said)
    if len(said) == 2:  # 十一 … 十九
        return 10 + CHINESE_NUMBERS[said[1]]
    return CHINESE_NUMBERS[said]


def answer_for_bot(text: str, choice: str | None, offered: list[tuple[str, str]]) -> str:
    """What the bot gets for a resident's message ``text`` (as :func:`question_for_bot` made it).

    ``offered`` are the buttons of the conversation's latest bot message (none once a later bot message
    offers none). The message answers them by a click (``choice``, one of the offered payloads), by the
    title typed (normalised, trailing punctuation ignored) or by the number it was listed with; the bot then
    gets the button's payload. Any other text loses a leading ``/``: a payload that was not offered is
    never passed on.
    """
    payloads = [said for _, said in offered]
    if choice is not None and choice in payloads:
        return choice
    if offered:
        typed = _plain(text)
        for title, said in offered:
            if typed and typed == _plain(title):
                return said
        number = choice_number(text)
        if number is not None and 1 <= number <= len(offered):
            return payloads[number - 1]
        if text in payloads:
            return text
    if text.lstrip().startswith("/"):
        return INTENT_PREFIX.sub("", text) or "[text]"
    return text


class BotBridge:
    def __init__(self, base_url: str, timeout_seconds: float, token: str) -> None:
        self._url = base_url.rstrip("/") + "/webhooks/rest/webhook"
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._headers = {"Authorization": f"Bearer {token}"}
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def ask(self, sender: str, text: str, metadata: dict[str, Any]) -> BotTurn:
        assert self._session is not None, "BotBridge.start() was not awaited"
        try:
            async with self._session.post(
                self._url, json={"sender": sender, "message": text, "metadata": metadata}
            ) as response:
                if response.status != 200:
                    raise BotUnavailable(f"bot answered HTTP {response.status}")
                body = await response.json(content_type=None)
        except TimeoutError as exc:
            raise BotUnavailable("bot timed out") from exc
        except (aiohttp.ClientError, ValueError) as exc:
            raise BotUnavailable(f"bot unreachable: {type(exc).__name__}") from exc
        return parse_turn(body)


def parse_turn(body: Any) -> BotTurn:
    """Turn Rasa's REST answer into replies and an optional handoff."""
    if not isinstance(body, list):
        raise BotUnavailable("bot answer is not a list")
    replies: list[BotReply] = []
    handoff: Handoff | None = None
    for item in body:
        try:
            message = _RasaMessage.model_validate(item)
        except ValidationError as exc:
            raise BotUnavailable("bot answer has an invalid message") from exc
        custom = message.custom
        if custom and custom.get("handoff") is True:
            note = custom.get("note")
            handoff = Handoff(team=custom.get("team") or None, reason=str(custom.get("reason") or "机器人转人工")[:200],
                              note=str(note)[:HANDOFF_NOTE_LIMIT] if note else None)
            custom = None
        if message.text or message.image or custom or message.buttons:
            replies.append(
                BotReply(
                    text=message.text,
                    image_url=message.image,
                    buttons=[b.model_dump() for b in message.buttons or []],
                    custom=custom,
                )
            )
    return BotTurn(replies=replies, handoff=handoff)
