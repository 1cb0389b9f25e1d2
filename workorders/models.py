"""Tables owned by work orders (their migrations live with the router's, in one Alembic history)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from router.models import Base, StaffUser, utcnow


class Department(Base):
    """A unit orders are dispatched to (pipe repair centre, business office, water-quality lab …)."""

    __tablename__ = "department"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WorkOrderCategory(Base):
    """What an order is about; admins edit these without code changes."""

    __tablename__ = "work_order_category"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    fields_schema: Mapped[dict[str, Any]]  # JSON Schema of the category's custom fields
    default_priority: Mapped[int] = mapped_column(Integer, default=2)  # 1 urgent … 4 low
    sla_hours: Mapped[float] = mapped_column(Float)
    workflow: Mapped[dict[str, Any]]  # see workorders.workflow
    # "24x7" counts every hour towards the deadline; "working_hours" only the business office's hours.
    sla_calendar: Mapped[str] = mapped_column(String(20), default="24x7", server_default="24x7")
    # After completion: "agent" (an agent calls the resident back) or "survey" (a link on the resident's channel).
    callback: Mapped[str] = mapped_column(String(10), default="agent", server_default="agent")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WorkOrderCounter(Base):
    """The last number handed out on a day, for numbers like GD20261122-0001."""

    __tablename__ = "work_order_counter"
    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last: Mapped[int] = mapped_column(Integer)


class WorkOrder(Base):
    __tablename__ = "work_order"
    __table_args__ = (
        UniqueConstraint("source", "external_ref"),
        Index("ix_work_order_list", "state", "category_id", "id"),
        Index("ix_work_order_sla", "state", "sla_due_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("work_order_category.id"), index=True)
    state: Mapped[str] = mapped_column(String(20))
    priority: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    custom_fields: Mapped[dict[str, Any]]
    address: Mapped[str | None] = mapped_column(String(300))
    lat: Mapped[float | None] = mapped_column(Float)
    lng: Mapped[float | None] = mapped_column(Float)
    region_code: Mapped[str | None] = mapped_column(String(32), index=True)
    contact_phone: Mapped[str | None] = mapped_column(String(32))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"), index=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"), index=True)
    master_id: Mapped[int | None] = mapped_column(ForeignKey("work_order.id"), index=True)
    # Another report of the same event, found on creation; an agent confirms it by merging.
    suggested_master_id: Mapped[int | None] = mapped_column(ForeignKey("work_order.id"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversation.id"), index=True)
    source: Mapped[str] = mapped_column(String(20))  # webchat, wechat, phone, agent, bot, 12345, import …
    external_ref: Mapped[str | None] = mapped_column(String(100))  # the source system's id, for idempotent import
    satisfaction: Mapped[int | None] = mapped_column(Integer)
    sla_due_at: Mapped[datetime | None]
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    category: Mapped[WorkOrderCategory] = relationship(lazy="joined")
    department: Mapped[Department | None] = relationship(lazy="joined")
    assignee: Mapped[StaffUser | None] = relationship(foreign_keys=[assignee_id], lazy="joined")


class WorkOrderEvent(Base):
    """The audit trail: every transition and transfer, who, when, why."""

    __tablename__ = "work_order_event"
    __table_args__ = (Index("ix_work_order_event_order", "order_id", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("work_order.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(20))
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    actor_name: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str | None] = mapped_column(String(500))
    comment: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None]
    at: Mapped[datetime] = mapped_column(default=utcnow)


class CallbackSurvey(Base):
    """A satisfaction survey sent to a resident when their order is completed; answered once, by a link."""

    __tablename__ = "callback_survey"
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("work_order.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 of the link's token
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    answered_at: Mapped[datetime | None]
    score: Mapped[int | None] = mapped_column(Integer)
    resolved: Mapped[bool | None]
    comment: Mapped[str | None] = mapped_column(Text)
