"""Agent presence: signed out, ready, away (with a reason), busy, after-call work with a timer.

Only a ready agent gets new conversations. Each change is stored on the agent's ``agent_presence`` row and
appended to ``presence_log`` (reports), and returns the event the hub publishes on :data:`TOPIC`. An agent
whose inbox has not been heard from for ``presence_timeout_seconds`` is signed out, so a closed laptop
stops receiving chats; after-call work turns back into ready when its timer runs out.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from router.db import dialect_insert
from router.models import AgentPresence, PresenceLog, PresenceState, utcnow

TOPIC = "presence"
DEFAULT_AWAY_REASON = "小休"
TIMED_OUT_REASON = "连接断开"
SIGNED_OUT_REASON = "退出登录"
ACW_ENDED_REASON = "整理时间结束"


async def _ensure_row(session: AsyncSession, user_id: int) -> None:
    """Every staff member gets a presence row the first time it is needed (signed out)."""
    insert = dialect_insert(session.bind.dialect.name)
    await session.execute(
        insert(AgentPresence)
        .values(user_id=user_id, state=PresenceState.SIGNED_OUT, since=utcnow())
        .on_conflict_do_nothing(index_elements=[AgentPresence.user_id])
    )


async def load_for_update(session: AsyncSession, user_id: int) -> AgentPresence:
    await _ensure_row(session, user_id)
    row = await session.scalar(
        select(AgentPresence).where(AgentPresence.user_id == user_id).with_for_update().execution_options(
            populate_existing=True)
    )
    assert row is not None
    return row


def presence_event(presence: AgentPresence) -> dict[str, Any]:
    return {"type": "presence", "user_id": presence.user_id, "presence": presence_out(presence)}


def presence_out(presence: AgentPresence) -> dict[str, Any]:
    return {
        "state": presence.state,
        "reason": presence.reason,
        "since": presence.since.isoformat(),
        "acw_until": presence.acw_until.isoformat() if presence.acw_until else None,
    }


def apply_change(
    session: AsyncSession,
    presence: AgentPresence,
    state: PresenceState,
    *,
    reason: str | None,
    actor: str | None,
    acw_seconds: float,
    now: datetime | None = None,
) -> dict[str, Any] | None:
    """Move ``presence`` to ``state``; None when nothing changed. ``actor`` is set when not the agent."""
    now = now or utcnow()
    reason = reason or (DEFAULT_AWAY_REASON if state == PresenceState.AWAY else None)
    acw_until = now + timedelta(seconds=acw_seconds) if state == PresenceState.ACW else None
    if actor is None and state != PresenceState.SIGNED_OUT:
        presence.seen_at = now  # the agent is at their desk: they just asked for this
    if presence.state == state and presence.reason == reason and state != PresenceState.ACW:
        return None
    presence.state, presence.reason, presence.since, presence.acw_until = state, reason, now, acw_until
    session.add(PresenceLog(user_id=presence.user_id, state=state, reason=reason, at=now, actor=actor))
    return presence_event(presence)


async def change(
    session: AsyncSession,
    user_id: int,
    state: PresenceState,
    *,
    reason: str | None = None,
    actor: str | None = None,
    acw_seconds: float = 0,
) -> tuple[AgentPresence, dict[str, Any] | None]:
    presence = await load_for_update(session, user_id)
    return presence, apply_change(session, presence, state, reason=reason, actor=actor, acw_seconds=acw_seconds)


async def touch(session: AsyncSession, user_id: int) -> None:
    """The agent's inbox is connected: keep them signed in."""
    await session.execute(
        update(AgentPresence)
        .where(AgentPresence.user_id == user_id, AgentPresence.state != PresenceState.SIGNED_OUT)
        .values(seen_at=utcnow())
    )


async def expire(session: AsyncSession, *, timeout_seconds: float) -> list[dict[str, Any]]:
    """Sign out agents whose inbox went quiet; end after-call work whose timer ran out."""
    now = utcnow()
    stale = (AgentPresence.state != PresenceState.SIGNED_OUT) & (
        AgentPresence.seen_at.is_(None) | (AgentPresence.seen_at < now - timedelta(seconds=timeout_seconds))
    )
    acw_over = (AgentPresence.state == PresenceState.ACW) & (AgentPresence.acw_until <= now)
    rows = await session.scalars(
        select(AgentPresence).where(stale | acw_over).with_for_update(skip_locked=True)
    )
    events = []
    for presence in rows:
        if _stale(presence, now, timeout_seconds):
            event = apply_change(session, presence, PresenceState.SIGNED_OUT, reason=TIMED_OUT_REASON,
                                 actor="system", acw_seconds=0, now=now)
        else:
            event = apply_change(session, presence, PresenceState.READY, reason=ACW_ENDED_REASON,
                                 actor="system", acw_seconds=0, now=now)
        if event is not None:
            events.append(event)
    return events


def _stale(presence: AgentPresence, now: datetime, timeout_seconds: float) -> bool:
    return presence.seen_at is None or presence.seen_at < now - timedelta(seconds=timeout_seconds)
