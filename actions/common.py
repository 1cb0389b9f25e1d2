"""What several actions share: the message's hub metadata, the hand-over to a person, number patterns."""

from __future__ import annotations

import os
import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ConversationPaused, EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.hub import HubClient, HubUnavailable

PHONE = re.compile(r"(?<!\d)(1[3-9]\d{9}|0512-?\d{8})(?!\d)")
ACCOUNT_NUMBER = re.compile(r"(?<!\d)(3\d{7})(?!\d)")
TICKET = re.compile(r"GD\d{8}-\d{4,6}", re.IGNORECASE)
SORRY_HUB_DOWN = "抱歉,系统暂时无法办理,正在为您转接人工客服。"
LOCAL = ZoneInfo(os.environ.get("HUB_TIMEZONE", "Asia/Shanghai"))


def metadata(tracker: Tracker) -> dict[str, Any]:
    """What the hub sent with the resident's latest message (channel, conversation_id, attachment …)."""
    return (tracker.latest_message or {}).get("metadata") or {}


def bot_order(tracker: Tracker, **fields: Any) -> dict[str, Any]:
    """A work order the bot files, linked to the chat it came from."""
    order: dict[str, Any] = {**fields, "source": "bot"}
    conversation_id = metadata(tracker).get("conversation_id")
    if isinstance(conversation_id, int):
        order["conversation_id"] = conversation_id
    return order


async def file_order(dispatcher: CollectingDispatcher, order: dict[str, Any],
                     what: str) -> tuple[dict[str, Any] | None, list[EventType]]:
    """File a bot order with the hub: (the created order, []), or, when the hub cannot be reached, an apology
    and the hand-over to a person: (None, the events to return)."""
    try:
        return await HubClient().create_order(order), []
    except HubUnavailable:
        dispatcher.utter_message(text=SORRY_HUB_DOWN)
        return None, hand_over(dispatcher, f"机器人登记{what}失败")


def asked(tracker: Tracker, slot: str) -> bool:
    """Whether the form's last question was for ``slot`` (a value picked up in passing is dropped silently)."""
    return tracker.get_slot("requested_slot") == slot


def latest_text(tracker: Tracker) -> str:
    return ((tracker.latest_message or {}).get("text") or "").strip()


def hand_over(dispatcher: CollectingDispatcher, reason: str, team: str | None = None) -> list[EventType]:
    """Ask the hub for a person (it queues the conversation and tells the resident) and go quiet."""
    dispatcher.utter_message(json_message={"handoff": True, "team": team, "reason": reason})
    return [ConversationPaused()]


def local_time(iso: str) -> str:
    """A hub timestamp (UTC, ISO 8601) as residents read it: 11月24日 08:00."""
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(LOCAL)
    return f"{moment.month}月{moment.day}日 {moment:%H:%M}"


def ask(slot: str, question: str, module: str) -> type[Action]:
    """The ``action_ask_<slot>`` a form runs to ask for ``slot``: one question, in the actions' own words.

    Assign it to ``ActionAsk<Slot>`` in ``module``: the action server pickles actions by that name.
    """

    class Ask(Action):
        def name(self) -> str:
            return f"action_ask_{slot}"

        async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                      domain: DomainDict) -> list[EventType]:
            dispatcher.utter_message(text=question)
            return []

    Ask.__name__ = Ask.__qualname__ = "ActionAsk" + slot.title().replace("_", "")
    Ask.__module__ = module
    return Ask
