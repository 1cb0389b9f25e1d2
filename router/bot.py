"""The bridge to the bot, over Rasa's REST channel contract (the hub never imports Rasa).

``POST {rasa}/webhooks/rest/webhook`` with ``sender``, ``message`` and ``metadata``; the answer is a
list of bot messages, each with ``text``, ``image``, ``buttons`` and/or ``custom``. A custom payload
``{"handoff": true, "team": ..., "reason": ...}`` (sent by the bot's ``action_handoff``) asks for a
human. A bot that is down, answers garbage or is slower than the timeout is reported as
:class:`BotUnavailable`, and the router hands the conversation to the human queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp
from pydantic import BaseModel, ConfigDict, ValidationError

from channels.base import InboundMessage
from router.logs import get_logger

log = get_logger(__name__)

# The bot reads the start of a long message (the whole of it stays in the conversation for people):
# Rasa's featurizers take longer the longer the text, and no question needs more than this to be understood.
BOT_TEXT_LIMIT = 500


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
    the repair form does not ask for it again) and a shared location (the repair's address).
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
    location = inbound.payload.get("location")
    if isinstance(location, dict):
        metadata["location"] = location
    text = (message["text"] or "").strip()
    if not text and isinstance(location, dict):
        text = str(location.get("label") or "")
    return (text or f"[{message['type']}]")[:BOT_TEXT_LIMIT], metadata


class BotBridge:
    def __init__(self, base_url: str, timeout_seconds: float) -> None:
        self._url = base_url.rstrip("/") + "/webhooks/rest/webhook"
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout)

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
            handoff = Handoff(team=custom.get("team") or None, reason=str(custom.get("reason") or "机器人转人工"))
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
