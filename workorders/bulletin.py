"""The bulletin board: planned outages, repairs and pressure changes by district, for everyone.

Residents read it on a public page, the bot and the IVR through ``GET /api/notices`` ("is there an
outage in 花桥 now?"); supervisors and editors publish it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import ForeignKey, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from router.api import api
from router.api.spec import Call
from router.errors import Invalid, NotFound
from router.models import Base, Role, utcnow
from router.schemas import StrictBody
from workorders.api import WORKORDERS, delete_row
from workorders.service import WorkOrderService

NoticeKind = Literal["planned_outage", "repair", "pressure_change", "water_quality", "other"]
PUBLISHERS = frozenset({Role.ADMIN, Role.SUPERVISOR, Role.EDITOR})
STATIC = Path(__file__).resolve().parent / "static"


class Notice(Base):
    __tablename__ = "notice"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    districts: Mapped[dict[str, Any]]  # {"codes": [...]}; empty: the whole service area
    starts_at: Mapped[datetime] = mapped_column(index=True)
    ends_at: Mapped[datetime] = mapped_column(index=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class NoticeBody(StrictBody):
    kind: NoticeKind
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=5000)
    districts: list[str] = Field(default_factory=list, max_length=50, description="region codes; empty: everywhere")
    starts_at: datetime
    ends_at: datetime

    @model_validator(mode="after")
    def sensible_times(self) -> NoticeBody:
        if self.starts_at.tzinfo is None or self.ends_at.tzinfo is None:
            raise ValueError("times need a UTC offset, e.g. 2026-11-24T08:00:00+08:00")
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class NoticeOut(BaseModel):
    id: int
    kind: str
    title: str
    body: str
    districts: list[str]
    district_names: list[str]
    starts_at: datetime
    ends_at: datetime
    active: bool


class NoticesQuery(BaseModel):
    district: str | None = Field(None, max_length=32, description="region code")
    address: str | None = Field(None, max_length=300, description="an address; its region is looked up")
    include: Literal["current", "upcoming", "all"] = "current"


class ItemsOfNotices(BaseModel):
    items: list[NoticeOut]
    district: str | None


def _out(notice: Notice, names: dict[str, str], now: datetime) -> NoticeOut:
    codes = notice.districts.get("codes", [])
    return NoticeOut(id=notice.id, kind=notice.kind, title=notice.title, body=notice.body, districts=codes,
                     district_names=[names.get(c, c) for c in codes] or ["全市"], starts_at=notice.starts_at,
                     ends_at=notice.ends_at, active=notice.starts_at <= now <= notice.ends_at)


@api.endpoint("GET", "/api/notices", summary="Outage, repair and pressure notices (public)", roles=None,
              query=NoticesQuery, response=ItemsOfNotices, tag="bulletin")
async def list_notices(call: Call) -> ItemsOfNotices:
    query: NoticesQuery = call.query
    service = call.request.app[WORKORDERS]
    district = query.district
    if district is None and query.address:
        district = await service.region_of(query.address)
    return ItemsOfNotices(items=await notices_for(service, district, query.include), district=district)


async def notices_for(service: WorkOrderService, district: str | None,
                      include: Literal["current", "upcoming", "all"] = "current") -> list[NoticeOut]:
    """The notices for one district (those for the whole service area included), or for everywhere: what the
    public page, the bot and the IVR read out."""
    now = utcnow()
    statement = select(Notice).where(Notice.ends_at >= now).order_by(Notice.starts_at)
    if include == "current":
        statement = statement.where(Notice.starts_at <= now)
    elif include == "all":
        statement = select(Notice).order_by(Notice.starts_at.desc()).limit(200)
    async with service.sessions() as session:
        notices = list(await session.scalars(statement))
    if district is not None:
        notices = [n for n in notices if not n.districts.get("codes") or district in n.districts["codes"]]
    return [_out(n, service.region_names, now) for n in notices]


@api.endpoint("POST", "/api/notices", summary="Publish a notice", roles=PUBLISHERS, body=NoticeBody,
              response=NoticeOut, status=201, tag="bulletin")
async def publish_notice(call: Call) -> NoticeOut:
    body: NoticeBody = call.body
    service = call.request.app[WORKORDERS]
    unknown = [code for code in body.districts if code not in service.region_codes]
    if unknown:
        raise Invalid("区域不存在", code="unknown_district", details={"fields": {"districts": ", ".join(unknown)}})
    notice = Notice(kind=body.kind, title=body.title, body=body.body, districts={"codes": body.districts},
                    starts_at=body.starts_at, ends_at=body.ends_at, created_by_id=call.user.user_id,
                    created_at=utcnow())
    async with service.sessions.begin() as session:
        session.add(notice)
        await session.flush()
    return _out(notice, service.region_names, utcnow())


@api.endpoint("DELETE", "/api/notices/{notice_id:\\d+}", summary="Withdraw a notice", roles=PUBLISHERS,
              status=204, tag="bulletin")
async def withdraw_notice(call: Call) -> None:
    await delete_row(call, Notice, call.path["notice_id"], NotFound("公告不存在", code="notice_not_found"))


async def notices_page(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "notices.html", headers={"Cache-Control": "no-cache"})


async def notices_script(_request: web.Request) -> web.FileResponse:
    """The page's script, apart from it: pages run only scripts of their own origin (no inline code)."""
    return web.FileResponse(STATIC / "notices.js", headers={"Cache-Control": "no-cache"})
