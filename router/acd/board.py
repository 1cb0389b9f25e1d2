"""What supervisors watch: every queue (length, longest wait, service level today) and every agent
(presence, open chats, capacity). The wallboard, the inbox and the API read these.

Service level today, per team: of the conversations that entered the team's queue since local midnight and
were either answered or have waited longer than the team's threshold, the share answered within the
threshold (the usual contact-centre definition: an item still waiting inside the threshold is not counted
yet). The phone line's service level counts the other way: a caller who hung up while waiting counts against
it whatever their wait (see :func:`call_figures`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta, tzinfo

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from router.acd.distributor import ROUTABLE_ROLES, open_loads
from router.logs import mask_phone
from router.models import AgentPresence, Call, Conversation, ConversationState, PresenceState, StaffUser, Team


class QueueFigures(BaseModel):
    team_id: int
    name: str
    strategy: str
    prefer_last_agent: bool
    bind_region: bool
    overflow_team_id: int | None
    overflow_after_seconds: int | None
    service_level_seconds: int
    waiting: int
    longest_wait_seconds: float
    agents_signed_in: int
    agents_ready: int
    entered_today: int
    answered_today: int
    service_level_today: float | None  # 0..1; None before anything counts


class AgentFigures(BaseModel):
    id: int
    username: str
    display_name: str
    role: str
    team_ids: list[int]
    state: str
    reason: str | None
    since: datetime | None
    acw_until: datetime | None
    load: int
    capacity: int


def local_midnight(now: datetime, zone: tzinfo) -> datetime:
    local = now.astimezone(zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


async def queue_figures(
    session: AsyncSession, now: datetime, zone: tzinfo, team_ids: set[int] | None = None
) -> list[QueueFigures]:
    """One line per team (``team_ids`` limits them), in team order."""
    query = select(Team).order_by(Team.id)
    if team_ids is not None:
        query = query.where(Team.id.in_(team_ids))
    teams = list(await session.scalars(query))
    waiting = defaultdict(list)
    for team_id, entered in await session.execute(
        select(Conversation.team_id, Conversation.queue_entered_at).where(
            Conversation.state == ConversationState.QUEUED)
    ):
        waiting[team_id].append(entered or now)
    today = await session.execute(
        select(Conversation.team_id, Conversation.queued_at, Conversation.assigned_at).where(
            Conversation.queued_at >= local_midnight(now, zone))
    )
    entered_today, answered, counted, within = Counter(), Counter(), Counter(), Counter()
    thresholds = {t.id: timedelta(seconds=t.service_level_seconds) for t in teams}
    for team_id, queued_at, assigned_at in today:
        if team_id not in thresholds:
            continue
        entered_today[team_id] += 1
        threshold = thresholds[team_id]
        if assigned_at is not None and assigned_at >= queued_at:
            answered[team_id] += 1
            counted[team_id] += 1
            within[team_id] += assigned_at - queued_at <= threshold
        elif now - queued_at > threshold:
            counted[team_id] += 1
    signed_in, ready = await _agents_by_team(session)
    return [
        QueueFigures(
            team_id=t.id, name=t.name, strategy=t.strategy, prefer_last_agent=t.prefer_last_agent,
            bind_region=t.bind_region, overflow_team_id=t.overflow_team_id,
            overflow_after_seconds=t.overflow_after_seconds, service_level_seconds=t.service_level_seconds,
            waiting=len(waiting[t.id]),
            longest_wait_seconds=max(((now - e).total_seconds() for e in waiting[t.id]), default=0.0),
            agents_signed_in=signed_in[t.id], agents_ready=ready[t.id],
            entered_today=entered_today[t.id], answered_today=answered[t.id],
            service_level_today=within[t.id] / counted[t.id] if counted[t.id] else None,
        )
        for t in teams
    ]


async def _agents_by_team(session: AsyncSession) -> tuple[Counter[int], Counter[int]]:
    signed_in, ready = Counter(), Counter()
    rows = await session.execute(
        select(AgentPresence.state, StaffUser)
        .join(StaffUser, StaffUser.id == AgentPresence.user_id)
        .where(AgentPresence.state != PresenceState.SIGNED_OUT, StaffUser.active)
    )
    for state, user in rows.unique():
        for team in user.teams:
            signed_in[team.id] += 1
            ready[team.id] += state == PresenceState.READY
    return signed_in, ready


async def agent_figures(session: AsyncSession, user_ids: list[int] | None = None) -> list[AgentFigures]:
    """Every active member of staff who can take chats (or those of ``user_ids``), with presence and load."""
    query = (
        select(StaffUser, AgentPresence)
        .outerjoin(AgentPresence, AgentPresence.user_id == StaffUser.id)
        .where(StaffUser.active, StaffUser.role.in_(ROUTABLE_ROLES))
        .order_by(StaffUser.id)
    )
    if user_ids is not None:
        query = query.where(StaffUser.id.in_(user_ids))
    rows = (await session.execute(query)).unique().all()
    loads = await open_loads(session, {user.id: user.max_chats for user, _ in rows})
    return [
        AgentFigures(
            id=user.id, username=user.username, display_name=user.display_name, role=user.role,
            team_ids=[t.id for t in user.teams],
            state=presence.state if presence else PresenceState.SIGNED_OUT,
            reason=presence.reason if presence else None,
            since=presence.since if presence else None,
            acw_until=presence.acw_until if presence else None,
            load=loads.get(user.id, 0), capacity=user.max_chats,
        )
        for user, presence in rows
    ]


SERVICE_LEVEL_SECONDS = 20  # a call answered within this many seconds of joining the queue meets the target


class LiveCallFigure(BaseModel):
    call_id: int
    caller: str | None  # masked
    agent_id: int | None
    agent_name: str | None
    since: datetime  # joined the queue (waiting) or was put through (talking)


class CallFigures(BaseModel):
    waiting: list[LiveCallFigure]  # longest waiting first
    talking: list[LiveCallFigure]
    answered_today: int  # put through to an agent since local midnight
    abandoned_today: int  # hung up while waiting, since local midnight
    service_level: float | None  # answered within the threshold / (answered + abandoned); None before any call
    threshold_seconds: int


async def call_figures(session: AsyncSession, now: datetime, zone: tzinfo) -> CallFigures:
    """The phone line beside the chat queues: calls waiting and talking now, and today's answered, abandoned
    and service level (abandoned calls count against it, however short their wait)."""
    live = (await session.execute(
        select(Call.id, Call.caller, Call.agent_id, StaffUser.display_name, Call.queued_at, Call.connected_at)
        .outerjoin(StaffUser, StaffUser.id == Call.agent_id)
        .where(Call.ended_at.is_(None), Call.queued_at.is_not(None))
        .order_by(Call.queued_at))).all()
    figures = [(row.connected_at is not None, LiveCallFigure(
        call_id=row.id, caller=mask_phone(row.caller) if row.caller else None, agent_id=row.agent_id,
        agent_name=row.display_name, since=row.connected_at or row.queued_at)) for row in live]
    today = (await session.execute(
        select(Call.queued_at, Call.connected_at, Call.outcome)
        .where(Call.queued_at >= local_midnight(now, zone)))).all()
    answered = [connected - queued for queued, connected, _ in today if connected is not None]
    abandoned = sum(1 for _, connected, outcome in today if connected is None and outcome == "abandoned")
    within = sum(1 for wait in answered if wait.total_seconds() <= SERVICE_LEVEL_SECONDS)
    return CallFigures(
        waiting=[f for talking, f in figures if not talking], talking=[f for talking, f in figures if talking],
        answered_today=len(answered), abandoned_today=abandoned,
        service_level=within / (len(answered) + abandoned) if answered or abandoned else None,
        threshold_seconds=SERVICE_LEVEL_SECONDS)
