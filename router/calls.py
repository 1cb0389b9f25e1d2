"""The call records of the voice channel: one ``call`` row per call, ``call_event`` rows for what happened.

It is the :class:`channels.base.CallLog` the hub offers its adapters; each method is one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.base import AgentPhone, OpenCall
from router.models import Call, CallEvent, CallEventKind, PhoneKind, StaffUser, utcnow

UPDATABLE = frozenset({"conversation_id", "answered_at", "recording_file_id", "outcome", "queued_at", "agent_id",
                       "connected_at", "survey_score"})


class CallRecords:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def agent_phones(self) -> list[AgentPhone]:
        async with self._sessions() as session:
            rows = await session.execute(
                select(StaffUser.sip_extension, StaffUser.sip_md5_cred, StaffUser.sip_kind).where(
                    StaffUser.active.is_(True), StaffUser.sip_extension.is_not(None),
                    StaffUser.sip_md5_cred.is_not(None)))
            return [AgentPhone(extension=extension, md5_cred=cred, webrtc=kind == PhoneKind.BROWSER)
                    for extension, cred, kind in rows]

    async def open(self, channel_id: str, caller: str | None, did: str | None, started_at: datetime) -> int:
        try:
            async with self._sessions.begin() as session:
                call = Call(channel_id=channel_id, caller=caller, did=did, started_at=started_at, ivr_path=[])
                session.add(call)
                await session.flush()
                return call.id
        except IntegrityError:
            # Taken up again (a hub that restarted, another event of the same channel): the record stays one.
            async with self._sessions() as session:
                found = await session.scalar(select(Call.id).where(Call.channel_id == channel_id))
            if found is None:
                raise
            return found

    async def update(self, call_id: int, **fields: Any) -> None:
        _check_updatable(fields)
        async with self._sessions.begin() as session:
            await session.execute(update(Call).where(Call.id == call_id).values(**fields))

    async def event(self, call_id: int, kind: str, *, node: str | None = None, key: str | None = None,
                    detail: dict[str, Any] | None = None, at: datetime | None = None,
                    fields: Mapping[str, Any] | None = None) -> None:
        if kind not in set(CallEventKind):
            raise ValueError(f"unknown call event kind {kind!r}")
        if fields:
            _check_updatable(fields)
        async with self._sessions.begin() as session:
            if fields:
                await session.execute(update(Call).where(Call.id == call_id).values(**fields))
            session.add(CallEvent(call_id=call_id, at=at or utcnow(), kind=kind, node=node, key=key, detail=detail))
            if kind == CallEventKind.NODE and node is not None:
                call = await session.get(Call, call_id, with_for_update=True)
                if call is not None:
                    call.ivr_path = [*call.ivr_path, node]

    async def close(self, call_id: int, *, ended_at: datetime, cause: int | None, cause_text: str | None,
                    side: str) -> bool:
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(Call).where(Call.id == call_id, Call.ended_at.is_(None))
                .values(ended_at=ended_at, hangup_cause=cause, hangup_cause_text=cause_text, hangup_side=side))
            return bool(result.rowcount)

    async def talking(self, call_id: int) -> tuple[int, datetime, bool] | None:
        async with self._sessions() as session:
            row = (await session.execute(select(Call.agent_id, Call.connected_at).where(
                Call.id == call_id, Call.ended_at.is_(None)))).one_or_none()
            if not (row and row.agent_id and row.connected_at):
                return None
            left = await session.scalar(select(CallEvent.id).where(
                CallEvent.call_id == call_id, CallEvent.kind == CallEventKind.AGENT_HANGUP).limit(1))
        return row.agent_id, row.connected_at, left is not None

    async def waiting(self, call_id: int) -> tuple[datetime, str | None] | None:
        async with self._sessions() as session:
            row = (await session.execute(select(Call.queued_at).where(
                Call.id == call_id, Call.ended_at.is_(None), Call.queued_at.is_not(None),
                Call.connected_at.is_(None), Call.conversation_id.is_not(None)))).one_or_none()
            if row is None:
                return None
            queued = await session.scalar(select(CallEvent.detail).where(
                CallEvent.call_id == call_id, CallEvent.kind == CallEventKind.QUEUED).order_by(CallEvent.id.desc())
                .limit(1))
        team = (queued or {}).get("team")
        return row.queued_at, team if isinstance(team, str) else None

    async def last_node(self, call_id: int) -> str | None:
        async with self._sessions() as session:
            path = await session.scalar(select(Call.ivr_path).where(Call.id == call_id))
        return path[-1] if path and isinstance(path[-1], str) else None

    async def open_calls(self) -> dict[str, OpenCall]:
        async with self._sessions() as session:
            rows = await session.execute(select(Call.channel_id, Call.id, Call.conversation_id)
                                         .where(Call.ended_at.is_(None)))
            return {channel_id: OpenCall(call_id, conversation_id) for channel_id, call_id, conversation_id in rows}


def _check_updatable(fields: Mapping[str, Any]) -> None:
    unknown = set(fields) - UPDATABLE
    if unknown:
        raise ValueError(f"not a call field that can be set: {sorted(unknown)}")
