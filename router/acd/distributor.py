"""The distributor: loads the floor and the waiting conversations, asks :mod:`router.acd.decide`, writes the
assignments, in one transaction.

A pass runs whenever something may let a waiting conversation reach an agent (a conversation is queued, an
agent becomes ready, a chat closes), and on a sweep every ``acd_sweep_seconds`` that also moves items whose
wait exceeded their team's overflow limit, ends after-call work and signs out agents whose inbox went quiet.

Several hub processes may run passes at the same time. On PostgreSQL a pass holds a transaction-scoped
advisory lock, so passes take turns and each sees the one before it committed: no agent is over-filled and
no conversation is assigned twice (the conversation rows are also locked, skipping those a person is claiming
at that moment). SQLite is the single-process mode; passes in one process always take turns.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Table, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import defaultload, raiseload

from router import conversations as convs
from router.acd import presence
from router.acd.decide import AgentSlot, Floor, Item, Plan, Policy, plan
from router.db import log_pass_failure, take_turns
from router.logs import get_logger
from router.models import (
    AgentPresence,
    Contact,
    Conversation,
    ConversationState,
    Message,
    PresenceState,
    Role,
    RoutingStrategy,
    StaffUser,
    Team,
    user_skill,
    user_team,
    utcnow,
)
from router.settings import Settings

log = get_logger(__name__)

ADVISORY_LOCK_KEY = 962740_0001  # one ACD at a time across hub processes (PostgreSQL)
BATCH = 500  # waiting conversations considered per round of a pass
ROUTABLE_ROLES = (Role.AGENT, Role.SUPERVISOR, Role.ADMIN)
ACTIVE_STATES = (ConversationState.ASSIGNED, ConversationState.WAITING_RESIDENT)
VOICE_CHANNEL = "voice"  # a phone call takes an agent's whole capacity: voice and chat share one model


@dataclass
class PassResult:
    """What a pass changed, for the hub to publish once the transaction has committed."""

    assigned: list[tuple[Conversation, Message]] = field(default_factory=list)
    overflowed: list[tuple[Conversation, Message]] = field(default_factory=list)
    presence_events: list[dict[str, Any]] = field(default_factory=list)


class Distributor:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings,
                 publish: Callable[[PassResult], Awaitable[None]]) -> None:
        self._sessions = sessions
        self._settings = settings
        self._publish = publish
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="acd-distributor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def wake(self) -> None:
        """Something changed that may let a waiting conversation reach an agent: run a pass soon."""
        self._wake.set()

    async def _run(self) -> None:
        interval = self._settings.acd_sweep_seconds
        next_sweep = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, next_sweep - time.monotonic()))
            self._wake.clear()
            sweep = time.monotonic() >= next_sweep
            if sweep:
                next_sweep = time.monotonic() + interval
            try:
                await self.run_pass(sweep=sweep)
            except Exception as exc:
                log_pass_failure(log, "ACD pass failed; retrying on the next sweep", exc)

    async def run_pass(self, *, sweep: bool = False) -> PassResult:
        """One pass (and, with ``sweep``, the timed work first); the result is published after commit."""
        result = PassResult()
        async with self._sessions.begin() as session:
            await take_turns(session, ADVISORY_LOCK_KEY)
            if sweep:
                result.presence_events = await presence.expire(
                    session, timeout_seconds=self._settings.presence_timeout_seconds)
                result.overflowed = await _overflow(session)
            while True:
                assigned = await _assign_round(session)
                result.assigned.extend(assigned)
                if len(assigned) < BATCH:
                    break
        if result.assigned or result.overflowed or result.presence_events:
            await self._publish(result)
        return result


async def open_loads(session: AsyncSession, capacities: dict[int, int]) -> dict[int, int]:
    """Each agent's load: their open conversations, or their whole capacity while one of them is a call."""
    if not capacities:
        return {}
    rows = await session.execute(
        select(Conversation.assignee_id, func.count(),
               func.max(case((Conversation.channel == VOICE_CHANNEL, 1), else_=0)))
        .where(Conversation.state.in_(ACTIVE_STATES), Conversation.assignee_id.in_(list(capacities)))
        .group_by(Conversation.assignee_id)
    )
    return {agent: max(count, capacities[agent]) if on_call else count for agent, count, on_call in rows}


async def load_floor(session: AsyncSession, now: float) -> Floor:
    """Signed-in agents with their load (open chats), teams, skills and region. Columns only, no ORM objects:
    a pass runs at every arrival, and building fifty accounts with their teams and skills was most of its cost."""
    rows = (await session.execute(
        select(StaffUser.id, StaffUser.max_chats, StaffUser.region_id, StaffUser.sip_extension,
               AgentPresence.state, AgentPresence.last_assigned_at)
        .join(AgentPresence, AgentPresence.user_id == StaffUser.id)
        .where(AgentPresence.state != PresenceState.SIGNED_OUT, StaffUser.active,
               StaffUser.role.in_(ROUTABLE_ROLES))
    )).all()
    ids = [row.id for row in rows]
    teams = await _memberships(session, user_team, "team_id", ids)
    skills = await _memberships(session, user_skill, "skill_id", ids)
    loads = await open_loads(session, {row.id: row.max_chats for row in rows})
    return Floor([
        AgentSlot(
            id=row.id,
            capacity=row.max_chats,
            load=loads.get(row.id, 0),
            ready=row.state == PresenceState.READY,
            team_ids=frozenset(teams.get(row.id, ())),
            skill_ids=frozenset(skills.get(row.id, ())),
            region_id=row.region_id,
            last_assigned_at=row.last_assigned_at.timestamp() if row.last_assigned_at else 0.0,
            phone=row.sip_extension is not None,
        )
        for row in rows
    ], now)


async def _memberships(session: AsyncSession, table: Table, column: str, user_ids: list[int]) -> dict[int, set[int]]:
    """user id → the ids in ``table``'s ``column`` (a user's teams, or skills)."""
    if not user_ids:
        return {}
    found: dict[int, set[int]] = {}
    for user_id, other in await session.execute(
            select(table.c.user_id, table.c[column]).where(table.c.user_id.in_(user_ids))):
        found.setdefault(user_id, set()).add(other)
    return found


async def _assign_round(session: AsyncSession) -> list[tuple[Conversation, Message]]:
    now = utcnow()
    floor = await load_floor(session, now.timestamp())
    if not any(a.free for a in floor.agents):
        return []
    waiting = list((await session.scalars(
        select(Conversation)
        .join(Contact, Contact.id == Conversation.contact_id)
        .where(Conversation.state == ConversationState.QUEUED)
        .order_by(Contact.vip.desc(), Conversation.priority.desc(), Conversation.queued_at, Conversation.id)
        .limit(BATCH)
        .with_for_update(of=Conversation, skip_locked=True)
        .options(defaultload(Conversation.contact).lazyload(Contact.identities))  # not needed here
    )).unique())
    if not waiting:
        return []
    teams = {t.id: t for t in await session.scalars(
        select(Team).where(Team.id.in_({c.team_id for c in waiting if c.team_id is not None})))}
    policies: dict[int | None, Policy] = {
        team.id: Policy(RoutingStrategy(team.strategy), team.prefer_last_agent, team.bind_region, team.rr_cursor)
        for team in teams.values()
    }
    previous = await _previous_agents(session, [c for c in waiting if c.last_agent_id is None
                                                and c.team_id in teams and teams[c.team_id].prefer_last_agent])
    items = [
        Item(c.id, c.team_id, c.skill_id, c.region_id or c.contact.region_id,
             c.last_agent_id or previous.get(c.contact_id), call=c.channel == VOICE_CHANNEL)
        for c in waiting
    ]
    decided: Plan = plan(items, policies, floor)
    by_id = {c.id: c for c in waiting}
    chosen = {assignment.agent_id for assignment in decided.assignments}
    users = {user.id: user for user in await session.scalars(
        select(StaffUser).where(StaffUser.id.in_(chosen))
        .options(raiseload(StaffUser.teams), raiseload(StaffUser.skills)))} if chosen else {}
    assigned = []
    for assignment in decided.assignments:
        conversation = by_id[assignment.conversation_id]
        event = convs.assign_to(session, conversation, users[assignment.agent_id], actor="acd")
        assigned.append((conversation, event))
    if chosen:
        await session.execute(update(AgentPresence).where(AgentPresence.user_id.in_(chosen))
                              .values(last_assigned_at=now))
    for team_id, cursor in decided.rr_cursors.items():
        if team_id is not None:
            await session.execute(update(Team).where(Team.id == team_id).values(rr_cursor=cursor))
    await session.flush()
    return assigned


async def _previous_agents(session: AsyncSession, waiting: list[Conversation]) -> dict[int, int]:
    """For each resident, the agent of their most recent conversation that had one."""
    if not waiting:
        return {}
    rows = await session.execute(
        select(Conversation.contact_id, Conversation.last_agent_id)
        .where(Conversation.contact_id.in_({c.contact_id for c in waiting}), Conversation.last_agent_id.is_not(None))
        .order_by(Conversation.id)
    )
    return dict(rows.all())  # later rows overwrite earlier ones: the newest wins


async def _overflow(session: AsyncSession) -> list[tuple[Conversation, Message]]:
    """Move conversations that waited too long in a team's queue on to that team's overflow team."""
    moved = []
    now = utcnow()
    teams = list(await session.scalars(
        select(Team).where(Team.overflow_team_id.is_not(None), Team.overflow_after_seconds.is_not(None))))
    for team in teams:
        target = await session.get(Team, team.overflow_team_id)
        if target is None:
            continue
        overdue = await session.scalars(
            select(Conversation)
            .where(Conversation.state == ConversationState.QUEUED, Conversation.team_id == team.id,
                   Conversation.queue_entered_at < now - timedelta(seconds=team.overflow_after_seconds))
            .with_for_update(of=Conversation, skip_locked=True)
        )
        for conversation in overdue.unique():
            event = convs.transition(session, conversation, "overflow", actor="acd", team=target.name)
            conversation.team_id, conversation.team = target.id, target
            moved.append((conversation, event))
    await session.flush()
    return moved
