"""What several actions share: the message's hub metadata, the hand-over to a person, number patterns."""

from __future__ import annotations

import os
import re
import unicodedata
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ConversationPaused, EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.hub import HubClient, HubUnavailable

# Phones as residents type them (after NFKC: full-width digits and brackets are plain): "138 1234 5678",
# "+86-138…", "0571-8765 4321", "(021)12345678", "021.1234.5678 转123". Separators may stand between any
# two digits; "+86" or "0086" may lead, a landline's area code then without its 0 ("+86 571 …").
_GAP = r"[ \t\-.]?"
_COUNTRY = r"(?:\+|00)\s*86[ \-]*"
MOBILE = re.compile(rf"(?<![\d+])(?:{_COUNTRY})?(1[3-9](?:{_GAP}\d){{9}})(?!{_GAP}\d)")
LANDLINE = re.compile(
    rf"(?<![\d+])(?:{_COUNTRY}\(?0?|\(?0)(10|2\d|[3-9]\d\d)\)?[ \-.]*"  # area code: 010, 02x, 0xxx
    rf"([1-9](?:{_GAP}\d){{6,7}})"  # the local number: 7 or 8 digits
    r"(?:\s*(?:转|分机|ext\.?|x|-|#)\s*(\d{1,5}))?"  # an extension
    rf"(?!{_GAP}\d)", re.IGNORECASE)
NOT_A_DIGIT = re.compile(r"\D")
ACCOUNT_NUMBER = re.compile(r"(?<!\d)(3\d{7})(?!\d)")
TICKET = re.compile(r"GD\d{8}-\d{4,6}", re.IGNORECASE)
FOUR_DIGITS = re.compile(r"(?<![0-9])([0-9]{4})(?![0-9])")
SORRY_HUB_DOWN = "抱歉,系统暂时无法办理,正在为您转接人工客服。"
LOCAL = ZoneInfo(os.environ.get("HUB_TIMEZONE", "Asia/Shanghai"))


def phone_in(text: str) -> str | None:
    """The phone number in a resident's text, as work orders keep it: a mobile "13812345678" or a landline with
    its area code "0571-87654321", with an extension "0571-87654321-123"; None when there is none.

    Every action that reads a phone from what a resident wrote asks this (the repair form's phone, the last
    four digits that verify an account or an order, the number a channel knows the resident by).
    """
    text = unicodedata.normalize("NFKC", text)
    mobile = MOBILE.search(text)
    if mobile is not None:
        return NOT_A_DIGIT.sub("", mobile.group(1))
    landline = LANDLINE.search(text)
    if landline is None:
        return None
    area, local, extension = landline.groups()
    number = f"0{area}-{NOT_A_DIGIT.sub('', local)}"
    return f"{number}-{extension}" if extension else number


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


def latest_intent(tracker: Tracker) -> str | None:
    return ((tracker.latest_message or {}).get("intent") or {}).get("name")


def value_before_message(tracker: Tracker, slot: str) -> Any:
    """The slot's value before the resident's latest message, whose extraction may have overwritten it."""
    before_message = False
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            before_message = True
        elif before_message and event.get("event") == "slot" and event.get("name") == slot:
            return event.get("value")
    return None


def hand_over(dispatcher: CollectingDispatcher, reason: str, team: str | None = None,
              note: str | None = None) -> list[EventType]:
    """Ask the hub for a person (it queues the conversation and tells the resident) and go quiet; ``note``
    (what the bot collected) is kept in the conversation for the agent, never sent to the resident."""
    request: dict[str, Any] = {"handoff": True, "team": team, "reason": reason}
    if note:
        request["note"] = note
    dispatcher.utter_message(json_message=request)
    return [ConversationPaused()]


def local_time(iso: str) -> str:
    """A hub timestamp (UTC, ISO 8601) as residents read it: 11月24日 08:00."""
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(LOCAL)
    return f"{moment.month}月{moment.day}日 {moment:%H:%M}"


def ask(slot: str, question: str, module: str, *, unless_hinted: bool = False) -> type[Action]:
    """The ``action_ask_<slot>`` a form runs to ask for ``slot``: one question, in the actions' own words.

    With ``unless_hinted`` it stays silent while the slot ``hinted`` is set: the form's validation has just
    asked again in other words, and the same question is not repeated word for word.
    Assign it to ``ActionAsk<Slot>`` in ``module``: the action server pickles actions by that name.
    """

    class Ask(Action):
        def name(self) -> str:
            return f"action_ask_{slot}"

        async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                      domain: DomainDict) -> list[EventType]:
            if not (unless_hinted and tracker.get_slot("hinted")):
                dispatcher.utter_message(text=question)
            return []

    Ask.__name__ = Ask.__qualname__ = "ActionAsk" + slot.title().replace("_", "")
    Ask.__module__ = module
    return Ask
