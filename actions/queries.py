"""Answers from the hub: bills and arrears, a work order's progress, outage notices."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import (
    ACCOUNT_NUMBER,
    SORRY_HUB_DOWN,
    TICKET,
    ask,
    hand_over,
    latest_text,
    local_time,
    metadata,
)
from actions.hub import HubClient, HubUnavailable, NotFound


class ValidateBillForm(FormValidationAction):
    def name(self) -> str:
        return "validate_bill_form"

    async def extract_account_number(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                     domain: DomainDict) -> dict[str, Any]:
        """An account number anywhere in the message ("户号30005678欠多少钱"): the model does not always tag it."""
        found = ACCOUNT_NUMBER.search(latest_text(tracker).replace(" ", ""))
        return {"account_number": found.group(1)} if found else {}

    def validate_account_number(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                domain: DomainDict) -> dict[str, Any]:
        found = ACCOUNT_NUMBER.search(str(value or "").replace(" ", ""))
        if found is None:
            dispatcher.utter_message(text="户号应为以 3 开头的 8 位数字,请再核对一下。")
            return {"account_number": None}
        return {"account_number": found.group(1)}


ActionAskAccountNumber = ask("account_number", "请提供您的 8 位户号(在水费账单或缴费记录上可以找到,以 3 开头)。",
                             __name__)


class ActionQueryBill(Action):
    def name(self) -> str:
        return "action_query_bill"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        number = tracker.get_slot("account_number") or ""
        try:
            account = await HubClient().account(number)
        except NotFound:
            dispatcher.utter_message(text=f"没有查到户号 {number},请核对后再告诉我。")
            return [SlotSet("account_number", None)]
        except HubUnavailable:
            dispatcher.utter_message(text=SORRY_HUB_DOWN)
            return hand_over(dispatcher, "机器人查询水费失败")
        lines = [f"户号 {account['number']}({account['holder']},{account['address']}):"]
        arrears = float(account["arrears"])
        lines.append(f"当前欠费 {arrears:.2f} 元,请及时缴纳。" if arrears > 0 else "目前没有欠费。")
        for bill in account["bills"][:3]:
            state = "已缴" if bill["paid"] else "未缴"
            lines.append(f"{bill['period']} 用水 {bill['volume_m3']} 吨,{float(bill['amount']):.2f} 元({state})")
        dispatcher.utter_message(text="\n".join(lines))
        return []


class ActionQueryTicket(Action):
    """Progress by the order's number, or the resident's latest order."""

    def name(self) -> str:
        return "action_query_ticket"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        said = TICKET.search(latest_text(tracker))
        number = (said.group(0).upper() if said else None) or tracker.get_slot("ticket_id")
        conversation_id = metadata(tracker).get("conversation_id")
        try:
            if number:
                orders = await HubClient().orders(number=number)
            elif isinstance(conversation_id, int):
                orders = await HubClient().orders(resident_of=str(conversation_id), limit="1")
            else:
                orders = []
        except HubUnavailable:
            dispatcher.utter_message(text=SORRY_HUB_DOWN)
            return hand_over(dispatcher, "机器人查询工单失败")
        if not orders:
            dispatcher.utter_message(text=f"没有查到工单 {number},请核对工单号(如 GD20261123-0001)。" if number
                                     else "没有查到您的报修记录。请发送工单号(如 GD20261123-0001)再查。")
            return []
        order = orders[0]
        parts = [f"工单 {order['number']}({order['category']['name']}):{order['state_label']}"]
        if order.get("department"):
            parts.append(f"处理部门:{order['department']['name']}")
        if order.get("assignee"):
            parts.append(f"处理人员:{order['assignee']['name']}")
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
