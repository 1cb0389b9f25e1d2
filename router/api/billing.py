"""Bills and arrears of an account, for agents. The bot asks through /api/bot/account-lookup, which shows an
account only to the resident it belongs to."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from router.access import STAFF_ROLES, is_bot
from router.api import api
from router.api.spec import Call
from router.billing import Account, BillingBackend
from router.errors import Forbidden, NotFound

BILLING: web.AppKey[BillingBackend] = web.AppKey("billing")


class AccountQuery(BaseModel):
    number: str = Field(pattern=r"^3\d{7}$", description="户号, eight digits starting with 3")


@api.endpoint("GET", "/api/billing/account", summary="An account's arrears and last bills", roles=STAFF_ROLES,
              query=AccountQuery, response=Account, tag="billing", errors=(404,))
async def get_account(call: Call) -> Account:
    if is_bot(call.user):
        raise Forbidden("智能客服请通过 /api/bot/account-lookup 查询", code="bot_lookup_required")
    account = await call.request.app[BILLING].account(call.query.number)
    if account is None:
        raise NotFound("户号不存在", code="account_not_found")
    return account
