"""When a person must take over: on request, for complaints, after two misunderstandings in a row."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import bot_order, file_order, hand_over, latest_text
from actions.hub import HubClient, HubUnavailable

SERVICE_TYPES = {"新装": ("新装", "报装"), "过户": ("过户", "更名"), "销户": ("销户",), "移表": ("移表", "移位"),
                 "改管": ("改管",), "暂停用水": ("暂停", "停用")}


class ActionHandoff(Action):
    def name(self) -> str:
        return "action_handoff"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        reason = {"complain": "居民投诉", "request_human": "居民要求人工"}.get(intent or "", "机器人转人工")
        return hand_over(dispatcher, reason)


class ActionDefaultFallback(Action):
    """The first misunderstanding asks again; the second in a row hands over to a person."""

    def name(self) -> str:
        return "action_default_fallback"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        intents = [(e.get("parse_data") or {}).get("intent", {}).get("name")
                   for e in tracker.events if e.get("event") == "user"]
        if len(intents) >= 2 and intents[-2] == "nlu_fallback" and intents[-1] == "nlu_fallback":
            return hand_over(dispatcher, "机器人连续两次未能理解")
        dispatcher.utter_message(text="抱歉,我没太明白您的意思。能换个说法再说一次吗?需要人工请回复“转人工”。")
        return []


class ActionRecordComplaint(Action):
    """Keep the complaint as a work order before the person takes over, so it is never lost."""

    def name(self) -> str:
        return "action_record_complaint"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        text = latest_text(tracker) or "居民投诉"
        order = bot_order(tracker, category="complaint", title=f"投诉:{text[:40]}", description=text[:5000])
        try:
            created = await HubClient().create_order(order)
            dispatcher.utter_message(text=f"您的投诉已记录(工单号 {created['number']}),正在为您转接人工客服。")
        except HubUnavailable:
            dispatcher.utter_message(text="您的意见我们很重视,正在为您转接人工客服。")
        return []


class ActionApplyService(Action):
    """Explain what an application needs and start it as an order the business office takes up."""

    def name(self) -> str:
        return "action_apply_service"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        text = latest_text(tracker)
        kind = next((name for name, words in SERVICE_TYPES.items() if any(w in text for w in words)), None)
        if kind is None:
            dispatcher.utter_message(text="请问您要办理哪项业务?", buttons=[
                {"title": name, "payload": f"我要办理{name}"} for name in SERVICE_TYPES])
            return []
        order = bot_order(tracker, category="service_application", title=f"业务申请:{kind}",
                          description=text[:5000], custom_fields={"application_type": kind})
        created, handed_over = await file_order(dispatcher, order, "业务申请")
        if created is None:
            return handed_over
        dispatcher.utter_message(text=f"已为您登记{kind}申请,工单号 {created['number']}。营业所工作人员会联系您"
                                      "约定办理时间,请准备好户主身份证和不动产权证;也可带齐材料直接到营业厅办理。")
        return []
