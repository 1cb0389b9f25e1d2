"""Presence and queues: an agent's own state, the supervisors' view of every agent and queue, and each team's
routing settings (strategy, sticky, region binding, overflow, service-level threshold)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from router.access import OVERSEER_ROLES, STAFF_ROLES
from router.acd.board import AgentFigures, QueueFigures, agent_figures, queue_figures
from router.api import api
from router.api.auditing import audit, changes
from router.api.spec import HUB, MAX_ID, Call
from router.errors import Forbidden, Invalid, NotFound
from router.models import PresenceState, RoutingStrategy, Team, utcnow
from router.schemas import StrictBody

StateName = Literal["signed_out", "ready", "away", "busy", "acw"]


class PresenceBody(StrictBody):
    state: StateName
    reason: str | None = Field(None, max_length=100)


class MyPresence(BaseModel):
    agent: AgentFigures


class ItemsOfAgents(BaseModel):
    items: list[AgentFigures]


class ItemsOfQueues(BaseModel):
    items: list[QueueFigures]


class RoutingBody(StrictBody):
    strategy: RoutingStrategy
    prefer_last_agent: bool = False
    bind_region: bool = False
    overflow_team_id: int | None = Field(None, ge=1, le=MAX_ID)
    overflow_after_seconds: int | None = Field(None, ge=5, le=24 * 3600)
    service_level_seconds: int = Field(20, ge=1, le=3600)

    @model_validator(mode="after")
    def overflow_complete(self) -> RoutingBody:
        if (self.overflow_team_id is None) != (self.overflow_after_seconds is None):
            raise ValueError("give both overflow_team_id and overflow_after_seconds, or neither")
        return self


async def _figures_of(call: Call, user_id: int) -> AgentFigures:
    async with call.request.app[HUB].sessions() as session:
        found = await agent_figures(session, [user_id])
    if not found:
        raise NotFound("坐席不存在", code="unknown_agent")
    return found[0]


@api.endpoint("GET", "/api/presence", summary="My presence, open chats and capacity", roles=STAFF_ROLES,
              response=MyPresence, tag="routing")
async def my_presence(call: Call) -> MyPresence:
    if call.user.user_id is None:
        raise Forbidden("服务令牌没有坐席状态", code="service_token")
    return MyPresence(agent=await _figures_of(call, call.user.user_id))


@api.endpoint("PUT", "/api/presence", summary="Sign in, get ready, go away (with a reason), busy, after-call work "
              "or sign out", roles=STAFF_ROLES, body=PresenceBody, response=MyPresence, tag="routing")
async def set_my_presence(call: Call) -> MyPresence:
    if call.user.user_id is None:
        raise Forbidden("服务令牌没有坐席状态", code="service_token")
    await call.request.app[HUB].set_presence(call.user.user_id, PresenceState(call.body.state), call.body.reason)
    return MyPresence(agent=await _figures_of(call, call.user.user_id))


@api.endpoint("GET", "/api/agents", summary="Every agent's presence, open chats and capacity",
              roles=OVERSEER_ROLES, response=ItemsOfAgents, tag="routing")
async def list_agents(call: Call) -> ItemsOfAgents:
    async with call.request.app[HUB].sessions() as session:
        return ItemsOfAgents(items=await agent_figures(session))


@api.endpoint("PUT", "/api/agents/{user_id:\\d+}/presence", summary="Force an agent's state (or sign them out)",
              roles=OVERSEER_ROLES, body=PresenceBody, response=MyPresence, tag="routing", errors=(404,))
async def force_presence(call: Call) -> MyPresence:
    user_id = call.path["user_id"]
    await _figures_of(call, user_id)  # 404 for someone who cannot take chats
    await call.request.app[HUB].set_presence(
        user_id, PresenceState(call.body.state), call.body.reason, actor=call.user.username,
        audit=audit(call, "presence.force", "staff_user", user_id, state=call.body.state, reason=call.body.reason))
    return MyPresence(agent=await _figures_of(call, user_id))


@api.endpoint("GET", "/api/queues", summary="Queues (one per team) with their figures; agents see their teams'",
              roles=STAFF_ROLES, response=ItemsOfQueues, tag="routing")
async def list_queues(call: Call) -> ItemsOfQueues:
    hub = call.request.app[HUB]
    teams = None if call.user.is_overseer else set(call.user.team_ids)
    async with hub.sessions() as session:
        return ItemsOfQueues(items=await queue_figures(session, utcnow(), hub.settings.zone, teams))


class TransferTeam(BaseModel):
    id: int
    name: str
    waiting: int


class TransferTargets(BaseModel):
    teams: list[TransferTeam]
    agents: list[AgentFigures]  # signed in; an agent sees the colleagues of their own teams


@api.endpoint("GET", "/api/transfer-targets", summary="Teams and signed-in colleagues a conversation can be "
              "transferred to", roles=STAFF_ROLES, response=TransferTargets, tag="routing")
async def transfer_targets(call: Call) -> TransferTargets:
    hub = call.request.app[HUB]
    async with hub.sessions() as session:
        queues = await queue_figures(session, utcnow(), hub.settings.zone, None)
        agents = [a for a in await agent_figures(session) if a.state != PresenceState.SIGNED_OUT
                  and (call.user.is_overseer or call.user.team_ids.intersection(a.team_ids))]
    return TransferTargets(teams=[TransferTeam(id=q.team_id, name=q.name, waiting=q.waiting) for q in queues],
                           agents=agents)


@api.endpoint("PUT", "/api/queues/{team_id:\\d+}", summary="Change a team's routing", roles=OVERSEER_ROLES,
              body=RoutingBody, response=ItemsOfQueues, tag="routing", errors=(404,))
async def set_routing(call: Call) -> ItemsOfQueues:
    hub = call.request.app[HUB]
    body: RoutingBody = call.body
    team_id = call.path["team_id"]
    async with hub.sessions.begin() as session:
        team = await session.get(Team, team_id)
        if team is None:
            raise NotFound("技能组不存在", code="unknown_team")
        if body.overflow_team_id is not None and (
                body.overflow_team_id == team_id or await session.get(Team, body.overflow_team_id) is None):
            raise Invalid("溢出目标必须是另一个技能组", code="bad_overflow_team",
                          details={"fields": {"overflow_team_id": "unknown or the same team"}})
        after = body.model_dump()
        audit(call, "routing.change", "team", team_id, changes=changes(
            {name: getattr(team, name) for name in after}, after))(session)
        for name, value in after.items():
            setattr(team, name, value)
    hub.distributor.wake()
    async with hub.sessions() as session:
        return ItemsOfQueues(items=await queue_figures(session, utcnow(), hub.settings.zone, {team_id}))

