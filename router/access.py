"""Who may see what: one rule for conversations, the files residents and crews store, and work orders.

Supervisors and admins see everything.

An agent sees a conversation they serve (or served last, once it is closed) and the bot-held, waiting and
closed conversations of their teams; a conversation without a team is every agent's.

A service token has no user (the bot's action server holds one with the agent role). It reads no conversation
and no message. It may file a work order for a conversation, and list the orders of that conversation's
resident, only while the bot is holding that conversation; and it may look an order up by its number (what a
resident tells the bot). Phone numbers reach it masked.

An agent sees the work orders of conversations of their teams, of conversations they serve or served, the
orders they created, and the orders that came without a chat (a phone call, an import, the 12345 hotline) when
they belong to the hotline team (``settings.default_team``), which takes those calls. Handlers see their
department's orders (and those assigned to them), field crews the orders assigned to them.

A stored file belongs to a resident (their channel and address) or to a work order: staff may fetch it when they
see a conversation of that resident, or the order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from router.models import Conversation, ConversationState, Role, Team

STAFF_ROLES = frozenset({Role.ADMIN, Role.SUPERVISOR, Role.AGENT})
OVERSEER_ROLES = frozenset({Role.ADMIN, Role.SUPERVISOR})
ADMIN_ROLES = frozenset({Role.ADMIN})
PHONE_ROLES = frozenset({Role.AGENT, Role.SUPERVISOR})  # who may have a SIP phone: they take and listen to calls
ALL_ROLES = frozenset(Role)
WORK_ORDER_FILES = "workorder"  # the owner of an order's photos in the file store; the owner id is the order's id
TEAM_STATES = (ConversationState.BOT, ConversationState.QUEUED, ConversationState.CLOSED)
BOT_TOKEN_NAME = "智能客服"  # noqa: S105  (a name, not a secret: bot-made orders carry it in the timeline)


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: a signed-in staff member or a service holding a bearer token."""

    role: Role
    user_id: int | None = None
    username: str = ""
    display_name: str = ""
    team_ids: frozenset[int] = field(default_factory=frozenset)
    department_id: int | None = None  # handlers and field crews belong to a department
    csrf_token: str | None = None  # set for cookie sessions only
    must_change_password: bool = False  # signed in with a one-time password: may only replace it or sign out

    @property
    def is_overseer(self) -> bool:
        return self.role in OVERSEER_ROLES

    @property
    def is_service(self) -> bool:
        """A bearer token of a service rather than a person: it has no user, so no chats and no teams."""
        return self.user_id is None


# -- conversations ----------------------------------------------------------------------------------


def is_bot(principal: Principal) -> bool:
    """The bot's action server, holding the token the hub made for it: it acts for whichever resident is
    chatting, so it learns about accounts and orders only through the bot lookups (router/disclosure.py)."""
    return principal.user_id is None and principal.username == f"token:{BOT_TOKEN_NAME}"


def can_view(principal: Principal, key: dict[str, Any]) -> bool:
    """``key`` is a :func:`router.schemas.visibility_key` of the conversation; the same rule as
    :func:`conversation_clause`, for one conversation in memory."""
    if principal.is_overseer:
        return True
    if principal.role != Role.AGENT or principal.is_service:
        return False
    if key["assignee_id"] == principal.user_id:
        return True
    if key["state"] == ConversationState.CLOSED and key["last_agent_id"] == principal.user_id:
        return True
    return in_team(principal, key["team_id"]) and key["state"] in TEAM_STATES


def conversation_clause(principal: Principal) -> ColumnElement[bool]:
    """:func:`can_view` as a condition on :class:`Conversation` rows."""
    if principal.is_overseer:
        return true()
    if principal.role != Role.AGENT or principal.is_service:
        return false()
    member = or_(Conversation.team_id.is_(None), Conversation.team_id.in_(principal.team_ids))
    return or_(
        Conversation.assignee_id == principal.user_id,
        and_(Conversation.state == ConversationState.CLOSED, Conversation.last_agent_id == principal.user_id),
        and_(member, Conversation.state.in_(TEAM_STATES)),
    )


def in_team(principal: Principal, team_id: int | None) -> bool:
    """Conversations without a team are everyone's; otherwise only the team's members'."""
    return team_id is None or team_id in principal.team_ids


def can_handle(principal: Principal, key: dict[str, Any]) -> bool:
    """Reply to, close or transfer: the assignee, or a supervisor/admin."""
    return principal.is_overseer or (
        principal.role == Role.AGENT and not principal.is_service and key["assignee_id"] == principal.user_id
    )


def acts_for_the_bot(principal: Principal, key: dict[str, Any]) -> bool:
    """A service token working for the bot, on the conversation the bot is holding right now."""
    return principal.is_service and principal.role == Role.AGENT and key["state"] == ConversationState.BOT


def serves_now(principal: Principal, key: dict[str, Any]) -> bool:
    """The agent talking with this resident right now (who may need to call them back)."""
    return (not principal.is_service and key["assignee_id"] == principal.user_id
            and key["state"] != ConversationState.CLOSED)


# -- work orders ------------------------------------------------------------------------------------


def order_clause(principal: Principal, hotline_team: str) -> ColumnElement[bool]:
    """The work orders ``principal`` may see, as a condition on ``WorkOrder`` rows (see the module's rule)."""
    from workorders.models import WorkOrder  # work orders are built on the router, not the other way round

    if principal.is_overseer:
        return true()
    if principal.is_service:
        return false()  # a service names the order or the bot's conversation: see the order list
    if principal.role == Role.HANDLER:
        of_department = (WorkOrder.department_id == principal.department_id
                         if principal.department_id is not None else false())
        return or_(of_department, WorkOrder.assignee_id == principal.user_id)
    if principal.role != Role.AGENT:
        return WorkOrder.assignee_id == principal.user_id
    member = or_(Conversation.team_id.is_(None), Conversation.team_id.in_(principal.team_ids))
    of_seen_chat = exists().where(
        Conversation.id == WorkOrder.conversation_id,
        or_(member, Conversation.assignee_id == principal.user_id, Conversation.last_agent_id == principal.user_id),
    )
    in_hotline = select(Team.id).where(Team.name == hotline_team, Team.id.in_(principal.team_ids)).exists()
    return or_(WorkOrder.created_by_id == principal.user_id, of_seen_chat,
               and_(WorkOrder.conversation_id.is_(None), in_hotline))


async def can_see_order(session: AsyncSession, principal: Principal, order_id: int, hotline_team: str) -> bool:
    from workorders.models import WorkOrder

    return bool(await session.scalar(select(exists().where(WorkOrder.id == order_id,
                                                           order_clause(principal, hotline_team)))))


# -- stored files -----------------------------------------------------------------------------------


async def can_fetch_file(session: AsyncSession, principal: Principal, owner: str, owner_id: str,
                         hotline_team: str) -> bool:
    """Staff may fetch a file of a resident whose conversation they see, or of an order they see."""
    if principal.is_overseer:
        return True
    if owner == WORK_ORDER_FILES:
        return owner_id.isdigit() and await can_see_order(session, principal, int(owner_id), hotline_team)
    return bool(await session.scalar(select(exists().where(
        Conversation.channel == owner, Conversation.external_id == owner_id, conversation_clause(principal)))))
