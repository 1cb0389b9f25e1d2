"""Creating work orders, moving them through their category's workflow, reading them by role."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, and_, false, select, true, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.base import StoredFileInfo
from router.access import (
    WORK_ORDER_FILES,
    Principal,
    acts_for_the_bot,
    can_see_order,
    can_view,
    is_bot,
    order_clause,
    serves_now,
)
from router.errors import Conflict, Forbidden, Invalid, NotFound
from router.hub import TOPIC as CONVERSATION_TOPIC
from router.logs import mask_phone, masked
from router.models import Author, Call, ContactIdentity, Conversation, Message, Role, StaffUser, StoredFile, utcnow
from router.outbound import new_outbound, notice_channel
from router.residents import SURVEY_LINK, survey_reference, survey_token
from router.schemas import StrictBody, message_event, visibility_key
from router.settings import Settings
from router.uploads import FileStore, Upload, classify
from workorders.calendar import CALENDAR_KINDS, calendar_for
from workorders.categories import field_errors
from workorders.dispatch import DuplicateRule, likely_master, locate, matching_rule
from workorders.geo import Geocoder
from workorders.models import (
    CallbackSurvey,
    Department,
    WorkOrder,
    WorkOrderCategory,
    WorkOrderCounter,
    WorkOrderEvent,
)
from workorders.notices import DEFAULT_TEMPLATES, SURVEY_TEMPLATE, MessageTemplate, render
from workorders.sla import REMINDER_SHARE, STOPPED, SlaClock
from workorders.workflow import Transition, Workflow, parse_workflow

TOPIC = "workorder"
FILE_OWNER = WORK_ORDER_FILES  # owner of the photos in the file store; the owner id is the order's id
RESIDENT_SURVEY = "居民评价"
Publish = Callable[[str, dict[str, Any]], Awaitable[None]]
MAX_ATTACHED_MESSAGES = 5
Source = Literal["agent", "bot", "webchat", "wechat", "sms", "phone", "voicemail", "12345", "email", "import"]


class NewOrder(StrictBody):
    category: str = Field(min_length=1, max_length=40, description="category code, e.g. leak_repair")
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1, max_length=5000)
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    address: str | None = Field(None, max_length=300)
    lat: float | None = Field(None, ge=-90, le=90)
    lng: float | None = Field(None, ge=-180, le=180)
    contact_phone: str | None = Field(None, pattern=r"^\+?[0-9\-]{5,20}$")
    priority: int | None = Field(None, ge=1, le=4)
    conversation_id: int | None = Field(None, ge=1, le=2**31 - 1)
    source: Source = "agent"
    external_ref: str | None = Field(None, min_length=1, max_length=100)
    attachment_message_ids: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] = Field(
        default_factory=list, max_length=MAX_ATTACHED_MESSAGES,
        description="messages of the order's conversation (``conversation_id`` required) whose photo becomes an "
                    "attachment of the new order, as if uploaded to it: a JPEG, PNG, GIF or WebP image within the "
                    "upload limit; repeated ids count once. A message of another conversation, one without a "
                    "stored file or one whose file is not such an image is refused (422, "
                    "``invalid_attachment_messages``).")


class TransitionBody(StrictBody):
    action: str = Field(min_length=1, max_length=20)
    department_id: int | None = Field(None, ge=1, le=2**31 - 1)
    assignee_id: int | None = Field(None, ge=1, le=2**31 - 1)
    master_id: int | None = Field(None, ge=1, le=2**31 - 1)
    reason: str | None = Field(None, min_length=1, max_length=500)
    comment: str | None = Field(None, min_length=1, max_length=5000)
    satisfaction: int | None = Field(None, ge=1, le=5)


class Ref(BaseModel):
    id: int
    name: str


class CategoryRef(BaseModel):
    code: str
    name: str


class EventOut(BaseModel):
    id: int
    action: str
    from_state: str | None
    to_state: str
    actor_name: str
    reason: str | None
    comment: str | None
    data: dict[str, Any] | None
    at: datetime


class WorkOrderOut(BaseModel):
    id: int
    number: str
    category: CategoryRef
    state: str
    state_label: str
    priority: int
    title: str
    description: str
    custom_fields: dict[str, Any]
    address: str | None
    lat: float | None
    lng: float | None
    region_code: str | None
    contact_phone: str | None
    department: Ref | None
    assignee: Ref | None
    master_id: int | None
    suggested_master_id: int | None
    conversation_id: int | None
    source: str
    external_ref: str | None
    satisfaction: int | None
    sla_due_at: datetime | None
    overdue: bool
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    closed_at: datetime | None
    actions: list[str] = Field(description="actions the workflow allows from the current state")


Shown = TypeVar("Shown", bound=WorkOrderOut)


def _with_phones_masked(order: Shown) -> Shown:
    """The order with the resident's number, and any phone or ID number in its texts, masked."""
    return order.model_copy(update={
        "contact_phone": mask_phone(order.contact_phone) if order.contact_phone else None,
        "title": masked(order.title), "description": masked(order.description),
        "custom_fields": masked(order.custom_fields)})


class AttachmentOut(BaseModel):
    id: str
    name: str
    content_type: str
    size: int
    url: str
    created_at: datetime


class CallRecordingOut(BaseModel):
    """A phone call with the resident that led to the order, as recorded (played through the call records)."""

    call_id: int
    started_at: datetime
    ended_at: datetime
    url: str


class NoticeOut(BaseModel):
    """A message the hub sent (or is still trying to send) to a resident about this order."""

    message_id: int
    conversation_id: int
    channel: str
    text: str | None
    delivery: str | None = Field(description="queued, sending, sent, delivered or failed")
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


class WorkOrderDetail(WorkOrderOut):
    timeline: list[EventOut]
    attachments: list[AttachmentOut] = Field(description="photos and documents of the repair, oldest first")
    notices: list[NoticeOut] = Field(description="what residents were told, with each message's delivery state")
    call_recordings: list[CallRecordingOut] = Field(
        default_factory=list, description="recorded calls in the order's conversation that led to it, oldest first")


class NoteBody(StrictBody):
    comment: str = Field(min_length=1, max_length=5000)


class SurveyQuery(BaseModel):
    token: str = Field(min_length=20, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")


class SurveyAnswer(StrictBody):
    token: str = Field(min_length=20, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")
    score: int = Field(ge=1, le=5, description="1 very unsatisfied … 5 very satisfied")
    resolved: bool = Field(description="false reopens the order")
    comment: str | None = Field(None, min_length=1, max_length=1000)


class SurveyView(BaseModel):
    number: str
    category: str
    title: str
    completion: str | None = Field(description="what the crew wrote when they completed the order")
    answered: bool
    score: int | None
    expired: bool


class ResidentQuery(BaseModel):
    token: str = Field(min_length=10, max_length=500, description="from the link the resident was given")


class ResidentStep(BaseModel):
    state: str
    at: datetime


class ResidentOrder(BaseModel):
    """What a resident sees of their order: no staff names, no internal notes."""

    number: str
    category: str
    title: str
    address: str | None
    state_label: str
    finished: bool
    created_at: datetime
    steps: list[ResidentStep]


class ResidentOrders(BaseModel):
    items: list[ResidentOrder]


@dataclass(slots=True)
class Step:
    """One action carried out, waiting for its commit to be announced."""

    detail: WorkOrderDetail
    notices: list[tuple[Message, Conversation]]
    action: str
    previous: str
    clock_changed: bool  # the order's timers were set or removed


class ListQuery(BaseModel):
    state: str | None = Field(None, pattern=r"^[a-z_]+(,[a-z_]+)*$")
    category: str | None = Field(None, max_length=40)
    region: str | None = Field(None, max_length=32)
    overdue: bool | None = None
    assignee_id: int | None = Field(None, ge=1, le=2**31 - 1)
    department_id: int | None = Field(None, ge=1, le=2**31 - 1)
    conversation_id: int | None = Field(None, ge=1, le=2**31 - 1, description="orders made from this conversation")
    resident_of: int | None = Field(None, ge=1, le=2**31 - 1,
                                    description="orders of the resident writing in this conversation (any chat)")
    number: str | None = Field(None, pattern=r"^GD\d{8}-\d{4,6}$", description="one order by its number")
    limit: int = Field(50, ge=1, le=200)
    before_id: int | None = Field(None, ge=1, le=2**31 - 1)


def order_out(order: WorkOrder, now: datetime) -> WorkOrderOut:
    workflow = parse_workflow(order.category.workflow)
    return WorkOrderOut(
        id=order.id, number=order.number, category=CategoryRef(code=order.category.code, name=order.category.name),
        state=order.state, state_label=workflow.states.get(order.state, order.state), priority=order.priority,
        title=order.title, description=order.description, custom_fields=order.custom_fields, address=order.address,
        lat=order.lat, lng=order.lng, region_code=order.region_code, contact_phone=order.contact_phone,
        department=Ref(id=order.department.id, name=order.department.name) if order.department else None,
        assignee=Ref(id=order.assignee.id, name=order.assignee.display_name) if order.assignee else None,
        master_id=order.master_id, suggested_master_id=order.suggested_master_id,
        conversation_id=order.conversation_id, source=order.source,
        external_ref=order.external_ref, satisfaction=order.satisfaction, sla_due_at=order.sla_due_at,
        overdue=bool(order.sla_due_at and order.sla_due_at < now and order.state not in STOPPED),
        created_at=order.created_at, updated_at=order.updated_at, completed_at=order.completed_at,
        closed_at=order.closed_at, actions=workflow.actions_from(order.state),
    )


class WorkOrderService:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], settings: Settings, geocoder: Geocoder,
        publish: Publish, wake_outbound: Callable[[], None], clock: SlaClock, files: FileStore, secret_key: str,
    ) -> None:
        self.sessions = sessions
        self._secret_key = secret_key
        self.clock = clock
        self._files = files
        self._upload_max_bytes = settings.upload_max_bytes
        self._calendars = {kind: calendar_for(kind, settings.working_hours, settings.timezone)
                           for kind in CALENDAR_KINDS}
        self._hotline_team = settings.default_team
        self._channels = frozenset(name.strip() for name in settings.channels.split(","))
        self._survey_valid_days = settings.survey_valid_days
        self._zone = ZoneInfo(settings.timezone)
        self._geocoder = geocoder
        self.region_codes = frozenset(region.code for region in geocoder.regions)
        self.region_names = {region.code: region.name for region in geocoder.regions}
        self._duplicates = DuplicateRule(settings.duplicate_radius_m, settings.duplicate_window_minutes)
        self._publish = publish
        self._wake_outbound = wake_outbound

    async def region_of(self, address: str) -> str | None:
        return await locate(self._geocoder, address, None, None)

    # -- numbers ------------------------------------------------------------------------------

    async def _next_number(self, now: datetime) -> str:
        """GD<yyyymmdd>-<nnnn>, counted per local day by an atomic upsert (safe under concurrency).

        In a transaction of its own, so that the day's counter row is locked only for this statement
        and not while the order is being stored (a failed creation leaves a gap, as sequences do).
        """
        day = now.astimezone(self._zone).strftime("%Y%m%d")
        async with self.sessions.begin() as session:
            insert = postgresql_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
            statement = (
                insert(WorkOrderCounter)
                .values(day=day, last=1)
                .on_conflict_do_update(index_elements=[WorkOrderCounter.day],
                                       set_={"last": WorkOrderCounter.last + 1})
                .returning(WorkOrderCounter.last)
            )
            number = (await session.execute(statement)).scalar_one()
        return f"GD{day}-{number:04d}"

    # -- create -------------------------------------------------------------------------------

    async def rate_from_call(self, conversation_id: int, since: datetime, score: int) -> int:
        """A caller's survey score (1-5) on the orders filed during their call that have none yet; how many."""
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(WorkOrder)
                .where(WorkOrder.conversation_id == conversation_id, WorkOrder.created_at >= since,
                       WorkOrder.satisfaction.is_(None))
                .values(satisfaction=score, updated_at=utcnow()))
            return result.rowcount

    async def create(self, principal: Principal, body: NewOrder, *,
                     attach_file_ids: Sequence[str] = ()) -> WorkOrderDetail:
        """A new order. ``attach_file_ids`` are files the hub already keeps (a voicemail's recording) that become
        attachments of the order, as if uploaded to it; unknown ids are left out."""
        now = utcnow()
        region_code = await locate(self._geocoder, body.address, body.lat, body.lng)
        number = await self._next_number(now)
        async with self.sessions.begin() as session:
            category = await session.scalar(
                select(WorkOrderCategory).where(WorkOrderCategory.code == body.category, WorkOrderCategory.active)
            )
            if category is None:
                raise Invalid("工单类别不存在或已停用", code="unknown_category",
                              details={"fields": {"category": "unknown"}})
            errors = field_errors(category.fields_schema, body.custom_fields)
            if errors:
                raise Invalid("自定义字段不符合该类别的要求", code="invalid_custom_fields", details={"fields": errors})
            if body.external_ref is not None:
                existing = await session.scalar(select(WorkOrder).where(
                    WorkOrder.source == body.source, WorkOrder.external_ref == body.external_ref))
                if existing is not None:
                    raise Conflict("该来源的工单已导入", code="duplicate_external_ref",
                                   details={"number": existing.number, "id": existing.id})
            contact_id = None
            if body.conversation_id is not None:
                conversation = await session.get(Conversation, body.conversation_id)
                if conversation is None:
                    raise Invalid("会话不存在", code="unknown_conversation",
                                  details={"fields": {"conversation_id": "unknown"}})
                key = visibility_key(conversation)
                if not (can_view(principal, key) or acts_for_the_bot(principal, key)):
                    raise Forbidden("无权查看该会话")
                contact_id = conversation.contact_id
            photos = await self._photos_of(session, body)
            files = [found for file_id in dict.fromkeys(attach_file_ids)
                     if (found := await self._files.read_in(session, file_id)) is not None]
            order = WorkOrder(
                number=number, category=category, category_id=category.id,
                state=parse_workflow(category.workflow).initial, priority=body.priority or category.default_priority,
                title=body.title, description=body.description, custom_fields=body.custom_fields,
                address=body.address, lat=body.lat, lng=body.lng, contact_phone=body.contact_phone,
                conversation_id=body.conversation_id, contact_id=contact_id, source=body.source,
                external_ref=body.external_ref, region_code=region_code,
                created_by_id=principal.user_id, created_at=now, updated_at=now, department=None, assignee=None,
            )
            deadline = self._start_clock(order, now)
            session.add(order)
            await session.flush()
            event = WorkOrderEvent(order_id=order.id, action="create", from_state=None, to_state=order.state,
                                   actor_id=principal.user_id, actor_name=_actor_name(principal), at=now,
                                   data={"source": body.source})
            session.add(event)
            sources = [({"message_id": message_id}, info, data) for message_id, (info, data) in photos.items()]
            sources += [({"from_file_id": info.file_id}, info, data) for info, data in files]
            for origin, info, data in sources:
                stored = await self._files.store_in(session, FILE_OWNER, str(order.id), info.name,
                                                    info.content_type, data)
                session.add(WorkOrderEvent(
                    order_id=order.id, action="attach", from_state=order.state, to_state=order.state,
                    actor_id=principal.user_id, actor_name=_actor_name(principal), at=now,
                    data={"file_id": stored.file_id, "name": stored.name, "content_type": stored.content_type,
                          "size": stored.size, **origin}))
            await session.flush()
            events = [event, *await self._route(session, order, now)]
            detail = await self._detail(session, order, now, notices=False)
            notices = []
            for routed in events:
                notices += await self._notify_residents(session, order, routed.action, detail, routed)
            detail.notices = await _notices_of(session, order)
            await self.clock.schedule_in(session, order.id, *deadline)
        self.clock.wakeup()
        await self._published(detail, {"type": "created"}, notices)
        return await self._shown(principal, detail)

    async def _photos_of(self, session: AsyncSession, body: NewOrder) -> dict[int, tuple[StoredFileInfo, bytes]]:
        """The photos of ``body.attachment_message_ids`` (messages of the order's conversation), by message id.

        Checked as a photo uploaded to an order is (an image, within the upload limit); anything else is 422.
        """
        wanted = list(dict.fromkeys(body.attachment_message_ids))
        if not wanted:
            return {}
        if body.conversation_id is None:
            raise Invalid("附带照片的消息须属于工单关联的会话,请提供 conversation_id",
                          code="invalid_attachment_messages",
                          details={"fields": {"conversation_id": "required with attachment_message_ids"}})
        messages = {m.id: m for m in await session.scalars(select(Message).where(Message.id.in_(wanted)))}
        problems: dict[str, str] = {}
        photos: dict[int, tuple[StoredFileInfo, bytes]] = {}
        for message_id in wanted:
            message = messages.get(message_id)
            if message is None or message.conversation_id != body.conversation_id:
                problems[str(message_id)] = "not a message of this conversation"
                continue
            file_id = ((message.payload or {}).get("attachment") or {}).get("file_id")
            found = await self._files.read_in(session, file_id) if isinstance(file_id, str) else None
            if found is None:
                problems[str(message_id)] = "no stored file"
                continue
            info, data = found
            kind = classify(data, info.name)
            if kind is None or kind.message_type != "image":
                problems[str(message_id)] = "not an image (JPEG, PNG, GIF, WebP)"
            elif len(data) > self._upload_max_bytes:
                problems[str(message_id)] = f"larger than {self._upload_max_bytes} bytes"
            else:
                photos[message_id] = (replace(info, content_type=kind.content_type), data)
        if problems:
            raise Invalid("附带的消息须为本会话中带图片的消息", code="invalid_attachment_messages",
                          details={"fields": {"attachment_message_ids": problems}})
        return photos

    def _start_clock(self, order: WorkOrder, now: datetime) -> tuple[datetime, datetime]:
        """Set the order's deadline from now by its category's calendar; returns (reminder, due) times."""
        calendar = self._calendars[order.category.sla_calendar]
        hours = order.category.sla_hours
        order.sla_due_at = calendar.add(now, hours)
        return calendar.add(now, hours * REMINDER_SHARE), order.sla_due_at

    async def _route(self, session: AsyncSession, order: WorkOrder, now: datetime) -> list[WorkOrderEvent]:
        """Dispatch a new order by the rules of its category and region; point out a likely master order."""
        events = []
        found = await likely_master(session, order, self._duplicates, now)
        if found is not None:
            master, distance = found
            order.suggested_master_id = master.id
            events.append(WorkOrderEvent(
                order_id=order.id, action="suggest_master", from_state=order.state, to_state=order.state,
                actor_name="系统", at=now, data={"master_id": master.id, "master": master.number,
                                                "distance_m": None if distance is None else round(distance)}))
        rule = await matching_rule(session, order.category.code, order.region_code)
        dispatch = parse_workflow(order.category.workflow).transition("dispatch")
        if rule is not None and dispatch is not None and order.state in dispatch.from_states:
            department = await session.get(Department, rule.department_id)
            assert department is not None  # the rule's foreign key cascades on delete
            previous, order.state = order.state, dispatch.to or order.state
            order.department_id, order.department = department.id, department
            events.append(WorkOrderEvent(
                order_id=order.id, action="dispatch", from_state=previous, to_state=order.state,
                actor_name="系统派单", at=now,
                data={"department": department.name, "rule_id": rule.id, "region": order.region_code}))
        session.add_all(events)
        await session.flush()
        return events

    # -- transitions --------------------------------------------------------------------------

    async def transition(self, principal: Principal, order_id: int, body: TransitionBody) -> WorkOrderDetail:
        now = utcnow()
        async with self.sessions.begin() as session:
            order = await self._load_for_update(session, order_id)
            await self._require_visible(session, principal, order)
            workflow = parse_workflow(order.category.workflow)
            rule = workflow.transition(body.action)
            if rule is None or order.state not in rule.from_states:
                raise Conflict(
                    f"工单当前状态为「{workflow.states.get(order.state, order.state)}」,不能执行 {body.action}",
                    code="invalid_transition",
                    details={"state": order.state, "action": body.action,
                             "allowed": workflow.actions_from(order.state)},
                )
            self._authorize(principal, order, rule)
            step = await self._move(session, order, workflow, rule, body, now, principal.user_id,
                                    _actor_name(principal))
        await self._finish(step)
        return await self._shown(principal, step.detail)

    async def _move(
        self, session: AsyncSession, order: WorkOrder, workflow: Workflow, rule: Transition, body: TransitionBody,
        now: datetime, actor_id: int | None, actor_name: str,
    ) -> Step:
        """Carry out an allowed action on a locked order: state, audit trail, deadline, resident notices."""
        missing = {name: "required" for name in rule.requires if getattr(body, name) is None}
        if missing:
            raise Invalid(f"「{rule.label}」需要填写:{', '.join(missing)}", code="missing_fields",
                          details={"fields": missing})
        previous = order.state
        data = await self._apply(session, order, rule, body, workflow, now)
        clock_changed = True
        if rule.action == "reopen":
            await self.clock.schedule_in(session, order.id, *self._start_clock(order, now))
            data["due"] = order.sla_due_at.isoformat() if order.sla_due_at else None
        elif order.state in STOPPED and previous not in STOPPED:
            await self.clock.cancel_in(session, order.id)
        else:
            clock_changed = False
        event = WorkOrderEvent(order_id=order.id, action=rule.action, from_state=previous, to_state=order.state,
                               actor_id=actor_id, actor_name=actor_name, reason=body.reason, comment=body.comment,
                               data=data or None, at=now)
        session.add(event)
        await session.flush()
        survey_id = None
        if rule.action == "complete" and order.category.callback == "survey" and order.conversation_id:
            survey_id = await self._send_survey(session, order, now)
        detail = await self._detail(session, order, now, notices=False)
        notices = await self._notify_residents(session, order, rule.action, detail, event, survey_id)
        detail.notices = await _notices_of(session, order)  # with the ones just queued
        return Step(detail=detail, notices=notices, action=rule.action, previous=previous,
                    clock_changed=clock_changed)

    async def _finish(self, step: Step) -> None:
        """After the commit: the scheduler sees the order's new timers; staff pages and residents get the news."""
        if step.clock_changed:
            self.clock.wakeup()
        await self._published(step.detail, {"type": "transition", "action": step.action, "from": step.previous},
                              step.notices)

    # -- callback surveys ---------------------------------------------------------------------

    async def _send_survey(self, session: AsyncSession, order: WorkOrder, now: datetime) -> int:
        """A one-time survey for the resident to score the service; returns its id (its link is made at sending)."""
        survey = CallbackSurvey(order_id=order.id, token_hash=secrets.token_hex(32), sent_at=now,  # until it has an id
                                expires_at=now + timedelta(days=self._survey_valid_days))
        session.add(survey)
        await session.flush()
        survey.token_hash = survey_token_hash(survey_token(self._secret_key, survey.id))
        return survey.id

    async def survey(self, token: str) -> SurveyView:
        async with self.sessions() as session:
            survey = await session.scalar(
                select(CallbackSurvey).where(CallbackSurvey.token_hash == survey_token_hash(token)))
            if survey is None:
                raise NotFound("评价链接无效", code="survey_not_found")
            order = await session.get(WorkOrder, survey.order_id)
            assert order is not None  # the survey row cascades with its order
            completion = await session.scalar(
                select(WorkOrderEvent.comment).where(WorkOrderEvent.order_id == order.id,
                                                     WorkOrderEvent.action == "complete")
                .order_by(WorkOrderEvent.id.desc()).limit(1))
            return SurveyView(number=order.number, category=order.category.name, title=order.title,
                              completion=completion, answered=survey.answered_at is not None, score=survey.score,
                              expired=survey.expires_at < utcnow())

    async def orders_of_resident(self, channel: str, external_id: str, limit: int = 20) -> ResidentOrders:
        """The orders of the resident with this channel identity (reported in any of their conversations)."""
        async with self.sessions() as session:
            contact_id = await session.scalar(select(ContactIdentity.contact_id).where(
                ContactIdentity.channel == channel, ContactIdentity.external_id == external_id))
            if contact_id is None:
                return ResidentOrders(items=[])
            orders = list((await session.scalars(
                select(WorkOrder).where(WorkOrder.contact_id == contact_id)
                .order_by(WorkOrder.id.desc()).limit(limit))).unique())
            events = (await session.scalars(
                select(WorkOrderEvent).where(WorkOrderEvent.order_id.in_([o.id for o in orders]))
                .order_by(WorkOrderEvent.id))).all() if orders else []
        items = []
        for order in orders:
            workflow = parse_workflow(order.category.workflow)
            steps = [ResidentStep(state=workflow.states.get(e.to_state, e.to_state), at=e.at)
                     for e in events if e.order_id == order.id and e.to_state != e.from_state]
            items.append(ResidentOrder(
                number=order.number, category=order.category.name, title=order.title, address=order.address,
                state_label=workflow.states.get(order.state, order.state), finished=order.state in workflow.final,
                created_at=order.created_at, steps=steps))
        return ResidentOrders(items=items)

    async def answer_survey(self, body: SurveyAnswer) -> SurveyView:
        """The resident's score: the order is visited, then closed, or reopened when the problem remains.

        If an agent called back in the meantime, the order has moved on; the answer is still kept.
        """
        now = utcnow()
        steps: list[Step] = []
        async with self.sessions.begin() as session:
            survey = (await session.execute(
                select(CallbackSurvey).where(CallbackSurvey.token_hash == survey_token_hash(body.token))
                .with_for_update())).scalar_one_or_none()
            if survey is None:
                raise NotFound("评价链接无效", code="survey_not_found")
            if survey.answered_at is not None:
                raise Conflict("您已评价过,感谢您的反馈", code="survey_answered")
            if survey.expires_at < now:
                raise Conflict("评价链接已过期", code="survey_expired")
            survey.answered_at, survey.score, survey.resolved, survey.comment = (
                now, body.score, body.resolved, body.comment)
            order = await self._load_for_update(session, survey.order_id)
            workflow = parse_workflow(order.category.workflow)
            visit = workflow.transition("visit")
            if visit is not None and order.state in visit.from_states:
                steps.append(await self._move(
                    session, order, workflow, visit,
                    TransitionBody(action="visit", satisfaction=body.score, comment=body.comment), now, None,
                    RESIDENT_SURVEY))
                follow_up = TransitionBody(action="close") if body.resolved else TransitionBody(
                    action="reopen", reason="居民反馈问题未解决")
                rule = workflow.transition(follow_up.action)
                if rule is not None and order.state in rule.from_states:
                    steps.append(await self._move(session, order, workflow, rule, follow_up, now, None,
                                                  RESIDENT_SURVEY))
        for step in steps:
            await self._finish(step)
        return await self.survey(body.token)

    # -- notes and photos ---------------------------------------------------------------------

    async def add_note(self, principal: Principal, order_id: int, comment: str) -> WorkOrderDetail:
        return await self._record(principal, order_id, "note", comment=comment)

    async def attach(self, principal: Principal, order_id: int, upload: Upload) -> WorkOrderDetail:
        await self.check_visible(principal, order_id)
        stored = await self._files.store(FILE_OWNER, str(order_id), upload.name, upload.kind.content_type,
                                         upload.data)
        return await self._record(principal, order_id, "attach", data={
            "file_id": stored.file_id, "name": stored.name, "content_type": stored.content_type, "size": stored.size})

    async def _record(
        self, principal: Principal, order_id: int, action: str, *, comment: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> WorkOrderDetail:
        """Add a note or a photo to the timeline of an order that is still open."""
        now = utcnow()
        async with self.sessions.begin() as session:
            order = await self._load_for_update(session, order_id)
            await self._require_visible(session, principal, order)
            workflow = parse_workflow(order.category.workflow)
            if order.state in workflow.final:
                raise Conflict("工单已结束,不能再补充", code="order_finished",
                               details={"state": order.state})
            order.updated_at = now
            session.add(WorkOrderEvent(order_id=order.id, action=action, from_state=order.state, to_state=order.state,
                                       actor_id=principal.user_id, actor_name=_actor_name(principal),
                                       comment=comment, data=data, at=now))
            await session.flush()
            detail = await self._detail(session, order, now)
        await self._published(detail, {"type": action}, [])
        return await self._shown(principal, detail)

    async def open_file(self, principal: Principal, order_id: int, file_id: str) -> tuple[StoredFileInfo, Path]:
        await self.check_visible(principal, order_id)
        found = await self._files.open(file_id)
        if found is None or found[0].owner_channel != FILE_OWNER or found[0].owner_external_id != str(order_id):
            raise NotFound("文件不存在", code="file_not_found")
        return found

    async def _notify_residents(
        self, session: AsyncSession, order: WorkOrder, action: str, detail: WorkOrderDetail, event: WorkOrderEvent,
        survey_id: int | None = None,
    ) -> list[tuple[Message, Conversation]]:
        """Queue the notice for the resident(s) in the same transaction as the change (nothing is lost).

        The order's own conversation hears of it, and so do the conversations of orders merged into it.
        With a survey, the order's own resident gets the survey notice and its link instead.
        """
        key = f"workorder.{action}"
        if key not in DEFAULT_TEMPLATES:
            return []  # internal steps (visit, escalate, return) are not announced
        if action == "create" and order.source == "bot":
            return []  # the bot that took the report tells the resident the number itself
        values = {
            "number": order.number, "category": order.category.name, "state": detail.state_label,
            "department": detail.department.name if detail.department else None,
            "assignee": detail.assignee.name if detail.assignee else None,
            "comment": event.comment, "reason": event.reason, "master": (event.data or {}).get("master"),
            "survey_url": SURVEY_LINK if survey_id is not None else None,
        }
        conversation_ids = {order.conversation_id} if order.conversation_id else set()
        if action != "merge":
            conversation_ids |= set(await session.scalars(select(WorkOrder.conversation_id).where(
                WorkOrder.master_id == order.id, WorkOrder.conversation_id.is_not(None))))
        notices = []
        for conversation_id in sorted(conversation_ids):
            conversation = await session.get(Conversation, conversation_id)
            if conversation is None:
                continue
            surveyed = survey_id is not None and conversation_id == order.conversation_id
            text = await self._notice_text(session, SURVEY_TEMPLATE if surveyed else key, values)
            payload: dict[str, Any] = {
                "work_order": {"id": order.id, "number": order.number, "action": action, "state": order.state}}
            if surveyed:
                payload["survey"] = survey_reference(survey_id)
            notice = new_outbound(conversation, author=Author.SYSTEM, text=text, payload=payload)
            notice.channel = notice_channel(conversation, self._channels)  # a caller's goes by SMS
            session.add(notice)
            notices.append((notice, conversation))
        await session.flush()
        return notices

    @staticmethod
    async def _notice_text(session: AsyncSession, key: str, values: dict[str, Any]) -> str:
        template = await session.get(MessageTemplate, key)
        return render(template.text if template else DEFAULT_TEMPLATES[key], values)

    async def _published(
        self, detail: WorkOrderDetail, event: dict[str, Any], notices: list[tuple[Message, Conversation]],
    ) -> None:
        await self._publish(TOPIC, {**event, "order": detail.model_dump(mode="json")})
        for notice, conversation in notices:
            await self._publish(CONVERSATION_TOPIC, message_event(notice, conversation))
        if notices:
            self._wake_outbound()

    @staticmethod
    def _authorize(principal: Principal, order: WorkOrder, rule: Transition) -> None:
        if principal.role not in rule.roles:
            raise Forbidden(f"当前角色不能执行「{rule.label}」", code="role_forbidden")
        if principal.is_overseer or rule.guard is None:
            return
        of_department = principal.department_id is not None and order.department_id == principal.department_id
        is_assignee = principal.user_id is not None and order.assignee_id == principal.user_id
        allowed = {"department": of_department, "assignee": is_assignee,
                   "department_or_assignee": of_department or is_assignee}[rule.guard]
        if not allowed:
            raise Forbidden(f"只有本部门或被派工人员可以「{rule.label}」", code="not_your_order")

    async def _apply(
        self, session: AsyncSession, order: WorkOrder, rule: Transition, body: TransitionBody, workflow: Workflow,
        now: datetime,
    ) -> dict[str, Any]:
        """Carry out what the action means beyond the state; returns what the audit trail should keep."""
        data: dict[str, Any] = {}
        if rule.action == "dispatch":
            department = await session.get(Department, body.department_id)
            if department is None:
                raise Invalid("部门不存在", code="unknown_department",
                              details={"fields": {"department_id": "unknown"}})
            order.department_id, order.department = department.id, department
            data["department"] = department.name
        if rule.action in {"assign", "reassign"}:
            assignee = await session.get(StaffUser, body.assignee_id)
            if (assignee is None or not assignee.active or assignee.role not in {Role.FIELD_CREW, Role.HANDLER}
                    or assignee.department_id != order.department_id):
                raise Invalid("处理人须为本部门在岗的现场人员或处理人", code="unknown_assignee",
                              details={"fields": {"assignee_id": "not a field crew or handler of the department"}})
            data["from_assignee"] = order.assignee.display_name if order.assignee else None
            order.assignee_id, order.assignee = assignee.id, assignee
            data["assignee"] = assignee.display_name
        if rule.action == "return":
            order.department_id, order.department, order.assignee_id, order.assignee = None, None, None, None
        if rule.action == "escalate":
            data["priority"] = {"from": order.priority, "to": max(1, order.priority - 1)}
            order.priority = max(1, order.priority - 1)
        if rule.action == "merge":
            master = await session.get(WorkOrder, body.master_id)
            if master is None or master.id == order.id or master.state in workflow.final:
                raise Invalid("主工单不存在或已结束", code="unknown_master",
                              details={"fields": {"master_id": "invalid"}})
            order.master_id = master.id
            data["master"] = master.number
        if rule.action == "visit":
            order.satisfaction = data["satisfaction"] = body.satisfaction
        if rule.action == "complete":
            order.completed_at = now
        if rule.to is not None:
            order.state = rule.to
        if order.state in workflow.final:
            order.closed_at = now
        order.updated_at = now
        return data

    # -- reading ------------------------------------------------------------------------------

    async def get(self, principal: Principal, order_id: int) -> WorkOrderDetail:
        async with self.sessions() as session:
            order = await self._visible(session, principal, order_id)
            return (await self._shown_to(session, principal, [await self._detail(session, order, utcnow())]))[0]

    async def _shown(self, principal: Principal, detail: WorkOrderDetail) -> WorkOrderDetail:
        async with self.sessions() as session:
            return (await self._shown_to(session, principal, [detail]))[0]

    async def check_visible(self, principal: Principal, order_id: int) -> None:
        """404 for an order that does not exist, 403 for one the caller may not see."""
        async with self.sessions() as session:
            await self._visible(session, principal, order_id)

    async def _visible(self, session: AsyncSession, principal: Principal, order_id: int) -> WorkOrder:
        order = await session.get(WorkOrder, order_id)
        if order is None:
            raise NotFound("工单不存在", code="order_not_found")
        await self._require_visible(session, principal, order)
        return order

    async def list(self, principal: Principal, query: ListQuery) -> list[WorkOrderOut]:
        now = utcnow()
        statement = select(WorkOrder).order_by(WorkOrder.id.desc()).limit(query.limit)
        conditions: list[Any] = []
        states = query.state.split(",") if query.state else None
        if query.overdue and states is not None:
            # An order whose clock has stopped is never overdue: no need to ask the database for those.
            states = [state for state in states if state not in STOPPED]
            if not states:
                return []
        if states is not None:
            conditions.append(WorkOrder.state.in_(states))
        if query.category:
            conditions.append(WorkOrder.category.has(WorkOrderCategory.code == query.category))
        if query.region:
            conditions.append(WorkOrder.region_code == query.region)
        if query.assignee_id:
            conditions.append(WorkOrder.assignee_id == query.assignee_id)
        if query.department_id:
            conditions.append(WorkOrder.department_id == query.department_id)
        if query.conversation_id:
            conditions.append(WorkOrder.conversation_id == query.conversation_id)
        if query.resident_of:
            conditions.append(WorkOrder.contact_id == select(Conversation.contact_id).where(
                Conversation.id == query.resident_of).scalar_subquery())
        if query.number:
            conditions.append(WorkOrder.number == query.number)
        if query.before_id:
            conditions.append(WorkOrder.id < query.before_id)
        if query.overdue is not None:
            late = and_(WorkOrder.sla_due_at < now,
                        WorkOrder.state.not_in(STOPPED))
            conditions.append(late if query.overdue else ~late)
        async with self.sessions() as session:
            conditions.append(await self._list_scope(session, principal, query))
            orders = (await session.scalars(statement.where(*conditions))).unique()
            return await self._shown_to(session, principal, [order_out(order, now) for order in orders])

    async def _list_scope(self, session: AsyncSession, principal: Principal, query: ListQuery) -> ColumnElement[bool]:
        """The orders a list may show; 403 for a conversation filter naming a chat the caller may not see."""
        for conversation_id in {query.conversation_id, query.resident_of} - {None}:
            conversation = await session.get(Conversation, conversation_id)
            key = visibility_key(conversation) if conversation is not None else None
            if key is not None and not (can_view(principal, key) or acts_for_the_bot(principal, key)):
                raise Forbidden("无权查看该会话的工单", code="conversation_forbidden")
        if is_bot(principal):  # it files orders; it reads them only through /api/bot/order-lookup
            return false()
        if principal.is_service:  # what other services ask for: an order by its number, or its own resident's orders
            return true() if query.number or query.conversation_id or query.resident_of else false()
        return order_clause(principal, self._hotline_team)

    async def _shown_to(self, session: AsyncSession, principal: Principal, orders: list[Shown]) -> list[Shown]:
        """The orders as ``principal`` may read them: residents' phone numbers only for who calls them.

        Supervisors, admins and handlers (who coordinate the repair) see them, and so does the field crew an order
        is assigned to (the only orders they see): they call the resident. An agent sees them on the orders of the
        conversation they are serving right now; everyone else (other agents, service tokens) sees them masked.
        """
        if principal.role in {Role.ADMIN, Role.SUPERVISOR, Role.HANDLER, Role.FIELD_CREW}:
            return orders
        conversation_ids = {o.conversation_id for o in orders} - {None}
        serving = set()
        if conversation_ids and not principal.is_service:
            rows = await session.scalars(select(Conversation).where(Conversation.id.in_(conversation_ids)))
            serving = {c.id for c in rows.unique() if serves_now(principal, visibility_key(c))}
        return [o if o.conversation_id in serving else _with_phones_masked(o) for o in orders]

    async def _require_visible(self, session: AsyncSession, principal: Principal, order: WorkOrder) -> None:
        if is_bot(principal):
            raise Forbidden("智能客服请通过 /api/bot/order-lookup 查询", code="bot_lookup_required")
        if not await can_see_order(session, principal, order.id, self._hotline_team):
            raise Forbidden("无权查看该工单", code="not_your_order")

    @staticmethod
    async def _load_for_update(session: AsyncSession, order_id: int) -> WorkOrder:
        order = (await session.execute(
            select(WorkOrder).where(WorkOrder.id == order_id).with_for_update(of=WorkOrder)
        )).unique().scalar_one_or_none()
        if order is None:
            raise NotFound("工单不存在", code="order_not_found")
        return order

    @staticmethod
    async def _detail(session: AsyncSession, order: WorkOrder, now: datetime, notices: bool = True) -> WorkOrderDetail:
        """The order as the API shows it; ``notices=False`` leaves them to be filled in once queued."""
        events = await session.scalars(
            select(WorkOrderEvent).where(WorkOrderEvent.order_id == order.id).order_by(WorkOrderEvent.id))
        files = await session.scalars(select(StoredFile).where(
            StoredFile.owner_channel == FILE_OWNER, StoredFile.owner_external_id == str(order.id),
        ).order_by(StoredFile.created_at, StoredFile.id))
        return WorkOrderDetail(
            **order_out(order, now).model_dump(), timeline=[_event_out(e) for e in events],
            notices=await _notices_of(session, order) if notices else [],
            call_recordings=await _calls_of(session, order),
            attachments=[AttachmentOut(id=f.id, name=f.name, content_type=f.content_type, size=f.size,
                                       url=f"/api/workorders/{order.id}/files/{f.id}", created_at=f.created_at)
                         for f in files])


CALL_LEADS_WITHIN = timedelta(hours=1)  # a call that ended this long before an order was filed led to it


async def _calls_of(session: AsyncSession, order: WorkOrder) -> list[CallRecordingOut]:
    """The recorded calls of the order's conversation that were on when it was filed, or had ended within
    :data:`CALL_LEADS_WITHIN` before (an agent files the order during the call or in the wrap-up after it)."""
    if order.conversation_id is None:
        return []
    rows = await session.execute(
        select(Call.id, Call.started_at, Call.ended_at).where(
            Call.conversation_id == order.conversation_id, Call.recording_file_id.is_not(None),
            Call.started_at <= order.created_at, Call.ended_at >= order.created_at - CALL_LEADS_WITHIN)
        .order_by(Call.started_at))
    return [CallRecordingOut(call_id=call_id, started_at=started, ended_at=ended,
                             url=f"/api/calls/{call_id}/recording") for call_id, started, ended in rows]


async def _notices_of(session: AsyncSession, order: WorkOrder) -> list[NoticeOut]:
    """The notices about this order in the conversations that hear of it (its own and its merged orders')."""
    conversation_ids = set(await session.scalars(select(WorkOrder.conversation_id).where(
        WorkOrder.master_id == order.id, WorkOrder.conversation_id.is_not(None))))
    if order.conversation_id:
        conversation_ids.add(order.conversation_id)
    if not conversation_ids:
        return []
    messages = await session.scalars(select(Message).where(
        Message.conversation_id.in_(conversation_ids), Message.author == Author.SYSTEM).order_by(Message.id))
    return [NoticeOut(message_id=m.id, conversation_id=m.conversation_id, channel=m.channel, text=m.text,
                      delivery=m.delivery, attempts=m.attempts, last_error=m.last_error, created_at=m.created_at,
                      sent_at=m.sent_at)
            for m in messages.unique() if ((m.payload or {}).get("work_order") or {}).get("id") == order.id]


def _event_out(event: WorkOrderEvent) -> EventOut:
    return EventOut(id=event.id, action=event.action, from_state=event.from_state, to_state=event.to_state,
                    actor_name=event.actor_name, reason=event.reason, comment=event.comment, data=event.data,
                    at=event.at)


def survey_token_hash(token: str) -> str:
    """Only a hash of a survey link's token is stored: a leaked table does not let anyone answer."""
    return hashlib.sha256(token.encode()).hexdigest()


def _actor_name(principal: Principal) -> str:
    return principal.display_name or principal.username
