"""Call records (REC1) and the IVR's key-press statistics (IVR7).

Staff find calls by the caller's number (all of it or its last digits), a time range, a work order the call led
to, or the call's outcome; one call comes with its events and the address of its recording. Supervisors and
admins see every call; an agent sees the calls of the conversations :mod:`router.access` lets them see (a call
with no conversation is for supervisors only). Callers' numbers are masked in every answer.

The statistics are counted in the database: per menu node the calls and entries, the keys pressed there, and
the outcomes of the calls whose walk ended at that node.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import ColumnElement, Select, and_, distinct, exists, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from channels.voice.adapter import VoiceAdapter
from channels.voice.agents import CallControlRefused, CallNotHere
from router.access import OVERSEER_ROLES, STAFF_ROLES, Principal, conversation_clause
from router.acd.board import CallFigures, call_figures
from router.api import api
from router.api.auditing import audit
from router.api.contacts import visible_contact_phone
from router.api.spec import HUB, MAX_ID, Call
from router.errors import Conflict, Forbidden, Invalid, NotFound
from router.logs import mask_phone, masked
from router.models import Call as CallRow
from router.models import CallEvent, CallEventKind, Conversation, Team, utcnow
from router.phones import required_phone
from router.schemas import StrictBody
from router.uploads import file_response

PAGE_MAX = 100
NO_OUTCOME = "none"  # the outcome key of calls that came to none (still on the line, or cut off)


def _aware(*moments: datetime | None) -> None:
    for moment in moments:
        if moment is not None and moment.tzinfo is None:
            raise ValueError("times need a timezone offset, e.g. 2026-12-05T08:00:00+08:00")


class CallsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    number: str | None = Field(None, pattern=r"^\+?\d{3,20}$", description="the caller's number or its last digits")
    since: datetime | None = None
    until: datetime | None = None
    order: str | None = Field(None, pattern=r"^[A-Za-z0-9-]{1,20}$", description="a work order's number")
    outcome: str | None = Field(None, pattern=r"^[a-z_]{1,32}$")
    conversation: int | None = Field(None, ge=1, le=MAX_ID, description="the calls of one conversation")
    before_id: int | None = Field(None, ge=1, le=MAX_ID, description="the next page: calls older than this one")
    limit: int = Field(20, ge=1, le=PAGE_MAX)

    @model_validator(mode="after")
    def _aware_range(self) -> CallsQuery:
        _aware(self.since, self.until)
        return self


class CallOut(BaseModel):
    id: int
    caller: str | None  # masked
    did: str | None
    conversation_id: int | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    duration_seconds: int | None
    outcome: str | None
    hangup_cause_text: str | None
    hangup_side: str | None
    ivr_path: list[Any]
    has_recording: bool
    agent_id: int | None  # the agent who answered it
    wait_seconds: int | None  # in the queue, until an agent answered or the caller gave up
    survey_score: int | None  # 1-5, keyed by the caller after the agent hung up


class CallsPage(BaseModel):
    items: list[CallOut]
    next_before_id: int | None  # pass as before_id for the next (older) page; null on the last page


class CallEventOut(BaseModel):
    at: datetime
    kind: str
    node: str | None
    key: str | None
    detail: dict[str, Any] | None


class CallDetail(CallOut):
    events: list[CallEventOut]
    work_orders: list[str]
    recording_url: str | None


class StatsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: datetime | None = Field(None, alias="from", description="calls started at or after")
    to: datetime | None = Field(None, description="calls started before")

    @model_validator(mode="after")
    def _aware_range(self) -> StatsQuery:
        _aware(self.from_, self.to)
        return self


class NodeStats(BaseModel):
    node: str
    calls: int  # calls that entered it
    entries: int  # times it was entered (replays and returns included)
    keys: dict[str, int]  # key -> presses at this node
    timeouts: int  # questions at this node left unanswered (nothing pressed in time)
    invalid: int  # keys or numbers this node does not take
    ended: dict[str, int]  # outcome -> calls whose walk ended at this node


class IvrStats(BaseModel):
    calls: int  # calls started in the range
    nodes: list[NodeStats]


def _visible(principal: Principal) -> ColumnElement[bool]:
    if principal.is_overseer:
        return true()
    return exists().where(Conversation.id == CallRow.conversation_id, conversation_clause(principal))


def _of_order(number: str) -> ColumnElement[bool]:
    """Calls that led to work order ``number``: filed during the call, or of the conversation that has it."""
    from workorders.models import WorkOrder  # work orders are built on the router, not the other way round

    filed = exists().where(CallEvent.call_id == CallRow.id, CallEvent.kind == CallEventKind.WORK_ORDER,
                           CallEvent.detail["number"].as_string() == number)
    of_conversation = exists().where(WorkOrder.number == number, WorkOrder.conversation_id.is_not(None),
                                     WorkOrder.conversation_id == CallRow.conversation_id)
    return or_(filed, of_conversation)


def _like_suffix(digits: str) -> str:
    return "%" + digits  # digits and '+' only (validated): nothing to escape


def _call_out(row: CallRow) -> CallOut:
    duration = None
    if row.ended_at is not None:
        duration = int((row.ended_at - (row.answered_at or row.started_at)).total_seconds())
    waited_until = row.connected_at or row.ended_at
    wait = int((waited_until - row.queued_at).total_seconds()) if row.queued_at and waited_until else None
    return CallOut(id=row.id, caller=mask_phone(row.caller) if row.caller else None, did=row.did,
                   conversation_id=row.conversation_id, started_at=row.started_at, answered_at=row.answered_at,
                   ended_at=row.ended_at, duration_seconds=duration, outcome=row.outcome,
                   hangup_cause_text=row.hangup_cause_text, hangup_side=row.hangup_side, ivr_path=row.ivr_path or [],
                   has_recording=row.recording_file_id is not None, agent_id=row.agent_id, wait_seconds=wait,
                   survey_score=row.survey_score)


async def _visible_call(session: AsyncSession, principal: Principal, call_id: int) -> CallRow:
    row = await session.scalar(select(CallRow).where(CallRow.id == call_id, _visible(principal)))
    if row is None:
        raise NotFound("通话记录不存在", code="call_not_found")
    return row


def recording_path(call_id: int) -> str:
    return f"/api/calls/{call_id}/recording"


@api.endpoint("GET", "/api/calls", summary="Call records, newest first, by number, time, work order or outcome",
              roles=STAFF_ROLES, query=CallsQuery, response=CallsPage, tag="calls")
async def list_calls(call: Call) -> CallsPage:
    query: CallsQuery = call.query
    statement: Select[tuple[CallRow]] = (select(CallRow).where(_visible(call.user))
                                         .order_by(CallRow.id.desc()).limit(query.limit + 1))
    if query.number is not None:
        statement = statement.where(CallRow.caller.like(_like_suffix(query.number.lstrip("+"))))
    if query.since is not None:
        statement = statement.where(CallRow.started_at >= query.since)
    if query.until is not None:
        statement = statement.where(CallRow.started_at < query.until)
    if query.order is not None:
        statement = statement.where(_of_order(query.order))
    if query.outcome is not None:
        statement = statement.where(CallRow.outcome == query.outcome)
    if query.conversation is not None:
        statement = statement.where(CallRow.conversation_id == query.conversation)
    if query.before_id is not None:
        statement = statement.where(CallRow.id < query.before_id)
    async with call.request.app[HUB].sessions() as session:
        rows = (await session.scalars(statement)).all()
    more = len(rows) > query.limit
    rows = rows[:query.limit]
    return CallsPage(items=[_call_out(row) for row in rows], next_before_id=rows[-1].id if more else None)


@api.endpoint("GET", r"/api/calls/{call_id:\d+}", summary="One call with its events and its recording's address",
              roles=STAFF_ROLES, response=CallDetail, tag="calls", errors=(404,))
async def get_call(call: Call) -> CallDetail:
    async with call.request.app[HUB].sessions() as session:
        row = await _visible_call(session, call.user, call.path["call_id"])
        events = (await session.scalars(select(CallEvent).where(CallEvent.call_id == row.id)
                                         .order_by(CallEvent.at, CallEvent.id))).all()
    orders = [str(e.detail["number"]) for e in events
              if e.kind == CallEventKind.WORK_ORDER and e.detail and e.detail.get("number")]
    return CallDetail(
        **_call_out(row).model_dump(),
        events=[CallEventOut(at=e.at, kind=e.kind, node=e.node, key=e.key,
                             detail=masked(e.detail) if e.detail else None) for e in events],
        work_orders=orders,
        recording_url=recording_path(row.id) if row.recording_file_id else None,
    )


@api.endpoint("GET", r"/api/calls/{call_id:\d+}/recording", summary="A call's recording (WAV), for who sees the call",
              roles=STAFF_ROLES, tag="calls", errors=(404,))
async def get_recording(call: Call) -> web.FileResponse:
    hub = call.request.app[HUB]
    async with hub.sessions() as session:
        row = await _visible_call(session, call.user, call.path["call_id"])
    found = await hub.open_file(row.recording_file_id) if row.recording_file_id else None
    if found is None:
        raise NotFound("该通话没有录音", code="recording_not_found")
    info, path = found
    return file_response(info.name, info.content_type, path)


@api.endpoint("GET", "/api/ivr/stats", summary="Key presses, entries and end outcomes per IVR menu node",
              roles=OVERSEER_ROLES, query=StatsQuery, response=IvrStats, tag="ivr")
async def ivr_stats(call: Call) -> IvrStats:
    query: StatsQuery = call.query
    in_range = and_(true(), *([CallRow.started_at >= query.from_] if query.from_ else []),
                    *([CallRow.started_at < query.to] if query.to else []))
    nodes: dict[str, NodeStats] = {}

    def node(name: str) -> NodeStats:
        return nodes.setdefault(name, NodeStats(node=name, calls=0, entries=0, keys={}, timeouts=0, invalid=0,
                                                ended={}))

    async with call.request.app[HUB].sessions() as session:
        total = await session.scalar(select(func.count()).select_from(CallRow).where(in_range))
        entered = await session.execute(
            select(CallEvent.node, func.count(distinct(CallEvent.call_id)), func.count())
            .join(CallRow, CallRow.id == CallEvent.call_id)
            .where(in_range, CallEvent.kind == CallEventKind.NODE, CallEvent.node.is_not(None))
            .group_by(CallEvent.node))
        for name, calls, entries in entered:
            node(name).calls, node(name).entries = calls, entries
        pressed = await session.execute(
            select(CallEvent.node, CallEvent.key, func.count())
            .join(CallRow, CallRow.id == CallEvent.call_id)
            .where(in_range, CallEvent.kind == CallEventKind.KEY, CallEvent.node.is_not(None),
                   CallEvent.key.is_not(None))
            .group_by(CallEvent.node, CallEvent.key))
        for name, key, count in pressed:
            node(name).keys[key] = count
        missed = await session.execute(
            select(CallEvent.node, CallEvent.kind, func.count())
            .join(CallRow, CallRow.id == CallEvent.call_id)
            .where(in_range, CallEvent.kind.in_([CallEventKind.TIMEOUT, CallEventKind.INVALID]),
                   CallEvent.node.is_not(None))
            .group_by(CallEvent.node, CallEvent.kind))
        for name, kind, count in missed:
            if kind == CallEventKind.TIMEOUT:
                node(name).timeouts = count
            else:
                node(name).invalid = count
        last = (select(CallEvent.call_id, func.max(CallEvent.id).label("last_id"))
                .where(CallEvent.kind == CallEventKind.NODE).group_by(CallEvent.call_id).subquery())
        ended = await session.execute(
            select(CallEvent.node, CallRow.outcome, func.count())
            .join(last, last.c.last_id == CallEvent.id)
            .join(CallRow, CallRow.id == CallEvent.call_id)
            .where(in_range, CallEvent.node.is_not(None))
            .group_by(CallEvent.node, CallRow.outcome))
        for name, outcome, count in ended:
            node(name).ended[outcome or NO_OUTCOME] = count
    return IvrStats(calls=total or 0, nodes=sorted(nodes.values(), key=lambda n: (-n.calls, n.node)))


class CallControlBody(StrictBody):
    action: Literal["hold", "resume", "consult", "transfer", "conference", "cancel", "queue", "hangup", "release"]
    agent_id: int | None = Field(None, ge=1, le=MAX_ID, description="the agent to consult (with ``consult``)")
    phone: str | None = Field(None, min_length=3, max_length=32,
                              description="or a number outside to consult, through the trunk (with ``consult``)")
    team_id: int | None = Field(None, ge=1, le=MAX_ID, description="the team whose queue takes the caller (``queue``)")

    @model_validator(mode="after")
    def _targets(self) -> CallControlBody:
        if self.action == "consult" and (self.agent_id is None) == (self.phone is None):
            raise ValueError("consult takes either agent_id or phone")
        if (self.action == "queue") != (self.team_id is not None):
            raise ValueError("team_id goes with queue, and queue needs it")
        if self.action != "consult" and (self.agent_id is not None or self.phone is not None):
            raise ValueError("agent_id and phone go with consult only")
        return self


class MonitorBody(StrictBody):
    mode: Literal["listen", "whisper", "barge", "takeover"]


class CallControlOut(BaseModel):
    call_id: int
    agents: list[int]  # on the call with the caller (aside with each other while the caller is on hold)
    held: bool  # the caller hears music
    consulted: int | None  # the agent asked aside, before a transfer or conference
    consulted_number: str | None  # or the number outside asked aside (masked)
    outside: str | None  # a number outside on the call, after a transfer or conference (masked)
    monitors: dict[str, str]  # supervisor id → listen, whisper or barge


def _live_call(call: Call) -> tuple[VoiceAdapter, list[int]]:
    """The voice channel and the agents on the call of the path, or 404 when it is not put through here."""
    voice = call.request.app[HUB].adapters.get("voice")
    on_call = voice.agents_on_call(call.path["call_id"]) if isinstance(voice, VoiceAdapter) else []
    if not on_call:
        raise NotFound("该通话未接通坐席", code="call_not_live")
    assert isinstance(voice, VoiceAdapter)
    return voice, on_call


async def _carried_out(action: Awaitable[dict[str, Any]]) -> CallControlOut:
    try:
        return CallControlOut(**await action)
    except CallNotHere as exc:
        raise NotFound("该通话未接通坐席", code="call_not_live") from exc
    except CallControlRefused as exc:
        raise Conflict(exc.message, code=exc.code) from exc


@api.endpoint("POST", r"/api/calls/{call_id:\d+}/control",
              summary="Hold, resume, consult another agent or a number outside, transfer, conference, send to a "
              "team's queue or hang up a call put through",
              roles=STAFF_ROLES, body=CallControlBody, response=CallControlOut, tag="calls",
              errors=(403, 404, 409))
async def control_call(call: Call) -> CallControlOut:
    body: CallControlBody = call.body
    voice, on_call = _live_call(call)
    actor = call.user.user_id if call.user.user_id in on_call else None
    if actor is None and call.user.role not in OVERSEER_ROLES:
        raise Forbidden("只有通话中的坐席或班长可以操作这通电话", code="not_on_call")
    if body.action == "release" and call.user.role not in OVERSEER_ROLES:
        raise Forbidden("只有班长可以强拆通话", code="role_forbidden")
    team: str | None = None
    if body.team_id is not None:
        async with call.request.app[HUB].sessions() as session:
            found = await session.get(Team, body.team_id)
        if found is None:
            raise Invalid("技能组不存在", code="unknown_team", details={"fields": {"team_id": "unknown"}})
        team = found.name
    number = required_phone(body.phone) if body.phone is not None else None
    state = await _carried_out(voice.control_call(call.path["call_id"], body.action, actor,
                                                  consult_agent_id=body.agent_id, consult_number=number, team=team))
    if body.action == "release":
        await _audited(call, "call.release")
    return state


async def _audited(call: Call, action: str, **details: Any) -> None:
    """A supervisor's intervention in a call, in the audit log."""
    async with call.request.app[HUB].sessions.begin() as session:
        audit(call, action, "call", call.path["call_id"], **details)(session)


@api.endpoint("POST", r"/api/calls/{call_id:\d+}/monitor",
              summary="A supervisor listens to a call, whispers to its agent, barges in or takes the call over, on "
              "their own phone",
              roles=OVERSEER_ROLES, body=MonitorBody, response=CallControlOut, tag="calls", errors=(404, 409))
async def monitor_call(call: Call) -> CallControlOut:
    voice, _ = _live_call(call)
    if call.user.user_id is None:
        raise Conflict("服务令牌没有话机", code="no_phone")
    state = await _carried_out(voice.monitor_call(call.path["call_id"], call.user.user_id, call.body.mode))
    await _audited(call, "call.monitor", mode=call.body.mode)
    return state


@api.endpoint("GET", "/api/calls/board", summary="The phone line now: calls waiting and talking, today's figures",
              roles=OVERSEER_ROLES, response=CallFigures, tag="calls")
async def call_board(call: Call) -> CallFigures:
    hub = call.request.app[HUB]
    async with hub.sessions() as session:
        return await call_figures(session, utcnow(), hub.settings.zone)


class OutboundBody(StrictBody):
    phone: str | None = Field(None, min_length=3, max_length=32, description="the resident's mobile or fixed number")
    contact_id: int | None = Field(None, ge=1, le=MAX_ID, description="or the resident, called on their phone")

    @model_validator(mode="after")
    def _one_of(self) -> OutboundBody:
        if (self.phone is None) == (self.contact_id is None):
            raise ValueError("give either phone or contact_id")
        return self


class OutboundOut(BaseModel):
    call_id: int


@api.endpoint("POST", "/api/calls/outbound", summary="Call a resident: the agent's phone rings, then the resident's",
              roles=STAFF_ROLES, body=OutboundBody, response=OutboundOut, status=202, tag="calls",
              errors=(404, 409))
async def call_resident(call: Call) -> OutboundOut:
    body: OutboundBody = call.body
    if body.phone is not None:
        number = required_phone(body.phone)
    else:
        async with call.request.app[HUB].sessions() as session:
            found = await visible_contact_phone(session, call.user, body.contact_id or 0)
        if found is None:
            raise Conflict("该居民没有已知的电话号码", code="no_phone_number")
        number = found
    voice = call.request.app[HUB].adapters.get("voice")
    if not isinstance(voice, VoiceAdapter):
        raise NotFound("电话渠道未启用", code="no_voice")
    if call.user.user_id is None:
        raise Conflict("服务令牌没有话机", code="no_phone")
    try:
        return OutboundOut(call_id=await voice.call_resident(call.user.user_id, number))
    except CallControlRefused as exc:
        raise Conflict(exc.message, code=exc.code) from exc

