"""Repair intake: what is wrong, where, how to reach the resident, what it looks like → a work order.

Rasa's ``repair_form`` asks the questions; what each answer means is decided in :mod:`actions.intake`
(``validate_repair_form`` runs on every message while the form is active, so no NLU guess about a short
answer can interrupt the form). The form ends filed, cancelled or handed to a person, and
``action_finish_report`` does what the ending asks for.
"""

from __future__ import annotations

import json
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import ask, bot_order, file_order, hand_over, latest_text, metadata, phone_in
from actions.intake import BY_CATEGORY, PROBLEMS, SLOTS, Heard, Problem, answer, details_in, summary

# What the form remembers besides its questions; all cleared when a report starts and when it ends.
REPORT_SLOTS = ("detail", "description", "photo_message_ids", "location", "confirmed", "misses", "hinted",
                "report_end")
CANCELLED = "好的,本次报修已取消,没有生成工单。如需报修随时告诉我。"


def problem_of(tracker: Tracker) -> Problem:
    return BY_CATEGORY.get(tracker.get_slot("problem") or "") or PROBLEMS["report_leak"]


def choice_button(title: str) -> dict[str, str]:
    """A button whose click reaches the bot as a structured message, whatever the NLU would make of the word."""
    return {"title": title, "payload": "/inform" + json.dumps({"choice": title}, ensure_ascii=False)}


def heard(tracker: Tracker) -> Heard:
    """The latest message as the form sees it (a button's structured payload carries the choice)."""
    message = tracker.latest_message or {}
    intent = message.get("intent") or {}
    selected = ((message.get("response_selector") or {}).get("faq") or {}).get("response") or {}
    choice = next((str(e.get("value")) for e in message.get("entities") or [] if e.get("entity") == "choice"), None)
    extra = metadata(tracker)
    location = extra.get("location")
    return Heard(text=choice or latest_text(tracker), intent=intent.get("name"),
                 confidence=float(intent.get("confidence") or 0.0),
                 faq=selected.get("utter_action"), faq_confidence=float(selected.get("confidence") or 0.0),
                 choice=choice, kind=str(extra.get("type") or "text"),
                 message_id=extra.get("message_id") if isinstance(extra.get("message_id"), int) else None,
                 location=location if isinstance(location, dict) else None)


def next_question(problem: Problem, slots: dict[str, Any]) -> str | None:
    return next((slot for slot in SLOTS if slots.get(slot) is None and (slot != "detail" or problem.field)), None)


class ActionStartReport(Action):
    """Remember which kind of problem is being reported, and what the first message already says."""

    def name(self) -> str:
        return "action_start_report"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        problem = PROBLEMS.get(intent or "", PROBLEMS["report_leak"])
        events: list[EventType] = [SlotSet("problem", problem.category),
                                   *(SlotSet(slot, None) for slot in REPORT_SLOTS)]
        known_phone = phone_in(str(metadata(tracker).get("phone") or ""))
        if known_phone:
            events.append(SlotSet("phone", known_phone))  # SMS and phone callers are known by their number
        dispatcher.utter_message(text=f"好的,我来帮您登记{problem.name}。")
        text = latest_text(tracker)
        # Details given before they are asked are not asked again; a first message that already says what
        # it is ("楼下马路在冒水") becomes the description.
        events += [SlotSet(slot, value) for slot, value in details_in(problem, text).items()]
        if len(text) >= 8:
            events.append(SlotSet("description", text[:2000]))
        return events


class ValidateRepairForm(Action):
    """One step of the repair form per message (:func:`actions.intake.answer`), and the next question."""

    def name(self) -> str:
        return "validate_repair_form"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        problem = problem_of(tracker)
        slots = {slot: tracker.get_slot(slot) for slot in (*SLOTS, "photo_message_ids", "location", "misses")}
        asking = tracker.get_slot("requested_slot")
        step = answer(problem, asking, heard(tracker), slots)
        if step.faq:
            dispatcher.utter_message(response=step.faq)
        for text in step.say:
            dispatcher.utter_message(text=text)
        slots.update(step.slots)
        # At least one slot is always set: the form never rejects a message and leaves it to the NLU's guess.
        events: list[EventType] = [SlotSet(slot, value) for slot, value in step.slots.items()]
        events += [SlotSet("misses", slots.get("misses")), SlotSet("hinted", step.hinted)]
        if step.end:
            return [*events, SlotSet("report_end", step.end), SlotSet("requested_slot", None)]
        return [*events, SlotSet("requested_slot", step.ask or next_question(problem, slots))]


class ActionAskDetail(Action):
    def name(self) -> str:
        return "action_ask_detail"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        problem = problem_of(tracker)
        dispatcher.utter_message(text=problem.question,
                                 buttons=[choice_button(name) for name in problem.choice_names()])
        return []


class ActionAskConfirmed(Action):
    """The report read back before it is filed; the answer may correct it."""

    def name(self) -> str:
        return "action_ask_confirmed"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        if tracker.get_slot("hinted"):
            return []
        slots = {slot: tracker.get_slot(slot) for slot in (*SLOTS, "photo_message_ids")}
        dispatcher.utter_message(
            text=f"请确认报修信息:\n{summary(problem_of(tracker), slots)}\n确认提交吗?信息有误请直接告诉我,"
                 "例如“地址错了,是188号”。",
            buttons=[choice_button("确认提交"), choice_button("取消报修")])
        return []


ActionAskAddress = ask("address", "请告诉我具体地址(如:朝阳路66号 或 幸福小区8栋3单元502),维修人员会按这个地址上门。",
                       __name__, unless_hinted=True)
ActionAskPhone = ask("phone", "请留一个联系电话,方便维修人员与您联系。", __name__, unless_hinted=True)
ActionAskDescription = ask("description",
                           "请简单描述一下现场情况(比如从什么时候开始、影响范围),也可以先发一张现场照片。", __name__,
                           unless_hinted=True)


class ActionFinishReport(Action):
    """File the confirmed report as a work order, or say it was cancelled, or hand it to a person with
    what was collected (an internal note for the agent)."""

    def name(self) -> str:
        return "action_finish_report"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        problem = problem_of(tracker)
        ending = tracker.get_slot("report_end")
        cleared = [SlotSet(slot, None) for slot in REPORT_SLOTS]
        if ending == "cancelled":
            dispatcher.utter_message(text=CANCELLED)
            return cleared
        if ending == "handoff":
            slots = {slot: tracker.get_slot(slot) for slot in (*SLOTS, "photo_message_ids")}
            return [*cleared, *hand_over(dispatcher, f"{problem.name}中转人工",
                                         note=f"机器人已收集的报修信息:\n{summary(problem, slots)}")]
        description = tracker.get_slot("description") or problem.name
        location = tracker.get_slot("location") or {}
        order = bot_order(
            tracker, category=problem.category, title=f"{problem.name}:{description[:40]}", description=description,
            address=tracker.get_slot("address"), contact_phone=tracker.get_slot("phone"),
            custom_fields={problem.field: tracker.get_slot("detail")} if problem.field else {})
        photos = tracker.get_slot("photo_message_ids") or []
        if photos:
            order["attachment_message_ids"] = photos
        if "lat" in location and "lng" in location:
            order["lat"], order["lng"] = location["lat"], location["lng"]
        created, handed_over = await file_order(dispatcher, order, "工单")
        if created is None:
            return handed_over
        dispatcher.utter_message(text=f"已为您登记{problem.name},工单号 {created['number']}。我们会尽快安排处理,"
                                      "进展会在这里通知您;查询进度请发送工单号。")
        return [SlotSet("ticket_id", created["number"]), *cleared]
