"""Answers from the hub: bills and arrears, a work order's progress, outage notices."""

from __future__ import annotations

import unicodedata
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import (
    ACCOUNT_NUMBER,
    FOUR_DIGITS,
    SORRY_HUB_DOWN,
    TICKET,
    ask,
    asked,
    hand_over,
    latest_intent,
    latest_text,
    local_time,
    metadata,
    phone_in,
    value_before_message,
)
from actions.hub import HubClient, HubUnavailable

NOT_AN_ANSWER = frozenset({"deny", "request_human", "goodbye", "faq", "complain"})  # the rules handle these
TOO_MANY_TRIES = "核对失败次数过多,为保护用户信息,暂停自助查询。正在为您转接人工客服。"


def phone_last4_in(text: str) -> str | None:
    """The last four digits of a phone in a resident's answer: "1234", "尾号1234", or the whole number as
    :func:`~actions.common.phone_in` reads it (a landline's, not its extension's); None when there are none or
    several candidates. Full-width digits count as digits."""
    phone = phone_in(text)
    if phone is not None:
        return phone.split("-")[1][-4:] if "-" in phone else phone[-4:]
    found = FOUR_DIGITS.findall(unicodedata.normalize("NFKC", text).replace(" ", "").replace("-", ""))
    return found[0] if len(found) == 1 else None


class ValidateBillForm(FormValidationAction):
    """The account number; then, when the hub does not know the account as this resident's, the last four
    digits of the phone registered on it (the hub checks them: nothing of the account is shown before)."""

    def name(self) -> str:
        return "validate_bill_form"

    async def required_slots(self, domain_slots: list[str], dispatcher: CollectingDispatcher, tracker: Tracker,
                             domain: DomainDict) -> list[str]:
        return [*domain_slots, "phone_last4"] if tracker.get_slot("bill_needs_digits") else domain_slots

    async def extract_account_number(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                     domain: DomainDict) -> dict[str, Any]:
        """An account number anywhere in the message ("户号30005678欠多少钱"): the model does not always tag it."""
        found = ACCOUNT_NUMBER.search(latest_text(tracker).replace(" ", ""))
        return {"account_number": found.group(1)} if found else {}

    async def extract_phone_last4(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                  domain: DomainDict) -> dict[str, Any]:
        """The whole answer when asked: digits whatever the model made of them (bare digits may look like an
        FAQ to it), other words unless they refuse or ask something, which the rules answer."""
        text = latest_text(tracker)
        if not asked(tracker, "phone_last4") or (
                phone_last4_in(text) is None and latest_intent(tracker) in NOT_AN_ANSWER):
            return {}
        return {"phone_last4": text}

    async def validate_account_number(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                      domain: DomainDict) -> dict[str, Any]:
        found = ACCOUNT_NUMBER.search(str(value or "").replace(" ", ""))
        if found is None:
            if not asked(tracker, "account_number"):  # digits taken for an account number in passing
                return {"account_number": value_before_message(tracker, "account_number")}
            dispatcher.utter_message(text="户号应为以 3 开头的 8 位数字,请再核对一下。")
            return {"account_number": None}
        number = found.group(1)
        conversation_id = metadata(tracker).get("conversation_id")
        if not isinstance(conversation_id, int):
            return {"account_number": number, "bill_needs_digits": False}  # action_query_bill hands over
        try:
            answer = await HubClient().account_lookup(conversation_id, number)
        except HubUnavailable:
            return {"account_number": number, "bill_needs_digits": False}  # action_query_bill apologises
        if not answer["found"] and not answer["blocked"]:
            dispatcher.utter_message(text=f"没有查到户号 {number},请核对后再告诉我。")
            return {"account_number": None}
        return {"account_number": number, "bill_needs_digits": not answer["verified"] and not answer["blocked"]}

    def validate_phone_last4(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                             domain: DomainDict) -> dict[str, Any]:
        digits = phone_last4_in(str(value or ""))
        if digits is None:
            dispatcher.utter_message(text="请回复户主登记手机号的后四位数字,例如 1234。")
        return {"phone_last4": digits}


ActionAskAccountNumber = ask("account_number", "请提供您的 8 位户号(在水费账单或缴费记录上可以找到,以 3 开头)。",
                             __name__)
class ActionAskPhoneLast4(Action):
    def name(self) -> str:
        return "action_ask_phone_last4"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        number = tracker.get_slot("account_number") or ""
        dispatcher.utter_message(text=f"为保护用户信息,请回复户号 {number} 登记手机号的后四位,核对后为您查询。")
        return []


class ActionQueryBill(Action):
    def name(self) -> str:
        return "action_query_bill"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        number = tracker.get_slot("account_number") or ""
        digits = tracker.get_slot("phone_last4")
        conversation_id = metadata(tracker).get("conversation_id")
        forget = [SlotSet("account_number", None), SlotSet("phone_last4", None), SlotSet("bill_needs_digits", None)]
        try:
            if not isinstance(conversation_id, int):
                raise HubUnavailable("a message without its conversation")
            answer = await HubClient().account_lookup(conversation_id, number, digits)
        except HubUnavailable:
            dispatcher.utter_message(text=SORRY_HUB_DOWN)
            return forget + hand_over(dispatcher, "机器人查询水费失败")
        if answer["blocked"]:
            dispatcher.utter_message(text=TOO_MANY_TRIES)
            return forget + hand_over(dispatcher, "机器人查询核对失败次数过多")
        if not answer["found"]:
            dispatcher.utter_message(text=f"没有查到户号 {number},请核对后再告诉我。")
            return forget
        if not answer["verified"]:
            dispatcher.utter_message(
                text=f"手机号后四位与户号 {number} 登记的不符,不能提供该户的信息。如需帮助请回复“转人工”。" if digits
                else f"查询户号 {number} 需要先核对登记手机号的后四位,请再说一次“查水费”。")
            return forget
        account = answer["account"]
        lines = [f"户号 {account['number']}({account['holder']},{account['address']}):"]
        arrears = float(account["arrears"])
        lines.append(f"当前欠费 {arrears:.2f} 元,请及时缴纳。" if arrears > 0 else "目前没有欠费。")
        for bill in account["bills"][:3]:
            state = "已缴" if bill["paid"] else "未缴"
            lines.append(f"{bill['period']} 用水 {bill['volume_m3']} 吨,{float(bill['amount']):.2f} 元({state})")
        dispatcher.utter_message(text="\n".join(lines))
        return [SlotSet("phone_last4", None), SlotSet("bill_needs_digits", None)]


class ActionQueryTicket(Action):
    """Progress by the order's number, or the resident's latest order. Another resident's order is only said to
    exist, unless the message also gives the last four digits of the phone left on it ("GD… 尾号1234")."""

    def name(self) -> str:
        return "action_query_ticket"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        text = latest_text(tracker)
        said = TICKET.search(text) or TICKET.search(tracker.get_slot("ticket_id") or "")
        number = said.group(0).upper() if said else None
        digits = phone_last4_in(TICKET.sub("", text)) if number else None
        conversation_id = metadata(tracker).get("conversation_id")
        try:
            if not isinstance(conversation_id, int):
                raise HubUnavailable("a message without its conversation")
            answer = await HubClient().order_lookup(conversation_id, number, digits)
        except HubUnavailable:
            dispatcher.utter_message(text=SORRY_HUB_DOWN)
            return hand_over(dispatcher, "机器人查询工单失败")
        if answer["blocked"]:
            dispatcher.utter_message(text=TOO_MANY_TRIES)
            return [SlotSet("ticket_id", None), *hand_over(dispatcher, "机器人查询核对失败次数过多")]
        if not answer["found"]:
            dispatcher.utter_message(text=f"没有查到工单 {number},请核对工单号(如 GD20261123-0001)。" if number
                                     else "没有查到您的报修记录。请发送工单号(如 GD20261123-0001)再查。")
            return [SlotSet("ticket_id", None)]
        if not answer["verified"]:
            dispatcher.utter_message(
                text=f"手机号后四位与工单 {number} 登记的不符,不能显示该工单的进度。如需帮助请回复“转人工”。" if digits
                else f"工单 {number} 已登记,但不是从您的这个账号报修的。为保护报修人的信息,这里不能显示处理进度。"
                     f"如您是报修人,请连同报修时所留手机号的后四位再发一次,例如“{number} 尾号1234”;"
                     "也可以回复“转人工”。")
            return [SlotSet("ticket_id", None)]
        order = answer["order"]
        parts = [f"工单 {order['number']}({order['category']}):{order['state_label']}"]
        if order["department"]:
            parts.append(f"处理部门:{order['department']}")
        if order["assignee"]:
            parts.append(f"处理人员:{order['assignee']}")
        dispatcher.utter_message(text=",".join(parts) + "。")
        return [SlotSet("ticket_id", order["number"])]


class ActionQueryOutage(Action):
    def name(self) -> str:
        return "action_query_outage"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        district = next(tracker.get_latest_entity_values("district"), None) or tracker.get_slot("district")
        address = next(tracker.get_latest_entity_values("address"), None)
        filters = {"include": "upcoming"}
        if district:
            filters["district"] = district
        elif address:
            filters["address"] = address
        try:
            found = await HubClient().notices(**filters)
        except HubUnavailable:
            dispatcher.utter_message(text=SORRY_HUB_DOWN)
            return hand_over(dispatcher, "机器人查询停水公告失败")
        notices = found["items"]
        where = "您所在区域" if found.get("district") else "全市"
        if not notices:
            dispatcher.utter_message(text=f"{where}目前没有计划停水或维修公告。如果家中突然没水,可以直接告诉我,我帮您报修。")
            return []
        lines = [f"{where}的停水/维修公告:"]
        for notice in notices[:5]:
            lines.append(f"· {notice['title']}({'、'.join(notice['district_names'])},"
                         f"{local_time(notice['starts_at'])} 至 {local_time(notice['ends_at'])})")
        if not found.get("district"):
            lines.append("告诉我您所在的镇或小区,可以只看您那里的。")
        dispatcher.utter_message(text="\n".join(lines))
        return []
