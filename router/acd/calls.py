"""Phone calls in the ACD: what the voice channel asks of the people's side when a caller wants a person.

A caller who asks for a person is queued the way a chat is: the call's conversation is handed to the team the
IVR node names, and the same distributor (router/acd/distributor.py) picks the agent, with the same strategies,
stickiness, region binding, VIP order and overflow. A call only goes to an agent with a phone (an extension on
their account) and nothing else open, and it fills the agent's whole capacity while it lasts, so no chat
reaches them meanwhile. The voice channel then rings that agent's phone; when it is not answered the call goes
back to the queue, keeping its place, and the agent is set away (未接来电) so the next agent is tried. A caller
who hangs up while waiting is counted as abandoned and put on the callback list.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from router import conversations as convs
from router.acd import presence
from router.callbacks import CallbackAsk, CallbackList
from router.errors import NotFound
from router.logs import get_logger
from router.models import (
    AgentPresence,
    Call,
    Contact,
    Conversation,
    ConversationState,
    Message,
    PresenceState,
    StaffUser,
    Team,
    user_team,
)
from router.phones import normalized_phone

log = get_logger(__name__)

VOICE = "voice"
MISSED_REASON = "未接来电"  # the away reason of an agent whose phone rang out
ABANDONED_NOTE = "来电排队时挂机"
DEFAULT_TALK_SECONDS = 180  # the expected length of a call before the line has a history
TALK_SAMPLE = 50  # recent answered calls the expected wait is estimated from

Publish = Callable[[Conversation, list[Message]], Awaitable[None]]
PublishPresence = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class AgentOnPhone:
    """The agent the ACD gave a call to, and the phone to ring."""

    agent_id: int
    name: str
    extension: str


@dataclass(frozen=True, slots=True)
class Standing:
    """A waiting caller's place: calls ahead in the same queue, and the expected wait in whole minutes."""

    ahead: int
    minutes: int


class CallQueue:
    """The :class:`channels.base.CallDesk` the hub offers the voice channel."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], callbacks: CallbackList, publish: Publish,
                 publish_presence: PublishPresence, acw_seconds: float) -> None:
        self._sessions = sessions
        self._callbacks = callbacks
        self._publish = publish
        self._publish_presence = publish_presence
        self._acw_seconds = acw_seconds

    async def agents_on_duty(self, team: str | None = None) -> bool:
        """Whether somebody with a phone is signed in (in ``team`` when given) to take a call."""
        async with self._sessions() as session:
            query = _phone_agents_signed_in()
            if team is not None:
                query = query.join(user_team, user_team.c.user_id == StaffUser.id).join(
                    Team, and_(Team.id == user_team.c.team_id, Team.name == team))
            return bool(await session.scalar(select(func.count()).select_from(query.subquery())))

    async def enqueue(self, conversation_id: int, *, team: str | None) -> None:
        """Hand the call's conversation to people in ``team`` (the default team when it is not known)."""
        async with self._sessions.begin() as session:
            conversation = await convs.load_for_update(session, conversation_id)
            if conversation.state in (ConversationState.QUEUED, ConversationState.ASSIGNED):
                return  # queued already (the call was taken up again after a restart)
            if not await convs.queue_in_team_named(session, conversation, team):
                log.warning("IVR names an unknown team; the call waits in the default queue", team=team)
            action = "reopen_queue" if conversation.state == ConversationState.CLOSED else "handoff"
            event = convs.transition(session, conversation, action, actor="ivr", reason="来电转人工")
            await session.flush()
            await session.refresh(conversation, ["assignee", "team"])
        await self._publish(conversation, [event])

    async def standing(self, conversation_id: int) -> Standing:
        """How many calls wait ahead of this one in its queue (VIPs first, then by the time they joined), and
        about how long until an agent: the calls ahead and this one, times a recent call's length, shared by the
        team's agents with a phone who are signed in."""
        async with self._sessions() as session:
            row = (await session.execute(
                select(Conversation.team_id, Conversation.queued_at, Contact.vip)
                .join(Contact, Contact.id == Conversation.contact_id)
                .where(Conversation.id == conversation_id))).one_or_none()
            if row is None:
                raise NotFound("会话不存在", code="unknown_conversation")
            team_id, queued_at, vip = row
            ahead_filter = or_(Contact.vip.is_(True), Conversation.queued_at < queued_at) if not vip else and_(
                Contact.vip.is_(True), Conversation.queued_at < queued_at)
            ahead = await session.scalar(
                select(func.count()).select_from(Conversation).join(Contact, Contact.id == Conversation.contact_id)
                .where(Conversation.channel == VOICE, Conversation.state == ConversationState.QUEUED,
                       Conversation.id != conversation_id,
                       Conversation.team_id.is_(None) if team_id is None else Conversation.team_id == team_id,
                       ahead_filter)) or 0
            agents = _phone_agents_signed_in()
            if team_id is not None:
                agents = agents.join(user_team, and_(user_team.c.user_id == StaffUser.id,
                                                     user_team.c.team_id == team_id))
            staffed = await session.scalar(select(func.count()).select_from(agents.subquery())) or 0
            talks = (await session.execute(
                select(Call.connected_at, Call.ended_at)
                .where(Call.connected_at.is_not(None), Call.ended_at.is_not(None))
                .order_by(Call.id.desc()).limit(TALK_SAMPLE))).all()
        lengths = [(ended - connected).total_seconds() for connected, ended in talks]
        talk = sum(lengths) / len(lengths) if lengths else DEFAULT_TALK_SECONDS
        minutes = max(1, math.ceil((ahead + 1) * talk / max(1, staffed) / 60))
        return Standing(ahead=ahead, minutes=minutes)

    async def assigned_agent(self, conversation_id: int) -> AgentOnPhone | None:
        """The agent the ACD gave the call to, once it has (None while it waits)."""
        async with self._sessions() as session:
            row = (await session.execute(
                select(StaffUser.id, StaffUser.display_name, StaffUser.sip_extension)
                .join(Conversation, Conversation.assignee_id == StaffUser.id)
                .where(Conversation.id == conversation_id, Conversation.state == ConversationState.ASSIGNED))
            ).one_or_none()
        if row is None or row.sip_extension is None:
            return None
        return AgentOnPhone(agent_id=row.id, name=row.display_name, extension=row.sip_extension)

    async def agent_phone(self, agent_id: int) -> AgentOnPhone | None:
        """An active staff member's phone, for an agent to consult (None: no such account or no phone)."""
        async with self._sessions() as session:
            agent = await session.get(StaffUser, agent_id)
        if agent is None or not agent.active or agent.sip_extension is None:
            return None
        return AgentOnPhone(agent_id=agent.id, name=agent.display_name, extension=agent.sip_extension)

    async def hand_over(self, conversation_id: int, agent_id: int) -> None:
        """The call was transferred to ``agent_id`` (or is theirs, an agent's call to a resident): so is its
        conversation."""
        async with self._sessions.begin() as session:
            conversation = await convs.load_for_update(session, conversation_id)
            agent = await session.get(StaffUser, agent_id)
            if agent is None or conversation.assignee_id == agent_id or conversation.state not in (
                    ConversationState.ASSIGNED, ConversationState.WAITING_RESIDENT, ConversationState.QUEUED,
                    ConversationState.BOT):
                return
            event = convs.assign_to(session, conversation, agent, actor="transfer")
            await session.flush()
            await session.refresh(conversation, ["assignee", "team"])
        await self._publish(conversation, [event])

    async def requeue(self, conversation_id: int, *, team: str) -> None:
        """An agent sent the call to ``team``'s queue (a blind transfer): its conversation leaves them and waits
        there, at the back, for the agent the ACD picks next."""
        async with self._sessions.begin() as session:
            conversation = await convs.load_for_update(session, conversation_id)
            target = await session.scalar(select(Team).where(Team.name == team))
            if target is None or conversation.state not in (ConversationState.ASSIGNED, ConversationState.QUEUED):
                log.warning("call not sent to a queue", conversation_id=conversation_id, state=conversation.state)
                return
            event = convs.send_to_team(session, conversation, target, actor="transfer")
            await session.flush()
            await session.refresh(conversation, ["assignee", "team"])
        await self._publish(conversation, [event])

    async def after_call(self, agent_id: int) -> None:
        """After-call work for a ready agent whose call is over (an agent who chose away or busy meanwhile stays
        so); the ACD's sweep makes them ready again when the timer runs out."""
        async with self._sessions.begin() as session:
            current = await presence.load_for_update(session, agent_id)
            event = None
            if current.state == PresenceState.READY:
                event = presence.apply_change(session, current, PresenceState.ACW, reason=None, actor="acd",
                                              acw_seconds=self._acw_seconds)
        if event is not None:
            await self._publish_presence(event)

    async def ring_missed(self, conversation_id: int, agent_id: int, cause: str) -> None:
        """The agent's phone did not take the call: it waits again in its place, and the agent is set away so
        that the ACD tries somebody else."""
        async with self._sessions.begin() as session:
            conversation = await convs.load_for_update(session, conversation_id)
            events: list[Message] = []
            if conversation.state == ConversationState.ASSIGNED and conversation.assignee_id == agent_id:
                entered = conversation.queue_entered_at
                agent = await session.get(StaffUser, agent_id)
                events.append(convs.transition(session, conversation, "ring_no_answer", actor="acd", reason=cause,
                                               agent=agent.display_name if agent else ""))
                conversation.queue_entered_at = entered or conversation.queue_entered_at  # overflow counts on
                conversation.assignee_id, conversation.assignee = None, None
            _, presence_event = await presence.change(session, agent_id, PresenceState.AWAY, reason=MISSED_REASON,
                                                      actor="acd")
            await session.flush()
            await session.refresh(conversation, ["assignee", "team"])
        log.info("agent did not answer a call; it waits again", conversation_id=conversation_id, agent_id=agent_id,
                 cause=cause)
        if events:
            await self._publish(conversation, events)
        if presence_event is not None:
            await self._publish_presence(presence_event)

    async def abandon(self, conversation_id: int, *, phone: str | None) -> None:
        """The caller hung up while waiting: the conversation is closed and the caller, when their number is a
        phone number, is put on the callback list."""
        async with self._sessions.begin() as session:
            conversation = await convs.load_for_update(session, conversation_id)
            if conversation.state not in (ConversationState.QUEUED, ConversationState.ASSIGNED):
                return
            event = convs.transition(session, conversation, "close", actor="caller", reason="abandoned")
            external_id = conversation.external_id
            await session.flush()
            await session.refresh(conversation, ["assignee", "team"])
        await self._publish(conversation, [event])
        number = normalized_phone(phone) if phone else None
        if number is None:
            return
        try:
            await self._callbacks.ask(VOICE, external_id, conversation_id,
                                      CallbackAsk(phone=number, preferred_after=None, note=ABANDONED_NOTE))
        except NotFound:
            log.warning("abandoned call not put on the callback list: no contact", conversation_id=conversation_id)


def _phone_agents_signed_in() -> Any:
    """Active staff with a phone whose presence is anything but signed out."""
    return (select(StaffUser.id)
            .join(AgentPresence, AgentPresence.user_id == StaffUser.id)
            .where(StaffUser.active.is_(True), StaffUser.sip_extension.is_not(None),
                   AgentPresence.state != PresenceState.SIGNED_OUT))
