"""The conversation state machine as data, and the operations staff perform on conversations.

``TRANSITIONS`` lists every allowed (state, action) → state; :func:`transition` is the only code
that changes ``Conversation.state``. It stamps the transition time and records a system event
message, so reports and the agent's timeline read the same history.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from router.access import Principal, can_handle, can_view, in_team
from router.errors import Conflict, Forbidden, Invalid, NotFound
from router.models import (
    Author,
    Conversation,
    ConversationState,
    Direction,
    Disposition,
    Message,
    MessageType,
    Role,
    StaffUser,
    Team,
    utcnow,
)
from router.schemas import visibility_key

S = ConversationState


@dataclass(frozen=True, slots=True)
class Rule:
    target: ConversationState
    timestamp: str | None  # the Conversation column stamped when the rule fires


TRANSITIONS: dict[tuple[ConversationState, str], Rule] = {
    (S.BOT, "handoff"): Rule(S.QUEUED, "queued_at"),
    (S.BOT, "assign"): Rule(S.ASSIGNED, "assigned_at"),  # a supervisor takes over from the bot
    (S.QUEUED, "assign"): Rule(S.ASSIGNED, "assigned_at"),
    (S.QUEUED, "transfer_team"): Rule(S.QUEUED, "queued_at"),
    (S.QUEUED, "overflow"): Rule(S.QUEUED, None),  # the wait goes on, in another team's queue
    (S.ASSIGNED, "assign"): Rule(S.ASSIGNED, "assigned_at"),
    (S.ASSIGNED, "transfer_team"): Rule(S.QUEUED, "queued_at"),
    (S.ASSIGNED, "wait_resident"): Rule(S.WAITING_RESIDENT, None),
    (S.ASSIGNED, "ring_no_answer"): Rule(S.QUEUED, None),  # a call the agent's phone did not take waits on
    (S.WAITING_RESIDENT, "resident_replied"): Rule(S.ASSIGNED, None),
    (S.WAITING_RESIDENT, "assign"): Rule(S.ASSIGNED, "assigned_at"),
    (S.BOT, "close"): Rule(S.CLOSED, "closed_at"),
    (S.QUEUED, "close"): Rule(S.CLOSED, "closed_at"),
    (S.ASSIGNED, "close"): Rule(S.CLOSED, "closed_at"),
    (S.WAITING_RESIDENT, "close"): Rule(S.CLOSED, "closed_at"),
    (S.CLOSED, "reopen_bot"): Rule(S.BOT, "bot_at"),
    (S.CLOSED, "reopen_queue"): Rule(S.QUEUED, "queued_at"),
}

EVENT_TEXT = {
    "handoff": "转人工:{reason}",
    "assign": "{agent} 接入会话",
    "transfer_team": "转接至 {team}",
    "overflow": "等待超时,溢出至 {team}",
    "close": "会话已结束",
    "reopen_bot": "居民再次来信,会话重新打开",
    "reopen_queue": "居民再次来信,会话重新打开并进入排队",
    "wait_resident": "等待居民回复",
    "ring_no_answer": "{agent} 未接听来电,重新排队",
    "resident_replied": "居民已回复",
}


def system_event(conversation: Conversation, event: str, text: str, **data: Any) -> Message:
    return Message(
        conversation_id=conversation.id,
        channel=conversation.channel,
        direction=Direction.INTERNAL,
        author=Author.SYSTEM,
        author_user=None,
        type=MessageType.EVENT,
        text=text,
        payload={"event": event, **data},
        created_at=utcnow(),
    )


def transition(
    session: AsyncSession,
    conversation: Conversation,
    action: str,
    *,
    actor: str,
    reason: str | None = None,
    **details: Any,
) -> Message:
    """Apply ``action`` to ``conversation`` or raise :class:`Conflict`; returns the recorded event."""
    rule = TRANSITIONS.get((ConversationState(conversation.state), action))
    if rule is None:
        raise Conflict(
            f"会话当前状态为 {conversation.state},不能执行 {action}",
            code="invalid_transition",
            details={"state": conversation.state, "action": action},
        )
    now = utcnow()
    previous = conversation.state
    conversation.state = rule.target
    conversation.updated_at = now
    if rule.timestamp is not None:
        setattr(conversation, rule.timestamp, now)
    if rule.target == S.QUEUED:
        conversation.queue_entered_at = now
    if rule.target == S.CLOSED:
        conversation.assignee_id = None
    text = EVENT_TEXT[action].format(reason=reason or "", **{"agent": "", "team": "", **details})
    event = system_event(
        conversation, action, text, **{"from": previous, "to": rule.target, "actor": actor, "reason": reason}
    )
    session.add(event)
    return event


async def queue_in_team_named(session: AsyncSession, conversation: Conversation, name: str | None) -> bool:
    """Put ``conversation`` in the queue of team ``name`` (the bot's or the IVR's choice, by name); False, the
    conversation left in its team, when no team has that name."""
    if not name:
        return True
    target = await session.scalar(select(Team).where(Team.name == name))
    if target is None:
        return False
    conversation.team_id, conversation.team = target.id, target
    return True


async def load_for_update(session: AsyncSession, conversation_id: int) -> Conversation:
    """The conversation row, locked until the transaction ends (PostgreSQL; SQLite locks the file)."""
    row = await session.execute(
        select(Conversation).where(Conversation.id == conversation_id).with_for_update(of=Conversation)
    )
    conversation = row.unique().scalar_one_or_none()
    if conversation is None:
        raise NotFound("会话不存在", code="conversation_not_found")
    return conversation


async def load_visible(session: AsyncSession, principal: Principal, conversation_id: int) -> Conversation:
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None:
        raise NotFound("会话不存在", code="conversation_not_found")
    if not can_view(principal, visibility_key(conversation)):
        raise Forbidden("无权查看该会话")
    return conversation


def _require_handler(principal: Principal, conversation: Conversation) -> None:
    if not can_handle(principal, visibility_key(conversation)):
        raise Forbidden("只有接待该会话的坐席或班长可以操作")


async def _active_agent(session: AsyncSession, agent_id: int) -> StaffUser:
    agent = await session.get(StaffUser, agent_id)
    if agent is None or not agent.active or agent.role not in {Role.AGENT, Role.SUPERVISOR, Role.ADMIN}:
        raise Invalid("坐席不存在或已停用", code="unknown_agent", details={"fields": {"agent_id": "unknown"}})
    return agent


def assign_to(session: AsyncSession, conversation: Conversation, agent: StaffUser, *, actor: str) -> Message:
    event = transition(session, conversation, "assign", actor=actor, agent=agent.display_name)
    conversation.assignee_id = agent.id
    conversation.assignee = agent
    conversation.last_agent_id = agent.id
    return event


async def claim(session: AsyncSession, principal: Principal, conversation_id: int) -> Message:
    conversation = await load_for_update(session, conversation_id)
    if not (principal.is_overseer or in_team(principal, conversation.team_id)):
        raise Forbidden("无权接入其他技能组的会话")
    if principal.user_id is None:
        raise Forbidden("服务令牌不能接入会话")
    if conversation.state != S.QUEUED:
        raise Conflict("会话已被接入或不在排队中", code="not_queued", details={"state": conversation.state})
    agent = await _active_agent(session, principal.user_id)
    return assign_to(session, conversation, agent, actor=principal.username)


async def assign(session: AsyncSession, principal: Principal, conversation_id: int, agent_id: int) -> Message:
    conversation = await load_for_update(session, conversation_id)
    agent = await _active_agent(session, agent_id)
    return assign_to(session, conversation, agent, actor=principal.username)


async def close(
    session: AsyncSession, principal: Principal, conversation_id: int, disposition: str | None
) -> Message:
    conversation = await load_for_update(session, conversation_id)
    _require_handler(principal, conversation)
    if disposition is not None:
        await _require_disposition(session, disposition)
    conversation.disposition = disposition
    return transition(session, conversation, "close", actor=principal.username)


async def add_note(
    session: AsyncSession, principal: Principal, conversation_id: int, text: str
) -> tuple[Conversation, Message]:
    """An internal note (never sent to the resident): an agent's own remark, or a supervisor whispering to the
    agent who handles the conversation."""
    conversation = await load_visible(session, principal, conversation_id)
    author = await session.get(StaffUser, principal.user_id) if principal.user_id else None
    note = Message(conversation_id=conversation.id, channel=conversation.channel, direction=Direction.INTERNAL,
                   author=Author.AGENT, author_user=author, type=MessageType.TEXT, text=text,
                   payload={"kind": "whisper" if author and author.id != conversation.assignee_id else "note"},
                   created_at=utcnow())
    session.add(note)
    return conversation, note


async def _require_disposition(session: AsyncSession, code: str) -> None:
    found = await session.scalar(select(Disposition.id).where(Disposition.code == code, Disposition.active))
    if found is None:
        raise Invalid("请选择有效的咨询类型", code="unknown_disposition",
                      details={"fields": {"disposition": "unknown"}})


async def transfer(
    session: AsyncSession,
    principal: Principal,
    conversation_id: int,
    *,
    agent_id: int | None,
    team_id: int | None,
    note: str | None,
) -> list[Message]:
    conversation = await load_for_update(session, conversation_id)
    _require_handler(principal, conversation)
    events: list[Message] = []
    if agent_id is not None:
        agent = await _active_agent(session, agent_id)
        if agent.id == conversation.assignee_id:
            raise Conflict("会话已由该坐席接待", code="same_agent")
        events.append(assign_to(session, conversation, agent, actor=principal.username))
    else:
        team = await session.get(Team, team_id)
        if team is None:
            raise Invalid("技能组不存在", code="unknown_team", details={"fields": {"team_id": "unknown"}})
        events.append(send_to_team(session, conversation, team, actor=principal.username))
    if note:
        events.append(
            system_event(conversation, "note", note, actor=principal.username, kind="transfer_note")
        )
        session.add(events[-1])
    return events


def send_to_team(session: AsyncSession, conversation: Conversation, team: Team, *, actor: str) -> Message:
    """The conversation leaves its agent (if any) and waits in ``team``'s queue."""
    event = transition(session, conversation, "transfer_team", actor=actor, team=team.name)
    conversation.team_id, conversation.team = team.id, team
    conversation.assignee_id, conversation.assignee = None, None
    return event


async def list_visible(
    session: AsyncSession,
    principal: Principal,
    *,
    states: Iterable[str],
    mine: bool,
    limit: int,
    before_id: int | None = None,
) -> list[tuple[Conversation, Message | None]]:
    """Conversations the caller may see, newest activity first, each with its last visible message."""
    query = select(Conversation).where(Conversation.state.in_(list(states)))
    if mine:
        query = query.where(Conversation.assignee_id == principal.user_id)
    elif not principal.is_overseer:
        query = query.where(
            (Conversation.assignee_id == principal.user_id)
            | Conversation.team_id.is_(None)
            | Conversation.team_id.in_(principal.team_ids)
        )
    if before_id is not None:
        query = query.where(Conversation.id < before_id)
    query = query.order_by(Conversation.id.desc()).limit(limit)
    conversations = [c for c in (await session.scalars(query)).unique() if can_view(principal, visibility_key(c))]
    last = await last_messages(session, [c.id for c in conversations])
    return [(c, last.get(c.id)) for c in conversations]


async def last_messages(session: AsyncSession, conversation_ids: list[int]) -> dict[int, Message]:
    if not conversation_ids:
        return {}
    newest = (
        select(func.max(Message.id))
        .where(Message.conversation_id.in_(conversation_ids), Message.direction != Direction.INTERNAL)
        .group_by(Message.conversation_id)
    )
    rows = await session.scalars(select(Message).where(Message.id.in_(newest)))
    return {m.conversation_id: m for m in rows.unique()}


def stamp_activity(conversation: Conversation, at: datetime) -> None:
    conversation.updated_at = at
    conversation.last_message_at = at
