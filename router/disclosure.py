"""What the bot may tell a resident about a water account or a work order.

The bot's action server acts for whoever is chatting, so the hub decides what it learns, from the
conversation the question came from. An account or order that belongs to the conversation's contact is
shown in full; any other only as found or not found, until the resident gives the last four digits of the
phone registered on it (the billing system's, or the order's contact phone). A verified account is linked to
the contact (an identity on the ``account`` channel), so they are not asked again.

Unknown numbers and wrong digits are written to the audit log against the contact: after
:data:`FAILURE_LIMIT` of them within :data:`FAILURE_WINDOW` nothing more is looked up for that contact
(the bot offers a person instead), whichever hub process answers.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from router.access import Principal
from router.audit import AuditEntry, record
from router.billing import Account, BillingBackend
from router.errors import NotFound
from router.models import ContactIdentity, Conversation, utcnow
from workorders.models import WorkOrder
from workorders.workflow import parse_workflow

ACCOUNT_CHANNEL = "account"  # a contact's identities on this channel are the account numbers proven theirs
FAILURE_LIMIT = 5
FAILURE_WINDOW = timedelta(hours=1)
LOOKUP_FAILED = "bot.lookup_failed"
ACCOUNT_LINKED = "contact.account_linked"


class AccountAnswer(BaseModel):
    found: bool = Field(description="the account exists (false when blocked: nothing was looked up)")
    verified: bool = Field(description="the account is the resident's: linked to them, or the digits matched")
    blocked: bool = Field(description="too many unknown numbers or wrong digits lately: offer a person")
    account: Account | None = Field(None, description="only when verified")


class OrderProgress(BaseModel):
    number: str
    category: str
    state_label: str
    finished: bool
    department: str | None
    assignee: str | None = Field(description="the staff member handling it")


class OrderAnswer(BaseModel):
    found: bool = Field(description="the order exists (false when blocked: nothing was looked up)")
    verified: bool = Field(description="the order is the resident's: filed from their chats, or the digits matched")
    blocked: bool = Field(description="too many unknown numbers or wrong digits lately: offer a person")
    order: OrderProgress | None = Field(None, description="only when verified")


async def look_up_account(sessions: async_sessionmaker[AsyncSession], billing: BillingBackend, actor: Principal | str,
                          conversation_id: int, number: str, phone_last4: str | None) -> AccountAnswer:
    now = utcnow()
    async with sessions() as session:
        contact_id = await _contact_of(session, conversation_id)
        if await _blocked(session, contact_id, now):
            return AccountAnswer(found=False, verified=False, blocked=True)
        holder_id = await session.scalar(select(ContactIdentity.contact_id).where(
            ContactIdentity.channel == ACCOUNT_CHANNEL, ContactIdentity.external_id == number))
    account = await billing.account(number)  # the billing system, outside any database transaction
    verified = account is not None and (
        holder_id == contact_id or (phone_last4 is not None and await billing.verify(number, phone_last4)))
    failure = "not_found" if account is None else "wrong_digits" if phone_last4 and not verified else None
    async with sessions.begin() as session:
        if failure:
            _record_failure(session, actor, contact_id, conversation_id, "account", number, failure)
            return AccountAnswer(found=account is not None, verified=False,
                                 blocked=await _blocked(session, contact_id, now))
        if verified and holder_id is None:
            await _link_account(session, actor, contact_id, conversation_id, number)
    return AccountAnswer(found=True, verified=verified, blocked=False, account=account if verified else None)


async def look_up_order(sessions: async_sessionmaker[AsyncSession], actor: Principal | str, conversation_id: int,
                        number: str | None, phone_last4: str | None, *,
                        category_code: str | None = None) -> OrderAnswer:
    """The order with ``number``, or without one the resident's latest order; with ``category_code`` only an
    order of that category (an application's progress is asked for by its number: no other order is shown)."""
    now = utcnow()
    async with sessions.begin() as session:
        contact_id = await _contact_of(session, conversation_id)
        if await _blocked(session, contact_id, now):
            return OrderAnswer(found=False, verified=False, blocked=True)
        if number is None:
            latest = await session.scalar(select(WorkOrder).where(WorkOrder.contact_id == contact_id)
                                          .order_by(WorkOrder.id.desc()).limit(1))
            return OrderAnswer(found=latest is not None, verified=latest is not None, blocked=False,
                               order=_progress(latest) if latest is not None else None)
        order = await session.scalar(select(WorkOrder).where(WorkOrder.number == number))
        if order is not None and category_code is not None and order.category.code != category_code:
            order = None
        verified = order is not None and (order.contact_id == contact_id or (
            phone_last4 is not None and _phone_ends(order.contact_phone, phone_last4)))
        failure = "not_found" if order is None else "wrong_digits" if phone_last4 and not verified else None
        if failure:
            _record_failure(session, actor, contact_id, conversation_id, "order", number, failure)
            return OrderAnswer(found=order is not None, verified=False,
                               blocked=await _blocked(session, contact_id, now))
        return OrderAnswer(found=True, verified=verified, blocked=False,
                           order=_progress(order) if verified and order is not None else None)


async def lookups_blocked(session: AsyncSession, contact_id: int) -> bool:
    """Whether the bot looks nothing up for this contact now (for the agent's contact panel)."""
    return await _blocked(session, contact_id, utcnow())


async def _contact_of(session: AsyncSession, conversation_id: int) -> int:
    contact_id = await session.scalar(select(Conversation.contact_id).where(Conversation.id == conversation_id))
    if contact_id is None:
        raise NotFound("会话不存在", code="conversation_not_found")
    return contact_id


async def _blocked(session: AsyncSession, contact_id: int, now: datetime) -> bool:
    failures = await session.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == LOOKUP_FAILED, AuditEntry.at > now - FAILURE_WINDOW,
        AuditEntry.target_type == "contact", AuditEntry.target_id == str(contact_id)))
    return (failures or 0) >= FAILURE_LIMIT


def _record_failure(session: AsyncSession, actor: Principal | str, contact_id: int, conversation_id: int, kind: str,
                    number: str, reason: str) -> None:
    record(session, actor, LOOKUP_FAILED, target_type="contact", target_id=contact_id,
           details={"kind": kind, "number": number, "reason": reason, "conversation_id": conversation_id})


async def _link_account(session: AsyncSession, actor: Principal | str, contact_id: int, conversation_id: int,
                        number: str) -> None:
    """Make the account one of the contact's identities, unless someone linked it first (it stays theirs)."""
    try:
        async with session.begin_nested():
            session.add(ContactIdentity(contact_id=contact_id, channel=ACCOUNT_CHANNEL, external_id=number,
                                        created_at=utcnow()))
    except IntegrityError:
        return
    record(session, actor, ACCOUNT_LINKED, target_type="contact", target_id=contact_id,
           details={"number": number, "conversation_id": conversation_id, "by": "phone_digits"})


def _phone_ends(phone: str | None, last4: str) -> bool:
    digits = "".join(c for c in phone or "" if c.isdigit())
    return len(digits) >= len(last4) and digits.endswith(last4)


def _progress(order: WorkOrder) -> OrderProgress:
    workflow = parse_workflow(order.category.workflow)
    return OrderProgress(
        number=order.number, category=order.category.name,
        state_label=workflow.states.get(order.state, order.state), finished=order.state in workflow.final,
        department=order.department.name if order.department else None,
        assignee=order.assignee.display_name if order.assignee else None)
