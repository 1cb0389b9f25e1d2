"""Values every hub process shares and exactly one of them produces: an API's access token, for one.

A value is stored in the hub's database with its expiry. Whoever finds it missing, about to expire or
known to be bad produces a new one while holding the row's lock (PostgreSQL); the other processes wait on
the lock and then read what it stored, so the producer is called once however many processes ask at once.
On SQLite, the single-process mode, the database's write lock orders the askers the same way.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import String, Text, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from channels.base import Producer
from router.db import dialect_insert
from router.models import Base, utcnow


class SharedValue(Base):
    __tablename__ = "shared_value"
    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime]
    updated_at: Mapped[datetime]


async def shared_value(sessions: async_sessionmaker[AsyncSession], key: str, produce: Producer, *,
                       margin: timedelta, stale: str | None = None) -> tuple[str, datetime]:
    """The value under ``key``, produced anew if it is missing, expires within ``margin`` or equals ``stale``."""
    async with sessions.begin() as session:
        await _ensure_row(session, key)
        row = await session.scalar(select(SharedValue).where(SharedValue.key == key).with_for_update())
        assert row is not None
        now = utcnow()
        if row.value and row.value != stale and row.expires_at - margin > now:
            return row.value, row.expires_at
        value, lifetime = await produce()
        row.value, row.expires_at, row.updated_at = value, now + lifetime, now
        return value, row.expires_at


async def _ensure_row(session: AsyncSession, key: str) -> None:
    """An empty row to lock, so that the first producers also take turns (a concurrent insert waits, then skips)."""
    insert = dialect_insert(session.bind.dialect.name)
    await session.execute(insert(SharedValue).values(key=key, value="", expires_at=utcnow(), updated_at=utcnow())
                          .on_conflict_do_nothing(index_elements=[SharedValue.key]))
