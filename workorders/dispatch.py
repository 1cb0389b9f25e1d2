"""Where a new order goes: its region, the department its category and region map to, and whether it is
another report of something already reported (a burst main brings many calls from one street).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, String, UniqueConstraint, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from router.models import Base
from workorders.geo import Geocoder, distance_m
from workorders.models import WorkOrder

# Merged, closed and finished orders are not masters for a new report.
_OPEN_STATES = ("new", "dispatched", "assigned", "in_progress")
_METRES_PER_DEGREE = 111_000.0


class DispatchRule(Base):
    """Orders of ``category_code`` in ``region_code`` go to ``department_id``; an empty side matches any."""

    __tablename__ = "dispatch_rule"
    __table_args__ = (UniqueConstraint("category_code", "region_code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    category_code: Mapped[str | None] = mapped_column(String(40))
    region_code: Mapped[str | None] = mapped_column(String(32))
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id", ondelete="CASCADE"), index=True)


@dataclass(frozen=True, slots=True)
class DuplicateRule:
    radius_m: float
    window_minutes: int


async def locate(geocoder: Geocoder, address: str | None, lat: float | None, lng: float | None) -> str | None:
    """The region code of an order: its WeChat location if it has one, else its address."""
    region = None
    if lat is not None and lng is not None:
        region = await geocoder.region_for_point(lat, lng)
    if region is None and address:
        region = await geocoder.region_for_address(address)
    return region.code if region is not None else None


async def matching_rule(session: AsyncSession, category_code: str, region_code: str | None) -> DispatchRule | None:
    """The most specific rule: category and region, then category alone, then region alone, then default."""
    rules = await session.scalars(select(DispatchRule).where(
        DispatchRule.category_code.is_(None) | (DispatchRule.category_code == category_code),
        DispatchRule.region_code.is_(None) | (DispatchRule.region_code == region_code),
    ))
    ranked = sorted(rules, key=lambda r: (r.category_code is None, r.region_code is None, r.id))
    return ranked[0] if ranked else None


async def likely_master(
    session: AsyncSession, order: WorkOrder, rule: DuplicateRule, now: datetime
) -> tuple[WorkOrder, float | None] | None:
    """An open order of the same category reported nearby shortly before, with its distance in metres.

    Nearby means within ``radius_m`` of the reported location, or the same address when there is none.
    """
    since = now - timedelta(minutes=rule.window_minutes)
    query = select(WorkOrder).where(
        WorkOrder.category_id == order.category_id,
        WorkOrder.id != order.id,
        WorkOrder.created_at >= since,
        WorkOrder.state.in_(_OPEN_STATES),
        WorkOrder.master_id.is_(None),
    ).order_by(WorkOrder.id)
    if order.lat is not None and order.lng is not None:
        delta = rule.radius_m / _METRES_PER_DEGREE
        candidates = await session.scalars(query.where(
            WorkOrder.lat.between(order.lat - delta, order.lat + delta),
            WorkOrder.lng.between(order.lng - 2 * delta, order.lng + 2 * delta),  # a degree of lng is shorter
        ))
        for candidate in candidates.unique():
            distance = distance_m(order.lat, order.lng, candidate.lat, candidate.lng)
            if distance <= rule.radius_m:
                return candidate, distance
        return None
    if order.address:
        candidate = (await session.scalars(query.where(WorkOrder.address == order.address).limit(1))).first()
        if candidate is not None:
            return candidate, None
    return None
