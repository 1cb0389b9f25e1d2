"""What an agent's desk offers beside the conversation: the dispositions a chat is closed with (reports count
them) and canned replies, inserted by their shortcut.

Canned replies come in three scopes: everyone's (no team, no owner), a team's, and an agent's own. Agents
manage their own; supervisors and admins manage everyone's and any team's. A shortcut is unique within its
scope; a personal reply with the same shortcut as a shared one comes first in the agent's list.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, field_validator, model_validator
from sqlalchemy import ColumnElement, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from router.access import ADMIN_ROLES, OVERSEER_ROLES, STAFF_ROLES, Principal
from router.api import api
from router.api.spec import HUB, MAX_ID, Call
from router.errors import Conflict, Forbidden, Invalid, NotFound
from router.models import CannedReply, Disposition, Team, utcnow
from router.schemas import StrictBody

CANNED = "/api/canned-replies/{reply_id:\\d+}"
SHORTCUT_PATTERN = r"^[0-9A-Za-z_\-\u4e00-\u9fff]+$"


class DispositionOut(BaseModel):
    code: str
    label: str
    active: bool


class ItemsOfDispositions(BaseModel):
    items: list[DispositionOut]


class DispositionsQuery(BaseModel):
    all: bool = False  # include retired ones (admins editing the list)


class DispositionBody(StrictBody):
    code: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
    label: str = Field(min_length=1, max_length=100)
    active: bool = True


class CannedReplyOut(BaseModel):
    id: int
    shortcut: str
    text: str
    scope: str  # "personal" | "team" | "global"
    team_id: int | None
    created_by: str
    updated_at: datetime


class ItemsOfCannedReplies(BaseModel):
    items: list[CannedReplyOut]


class CannedReplyBody(StrictBody):
    shortcut: str = Field(min_length=1, max_length=32, pattern=SHORTCUT_PATTERN)
    text: str = Field(min_length=1, max_length=2000)
    scope: str = Field("personal", pattern=r"^(personal|team|global)$")
    team_id: int | None = Field(None, ge=1, le=MAX_ID)

    @field_validator("text")
    @classmethod
    def not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text is blank")
        return value

    @model_validator(mode="after")
    def team_for_team_scope(self) -> CannedReplyBody:
        if (self.scope == "team") != (self.team_id is not None):
            raise ValueError("team_id is required for the team scope and only there")
        return self


def _disposition_out(row: Disposition) -> DispositionOut:
    return DispositionOut(code=row.code, label=row.label, active=row.active)


def _scope_of(row: CannedReply) -> str:
    return "personal" if row.owner_id is not None else "team" if row.team_id is not None else "global"


def _canned_out(row: CannedReply) -> CannedReplyOut:
    return CannedReplyOut(id=row.id, shortcut=row.shortcut, text=row.text, scope=_scope_of(row), team_id=row.team_id,
                          created_by=row.created_by, updated_at=row.updated_at)


@api.endpoint("GET", "/api/dispositions", summary="Consultation types a conversation is closed with",
              roles=STAFF_ROLES, query=DispositionsQuery, response=ItemsOfDispositions, tag="desk")
async def list_dispositions(call: Call) -> ItemsOfDispositions:
    query = select(Disposition).order_by(Disposition.position, Disposition.id)
    if not call.query.all:
        query = query.where(Disposition.active)
    async with call.request.app[HUB].sessions() as session:
        return ItemsOfDispositions(items=[_disposition_out(row) for row in await session.scalars(query)])


@api.endpoint("PUT", "/api/dispositions", summary="Add, rename or retire a consultation type (by its code)",
              roles=ADMIN_ROLES, body=DispositionBody, response=DispositionOut, tag="desk")
async def put_disposition(call: Call) -> DispositionOut:
    body: DispositionBody = call.body
    async with call.request.app[HUB].sessions.begin() as session:
        row = await session.scalar(select(Disposition).where(Disposition.code == body.code))
        if row is None:
            last = await session.scalar(select(Disposition.position).order_by(Disposition.position.desc()).limit(1))
            row = Disposition(code=body.code, position=(last or 0) + 1)
            session.add(row)
        row.label, row.active = body.label, body.active
        return _disposition_out(row)


def _visible_to(principal: Principal) -> ColumnElement[bool]:
    return or_(
        CannedReply.owner_id == principal.user_id if not principal.is_service else false(),  # not "owner IS NULL"
        (CannedReply.owner_id.is_(None)) & (CannedReply.team_id.is_(None)),
        CannedReply.team_id.in_(principal.team_ids) if not principal.is_overseer else CannedReply.team_id.is_not(None),
    )


def _may_manage(principal: Principal, scope: str, owner_id: int | None) -> bool:
    if scope == "personal":  # a person's own: a service token has no person to own it
        return not principal.is_service and owner_id == principal.user_id
    return principal.role in OVERSEER_ROLES


async def _check_unique(session: AsyncSession, body: CannedReplyBody, owner_id: int | None,
                        except_id: int | None = None) -> None:
    query = select(CannedReply.id).where(
        CannedReply.shortcut == body.shortcut,
        CannedReply.owner_id == owner_id if owner_id is not None else CannedReply.owner_id.is_(None),
        CannedReply.team_id == body.team_id if body.team_id is not None else CannedReply.team_id.is_(None),
    )
    if except_id is not None:
        query = query.where(CannedReply.id != except_id)
    if await session.scalar(query) is not None:
        raise Conflict("该快捷码已存在", code="duplicate_shortcut", details={"shortcut": body.shortcut})


async def _apply(session: AsyncSession, principal: Principal, body: CannedReplyBody, row: CannedReply) -> None:
    owner_id = principal.user_id if body.scope == "personal" else None
    if not _may_manage(principal, body.scope, owner_id):
        raise Forbidden("只有班长或管理员可以维护公共常用语")
    if body.team_id is not None and await session.get(Team, body.team_id) is None:
        raise Invalid("技能组不存在", code="unknown_team", details={"fields": {"team_id": "unknown"}})
    await _check_unique(session, body, owner_id, except_id=row.id)
    row.shortcut, row.text, row.team_id, row.owner_id = body.shortcut, body.text, body.team_id, owner_id
    row.created_by, row.updated_at = row.created_by or principal.username, utcnow()


async def _managed_row(session: AsyncSession, principal: Principal, reply_id: int) -> CannedReply:
    row = await session.scalar(select(CannedReply).where(CannedReply.id == reply_id, _visible_to(principal)))
    if row is None:
        raise NotFound("常用语不存在", code="canned_reply_not_found")
    if not _may_manage(principal, _scope_of(row), row.owner_id):
        raise Forbidden("只有班长或管理员可以维护公共常用语")
    return row


@api.endpoint("GET", "/api/canned-replies", summary="Canned replies the caller may use (own first)",
              roles=STAFF_ROLES, response=ItemsOfCannedReplies, tag="desk")
async def list_canned_replies(call: Call) -> ItemsOfCannedReplies:
    async with call.request.app[HUB].sessions() as session:
        rows = await session.scalars(
            select(CannedReply).where(_visible_to(call.user))
            .order_by(CannedReply.owner_id.is_(None), CannedReply.team_id.is_(None), CannedReply.shortcut,
                      CannedReply.id))
        return ItemsOfCannedReplies(items=[_canned_out(row) for row in rows])


@api.endpoint("POST", "/api/canned-replies", summary="Add a canned reply", roles=STAFF_ROLES,
              body=CannedReplyBody, response=CannedReplyOut, status=201, tag="desk", errors=(409,))
async def add_canned_reply(call: Call) -> CannedReplyOut:
    async with call.request.app[HUB].sessions.begin() as session:
        row = CannedReply(created_by=call.user.username)
        await _apply(session, call.user, call.body, row)
        session.add(row)
        await session.flush()
        return _canned_out(row)


@api.endpoint("PUT", CANNED, summary="Change a canned reply", roles=STAFF_ROLES, body=CannedReplyBody,
              response=CannedReplyOut, tag="desk", errors=(409,))
async def change_canned_reply(call: Call) -> CannedReplyOut:
    async with call.request.app[HUB].sessions.begin() as session:
        row = await _managed_row(session, call.user, call.path["reply_id"])
        await _apply(session, call.user, call.body, row)
        await session.flush()
        return _canned_out(row)


@api.endpoint("DELETE", CANNED, summary="Remove a canned reply", roles=STAFF_ROLES, status=204, tag="desk")
async def remove_canned_reply(call: Call) -> None:
    async with call.request.app[HUB].sessions.begin() as session:
        await session.delete(await _managed_row(session, call.user, call.path["reply_id"]))
