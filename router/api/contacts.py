"""The customer 360 beside a conversation: who the resident is on every channel, their past conversations,
their work orders and their water bills; and the VIP and blacklist flags supervisors set on them.

Account numbers (户号) known for a resident are their identities on the ``account`` channel and the
``account_number`` of their recent work orders (a billing dispute carries one). Bills are read live from the
billing system; when it fails or is slow the rest of the panel is still answered, with ``bills_error``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from pydantic import BaseModel, Field
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from router import conversations as convs
from router.access import OVERSEER_ROLES, STAFF_ROLES, Principal, can_view, is_bot
from router.api import api
from router.api.auditing import audit, changes
from router.api.billing import BILLING
from router.api.spec import HUB, Call
from router.billing import Account, BillingBackend
from router.disclosure import ACCOUNT_CHANNEL, lookups_blocked
from router.errors import Forbidden, NotFound
from router.hub import TOPIC
from router.logs import get_logger, mask_phone
from router.models import (
    PHONE_CHANNELS,
    Contact,
    ContactIdentity,
    Conversation,
    ConversationState,
    Disposition,
    Region,
    StaffUser,
)
from router.phones import normalized_phone
from router.schemas import ContactOut, FromRow, StrictBody, TeamOut, conversation_event, visibility_key
from workorders.api import WORKORDERS
from workorders.service import CategoryRef, ListQuery, WorkOrderOut

log = get_logger(__name__)

CONTACT = "/api/contacts/{contact_id:\\d+}"
RECENT = 20  # conversations and work orders shown
MAX_ACCOUNTS = 5  # account numbers looked up in the billing system per panel
BILLING_TIMEOUT_SECONDS = 2.0


class ContactRegion(FromRow):
    id: int
    code: str
    name: str


class ContactCard(ContactOut):
    region: ContactRegion | None
    created_at: datetime


class ContactIdentityOut(BaseModel):
    channel: str = Field(description="webchat, wechat, sms, voice, or account (户号)")
    external_id: str = Field(description="phone numbers keep only their last 4 digits for agents")
    created_at: datetime


class ContactConversation(BaseModel):
    id: int
    channel: str
    state: str
    disposition: str | None
    disposition_label: str | None
    team: TeamOut | None
    agent_name: str | None = Field(description="the agent serving it, or who served it last")
    created_at: datetime
    closed_at: datetime | None


class ContactOrder(BaseModel):
    id: int
    number: str
    category: CategoryRef
    state: str
    state_label: str
    title: str
    overdue: bool
    created_at: datetime


class ContactView(BaseModel):
    contact: ContactCard
    identities: list[ContactIdentityOut]
    conversations: list[ContactConversation] = Field(description="the last 20 the caller may see, newest first")
    orders: list[ContactOrder] = Field(description="the last 20 work orders, newest first")
    accounts: list[str] = Field(description="account numbers (户号) known for the resident")
    bills: list[Account] | None = Field(description="the accounts the billing system knows; null when it failed")
    bills_error: str | None = Field(description="why bills is null")
    bot_lookups_blocked: bool = Field(
        description="too many unknown account/order numbers or wrong phone digits lately: the bot looks nothing up")


class FlagsBody(StrictBody):
    vip: bool
    blacklisted: bool


async def _load_contact(session: AsyncSession, contact_id: int) -> Contact:
    contact = await session.get(Contact, contact_id)
    if contact is None:
        raise NotFound("居民不存在", code="contact_not_found")
    return contact


async def visible_contact_phone(session: AsyncSession, principal: Principal, contact_id: int) -> str | None:
    """The phone number of a resident the caller may see (their first phone identity), for calling them; raises
    404 or 403 as the contact view does."""
    contact = await _load_contact(session, contact_id)
    if not principal.is_overseer and not await _visible_conversations(session, principal, contact.id):
        raise Forbidden("无权查看该居民")
    numbers = (normalized_phone(i.external_id) for i in sorted(contact.identities, key=lambda i: i.id)
               if i.channel in PHONE_CHANNELS)
    return next((n for n in numbers if n is not None), None)


async def _visible_conversations(session: AsyncSession, principal: Principal, contact_id: int) -> list[Conversation]:
    """The contact's conversations the caller may see, newest first, at most :data:`RECENT`."""
    query = select(Conversation).where(Conversation.contact_id == contact_id).order_by(Conversation.id.desc())
    if principal.is_overseer:
        query = query.limit(RECENT)  # they see every conversation
    else:  # narrowed in SQL to what may be theirs; can_view decides
        query = query.where(or_(Conversation.assignee_id == principal.user_id,
                                Conversation.last_agent_id == principal.user_id,
                                Conversation.team_id.is_(None),
                                Conversation.team_id.in_(principal.team_ids)))
    rows = (await session.scalars(query)).unique()
    return [c for c in rows if can_view(principal, visibility_key(c))][:RECENT]


async def _conversations_out(session: AsyncSession, conversations: list[Conversation]) -> list[ContactConversation]:
    agent_ids = {c.assignee_id or c.last_agent_id for c in conversations} - {None}
    agents = {row.id: row.display_name for row in await session.execute(
        select(StaffUser.id, StaffUser.display_name).where(StaffUser.id.in_(agent_ids)))}
    codes = {c.disposition for c in conversations} - {None}
    labels = {row.code: row.label for row in await session.execute(
        select(Disposition.code, Disposition.label).where(Disposition.code.in_(codes)))}
    return [
        ContactConversation(
            id=c.id, channel=c.channel, state=c.state, disposition=c.disposition,
            disposition_label=labels.get(c.disposition) if c.disposition else None,
            team=TeamOut.model_validate(c.team) if c.team else None,
            agent_name=agents.get(c.assignee_id or c.last_agent_id), created_at=c.created_at, closed_at=c.closed_at,
        )
        for c in conversations
    ]


def _order_out(order: WorkOrderOut) -> ContactOrder:
    return ContactOrder(id=order.id, number=order.number, category=order.category, state=order.state,
                        state_label=order.state_label, title=order.title, overdue=order.overdue,
                        created_at=order.created_at)


def _account_numbers(identities: list[ContactIdentity], orders: list[WorkOrderOut]) -> list[str]:
    """The resident's own account identities first, then those named in their orders; no repeats."""
    numbers = [i.external_id for i in identities if i.channel == ACCOUNT_CHANNEL]
    numbers += [str(o.custom_fields["account_number"]) for o in orders if o.custom_fields.get("account_number")]
    return list(dict.fromkeys(numbers))[:MAX_ACCOUNTS]


async def _bills(billing: BillingBackend, numbers: list[str]) -> tuple[list[Account] | None, str | None]:
    """The accounts the billing system knows, or ``(None, why)`` when it fails or takes too long."""
    if not numbers:
        return [], None
    try:
        found = await asyncio.wait_for(asyncio.gather(*(billing.account(n) for n in numbers)),
                                       BILLING_TIMEOUT_SECONDS)
    except TimeoutError:
        log.warning("billing system too slow for the contact panel", timeout=BILLING_TIMEOUT_SECONDS)
        return None, "账单系统暂不可用(响应超时)"
    except Exception as exc:
        log.warning("billing system failed for the contact panel", error=f"{type(exc).__name__}: {exc}")
        return None, "账单系统暂不可用"
    return [account for account in found if account is not None], None


@api.endpoint("GET", CONTACT, summary="A resident's 360 view: identities, conversations, work orders and bills",
              roles=STAFF_ROLES, response=ContactView, tag="contacts")
async def get_contact(call: Call) -> ContactView:
    principal = call.user
    if is_bot(principal):  # the panel holds bills and orders: the bot asks through /api/bot/*-lookup
        raise Forbidden("智能客服无权查看居民信息", code="bot_lookup_required")
    async with call.request.app[HUB].sessions() as session:
        contact = await _load_contact(session, call.path["contact_id"])
        conversations = await _visible_conversations(session, principal, contact.id)
        if not conversations and not principal.is_overseer:
            raise Forbidden("无权查看该居民")
        conversation_rows = await _conversations_out(session, conversations)
        region = await session.get(Region, contact.region_id) if contact.region_id else None
        blocked = await lookups_blocked(session, contact.id)
    orders: list[WorkOrderOut] = []
    if conversations:  # orders are linked to the resident through the conversation they came from
        orders = await call.request.app[WORKORDERS].list(
            principal, ListQuery(resident_of=conversations[0].id, limit=RECENT))
    identities = sorted(contact.identities, key=lambda i: i.id)
    accounts = _account_numbers(identities, orders)
    bills, bills_error = await _bills(call.request.app[BILLING], accounts)
    return ContactView(
        contact=ContactCard(id=contact.id, display_name=contact.display_name, vip=contact.vip,
                            blacklisted=contact.blacklisted, created_at=contact.created_at,
                            region=ContactRegion.model_validate(region) if region else None),
        identities=[
            ContactIdentityOut(
                channel=i.channel, created_at=i.created_at,
                external_id=mask_phone(i.external_id)
                if i.channel in PHONE_CHANNELS and not principal.is_overseer else i.external_id)
            for i in identities
        ],
        conversations=conversation_rows,
        orders=[_order_out(o) for o in orders],
        accounts=accounts,
        bills=bills,
        bills_error=bills_error,
        bot_lookups_blocked=blocked,
    )


@api.endpoint("PUT", CONTACT + "/flags", summary="Flag a resident VIP (served first) or blacklisted",
              roles=OVERSEER_ROLES, body=FlagsBody, response=ContactOut, tag="contacts")
async def set_flags(call: Call) -> ContactOut:
    body: FlagsBody = call.body
    hub = call.request.app[HUB]
    async with hub.sessions.begin() as session:
        contact = await _load_contact(session, call.path["contact_id"])
        before = {"vip": contact.vip, "blacklisted": contact.blacklisted}
        audit(call, "contact.flags", "contact", contact.id, changes=changes(before, body.model_dump()))(session)
        contact.vip, contact.blacklisted = body.vip, body.blacklisted
        open_ones = list((await session.scalars(select(Conversation).where(
            Conversation.contact_id == contact.id, Conversation.state != ConversationState.CLOSED)
            .with_for_update(of=Conversation))).unique())
        if body.blacklisted and not before["blacklisted"]:
            for conversation in open_ones:  # out of the bot, the queue and the agents' inboxes
                convs.transition(session, conversation, "close", actor=call.user.username, reason="blacklisted")
        await session.flush()
        last = await convs.last_messages(session, [c.id for c in open_ones])
        events = [conversation_event(c, last.get(c.id)) for c in open_ones]
        result = ContactOut.model_validate(contact)
    log.info("contact flags changed", contact_id=result.id, before=before, vip=body.vip,
             blacklisted=body.blacklisted, actor=call.user.username)
    for event in events:  # inboxes show the flags on the conversation; the ACD reorders a waiting VIP
        await hub.publish(TOPIC, event)
    return result
