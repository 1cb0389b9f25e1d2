"""The retention job: what has passed ``HUB_RETENTION_DAYS`` is deleted, now and then, by one process at a time.

Deleted: conversations closed (and silent) for longer than the period, with their messages and the files those
messages carried (the rows; the bytes once no other row refers to the same content), and audit entries older
than the period. Kept whatever its age: anything still open, work orders, a conversation a work order was
made from, and work orders' own files.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from router.audit import AuditEntry
from router.db import take_turns
from router.logs import get_logger
from router.models import Conversation, ConversationState, Message, StoredFile, utcnow
from router.uploads import FileStore
from workorders.models import WorkOrder

log = get_logger(__name__)

RETENTION_LOCK_KEY = 962740_0015
BATCH = 500  # conversations per transaction: a first run on a large database does not hold locks for long
FIRST_RUN_DELAY_SECONDS = 60.0


@dataclass(slots=True)
class Removed:
    conversations: int = 0
    messages: int = 0
    files: int = 0
    bytes_files: int = 0
    audit_entries: int = 0


async def remove_expired(sessions: async_sessionmaker[AsyncSession], files: FileStore, days: int,
                         now: datetime | None = None) -> Removed:
    """Delete what is older than ``days``; what was removed."""
    cutoff = (now or utcnow()) - timedelta(days=days)
    removed = Removed()
    digests: set[str] = set()
    while True:
        async with sessions.begin() as session:
            await take_turns(session, RETENTION_LOCK_KEY)  # another process sweeping waits, then finds less
            batch = await _remove_conversations(session, cutoff, removed, digests)
        if batch < BATCH:
            break
    async with sessions.begin() as session:
        await take_turns(session, RETENTION_LOCK_KEY)
        removed.audit_entries = (await session.execute(delete(AuditEntry).where(AuditEntry.at < cutoff))).rowcount
    removed.bytes_files = await files.forget(digests)
    return removed


async def _remove_conversations(session: AsyncSession, cutoff: datetime, removed: Removed,
                                digests: set[str]) -> int:
    with_orders = select(WorkOrder.conversation_id).where(WorkOrder.conversation_id.is_not(None))
    doomed = list(await session.scalars(
        select(Conversation.id).where(
            Conversation.state == ConversationState.CLOSED, Conversation.closed_at < cutoff,
            or_(Conversation.last_message_at.is_(None), Conversation.last_message_at < cutoff),
            Conversation.id.not_in(with_orders))
        .limit(BATCH)))
    if not doomed:
        return 0
    payloads = await session.scalars(
        select(Message.payload).where(Message.conversation_id.in_(doomed), Message.payload.is_not(None)))
    file_ids = {file_id for payload in payloads if (file_id := _file_of(payload))}
    files = (await session.execute(
        select(StoredFile.id, StoredFile.sha256).where(StoredFile.id.in_(file_ids),
                                                        StoredFile.owner_channel != "workorder"))).all()
    await session.execute(delete(StoredFile).where(StoredFile.id.in_([row.id for row in files])))
    removed.messages += (await session.execute(delete(Message).where(Message.conversation_id.in_(doomed)))).rowcount
    removed.conversations += (await session.execute(delete(Conversation).where(Conversation.id.in_(doomed)))).rowcount
    removed.files += len(files)
    digests.update(row.sha256 for row in files)
    return len(doomed)


def _file_of(payload: Any) -> str | None:
    attachment = payload.get("attachment") if isinstance(payload, dict) else None
    file_id = attachment.get("file_id") if isinstance(attachment, dict) else None
    return file_id if isinstance(file_id, str) else None


class RetentionJob:
    """Runs :func:`remove_expired` a minute after the hub starts, then every ``interval``."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], files: FileStore, days: int,
                 interval: timedelta) -> None:
        self._sessions, self._files, self._days, self._interval = sessions, files, days, interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        await asyncio.sleep(FIRST_RUN_DELAY_SECONDS)
        while True:
            try:
                removed = await remove_expired(self._sessions, self._files, self._days)
                log.info("retention: expired records removed", **dataclasses.asdict(removed))
            except Exception:
                log.exception("retention run failed; tried again at the next interval")
            await asyncio.sleep(self._interval.total_seconds())

