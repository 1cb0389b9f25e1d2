"""The callback list for agents and supervisors (router/callbacks.py): list, take (the full number shown to the
agent who takes it, audited), finish; and a resident's own request from the official account's page (by the
token of their link)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import aliased

from channels.callbacks import CallbackBody, ask_to_be_called_back
from router.access import OVERSEER_ROLES, STAFF_ROLES
from router.api import api
from router.api.auditing import audit
from router.api.spec import HUB, Call
from router.callbacks import CallbackList
from router.errors import NotFound
from router.logs import mask_phone
from router.models import ACTIVE_CALLBACK_STATES, CallbackRequest, CallbackState, Contact, StaffUser
from router.residents import resident_of
from router.schemas import StrictBody

PAGE_MAX = 200


class CallbackQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: Literal["active", "open", "taken", "done", "unreachable", "cancelled"] = "active"
    limit: int = Field(100, ge=1, le=PAGE_MAX)


class CallbackOut(BaseModel):
    id: int
    contact_id: int
    contact_name: str
    conversation_id: int | None
    channel: str
    phone: str  # masked
    preferred_after: datetime | None  # null: as soon as possible
    note: str | None
    state: str
    attempts: int
    taken_by: str | None  # display name of the agent calling
    taken_by_id: int | None
    created_at: datetime
    closed_at: datetime | None
    outcome_note: str | None


class TakenCallbackOut(CallbackOut):
    full_phone: str  # the number to dial, for the agent who took it


class CallbackItems(BaseModel):
    items: list[CallbackOut]


class FinishBody(StrictBody):
    outcome: Literal["reached", "no_answer", "cancelled"]
    note: str | None = Field(None, max_length=500)


def _out(request: CallbackRequest, contact_name: str, taker: str | None) -> CallbackOut:
    return CallbackOut(
        id=request.id, contact_id=request.contact_id, contact_name=contact_name,
        conversation_id=request.conversation_id, channel=request.channel, phone=mask_phone(request.phone),
        preferred_after=request.preferred_after, note=request.note, state=request.state, attempts=request.attempts,
        taken_by=taker, taken_by_id=request.taken_by_id, created_at=request.created_at, closed_at=request.closed_at,
        outcome_note=request.outcome_note)


async def _names(session, request: CallbackRequest) -> tuple[str, str | None]:
    contact = await session.get(Contact, request.contact_id)
    taker = await session.get(StaffUser, request.taken_by_id) if request.taken_by_id is not None else None
    return (contact.display_name if contact else ""), (taker.display_name if taker else None)


@api.endpoint("GET", "/api/callbacks", summary="Residents to call back, the earliest due first", roles=STAFF_ROLES,
              query=CallbackQuery, response=CallbackItems, tag="callbacks")
async def list_callbacks(call: Call) -> CallbackItems:
    query: CallbackQuery = call.query
    states = ACTIVE_CALLBACK_STATES if query.state == "active" else (query.state,)
    taker = aliased(StaffUser)
    statement = (select(CallbackRequest, Contact.display_name, taker.display_name)
                 .join(Contact, Contact.id == CallbackRequest.contact_id)
                 .outerjoin(taker, taker.id == CallbackRequest.taken_by_id)
                 .where(CallbackRequest.state.in_(states))
                 .order_by(CallbackRequest.preferred_after.is_not(None), CallbackRequest.preferred_after,
                           CallbackRequest.created_at)
                 .limit(query.limit))
    async with call.request.app[HUB].sessions() as session:
        rows = (await session.execute(statement)).all()
    return CallbackItems(items=[_out(request, name, taken) for request, name, taken in rows])


@api.endpoint("POST", "/api/callbacks/{callback_id:\\d+}/take",
              summary="Take a callback: the agent calls now and sees the full number", roles=STAFF_ROLES,
              response=TakenCallbackOut, tag="callbacks", errors=(409,))
async def take_callback(call: Call) -> TakenCallbackOut:
    async with call.request.app[HUB].sessions.begin() as session:
        request = await CallbackList.get(session, call.path["callback_id"])
        CallbackList.take(request, call.user.user_id)
        # Every showing of the full number is in the audit log, a second click's too.
        audit(call, "callback.take", "callback", request.id, phone=mask_phone(request.phone))(session)
        contact_name, taker = await _names(session, request)
        return TakenCallbackOut(**_out(request, contact_name, taker).model_dump(), full_phone=request.phone)


@api.endpoint("POST", "/api/callbacks/{callback_id:\\d+}/finish",
              summary="Finish a callback: reached, no answer (back on the list until the last attempt), cancelled",
              roles=STAFF_ROLES, body=FinishBody, response=CallbackOut, tag="callbacks", errors=(409,))
async def finish_callback(call: Call) -> CallbackOut:
    body: FinishBody = call.body
    async with call.request.app[HUB].sessions.begin() as session:
        request = await CallbackList.get(session, call.path["callback_id"])
        CallbackList.finish(request, call.user.user_id, call.user.role in OVERSEER_ROLES, body.outcome, body.note)
        audit(call, "callback.finish", "callback", request.id, outcome=body.outcome, state=request.state,
              attempts=request.attempts)(session)
        contact_name, taker = await _names(session, request)
        return _out(request, contact_name, taker if request.state == CallbackState.TAKEN else None)


class ResidentCallbackBody(CallbackBody):
    token: str = Field(min_length=10, max_length=500, description="from the link the resident was given")


class AskedCallback(BaseModel):
    id: int
    phone: str  # masked
    when: str  # 尽快, or the time in words
    state: str


class ResidentCallbackOut(BaseModel):
    callback: AskedCallback
    message: dict[str, Any]  # the event in the resident's conversation


@api.endpoint("POST", "/api/my/callback", summary="A resident asks to be called back, by the token of their link",
              roles=None, body=ResidentCallbackBody, response=ResidentCallbackOut, status=201, tag="callbacks",
              errors=(404,))
async def ask_as_resident(call: Call) -> ResidentCallbackOut:
    body: ResidentCallbackBody = call.body
    hub = call.request.app[HUB]
    resident = resident_of(hub.secret_key, body.token)
    if resident is None:
        raise NotFound("链接已失效,请从公众号菜单重新进入", code="link_expired")
    channel, external_id = resident
    asked = await ask_to_be_called_back(hub, channel, external_id,
                                        CallbackBody(**body.model_dump(exclude={"token"})))
    return ResidentCallbackOut(**asked)
