"""Automatic outbound campaigns for supervisors and admins (router/campaigns.py): set one up for a district or a
list of residents, start, pause, resume or cancel it, follow its progress and each resident's result. Every change
is audited; residents' numbers are masked."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import distinct, func, select

from router.access import OVERSEER_ROLES
from router.api import api
from router.api.auditing import audit
from router.api.spec import HUB, MAX_ID, Call
from router.campaigns import change_state, create_campaign, progress
from router.errors import NotFound
from router.logs import mask_phone
from router.models import (
    PHONE_CHANNELS,
    Campaign,
    CampaignState,
    CampaignTarget,
    Contact,
    ContactIdentity,
    Region,
    TargetState,
)
from router.schemas import StrictBody

TARGETS_MAX = 500
CLOCK_PATTERN = r"^(?:[01]\d|2[0-3]):[0-5]\d$|^24:00$"


class CampaignBody(StrictBody):
    name: str = Field(min_length=1, max_length=100)
    kind: Literal["arrears", "outage", "survey", "notice"]
    message: str = Field(min_length=2, max_length=400, description="spoken by TTS before the keys are offered")
    region_id: int | None = Field(None, ge=1, le=MAX_ID, description="every resident of the district with a phone")
    contact_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(None, min_length=1, max_length=20000,
                                          description="or these residents (instead of a district)")
    channels: int = Field(4, ge=1, le=60, description="calls out at once, at most")
    max_attempts: int = Field(3, ge=1, le=5, description="per resident, retries after no answer or busy included")
    retry_seconds: int = Field(1800, ge=5, le=86400)
    ring_seconds: int = Field(30, ge=5, le=120)
    call_from: str = Field("09:00", pattern=CLOCK_PATTERN)
    call_until: str = Field("20:00", pattern=CLOCK_PATTERN)
    start: bool = Field(False, description="start calling at once")


class CampaignStateBody(StrictBody):
    state: Literal["running", "paused", "cancelled"]


class CampaignOut(BaseModel):
    id: int
    name: str
    kind: str
    message: str
    region_id: int | None
    region_name: str | None
    channels: int
    max_attempts: int
    retry_seconds: int
    ring_seconds: int
    call_from: str
    call_until: str
    state: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    targets: int
    progress: dict[str, int]  # targets per state (pending, dialing, confirmed, heard, opted_out, …)


class CampaignItems(BaseModel):
    items: list[CampaignOut]


class TargetsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: Literal[tuple(s.value for s in TargetState)] | None = None  # type: ignore[valid-type]
    after_id: int | None = Field(None, ge=1, le=MAX_ID)
    limit: int = Field(100, ge=1, le=TARGETS_MAX)


class TargetOut(BaseModel):
    id: int
    contact_id: int | None
    contact_name: str | None
    phone: str  # masked
    state: str
    attempts: int
    next_attempt_at: datetime | None
    call_id: int | None
    updated_at: datetime


class TargetItems(BaseModel):
    items: list[TargetOut]


class DistrictOut(BaseModel):
    id: int
    code: str
    name: str
    residents: int  # with a phone number: whom a campaign for the district would call


class DistrictItems(BaseModel):
    items: list[DistrictOut]


def _out(campaign: Campaign, region_name: str | None, counts: Counter[str]) -> CampaignOut:
    return CampaignOut(
        id=campaign.id, name=campaign.name, kind=campaign.kind, message=campaign.message,
        region_id=campaign.region_id, region_name=region_name, channels=campaign.channels,
        max_attempts=campaign.max_attempts, retry_seconds=campaign.retry_seconds, ring_seconds=campaign.ring_seconds,
        call_from=campaign.call_from, call_until=campaign.call_until, state=campaign.state,
        created_at=campaign.created_at, started_at=campaign.started_at, finished_at=campaign.finished_at,
        targets=sum(counts.values()), progress=dict(counts))


async def _campaign_out(session, campaign: Campaign) -> CampaignOut:
    region = await session.get(Region, campaign.region_id) if campaign.region_id is not None else None
    return _out(campaign, region.name if region else None, (await progress(session, [campaign.id]))[campaign.id])


@api.endpoint("GET", "/api/campaigns", summary="Outbound campaigns, newest first, with their progress",
              roles=OVERSEER_ROLES, response=CampaignItems, tag="campaigns")
async def list_campaigns(call: Call) -> CampaignItems:
    async with call.request.app[HUB].sessions() as session:
        rows = (await session.execute(select(Campaign, Region.name).outerjoin(Region, Region.id == Campaign.region_id)
                                      .order_by(Campaign.id.desc()).limit(200))).all()
        counts = await progress(session, [campaign.id for campaign, _ in rows])
    return CampaignItems(items=[_out(campaign, region, counts[campaign.id]) for campaign, region in rows])


@api.endpoint("GET", "/api/campaigns/districts", summary="Districts a campaign can be for, with their residents",
              roles=OVERSEER_ROLES, response=DistrictItems, tag="campaigns")
async def list_districts(call: Call) -> DistrictItems:
    residents = (select(Contact.region_id, func.count(distinct(Contact.id)).label("residents"))
                 .join(ContactIdentity, ContactIdentity.contact_id == Contact.id)
                 .where(ContactIdentity.channel.in_(PHONE_CHANNELS)).group_by(Contact.region_id).subquery())
    async with call.request.app[HUB].sessions() as session:
        rows = await session.execute(select(Region, residents.c.residents)
                                     .outerjoin(residents, residents.c.region_id == Region.id).order_by(Region.code))
        return DistrictItems(items=[DistrictOut(id=region.id, code=region.code, name=region.name,
                                                residents=count or 0) for region, count in rows])


@api.endpoint("POST", "/api/campaigns", summary="Set up a campaign for a district or a list of residents",
              roles=OVERSEER_ROLES, body=CampaignBody, response=CampaignOut, status=201, tag="campaigns",
              errors=(404, 409))
async def add_campaign(call: Call) -> CampaignOut:
    body: CampaignBody = call.body
    async with call.request.app[HUB].sessions.begin() as session:
        by_region = body.contact_ids is None
        if by_region and body.region_id is not None and await session.get(Region, body.region_id) is None:
            raise NotFound("片区不存在", code="no_region")
        campaign = Campaign(
            name=body.name.strip(), kind=body.kind, message=body.message.strip(),
            region_id=body.region_id if body.contact_ids is None else None, channels=body.channels,
            max_attempts=body.max_attempts, retry_seconds=body.retry_seconds, ring_seconds=body.ring_seconds,
            call_from=body.call_from, call_until=body.call_until, created_by_id=call.user.user_id)
        targets = await create_campaign(session, campaign, body.contact_ids)
        if body.start:
            await change_state(session, campaign.id, CampaignState.RUNNING)
        audit(call, "campaign.create", "campaign", campaign.id, name=campaign.name, kind=campaign.kind,
              targets=targets, started=body.start)(session)
        return await _campaign_out(session, campaign)


@api.endpoint("GET", r"/api/campaigns/{campaign_id:\d+}", summary="One campaign with its progress",
              roles=OVERSEER_ROLES, response=CampaignOut, tag="campaigns", errors=(404,))
async def get_campaign(call: Call) -> CampaignOut:
    async with call.request.app[HUB].sessions() as session:
        campaign = await session.get(Campaign, call.path["campaign_id"])
        if campaign is None:
            raise NotFound("外呼任务不存在")
        return await _campaign_out(session, campaign)


@api.endpoint("POST", r"/api/campaigns/{campaign_id:\d+}/state",
              summary="Start or resume (running), pause or cancel a campaign", roles=OVERSEER_ROLES,
              body=CampaignStateBody, response=CampaignOut, tag="campaigns", errors=(404, 409))
async def set_campaign_state(call: Call) -> CampaignOut:
    wanted = CampaignState(call.body.state)
    async with call.request.app[HUB].sessions.begin() as session:
        campaign = await change_state(session, call.path["campaign_id"], wanted)
        audit(call, f"campaign.{wanted.value}", "campaign", campaign.id)(session)
        return await _campaign_out(session, campaign)


@api.endpoint("GET", r"/api/campaigns/{campaign_id:\d+}/targets",
              summary="A campaign's residents and each one's result, by state", roles=OVERSEER_ROLES,
              query=TargetsQuery, response=TargetItems, tag="campaigns", errors=(404,))
async def list_targets(call: Call) -> TargetItems:
    query: TargetsQuery = call.query
    async with call.request.app[HUB].sessions() as session:
        if await session.get(Campaign, call.path["campaign_id"]) is None:
            raise NotFound("外呼任务不存在")
        statement = (select(CampaignTarget, Contact.display_name)
                     .outerjoin(Contact, Contact.id == CampaignTarget.contact_id)
                     .where(CampaignTarget.campaign_id == call.path["campaign_id"])
                     .order_by(CampaignTarget.id).limit(query.limit))
        if query.state is not None:
            statement = statement.where(CampaignTarget.state == query.state)
        if query.after_id is not None:
            statement = statement.where(CampaignTarget.id > query.after_id)
        rows = (await session.execute(statement)).all()
    return TargetItems(items=[TargetOut(
        id=target.id, contact_id=target.contact_id, contact_name=name, phone=mask_phone(target.phone),
        state=target.state, attempts=target.attempts, next_attempt_at=target.next_attempt_at, call_id=target.call_id,
        updated_at=target.updated_at) for target, name in rows])
