"""Lookups for the bot's action server: an account or an order, answered as far as the chatting resident may
see it (router/disclosure.py decides). Only the bot's own token may call them."""

from __future__ import annotations

from pydantic import Field

from router import disclosure
from router.access import STAFF_ROLES, is_bot
from router.api import api
from router.api.billing import BILLING
from router.api.spec import HUB, MAX_ID, Call
from router.disclosure import AccountAnswer, OrderAnswer
from router.errors import Forbidden
from router.schemas import StrictBody

PHONE_LAST4 = r"^[0-9]{4}$"  # ASCII only: \d would take full-width digits too


class AccountLookup(StrictBody):
    conversation_id: int = Field(ge=1, le=MAX_ID, description="the conversation the question came from")
    number: str = Field(pattern=r"^3[0-9]{7}$", description="户号, eight digits starting with 3")
    phone_last4: str | None = Field(None, pattern=PHONE_LAST4,
                                    description="the last four digits of the phone registered on the account")


class OrderLookup(StrictBody):
    conversation_id: int = Field(ge=1, le=MAX_ID, description="the conversation the question came from")
    number: str | None = Field(None, pattern=r"^GD[0-9]{8}-[0-9]{4,6}$",
                               description="the order's number; without it, the resident's latest order")
    phone_last4: str | None = Field(None, pattern=PHONE_LAST4,
                                    description="the last four digits of the contact phone on the order")


def _require_bot(call: Call) -> None:
    if not is_bot(call.user):
        raise Forbidden("仅供智能客服使用", code="bot_only")


@api.endpoint("POST", "/api/bot/account-lookup", summary="An account, as far as the chatting resident may see it",
              roles=STAFF_ROLES, body=AccountLookup, response=AccountAnswer, tag="bot", errors=(404,))
async def account_lookup(call: Call) -> AccountAnswer:
    _require_bot(call)
    body: AccountLookup = call.body
    return await disclosure.look_up_account(call.request.app[HUB].sessions, call.request.app[BILLING], call.user,
                                            body.conversation_id, body.number, body.phone_last4)


@api.endpoint("POST", "/api/bot/order-lookup", summary="A work order, as far as the chatting resident may see it",
              roles=STAFF_ROLES, body=OrderLookup, response=OrderAnswer, tag="bot", errors=(404,))
async def order_lookup(call: Call) -> OrderAnswer:
    _require_bot(call)
    body: OrderLookup = call.body
    return await disclosure.look_up_order(call.request.app[HUB].sessions, call.user, body.conversation_id,
                                          body.number, body.phone_last4)
