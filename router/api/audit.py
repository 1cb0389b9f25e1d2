"""The audit log, for admins to read: newest first, filtered, a page at a time. Nothing edits or deletes it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select

from router.access import ADMIN_ROLES
from router.api import api
from router.api.spec import HUB, MAX_ID, Call
from router.audit import AuditEntry

PAGE_MAX = 200


class AuditQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    actor: str | None = Field(None, min_length=1, max_length=100, description="exact username, token:<name> …")
    action: str | None = Field(None, min_length=1, max_length=64, description="prefix, e.g. user. or auth.login")
    target_type: str | None = Field(None, min_length=1, max_length=32)
    target_id: str | None = Field(None, min_length=1, max_length=64)
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = Field(None, ge=1, le=MAX_ID, description="the next page: entries older than this one")
    limit: int = Field(50, ge=1, le=PAGE_MAX)

    @model_validator(mode="after")
    def _aware_range(self) -> AuditQuery:
        for moment in (self.since, self.until):
            if moment is not None and moment.tzinfo is None:
                raise ValueError("times need a timezone offset, e.g. 2026-12-05T08:00:00+08:00")
        return self


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    at: datetime
    actor: str
    actor_user_id: int | None
    action: str
    target_type: str | None
    target_id: str | None
    ip: str | None
    details: dict[str, Any] | None


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    next_before_id: int | None  # pass as before_id for the next (older) page; null on the last page


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@api.endpoint("GET", "/api/audit", summary="The audit log, newest first", roles=ADMIN_ROLES, query=AuditQuery,
              response=AuditPage, tag="admin")
async def list_audit(call: Call) -> AuditPage:
    query: AuditQuery = call.query
    statement = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(query.limit + 1)
    if query.actor is not None:
        statement = statement.where(AuditEntry.actor == query.actor)
    if query.action is not None:
        statement = statement.where(AuditEntry.action.like(_like_prefix(query.action), escape="\\"))
    if query.target_type is not None:
        statement = statement.where(AuditEntry.target_type == query.target_type)
    if query.target_id is not None:
        statement = statement.where(AuditEntry.target_id == query.target_id)
    if query.since is not None:
        statement = statement.where(AuditEntry.at >= query.since)
    if query.until is not None:
        statement = statement.where(AuditEntry.at < query.until)
    if query.before_id is not None:
        statement = statement.where(AuditEntry.id < query.before_id)
    async with call.request.app[HUB].sessions() as session:
        rows = (await session.scalars(statement)).all()
    items = [AuditEntryOut.model_validate(row) for row in rows[:query.limit]]
    return AuditPage(items=items, next_before_id=items[-1].id if len(rows) > query.limit else None)
