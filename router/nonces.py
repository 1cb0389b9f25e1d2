"""Values that may be used once: a signed request's nonce, remembered until the request could no longer be valid.

With ``HUB_REDIS_URL`` the memory is Redis (``SET key NX EX``), shared by every hub process; without it, or
while Redis cannot be reached, a table whose primary key makes the first use atomic across processes, swept
of expired rows now and then. Nonces that arrive together are inserted together, one statement and one
commit for all of them, as the inbound messages they come with are (router/inbound.py). On PostgreSQL the
memory has a connection of its own, whose commits do not wait for the disk: should PostgreSQL crash within
the moment before a write reaches it, those few nonces are forgotten, and their messages are still stored
only once (by their MsgId). While the database cannot be reached either, this process remembers nonces
itself, so that callbacks are still answered (their messages are journaled, router/journal.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime, timedelta

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sqlalchemy import String, delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from router.db import create_engine, dialect_insert, session_factory, unreachable
from router.logs import get_logger
from router.models import Base, utcnow

log = get_logger(__name__)

SWEEP_SECONDS = 60.0
INSERTERS = 1  # one batch at a time: nonces arriving during a commit make the next batch (more would contend)


class UsedNonce(Base):
    __tablename__ = "used_nonce"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class NonceMemory:
    """``first_use(key, lifetime)`` is True once per key within ``lifetime``, in all processes together."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], database_url: str, redis_url: str = "",
                 prefix: str = "shuiwu") -> None:
        self._engine = None if database_url.startswith("sqlite") else create_engine(
            database_url, pool_size=1, server_settings={"synchronous_commit": "off"})
        self._sessions = sessions if self._engine is None else session_factory(self._engine)
        self._redis = aioredis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2) if redis_url else None
        self._prefix = f"{prefix}:nonce:"
        self._pending: list[tuple[str, datetime, asyncio.Future[bool]]] = []
        self._arrived = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._here: dict[str, float] = {}  # key → when it expires (monotonic), while the database is away

    async def first_use(self, key: str, lifetime: timedelta) -> bool:
        if self._redis is not None:
            try:
                return bool(await self._redis.set(self._prefix + key, b"1", nx=True,
                                                  ex=max(1, int(lifetime.total_seconds()))))
            except RedisError as exc:
                log.warning("redis unavailable; remembering the nonce in the database", error=str(exc))
        try:
            return await self._first_use_in_database(key, lifetime)
        except Exception as exc:
            if not unreachable(exc):
                raise
            log.warning("database unreachable; nonce remembered in this process", error=type(exc).__name__)
            return self._first_use_here(key, lifetime)

    def _first_use_here(self, key: str, lifetime: timedelta) -> bool:
        now = time.monotonic()
        while self._here:  # oldest first (lifetimes end about in the order the nonces came)
            oldest = next(iter(self._here))
            if self._here[oldest] > now:
                break
            del self._here[oldest]
        if key in self._here:
            return False
        self._here[key] = now + lifetime.total_seconds()
        return True

    async def _first_use_in_database(self, key: str, lifetime: timedelta) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((key, utcnow() + lifetime, future))
        self._arrived.set()
        return await future

    async def _insert_batches(self) -> None:
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            batch, self._pending = self._pending, []
            if not batch:
                continue  # another inserter took them
            try:
                inserted = await self._insert(batch)
            except Exception as exc:
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            taken: set[str] = set()
            for key, _, future in batch:  # a key twice in one batch: only its first use is the first
                if not future.done():
                    future.set_result(key in inserted and key not in taken)
                taken.add(key)

    async def _insert(self, batch: list[tuple[str, datetime, asyncio.Future[bool]]]) -> set[str]:
        async with self._sessions.begin() as session:
            insert = dialect_insert(session.bind.dialect.name)
            rows = [{"key": key, "expires_at": expires_at} for key, expires_at, _ in batch]
            stored = await session.scalars(insert(UsedNonce).values(rows)
                                           .on_conflict_do_nothing(index_elements=[UsedNonce.key])
                                           .returning(UsedNonce.key))
            return set(stored)

    async def sweep(self) -> int:
        """Forget nonces past their lifetime; how many."""
        async with self._sessions.begin() as session:
            result = await session.execute(delete(UsedNonce).where(UsedNonce.expires_at < utcnow()))
        return result.rowcount or 0

    def start(self) -> None:
        # Several inserters: nonces arriving while one batch is being committed go in the next at once.
        self._tasks = [asyncio.create_task(self._insert_batches(), name=f"nonce-inserter-{n}")
                       for n in range(INSERTERS)]
        self._tasks.append(asyncio.create_task(self._sweep_now_and_then(), name="nonce-sweeper"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._redis is not None:
            await self._redis.aclose()
        if self._engine is not None:
            await self._engine.dispose()

    async def _sweep_now_and_then(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                await self.sweep()
            except Exception as exc:  # the database may be restarting; the next sweep catches up
                log.warning("expired nonces not swept", error=str(exc))
