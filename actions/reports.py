"""Repair intake: what is wrong, where, how to reach the resident, what it looks like → a work order."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import PHONE, ask, asked, bot_order, file_order, latest_text, metadata

# intent → (work-order category, its name, the category's required field and its choices, the question)
PROBLEMS: dict[str, tuple[str, str, str | None, list[str], str]] = {
    "report_leak": ("leak_repair", "漏水报修", "leak_location", ["路面", "小区内", "户内", "水表井", "消防栓"],
                    "请问漏水的位置在哪里?"),
    "report_no_water": ("no_water", "停水报修", "scope", ["单户", "整栋", "小区", "片区"],
                        "请问停水的范围是?"),
    "report_low_pressure": ("low_pressure", "水压低", None, [], ""),
    "report_water_quality": ("water_quality", "水质问题", "symptom", ["浑浊", "发黄", "异味", "有杂质", "其他"],
                             "请问水是什么情况?"),
}
BY_CATEGORY = {p[0]: p for p in PROBLEMS.values()}
ADDRESS_MARKERS = tuple("路街道巷弄号栋幢楼单元室村镇区苑园城庭府湾寓厦")
SOURCES = {"webchat": "webchat", "wechat": "wechat", "sms": "sms", "voice": "phone"}


class ActionStartReport(Action):
    """Remember which kind of problem is being reported, and what the hub already knows of the resident."""

    def name(self) -> str:
        return "action_start_report"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        problem = PROBLEMS.get(intent or "", PROBLEMS["report_leak"])
        events: list[EventType] = [SlotSet("problem", problem[0]), SlotSet("detail", None),
                                   SlotSet("description", None), SlotSet("photo_url", None),
                                   SlotSet("location", None)]
        known_phone = metadata(tracker).get("phone")
        if known_phone and PHONE.fullmatch(str(known_phone)):
            events.append(SlotSet("phone", str(known_phone)))  # SMS and phone callers are known by their number
        dispatcher.utter_message(text=f"好的,我来帮您登记{problem[1]}。")
        # A first message that already says what it is ("楼下马路在冒水") becomes the description.
        text = latest_text(tracker)
        if len(text) >= 8:
            events.append(SlotSet("description", text))
        return events


class ValidateRepairForm(FormValidationAction):
    def name(self) -> str:
        return "validate_repair_form"

    async def required_slots(self, domain_slots: list[str], dispatcher: CollectingDispatcher, tracker: Tracker,
                             domain: DomainDict) -> list[str]:
        problem = BY_CATEGORY.get(tracker.get_slot("problem") or "")
        if problem is not None and problem[2] is None:
            return [slot for slot in domain_slots if slot != "detail"]
        return domain_slots

    async def extract_photo_url(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                domain: DomainDict) -> dict[str, Any]:
        attachment = metadata(tracker).get("attachment") or {}
        if metadata(tracker).get("type") == "image" and attachment.get("url"):
            return {"photo_url": attachment["url"]}
        return {}

    def validate_detail(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                        domain: DomainDict) -> dict[str, Any]:
        problem = BY_CATEGORY.get(tracker.get_slot("problem") or "")
        choices = problem[3] if problem else []
        chosen = next((choice for choice in choices if choice in str(value or "")), None)
        if chosen is None and asked(tracker, "detail"):
            dispatcher.utter_message(text=f"请从以下选项中选择:{'、'.join(choices)}")
        return {"detail": chosen}

    def validate_address(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                         domain: DomainDict) -> dict[str, Any]:
        text = str(value or "").strip()
        located = metadata(tracker).get("location")
        if isinstance(located, dict) and (located.get("label") or text):
            # A shared location (WeChat): its label is the address, its position goes on the order's map.
            position = {k: located[k] for k in ("lat", "lng") if isinstance(located.get(k), int | float)}
            return {"address": str(located.get("label") or text)[:300], "location": position or None}
        if len(text) < 4 or not (any(c.isdigit() for c in text) or any(m in text for m in ADDRESS_MARKERS)):
            if asked(tracker, "address"):
                dispatcher.utter_message(text="地址太简短了,请说明路名门牌号或小区楼栋,例如:前进东路 88 号。")
            return {"address": None}
        return {"address": text[:300]}

    def validate_phone(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                       domain: DomainDict) -> dict[str, Any]:
        found = PHONE.search(str(value or "").replace(" ", ""))
        if found is None:
            if asked(tracker, "phone"):
                dispatcher.utter_message(text="这个号码好像不对,请输入 11 位手机号或带区号的座机(如 0512-57001234)。")
            return {"phone": None}
        return {"phone": found.group(1)}

    def validate_description(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                             domain: DomainDict) -> dict[str, Any]:
        text = str(value or "").strip()
        if metadata(tracker).get("type") == "image":
            dispatcher.utter_message(text="照片已收到。请再用一句话描述一下情况。")
            return {"description": None}
        if len(text) < 2:
            return {"description": None}
        return {"description": text[:2000]}


class ActionAskDetail(Action):
    def name(self) -> str:
        return "action_ask_detail"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        problem = BY_CATEGORY.get(tracker.get_slot("problem") or "") or PROBLEMS["report_leak"]
        dispatcher.utter_message(text=problem[4], buttons=[{"title": c, "payload": c} for c in problem[3]])
        return []


ActionAskAddress = ask("address", "请告诉我具体地址(如:朝阳路66号 或 幸福小区8栋3单元502),维修人员会按这个地址上门。",
                       __name__)
ActionAskPhone = ask("phone", "请留一个联系电话,方便维修人员与您联系。", __name__)
ActionAskDescription = ask("description",
                           "请简单描述一下现场情况(比如从什么时候开始、影响范围),也可以先发一张现场照片。", __name__)


class ActionCreateWorkOrder(Action):
    def name(self) -> str:
        return "action_create_work_order"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        problem = BY_CATEGORY.get(tracker.get_slot("problem") or "") or PROBLEMS["report_leak"]
        category, name, field, _, _ = problem
        description = tracker.get_slot("description") or name
        photo = tracker.get_slot("photo_url")
        location = tracker.get_slot("location") or {}
        order = bot_order(
            tracker, category=category, title=f"{name}:{description[:40]}",
            description=description + (f"\n现场照片:{photo}" if photo else ""),
            address=tracker.get_slot("address"), contact_phone=tracker.get_slot("phone"),
            custom_fields={field: tracker.get_slot("detail")} if field else {})
        if "lat" in location and "lng" in location:
            order["lat"], order["lng"] = location["lat"], location["lng"]
        created, handed_over = await file_order(dispatcher, order, "工单")
        if created is None:
            return handed_over
        dispatcher.utter_message(text=f"已为您登记{name},工单号 {created['number']}。我们会尽快安排处理,"
                                      "进展会在这里通知您;查询进度请发送工单号。")
        return [SlotSet("ticket_id", created["number"]), SlotSet("detail", None), SlotSet("description", None),
                SlotSet("photo_url", None), SlotSet("location", None)]
