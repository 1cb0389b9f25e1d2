"""The callback list: residents who asked to be called back, and the agents working through it.

A resident asks from the web chat widget or the official account's page (请给我回电: a phone number and a time,
or as soon as possible; channels/callbacks.py); the request is stored against their contact and shown in their
conversation as an event. A contact has at most one
active request: asking again (another number, a later time) changes it, so a double click or a change of mind
never queues two calls. An agent takes a request (the full number is shown to them alone, and the taking is
audited), calls, and finishes it: reached, no answer (back on the list until the last attempt), or cancelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from router.errors import Conflict, Invalid, NotFound
from router.models import (
    ACTIVE_CALLBACK_STATES,
    CallbackRequest,
    CallbackState,
    ContactIdentity,
    utcnow,
)
from router.phones import required_phone

MAX_ATTEMPTS = 3  # calls no one answered before the request is closed as unreachable
PREFERRED_WITHIN = timedelta(days=7)  # the latest time a resident may ask to be called at
CLOCK_SLACK = timedelta(minutes=5)  # a time "now" on a browser whose clock is a little behind is as soon as possible


@dataclass(frozen=True)
class CallbackAsk:
    """What a resident asked for, checked: a phone number in E.164 and the earliest time (None: now)."""

    phone: str
    preferred_after: datetime | None
    note: str | None


def checked_ask(phone: str, preferred_after: datetime | None, note: str | None, now: datetime) -> CallbackAsk:
    """Refuse a number that is not a person's phone, or a time in the past or too far ahead."""
    number = required_phone(phone)
    if preferred_after is not None:
        if preferred_after.tzinfo is None:
            raise Invalid("时间须带时区", code="bad_time", details={"fields": {"preferred_after": "naive"}})
        if preferred_after < now - CLOCK_SLACK:
            raise Invalid("希望回电的时间已经过去", code="time_passed",
                          details={"fields": {"preferred_after": "past"}})
        if preferred_after > now + PREFERRED_WITHIN:
            raise Invalid("只能预约 7 天以内的回电", code="time_too_far",
                          details={"fields": {"preferred_after": "too_far"}})
        if preferred_after <= now:
            preferred_after = None
    text = (note or "").strip()
    return CallbackAsk(phone=number, preferred_after=preferred_after, note=text[:200] or None)


class CallbackList:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def ask(self, channel: str, external_id: str, conversation_id: int | None,
                  ask: CallbackAsk) -> CallbackRequest:
        """Store ``ask`` as the contact's active request, or change the one they have."""
        for attempt in range(2):
            try:
                async with self._sessions.begin() as session:
                    return await self._ask(session, channel, external_id, conversation_id, ask)
            except IntegrityError:
                if attempt:  # the same resident's other click stored it meanwhile: the next pass changes it
                    raise
        raise AssertionError("unreachable")

    async def _ask(self, session: AsyncSession, channel: str, external_id: str, conversation_id: int | None,
                   ask: CallbackAsk) -> CallbackRequest:
        contact_id = await session.scalar(select(ContactIdentity.contact_id).where(
            ContactIdentity.channel == channel, ContactIdentity.external_id == external_id))
        if contact_id is None:
            raise NotFound("尚未建立会话", code="unknown_resident")
        now = utcnow()
        request = await session.scalar(select(CallbackRequest).where(
            CallbackRequest.contact_id == contact_id, CallbackRequest.state.in_(ACTIVE_CALLBACK_STATES)))
        if request is None:
            request = CallbackRequest(contact_id=contact_id, channel=channel, created_at=now, attempts=0,
                                      state=CallbackState.OPEN.value)
            session.add(request)
        request.conversation_id = conversation_id or request.conversation_id
        request.phone, request.preferred_after, request.note = ask.phone, ask.preferred_after, ask.note
        request.updated_at = now
        await session.flush()
        return request

    @staticmethod
    async def get(session: AsyncSession, request_id: int) -> CallbackRequest:
        request = await session.get(CallbackRequest, request_id, with_for_update=True)
        if request is None:
            raise NotFound("回电请求不存在", code="unknown_callback")
        return request

    @staticmethod
    def take(request: CallbackRequest, user_id: int) -> bool:
        """The agent ``user_id`` calls now; False when they had it already (a second click)."""
        if request.state == CallbackState.TAKEN and request.taken_by_id == user_id:
            return False
        if request.state == CallbackState.TAKEN:
            raise Conflict("已有其他坐席在回电", code="callback_taken")
        if request.state != CallbackState.OPEN:
            raise Conflict("该回电请求已结束", code="callback_closed")
        request.state, request.taken_by_id = CallbackState.TAKEN.value, user_id
        request.taken_at = request.updated_at = utcnow()
        return True

    @staticmethod
    def finish(request: CallbackRequest, user_id: int, may_override: bool, outcome: str, note: str | None) -> None:
        """``outcome``: ``reached``, ``no_answer`` (back on the list, or unreachable after the last attempt) or
        ``cancelled``. Only the agent who took it, or a supervisor, finishes a taken request."""
        if request.state not in ACTIVE_CALLBACK_STATES:
            raise Conflict("该回电请求已结束", code="callback_closed")
        if request.state == CallbackState.TAKEN and request.taken_by_id != user_id and not may_override:
            raise Conflict("该回电由其他坐席处理", code="callback_taken")
        if outcome != "cancelled" and request.state != CallbackState.TAKEN:
            raise Conflict("请先接手再回电", code="callback_not_taken")
        now = utcnow()
        request.updated_at, request.outcome_note = now, (note or "").strip()[:500] or None
        if outcome == "no_answer":
            request.attempts += 1
            if request.attempts < MAX_ATTEMPTS:
                request.state, request.taken_by_id, request.taken_at = CallbackState.OPEN.value, None, None
                return
            request.state = CallbackState.UNREACHABLE.value
        else:
            request.state = (CallbackState.DONE if outcome == "reached" else CallbackState.CANCELLED).value
        request.closed_at = now
