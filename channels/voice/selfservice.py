"""Keypad self-service: the IVR's lookups, answered from the same back ends and under the same rules as the bot.

An account or a work order is read out in full only to its owner (router/disclosure.py decides, as for the
bot). On the phone the proof is the line the caller rings from: an account whose registered phone ends in the
caller's last four digits, or an order filed from the caller's contact or with the caller's number as its
contact phone. Anyone else hears that the number exists and is told to call from the registered phone or press
0 for a person; unknown numbers and mismatches count towards the same lock-out as the bot's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.voice import speech
from channels.voice.caller import spoken_notice
from channels.voice.speech import Language
from channels.voice.walk import Lookup, LookupOutcome
from router import disclosure
from router.billing import ACCOUNT_NUMBER, BillingBackend
from workorders.bulletin import notices_for
from workorders.service import WorkOrderService

ACTOR = "语音导航"  # how the IVR's lookups appear in the audit log
APPLICATION_CATEGORY = "service_application"
ORDER_DIGITS = re.compile(r"^(\d{8})(\d{4,6})$")  # GD<yyyymmdd>-<nnnn…> typed without letters and dash

PHRASES: dict[str, dict[Language, str]] = {
    "account": {"zh": "户号{number},当前欠费{arrears}。", "en": "Account {number}: arrears {arrears}."},
    "no_arrears": {"zh": "户号{number},目前没有欠费。", "en": "Account {number} has no arrears."},
    "bill": {"zh": "{period}账单{volume}立方米,金额{amount},{paid}。",
             "en": "The bill for {period}: {volume} cubic metres, {amount}, {paid}."},
    "paid": {"zh": "已缴清", "en": "paid"},
    "unpaid": {"zh": "未缴", "en": "not paid"},
    "order": {"zh": "工单{number},{category},当前状态:{state}。", "en": "Work order {number}, {category}: {state}."},
    "department": {"zh": "由{department}处理。", "en": "Handled by {department}."},
    "not_yours": {"zh": "该号码不是您来电的电话登记的。为保护用户信息,请用登记的电话来电查询,或按0转人工服务。",
                  "en": "This number is not registered to the phone you are calling from. To protect our customers, "
                        "please call from the registered phone, or press 0 for a person."},
    "blocked": {"zh": "查询未成功的次数过多,请按0转人工服务。",
                "en": "Too many lookups did not succeed. Please press 0 for a person."},
}


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is on the line: the call's conversation (the contact the rules look at) and the calling number."""

    conversation_id: int
    phone: str | None

    @property
    def last4(self) -> str | None:
        digits = "".join(c for c in self.phone or "" if c.isdigit())
        return digits[-4:] if len(digits) >= 4 else None


def order_number(typed: str) -> str | None:
    """The work-order number a caller typed as digits only: 202612060001 → GD20261206-0001."""
    match = ORDER_DIGITS.match(typed)
    return f"GD{match[1]}-{match[2]}" if match else None


def _withheld(blocked: bool, found: bool, language: Language) -> LookupOutcome:
    """What the caller hears instead of an account or order the rules do not show: lookups locked, nothing
    found, or one that is not the caller's."""
    if blocked:
        return LookupOutcome(found=True, text=PHRASES["blocked"][language])
    if not found:
        return LookupOutcome(found=False)
    return LookupOutcome(found=True, text=PHRASES["not_yours"][language])


class SelfService:
    """Answers an :class:`~channels.voice.walk.Lookup` for one caller, in the walk's language."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], billing: BillingBackend,
                 workorders: WorkOrderService) -> None:
        self._sessions = sessions
        self._billing = billing
        self._workorders = workorders

    async def answer(self, lookup: Lookup, caller: Caller, language: Language) -> LookupOutcome:
        if lookup.kind == "bill":
            return await self._bill(lookup.value or "", caller, language)
        if lookup.kind == "outage":
            return await self._outages(lookup.value, language)
        category = APPLICATION_CATEGORY if lookup.kind == "application" else None
        return await self._order(lookup.value or "", caller, language, category)

    async def _bill(self, typed: str, caller: Caller, language: Language) -> LookupOutcome:
        if not ACCOUNT_NUMBER.match(typed):
            return LookupOutcome(found=False)
        answer = await disclosure.look_up_account(self._sessions, self._billing, ACTOR, caller.conversation_id,
                                                  typed, caller.last4)
        if answer.account is None:
            return _withheld(answer.blocked, answer.found, language)
        account = answer.account
        number = speech.digits(account.number, language)
        text = (PHRASES["account"][language].format(number=number, arrears=speech.money(account.arrears, language))
                if account.arrears else PHRASES["no_arrears"][language].format(number=number))
        if account.bills:
            bill = account.bills[0]
            year, month = (int(part) for part in bill.period.split("-"))
            period = f"{year}年{speech.number(month, 'zh')}月" if language == "zh" else f"{month}/{year}"
            text += PHRASES["bill"][language].format(
                period=period, volume=speech.number(bill.volume_m3, language),
                amount=speech.money(bill.amount, language), paid=PHRASES["paid" if bill.paid else "unpaid"][language])
        return LookupOutcome(found=True, text=text)

    async def _order(self, typed: str, caller: Caller, language: Language, category: str | None) -> LookupOutcome:
        number = order_number(typed)
        if number is None:
            return LookupOutcome(found=False)
        answer = await disclosure.look_up_order(self._sessions, ACTOR, caller.conversation_id, number, caller.last4,
                                                category_code=category)
        if answer.order is None:
            return _withheld(answer.blocked, answer.found, language)
        order = answer.order
        text = PHRASES["order"][language].format(number=speech.digits(order.number, language), category=order.category,
                                                 state=order.state_label)
        if order.department and not order.finished:
            text += PHRASES["department"][language].format(department=order.department)
        return LookupOutcome(found=True, text=text)

    async def _outages(self, district: str | None, language: Language) -> LookupOutcome:
        notices = await notices_for(self._workorders, district)
        if not notices:
            return LookupOutcome(found=False)
        return LookupOutcome(found=True, text=" ".join(spoken_notice(n.title, n.body) for n in notices))
