"""The audit log: who did what to which thing, from where. Written in the same transaction as the change.

Entries are only ever added (and removed by the retention job when they pass the retention period); no API
edits or deletes one. ``action`` is a dotted verb such as ``user.disable`` or ``auth.login_failed``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from router.access import Principal
from router.models import Base, utcnow


class AuditEntry(Base):
    __tablename__ = "audit_entry"
    __table_args__ = (Index("ix_audit_entry_action_at", "action", "at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_user_id: Mapped[int | None] = mapped_column(Integer, index=True)  # no FK: entries outlive accounts
    actor: Mapped[str] = mapped_column(String(100))  # username, "token:<name>", "system" or the name tried
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any] | None]


def record(session: AsyncSession, actor: Principal | str, action: str, *, target_type: str | None = None,
           target_id: object = None, ip: str | None = None, details: dict[str, Any] | None = None) -> AuditEntry:
    """Add an entry to ``session``; it is kept only if the caller's transaction commits."""
    if isinstance(actor, Principal):
        actor_user_id, actor_name = actor.user_id, actor.username
    else:
        actor_user_id, actor_name = None, actor
    entry = AuditEntry(at=utcnow(), actor_user_id=actor_user_id, actor=actor_name[:100], action=action,
                       target_type=target_type, target_id=None if target_id is None else str(target_id)[:64],
                       ip=ip, details=details or None)
    session.add(entry)
    return entry
