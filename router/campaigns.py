"""Automatic outbound campaigns (ADM5): who is to be called, who has been, and who must never be again.

A supervisor sets a campaign up (an arrears reminder, a planned-outage notice for a district, a survey after
orders closed): one message spoken by TTS, a daily call window, how many calls may be out at once, how often a
busy or unanswered resident is tried. Its targets are the residents of the chosen district with a phone number
(or a chosen list), each once per number; numbers on the do-not-call list are skipped.

The voice channel's dialer (channels/voice/campaigns.py) claims due targets here and reports each call's result.
A claim is one conditional UPDATE per target (``pending`` → ``dialing``, the attempt counted), so two dialers
never call the same resident, and it is committed before the call goes out: a hub that dies mid-call leaves the
target ``dialing``, and the next one settles it as ``interrupted`` rather than calling again (:meth:`settle`).
Retries follow no answer and busy only, up to the campaign's attempts; the opt-out key puts the number on the
do-not-call list, which every later claim honours.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo

from sqlalchemy import exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from router.db import dialect_insert
from router.errors import Conflict, Invalid, NotFound
from router.models import (
    OPEN_TARGET_STATES,
    PHONE_CHANNELS,
    Call,
    Campaign,
    CampaignState,
    CampaignTarget,
    Contact,
    ContactIdentity,
    DoNotCall,
    TargetState,
    utcnow,
)
from router.phones import normalized_phone

CLOCK = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$|^24:00$")
RETRIED = frozenset({TargetState.NO_ANSWER, TargetState.BUSY})  # results that call for another attempt
CLAIM_SCAN = 4  # due targets read per free channel: a claim lost to another dialer is made up from the rest


@dataclass(frozen=True)
class DueTarget:
    target_id: int
    phone: str
    attempt: int  # 1 for the first call


def _clock(value: str) -> time:
    if not CLOCK.match(value):
        raise ValueError(f"not a time of day (HH:MM): {value!r}")
    return time.max if value == "24:00" else time.fromisoformat(value)


def in_window(call_from: str, call_until: str, now: datetime, zone: tzinfo) -> bool:
    """Whether ``now`` is within the daily window [from, until) in ``zone``; a window whose end is before its
    start runs over midnight (20:00–08:00)."""
    start, end, local = _clock(call_from), _clock(call_until), now.astimezone(zone).time()
    return start <= local < end if start <= end else local >= start or local < end


async def create_campaign(session: AsyncSession, campaign: Campaign, contact_ids: list[int] | None) -> int:
    """Store ``campaign`` with its targets: the contacts of its district, or ``contact_ids``; each phone
    number once. Numbers on the do-not-call list are kept as ``skipped``. How many targets it has."""
    for name in ("call_from", "call_until"):
        if not CLOCK.match(getattr(campaign, name)):
            raise Invalid("时间格式应为 HH:MM", code="bad_time", details={"fields": {name: "format"}})
    query = (select(ContactIdentity.contact_id, ContactIdentity.external_id)
             .join(Contact, Contact.id == ContactIdentity.contact_id)
             .where(ContactIdentity.channel.in_(PHONE_CHANNELS)).order_by(ContactIdentity.id))
    if contact_ids is not None:
        query = query.where(Contact.id.in_(contact_ids))
    elif campaign.region_id is not None:
        query = query.where(Contact.region_id == campaign.region_id)
    else:
        raise Invalid("请选择片区或居民", code="no_targets", details={"fields": {"region_id": "required"}})
    phones: dict[str, int] = {}
    for contact_id, external_id in await session.execute(query):
        number = normalized_phone(external_id)
        if number is not None:
            phones.setdefault(number, contact_id)
    if not phones:
        raise Conflict("所选范围内没有留有电话的居民", code="no_targets")
    barred = set(await session.scalars(select(DoNotCall.phone).where(DoNotCall.phone.in_(phones))))
    session.add(campaign)
    await session.flush()
    session.add_all(CampaignTarget(
        campaign_id=campaign.id, contact_id=contact_id, phone=phone,
        state=TargetState.SKIPPED.value if phone in barred else TargetState.PENDING.value, attempts=0)
        for phone, contact_id in phones.items())
    return len(phones)


async def change_state(session: AsyncSession, campaign_id: int, wanted: CampaignState) -> Campaign:
    """Start (or resume), pause or cancel; cancelling settles the targets not yet called."""
    allowed = {CampaignState.RUNNING: {CampaignState.DRAFT, CampaignState.PAUSED},
               CampaignState.PAUSED: {CampaignState.RUNNING},
               CampaignState.CANCELLED: {CampaignState.DRAFT, CampaignState.RUNNING, CampaignState.PAUSED}}
    campaign = await session.get(Campaign, campaign_id, with_for_update=True)
    if campaign is None:
        raise NotFound("外呼任务不存在")
    if campaign.state == wanted:
        return campaign  # a second click
    if campaign.state not in allowed[wanted]:
        raise Conflict("外呼任务当前状态不允许此操作", code="bad_state")
    campaign.state = wanted.value
    now = utcnow()
    if wanted == CampaignState.RUNNING and campaign.started_at is None:
        campaign.started_at = now
    if wanted == CampaignState.CANCELLED:
        campaign.finished_at = now
        await session.execute(update(CampaignTarget).where(
            CampaignTarget.campaign_id == campaign_id, CampaignTarget.state == TargetState.PENDING.value,
        ).values(state=TargetState.CANCELLED.value, updated_at=now))
    return campaign


async def progress(session: AsyncSession, campaign_ids: list[int]) -> dict[int, Counter[str]]:
    """Targets per state, per campaign."""
    rows = await session.execute(
        select(CampaignTarget.campaign_id, CampaignTarget.state, func.count())
        .where(CampaignTarget.campaign_id.in_(campaign_ids))
        .group_by(CampaignTarget.campaign_id, CampaignTarget.state))
    counts: dict[int, Counter[str]] = {campaign_id: Counter() for campaign_id in campaign_ids}
    for campaign_id, state, count in rows:
        counts[campaign_id][state] = count
    return counts


class CampaignBook:
    """What the dialer asks of the campaigns; each method is one transaction."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def running(self) -> list[Campaign]:
        async with self._sessions() as session:
            return list(await session.scalars(
                select(Campaign).where(Campaign.state == CampaignState.RUNNING.value).order_by(Campaign.id)))

    async def claim(self, campaign_id: int, limit: int, now: datetime) -> list[DueTarget]:
        """Up to ``limit`` due targets of the campaign, each now ``dialing`` with its attempt counted."""
        barred = exists().where(DoNotCall.phone == CampaignTarget.phone)
        claimed: list[DueTarget] = []
        async with self._sessions.begin() as session:
            due = (await session.execute(
                select(CampaignTarget.id, CampaignTarget.phone, CampaignTarget.attempts)
                .where(CampaignTarget.campaign_id == campaign_id, CampaignTarget.state == TargetState.PENDING.value,
                       (CampaignTarget.next_attempt_at.is_(None)) | (CampaignTarget.next_attempt_at <= now), ~barred)
                .order_by(CampaignTarget.next_attempt_at.is_not(None), CampaignTarget.next_attempt_at,
                          CampaignTarget.id)
                .limit(limit * CLAIM_SCAN))).all()
            for target_id, phone, attempts in due:
                if len(claimed) == limit:
                    break
                taken = await session.execute(
                    update(CampaignTarget)
                    .where(CampaignTarget.id == target_id, CampaignTarget.state == TargetState.PENDING.value)
                    .values(state=TargetState.DIALING.value, attempts=attempts + 1, updated_at=now))
                if taken.rowcount == 1:
                    claimed.append(DueTarget(target_id, phone, attempts + 1))
        return claimed

    async def placed(self, target_id: int, call_id: int) -> None:
        async with self._sessions.begin() as session:
            await session.execute(update(CampaignTarget).where(CampaignTarget.id == target_id).values(call_id=call_id))

    async def result(self, target_id: int, outcome: TargetState, now: datetime) -> TargetState:
        """The call's result for its target; no answer and busy put it back for later while attempts remain.
        The state the target is left in."""
        async with self._sessions.begin() as session:
            target = await session.get(CampaignTarget, target_id, with_for_update=True)
            if target is None or target.state != TargetState.DIALING.value:
                return TargetState(target.state) if target is not None else outcome
            campaign = await session.get(Campaign, target.campaign_id)
            assert campaign is not None
            retry = (outcome in RETRIED and target.attempts < campaign.max_attempts
                     and campaign.state != CampaignState.CANCELLED.value)
            state = TargetState.PENDING if retry else outcome
            target.state = state.value
            target.next_attempt_at = now + timedelta(seconds=campaign.retry_seconds) if retry else None
            target.updated_at = now
            if outcome == TargetState.OPTED_OUT:
                await session.execute(dialect_insert(session.bind.dialect.name)(DoNotCall).values(
                    phone=target.phone, campaign_id=campaign.id, created_at=now).on_conflict_do_nothing())
                # Every other campaign waiting to call this number will not (claims pass barred numbers by too).
                await session.execute(
                    update(CampaignTarget)
                    .where(CampaignTarget.phone == target.phone, CampaignTarget.state == TargetState.PENDING.value)
                    .values(state=TargetState.SKIPPED.value, updated_at=now))
            return state

    async def settle(self, live_channels: set[str], now: datetime) -> int:
        """Targets left ``dialing`` by a hub that stopped, whose call is not among ``live_channels`` (still up
        and followed): ``interrupted``, never called again (they may have heard the message); the records of
        their calls (one still ringing is hung up next) end now. How many."""
        async with self._sessions.begin() as session:
            stale = (await session.execute(
                select(CampaignTarget.id, CampaignTarget.call_id).outerjoin(Call, Call.id == CampaignTarget.call_id)
                .where(CampaignTarget.state == TargetState.DIALING.value,
                       (Call.channel_id.is_(None)) | (Call.channel_id.not_in(live_channels or {""}))))).all()
            if stale:
                await session.execute(update(CampaignTarget).where(
                    CampaignTarget.id.in_([target_id for target_id, _ in stale]),
                    CampaignTarget.state == TargetState.DIALING.value,
                ).values(state=TargetState.INTERRUPTED.value, next_attempt_at=None, updated_at=now))
                await session.execute(update(Call).where(
                    Call.id.in_([call_id for _, call_id in stale if call_id is not None]), Call.ended_at.is_(None),
                ).values(ended_at=now, hangup_side="hub", outcome=f"campaign_{TargetState.INTERRUPTED.value}"))
            return len(stale)

    async def target_of_call(self, channel_id: str) -> tuple[Campaign, int] | None:
        """The campaign and target a call (by its channel) was placed for, while the target is ``dialing``."""
        async with self._sessions() as session:
            row = (await session.execute(
                select(Campaign, CampaignTarget.id).join(CampaignTarget, CampaignTarget.campaign_id == Campaign.id)
                .join(Call, Call.id == CampaignTarget.call_id)
                .where(Call.channel_id == channel_id, CampaignTarget.state == TargetState.DIALING.value))).first()
            return (row[0], row[1]) if row is not None else None

    async def finish_if_done(self, campaign_id: int, now: datetime) -> bool:
        """Mark a running campaign done once no target is left to call; whether it is."""
        async with self._sessions.begin() as session:
            left = await session.scalar(select(func.count()).select_from(CampaignTarget).where(
                CampaignTarget.campaign_id == campaign_id, CampaignTarget.state.in_(OPEN_TARGET_STATES)))
            if left:
                return False
            done = await session.execute(update(Campaign).where(
                Campaign.id == campaign_id, Campaign.state == CampaignState.RUNNING.value,
            ).values(state=CampaignState.DONE.value, finished_at=now))
            return done.rowcount == 1
